/// Whether two answers to the same request say the same thing: the status, the
/// chosen response headers, and the body. Bodies that both parse as JSON are
/// compared structurally (JsonDiff); a JSON body against one that is not is one
/// difference at `$`; other bodies are compared as bytes. Bodies larger than
/// `--compare-max-bytes`, or cut short by the sender's capture limit, are compared
/// by length and SHA-256 only: never parsed, so a cut body is never a parse error.
module Replay.Core.AnswerComparison

open System
open System.Security.Cryptography
open System.Text.Json
open Replay.Core.Difference
open Replay.Core.JsonPath
open Replay.Core.Outcome

/// Bodies larger than this are compared by hash only (`--compare-max-bytes`).
[<Literal>]
let DefaultMaxBodyBytes = 1048576L

/// One comparison reports at most this many differences.
[<Literal>]
let MaxDifferences = 100

/// JSON nested deeper than this is not parsed (it is compared as bytes): bounds
/// the walk's recursion whatever a server sends.
[<Literal>]
let MaxDepth = 64

type Settings =
    { /// Numbers at most this far apart are equal (`--tolerance`).
      Tolerance: float
      /// Places never compared (`--ignore`).
      Ignored: Pattern list
      /// Arrays compared as multisets (`--unordered`).
      Unordered: Pattern list
      /// Response headers compared, by name in lower case.
      Headers: string list
      /// Larger bodies are compared by hash (`--compare-max-bytes`).
      MaxBodyBytes: int64 }

let defaults =
    { Tolerance = 0.0
      Ignored = []
      Unordered = []
      Headers = [ "content-type" ]
      MaxBodyBytes = DefaultMaxBodyBytes }

/// Settings from what an operator wrote; the first problem found is the error.
let create (tolerance: float) (ignored: string seq) (unordered: string seq) (headers: string seq) (maxBodyBytes: int64) : Result<Settings, string> =
    let patterns flag (texts: string seq) =
        let parsed = texts |> Seq.map (fun t -> JsonPath.parse t |> Result.mapError (fun e -> $"{flag}: {e}")) |> List.ofSeq
        match parsed |> List.tryPick (fun r -> match r with | Error e -> Some e | Ok _ -> None) with
        | Some e -> Error e
        | None -> Ok(parsed |> List.choose (fun r -> match r with | Ok p -> Some p | Error _ -> None))
    let headerNames = headers |> Seq.map (fun h -> h.Trim()) |> List.ofSeq
    if Double.IsNaN tolerance || Double.IsInfinity tolerance || tolerance < 0.0 then
        Error $"--tolerance {tolerance} must be a finite number >= 0, e.g. 0.001"
    elif maxBodyBytes < 0L then
        Error $"--compare-max-bytes {maxBodyBytes} must be >= 0"
    else
        match headerNames |> List.tryFind (fun h -> h = "" || h |> Seq.exists (fun c -> c <= ' ' || c > '~' || c = ':')) with
        | Some bad -> Error $"--compare-header '{Printable.show bad}' is not a header name; write e.g. Content-Type"
        | None ->
            match patterns "--ignore" ignored, patterns "--unordered" unordered with
            | Error e, _
            | _, Error e -> Error e
            | Ok ignore, Ok unorder ->
                match unorder |> List.tryFind (fun p -> match p with | Json _ -> false | _ -> true) with
                | Some p -> Error $"--unordered {JsonPath.describe p}: only JSON arrays can be unordered; name one with a path like $.items"
                | None ->
                    Ok
                        { Tolerance = tolerance
                          Ignored = ignore
                          Unordered = unorder
                          Headers = headerNames |> List.map (fun h -> h.ToLowerInvariant()) |> List.distinct
                          MaxBodyBytes = maxBodyBytes }

/// How two bodies were compared.
type BodyMode =
    | Json
    | Bytes
    /// By length and SHA-256 only: a body was larger than the limit or cut short.
    | Digest

type Diff =
    { Differences: Difference list
      /// True when more differences may exist than are listed (MaxDifferences).
      Truncated: bool
      Body: BodyMode }

/// Both answers of one record compared: what the candidate changed, and what
/// differed between primary and secondary (the noise), when there was a secondary.
type RecordComparison = { Candidate: Diff; Noise: Diff option }

/// True when Body holds the whole body: no hash of a longer one, and no larger length.
let isComplete (answer: Answer) =
    answer.BodyHash.Length = 0 && (answer.BodyLength < 0L || answer.BodyLength = int64 answer.Body.Length)

let private lengthOf (answer: Answer) =
    if answer.BodyLength >= 0L then ValueSome answer.BodyLength
    elif isComplete answer then ValueSome(int64 answer.Body.Length)
    else ValueNone

/// One answer, its body parsed once when it is to be compared as JSON.
type private Side =
    { Answer: Answer
      /// Small and complete: compared by content rather than by digest.
      Whole: bool
      Json: JsonDocument option }

let private utf8Bom = [| 0xEFuy; 0xBBuy; 0xBFuy |]

let private side (settings: Settings) (answer: Answer) =
    let whole = isComplete answer && int64 answer.Body.Length <= settings.MaxBodyBytes
    let json =
        if not whole || answer.Body.Length = 0 then
            None
        else
            let body = ReadOnlyMemory answer.Body
            let body = if body.Span.StartsWith(utf8Bom) then body.Slice 3 else body
            try
                Some(JsonDocument.Parse(body, JsonDocumentOptions(MaxDepth = MaxDepth)))
            with :? JsonException ->
                // Not JSON (or nested deeper than MaxDepth): compared as bytes.
                None
    { Answer = answer; Whole = whole; Json = json }

let private describeDigest (answer: Answer) (hash: byte[] voption) =
    let length =
        match lengthOf answer with
        | ValueSome n -> $"{n} bytes"
        | ValueNone -> "length unknown"
    match hash with
    | ValueSome h -> $"{length}, sha256 {Convert.ToHexStringLower h}"
    | ValueNone -> $"{length}, starting {excerptOfBytes (ReadOnlySpan answer.Body)}"

let private digestOf (answer: Answer) =
    if answer.BodyHash.Length > 0 then ValueSome answer.BodyHash
    elif isComplete answer then ValueSome(SHA256.HashData answer.Body)
    else ValueNone

/// Equal digests: equal hashes and lengths where both are known; where a hash is
/// missing (a sender that kept a prefix without hashing), equal lengths and equal
/// kept prefixes — as far as can be told.
let private sameDigest (a: Answer) (b: Answer) (hashA: byte[] voption) (hashB: byte[] voption) =
    let lengthsAgree =
        match lengthOf a, lengthOf b with
        | ValueSome x, ValueSome y -> x = y
        | _ -> true
    lengthsAgree
    && (match hashA, hashB with
        | ValueSome x, ValueSome y -> x.AsSpan().SequenceEqual(ReadOnlySpan y)
        | _ ->
            let shorter = min a.Body.Length b.Body.Length
            a.Body.AsSpan(0, shorter).SequenceEqual(b.Body.AsSpan(0, shorter)))

let private at path change primary other : Difference =
    { Path = path
      Field = path
      Change = change
      Primary = primary
      Candidate = other }

let private headerValue (answer: Answer) (name: string) =
    let values =
        answer.Headers
        |> List.filter (fun (n, _) -> String.Equals(n, name, StringComparison.OrdinalIgnoreCase))
        |> List.map snd
    if values.IsEmpty then None else Some(String.Join(", ", values))

let private isIgnored (settings: Settings) (pattern: Pattern) = settings.Ignored |> List.contains pattern

/// The body compared by the mode its two sides allow.
let private compareBodies (settings: Settings) (a: Side) (b: Side) : Difference list * bool * BodyMode =
    if isIgnored settings Body then
        [], false, (if a.Whole && b.Whole then Bytes else Digest)
    elif not (a.Whole && b.Whole) then
        let hashA, hashB = digestOf a.Answer, digestOf b.Answer
        if sameDigest a.Answer b.Answer hashA hashB then [], false, Digest
        else [ at "body" Changed (describeDigest a.Answer hashA) (describeDigest b.Answer hashB) ], false, Digest
    else
        match a.Json, b.Json with
        | Some x, Some y ->
            let outcome =
                JsonDiff.diff
                    { Tolerance = settings.Tolerance
                      Ignored = settings.Ignored
                      Unordered = settings.Unordered
                      MaxDifferences = MaxDifferences }
                    x.RootElement
                    y.RootElement
            outcome.Differences, outcome.Truncated, Json
        | Some _, None
        | None, Some _ ->
            let root = []
            if names (matcher settings.Ignored) root then
                [], false, Json
            else
                let excerptOf (s: Side) =
                    let text = excerptOfBytes (ReadOnlySpan s.Answer.Body)
                    if s.Json.IsSome then text else $"(not JSON) {text}"
                [ at (render root) NotJson (excerptOf a) (excerptOf b) ], false, Json
        | None, None ->
            if a.Answer.Body.AsSpan().SequenceEqual(b.Answer.Body) then [], false, Bytes
            else [ at "body" Changed (excerptOfBytes (ReadOnlySpan a.Answer.Body)) (excerptOfBytes (ReadOnlySpan b.Answer.Body)) ], false, Bytes

let private compareSides (settings: Settings) (a: Side) (b: Side) : Diff =
    let status =
        if a.Answer.Status = b.Answer.Status || isIgnored settings Status then []
        else [ at "status" Changed (string a.Answer.Status) (string b.Answer.Status) ]
    let headers =
        [ for name in settings.Headers do
              if not (isIgnored settings (Header name)) then
                  let path = $"header:{name}"
                  match headerValue a.Answer name, headerValue b.Answer name with
                  | Some x, Some y when x = y -> ()
                  | None, None -> ()
                  | Some x, Some y -> at path Changed (shown MaxExcerpt x) (shown MaxExcerpt y)
                  | Some x, None -> at path Removed (shown MaxExcerpt x) ""
                  | None, Some y -> at path Added "" (shown MaxExcerpt y) ]
    let body, truncated, mode = compareBodies settings a b
    { Differences = status @ headers @ body
      Truncated = truncated
      Body = mode }

let private dispose (s: Side) = s.Json |> Option.iter (fun d -> d.Dispose())

/// The differences between two answers, `first` against `second`.
let compare (settings: Settings) (first: Answer) (second: Answer) : Diff =
    let a = side settings first
    let b = side settings second
    try
        compareSides settings a b
    finally
        dispose a
        dispose b

/// One record's answers compared: the candidate against the primary, and, with a
/// secondary, the secondary against the primary (what differs there is noise).
/// Each body is parsed once.
let compareRecord (settings: Settings) (primary: Answer) (secondary: Answer option) (candidate: Answer) : RecordComparison =
    let p = side settings primary
    let c = side settings candidate
    let s = secondary |> Option.map (side settings)
    try
        { Candidate = compareSides settings p c
          Noise = s |> Option.map (compareSides settings p) }
    finally
        dispose p
        dispose c
        s |> Option.iter dispose
