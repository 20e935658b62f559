/// Places in an answer, and the patterns an operator names them with
/// (`--ignore`, `--unordered`).
///
/// The syntax is JSONPath's dot and bracket notation:
///
///     $                      the whole JSON body
///     $.user.name            a member (letters, digits and `_`; anything else in brackets)
///     $['content-type']      a member with any name: `\'` and `\\` escape, `\uXXXX` too
///     $.items[3]             the element at index 3 (0-based)
///     $.items[*].price       `[*]` any element of the array
///     $.*.id                 `.*` any member
///     status                 the HTTP status
///     header:content-type    a compared response header (any case)
///     body                   the whole body, compared as JSON, as bytes or by hash
///
/// A pattern names a place and everything below it: `--ignore $.meta` ignores
/// `$.meta.time` too. Reported paths use the same syntax, so any path in a report
/// can be pasted back into `--ignore`.
module Replay.Core.JsonPath

open System
open System.Text

/// One step from a JSON value to a value inside it.
type Segment =
    | Member of name: string
    | Index of int
    /// An element of an array compared as a multiset (`--unordered`), which has no position.
    | Element

/// One step of a pattern.
type Step =
    | Named of string
    | AnyMember
    | At of int
    | AnyElement

/// What a pattern names.
type Pattern =
    /// A place in the JSON body; steps from the root, in order.
    | Json of steps: Step list
    | Status
    /// A response header, by its name in lower case.
    | Header of name: string
    | Body

let private isPlainName (name: string) =
    name.Length > 0
    && (Char.IsAsciiLetter name[0] || name[0] = '_')
    && name |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '_')

let private quoted (name: string) =
    let builder = StringBuilder(name.Length + 4)
    builder.Append "['" |> ignore
    for c in name do
        match c with
        | '\'' -> builder.Append "\\'" |> ignore
        | '\\' -> builder.Append "\\\\" |> ignore
        | c when Char.IsControl c -> builder.Append($"\\u{int c:x4}") |> ignore
        | c -> builder.Append c |> ignore
    builder.Append "']" |> ignore
    builder.ToString()

let private appendSegment (builder: StringBuilder) segment =
    match segment with
    | Member name when isPlainName name -> builder.Append('.').Append(name) |> ignore
    | Member name -> builder.Append(quoted name) |> ignore
    | Index i -> builder.Append('[').Append(i).Append(']') |> ignore
    | Element -> builder.Append "[*]" |> ignore

/// A path as text, root first, from its segments in reverse order (innermost
/// first, as a walk builds them). Cut to Difference.MaxPath characters.
let render (reversed: Segment list) =
    let builder = StringBuilder "$"
    for segment in List.rev reversed do
        appendSegment builder segment
    Difference.cut Difference.MaxPath $"{builder.Length} characters" (Difference.wellFormed (builder.ToString()))

/// The field a path counts under: every array position becomes `[*]`.
let field (reversed: Segment list) =
    reversed
    |> List.map (fun s ->
        match s with
        | Index _ -> Element
        | other -> other)
    |> render

/// JSON patterns made ready to test many paths against: steps innermost first,
/// as paths are built during a walk.
type Matcher = private { Reversed: Step list list }

let matcher (patterns: Pattern list) =
    { Reversed =
        patterns
        |> List.choose (fun p ->
            match p with
            | Json steps -> Some(List.rev steps)
            | _ -> None) }

let private fits step segment =
    match step, segment with
    | Named n, Member m -> String.Equals(n, m, StringComparison.Ordinal)
    | AnyMember, Member _ -> true
    | At i, Index j -> i = j
    | AnyElement, (Index _ | Element) -> true
    | _ -> false

let rec private sameLengthFits steps segments =
    match steps, segments with
    | [], [] -> true
    | step :: steps, segment :: segments -> fits step segment && sameLengthFits steps segments
    | _ -> false

/// True when one of the patterns names exactly the place `reversed` (segments innermost first).
let names (m: Matcher) (reversed: Segment list) =
    not m.Reversed.IsEmpty && m.Reversed |> List.exists (fun steps -> sameLengthFits steps reversed)

let private parseJson (text: string) : Result<Step list, string> =
    let fail position (why: string) =
        Error $"'{Printable.show text}' is not a path: {why} at character {position + 1}; write e.g. $.user.name, $.items[*].price or $['odd key']"
    let rec steps position acc =
        if position >= text.Length then
            Ok(List.rev acc)
        else
            match text[position] with
            | '.' ->
                let start = position + 1
                let mutable stop = start
                while stop < text.Length && text[stop] <> '.' && text[stop] <> '[' do
                    stop <- stop + 1
                let name = text.Substring(start, stop - start)
                if name = "" then fail position "a '.' must be followed by a member name"
                elif name = "*" then steps stop (AnyMember :: acc)
                elif isPlainName name then steps stop (Named name :: acc)
                else fail start $"'{Printable.show name}' needs brackets: $['{Printable.show name}']"
            | '[' when position + 1 < text.Length && (text[position + 1] = '\'' || text[position + 1] = '"') ->
                let quote = text[position + 1]
                let name = StringBuilder()
                let hex4 i =
                    match Int32.TryParse(text.AsSpan(i, 4), Globalization.NumberStyles.AllowHexSpecifier, Globalization.CultureInfo.InvariantCulture) with
                    | true, code -> Some(char code)
                    | _ -> None
                let rec read i =
                    if i >= text.Length then None
                    elif text[i] = '\\' && i + 5 < text.Length && text[i + 1] = 'u' && (hex4 (i + 2)).IsSome then
                        name.Append((hex4 (i + 2)).Value) |> ignore
                        read (i + 6)
                    elif text[i] = '\\' && i + 1 < text.Length then
                        name.Append text[i + 1] |> ignore
                        read (i + 2)
                    elif text[i] = quote then Some i
                    else
                        name.Append text[i] |> ignore
                        read (i + 1)
                match read (position + 2) with
                | Some close when close + 1 < text.Length && text[close + 1] = ']' -> steps (close + 2) (Named(name.ToString()) :: acc)
                | _ -> fail position "a quoted member name must end with its quote and ']'"
            | '[' ->
                let close = text.IndexOf(']', position)
                if close < 0 then
                    fail position "'[' without ']'"
                else
                    let inside = text.Substring(position + 1, close - position - 1)
                    match Int32.TryParse(inside, Globalization.NumberStyles.None, Globalization.CultureInfo.InvariantCulture) with
                    | _ when inside = "*" -> steps (close + 1) (AnyElement :: acc)
                    | true, index -> steps (close + 1) (At index :: acc)
                    | _ -> fail position $"'[{Printable.show inside}]' is neither an index, [*] nor a quoted name"
            | _ -> fail position "expected '.' or '['"
    if text.StartsWith '$' then steps 1 [] else fail 0 "a JSON path starts with '$'"

/// Reads a pattern (see the module's summary); the error says what to write instead.
let parse (text: string) : Result<Pattern, string> =
    let t = text.Trim()
    if t.Equals("status", StringComparison.OrdinalIgnoreCase) then
        Ok Status
    elif t.Equals("body", StringComparison.OrdinalIgnoreCase) then
        Ok Body
    elif t.StartsWith("header:", StringComparison.OrdinalIgnoreCase) then
        let name = t.Substring("header:".Length).Trim()
        if name = "" || name |> Seq.exists (fun c -> c <= ' ' || c > '~' || c = ':') then
            Error $"'{Printable.show text}' does not name a header: write header:Content-Type"
        else
            Ok(Header(name.ToLowerInvariant()))
    elif t.StartsWith '$' then
        parseJson t |> Result.map Json
    else
        Error
            $"'{Printable.show text}' is not a place in an answer: JSON paths start with '$' ($.{Printable.show t}), the others are status, body and header:NAME"

/// The pattern as an operator would write it.
let describe (pattern: Pattern) =
    match pattern with
    | Status -> "status"
    | Body -> "body"
    | Header name -> $"header:{name}"
    | Json steps ->
        let builder = StringBuilder "$"
        for step in steps do
            match step with
            | Named name -> appendSegment builder (Member name)
            | AnyMember -> builder.Append ".*" |> ignore
            | At i -> appendSegment builder (Index i)
            | AnyElement -> builder.Append "[*]" |> ignore
        builder.ToString()
