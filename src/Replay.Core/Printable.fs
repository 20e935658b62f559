/// Record data shown to an operator (dead-letter reasons, log lines). Ids and URLs
/// come from producers we do not trust: a CR/LF in one would forge log lines, a
/// megabyte one would flood them. Control characters are made visible as escapes
/// and the text is cut to a bound, so what is printed is one honest line.
module Replay.Core.Printable

open System.Globalization
open System.Text

/// How many characters of one value are shown before it is cut: room for any id
/// the decoder accepts (1024 bytes), not for a megabyte Kafka key.
[<Literal>]
let MaxShown = 1024

/// How many characters of a URL are shown: an id escaped can triple in length.
[<Literal>]
let MaxUrlShown = 4096

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
/// and cut after `limit` characters, the cut marked with its full length.
let showUpTo (limit: int) (value: string) =
    let builder = StringBuilder(min value.Length limit + 16)
    // Never cut between the halves of a surrogate pair.
    let shown =
        if value.Length > limit && System.Char.IsHighSurrogate value[limit - 1] then limit - 1
        else min value.Length limit
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

/// `showUpTo MaxShown`: how record values are shown.
let show (value: string) = showUpTo MaxShown value
