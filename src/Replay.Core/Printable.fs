/// Record data shown to an operator (dead-letter reasons, log lines). Ids and URLs
/// come from producers we do not trust: a CR/LF in one would forge log lines, a
/// megabyte one would flood them. Control characters are made visible as escapes
/// and the text is cut to a bound, so what is printed is one honest line.
module Replay.Core.Printable

open System.Globalization
open System.Text

/// How many characters of one value are shown before it is cut.
[<Literal>]
let MaxShown = 120

/// Characters that break or disguise a line: controls, Unicode line and paragraph
/// separators, and format characters such as bidirectional overrides.
let private hidesText (c: char) =
    match System.Char.GetUnicodeCategory c with
    | UnicodeCategory.Control
    | UnicodeCategory.LineSeparator
    | UnicodeCategory.ParagraphSeparator
    | UnicodeCategory.Format -> true
    | _ -> false

/// The value with control characters escaped (`\r`, `\n`, `\t`, `\u0000`, ...)
/// and cut after `MaxShown` characters, the cut marked with its full length.
let show (value: string) =
    let builder = StringBuilder(min value.Length MaxShown + 16)
    // Never cut between the halves of a surrogate pair.
    let shown =
        if value.Length > MaxShown && System.Char.IsHighSurrogate value[MaxShown - 1] then MaxShown - 1
        else min value.Length MaxShown
    for i in 0 .. shown - 1 do
        match value[i] with
        | '\r' -> builder.Append "\\r" |> ignore
        | '\n' -> builder.Append "\\n" |> ignore
        | '\t' -> builder.Append "\\t" |> ignore
        | '\\' -> builder.Append "\\\\" |> ignore
        | c when hidesText c -> builder.Append($"\\u{int c:x4}") |> ignore
        | c -> builder.Append c |> ignore
    if value.Length > shown then
        builder.Append($"... ({value.Length} characters)") |> ignore
    builder.ToString()
