/// Where a replayed request goes. Bagheera's `--dest` split the pattern around the
/// first `%k` and put the key between the halves; that stays exactly so. On top,
/// named placeholders (`{id}`, `{namespace}`, ...) serve rules, and every inserted
/// value is escaped as one URL path segment so record data can never change the
/// path above it, the query or the host.
module Replay.Core.Destination

open System
open System.Text

/// A value taken from the record, by name.
type Placeholder =
    /// Bagheera's `%k` and `{id}`: the document key sent (a fresh UUID when copy-keys is off).
    | Key
    | Namespace
    | Topic
    | Partition
    | Offset
    | ApiVersion
    /// The envelope's Bagheera partitions, slash-joined, each one escaped.
    | Partitions

type Part =
    | Literal of string
    | Value of Placeholder

/// A parsed pattern: literal text and placeholders in order.
type Pattern = { Text: string; Parts: Part list }

/// The values a pattern can take from one record.
type Values =
    { Key: string
      Namespace: string
      Topic: string
      Partition: int
      Offset: int64
      ApiVersion: string
      Partitions: string list }

/// How record values are inserted: escaped as a path segment (safe), or verbatim as
/// Bagheera did (`--raw-keys`).
type Escaping =
    | Segment
    | Verbatim

let placeholderNames =
    [ "id", Key
      "key", Key
      "namespace", Namespace
      "topic", Topic
      "partition", Partition
      "offset", Offset
      "api_version", ApiVersion
      "partitions", Partitions ]

let private byName = Map.ofList placeholderNames

let private literal (text: string) parts =
    if text = "" then parts else Literal text :: parts

/// Parses `{name}` placeholders in a stretch of pattern text.
let private named (text: string) : Result<Part list, string> =
    let rec go (from: int) (acc: Part list) =
        let opening = text.IndexOf('{', from)
        if opening < 0 then
            Ok(literal (text.Substring from) acc)
        else
            let closing = text.IndexOf('}', opening)
            if closing < 0 then
                Ok(literal (text.Substring from) acc)
            else
                let name = text.Substring(opening + 1, closing - opening - 1)
                match byName.TryFind name with
                | Some placeholder ->
                    go (closing + 1) (Value placeholder :: literal (text.Substring(from, opening - from)) acc)
                | None ->
                    let known = placeholderNames |> List.map (fun (n, _) -> "{" + n + "}") |> String.concat ", "
                    Error $"unknown placeholder '{{{name}}}' in destination '{text}'; known: %%k, {known}"
    go 0 [] |> Result.map List.rev

/// Parses a destination pattern. Only the first `%k` is a placeholder, as in Bagheera.
let parse (pattern: string) : Result<Pattern, string> =
    if String.IsNullOrWhiteSpace pattern then
        Error "the destination pattern is empty; pass e.g. --dest \"http://host/submit/telemetry/%k\""
    else
        let marker = pattern.IndexOf("%k", StringComparison.Ordinal)
        let parts =
            if marker < 0 then
                named pattern
            else
                match named (pattern.Substring(0, marker)) with
                | Error e -> Error e
                | Ok prefix ->
                    // Bagheera kept everything after the first %k as a literal suffix.
                    let suffix = pattern.Substring(marker + 2)
                    Ok(prefix @ [ Value Key ] @ literal suffix [])
        parts |> Result.map (fun parts -> { Text = pattern; Parts = parts })

/// Escapes a value as exactly one path segment: reserved characters are
/// percent-encoded and the dot segments `.` and `..` are encoded too, so no value
/// can climb out of its place in the path.
let escapeSegment (value: string) =
    match value with
    | "." -> "%2E"
    | ".." -> "%2E%2E"
    | _ -> Uri.EscapeDataString value

let private render escaping (values: Values) (builder: StringBuilder) placeholder =
    let put (value: string) =
        match escaping with
        | Segment -> builder.Append(escapeSegment value) |> ignore
        | Verbatim -> builder.Append value |> ignore
    match placeholder with
    | Key -> put values.Key
    | Namespace -> put values.Namespace
    | Topic -> put values.Topic
    | Partition -> builder.Append values.Partition |> ignore
    | Offset -> builder.Append values.Offset |> ignore
    | ApiVersion -> put values.ApiVersion
    | Partitions ->
        values.Partitions
        |> List.iteri (fun i p ->
            if i > 0 then builder.Append '/' |> ignore
            put p)

/// `{api_version}` and `{partitions}` are optional in a Bagheera path: when one is
/// empty, the slash before it goes too, so `/{api_version}/submit/{namespace}/{id}/{partitions}`
/// rebuilds `/submit/ns/id` as well as `/1.0/submit/ns/id/a/b`.
let private isOptionalAndEmpty (values: Values) (part: Part) =
    match part with
    | Value ApiVersion -> values.ApiVersion = ""
    | Value Partitions -> List.isEmpty values.Partitions
    | _ -> false

let private startsSegmentOrEnds (next: Part list) =
    match next with
    | [] -> true
    | Literal text :: _ -> text.StartsWith '/' || text.StartsWith '?' || text.StartsWith '#'
    | Value _ :: _ -> false

/// One builder per thread, reused: a URL is built per record, and a fresh builder
/// with its buffer was most of what building it allocated.
let private builders = new Threading.ThreadLocal<StringBuilder>(fun () -> StringBuilder(256))

/// The URL for one record.
let expand (escaping: Escaping) (values: Values) (pattern: Pattern) : string =
    let builder = builders.Value.Clear()
    let rec go parts =
        match parts with
        | [] -> ()
        | part :: rest ->
            match part with
            | Literal text -> builder.Append text |> ignore
            | Value _ when isOptionalAndEmpty values part ->
                if builder.Length > 0 && builder[builder.Length - 1] = '/' && startsSegmentOrEnds rest then
                    builder.Length <- builder.Length - 1
            | Value placeholder -> render escaping values builder placeholder
            go rest
    go pattern.Parts
    builder.ToString()

/// True when a placeholder sits before the path starts (in the scheme or host):
/// record data must never choose where a request goes. Only a literal
/// `scheme://host/` before the first placeholder fixes both; a value placed before
/// any `://` is in the scheme, and could even write one (`http:\\evil/` parses).
let placesValueInAuthority (pattern: Pattern) =
    let rec go (seen: string) parts =
        match parts with
        | [] -> false
        | Literal text :: rest -> go (seen + text) rest
        | Value _ :: _ ->
            match seen.IndexOf("://", StringComparison.Ordinal) with
            | -1 -> true
            | i -> not (seen.Substring(i + 3).Contains '/')
    go "" pattern.Parts

/// Most ids (UUIDs, numbers, words) hold no '%', no '.' and no control character:
/// no decoded form differs from the value and none can be a dot segment, so there is
/// nothing to judge. This is checked per record, so it must not allocate.
let private isPlain (value: string) =
    let text = value.AsSpan()
    text.IndexOfAny('%', '.') < 0
    && text.IndexOfAnyInRange('\u0000', '\u001F') < 0
    && text.IndexOfAnyInRange('\u007F', '\u009F') < 0

/// Why a record value must not be put into a URL at all, whatever the escaping, or
/// None when it may. Escaping keeps a value inside one segment only for servers
/// that do not decode before they normalise; nginx and Kestrel decode `%2E%2E` and
/// `..%2F` back into dot segments and then resolve them, so a value that is, or
/// holds between slashes, a dot segment could climb above the operator's path.
/// The value is also judged as a server would see it after decoding it (once for
/// `--raw-keys`, twice for servers that decode twice): `%2E%2E` is `..` there.
/// Control characters have no place in an id: the destination would decode them
/// into its own logs and headers. Both are refused, in every escaping mode.
let refuseValue (value: string) : string option =
    if isPlain value then
        None
    else
        let isDotSegment (piece: string) = piece = "." || piece = ".."
        // A path segment also ends where the query ('?') or the fragment ('#') begins: verbatim, `..?x`
        // is the segment `..` followed by a query. And `..;x` is `..` to servers that strip path
        // parameters (Tomcat, Jetty).
        let holdsDotSegment (form: string) = form.Split([| '/'; '\\'; '?'; '#'; ';' |]) |> Array.exists isDotSegment
        // The value and its decoded forms, until decoding changes nothing (at most a few rounds).
        let forms =
            let rec decoded (form: string) rounds =
                let next = Uri.UnescapeDataString form
                if rounds = 0 || next = form then [ form ] else form :: decoded next (rounds - 1)
            decoded value 3
        if forms |> List.exists (Seq.exists Char.IsControl) then
            Some "it holds a control character (CR, LF, NUL...), as written or once percent-decoded"
        elif forms |> List.exists holdsDotSegment then
            Some "it is or holds a dot segment ('.' or '..'), as written or once percent-decoded, which servers resolve to a path above the destination's"
        else
            None

let private placeholderName placeholder =
    placeholderNames |> List.find (fun (_, p) -> p = placeholder) |> fst

/// The first value the pattern would take from the record that `refuseValue`
/// refuses, described for the dead letter; None when every value may go in.
let refusal (values: Values) (pattern: Pattern) : string option =
    let textsOf placeholder =
        match placeholder with
        | Key -> [ values.Key ]
        | Namespace -> [ values.Namespace ]
        | Topic -> [ values.Topic ]
        | ApiVersion -> [ values.ApiVersion ]
        | Partitions -> values.Partitions
        | Partition
        | Offset -> []
    pattern.Parts
    |> List.tryPick (fun part ->
        match part with
        | Literal _ -> None
        | Value placeholder ->
            textsOf placeholder
            |> List.tryPick (fun value ->
                refuseValue value
                |> Option.map (fun why ->
                    $"the {{{placeholderName placeholder}}} value '{Printable.show value}' cannot go into a URL: {why}")))
