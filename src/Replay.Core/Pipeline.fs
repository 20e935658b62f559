/// The whole per-record decision, as one pure function: a consumed record becomes
/// a request to send, a counted skip, or a rejection to dead-letter. Randomness
/// (UUIDs for copy-keys off, draws for random sampling) is passed in.
module Replay.Core.Pipeline

open System
open System.Text.Json
open Replay.Core.Envelope

/// How record values are laid out on the topic.
type Format =
    /// Each value is a protobuf `BagheeraMessage`.
    | Bagheera
    /// Key = document id, value = payload, always replayed as a POST.
    | Raw

let parseFormat (text: string) : Result<Format, string> =
    match text.ToLowerInvariant() with
    | "bagheera" -> Ok Bagheera
    | "raw" -> Ok Raw
    | other -> Error $"unknown format '{other}'; use 'bagheera' or 'raw'"

[<NoEquality; NoComparison>]
type Settings =
    { Format: Format
      SampleMode: Sampling.Mode
      /// Bagheera's `--validatejson`: payloads that are not JSON are skipped.
      ValidateJson: bool
      Escaping: Destination.Escaping
      MaxPayloadBytes: int }

/// An HTTP request as plain data; the body is the consumed bytes, not a copy,
/// unless a `body:` rule rewrote them.
[<NoEquality; NoComparison>]
type Request =
    { Method: Method
      Url: Uri
      Headers: (string * string) list
      Body: ReadOnlyMemory<byte>
      /// Requests sharing this key are sent strictly in Kafka order.
      OrderingKey: string
      Route: string
      /// What the answers to this request mean: `Outcome.classify request.StatusPolicy`.
      StatusPolicy: StatusPolicy.Policy
      /// Which of the run's destinations it goes to: 0, or a mirror's place (1, 2, ...).
      Destination: int }

type SkipReason =
    | SampledOut of route: string
    | DeleteIgnored of route: string
    | NotJson
    | SkippedByRule of rule: string

type RejectReason =
    | Undecodable of DecodeError
    | RuleError of rule: string * message: string
    | PayloadTooLarge of size: int * limit: int
    | UnsafeHeader of name: string
    | BadUrl of url: string * why: string

[<NoEquality; NoComparison>]
type Decision =
    | Send of Request
    /// The same record to several destinations (mirroring): one request each, the
    /// first destination's first. The record is finished once each required one is.
    | Mirror of Request list
    | Skip of SkipReason
    | Reject of RejectReason

/// The randomness a decision may need, supplied by the caller.
[<NoEquality; NoComparison>]
type Entropy =
    { NewKey: unit -> string
      Draw: unit -> float }

/// Why a record was skipped, without its data: an enum the host counts by.
type SkipKind =
    | SampledOut = 0
    | DeleteIgnored = 1
    | NotJson = 2
    | ByRule = 3

let skipKind reason =
    match reason with
    | SampledOut _ -> SkipKind.SampledOut
    | DeleteIgnored _ -> SkipKind.DeleteIgnored
    | NotJson -> SkipKind.NotJson
    | SkippedByRule _ -> SkipKind.ByRule

/// The rule that skipped the record; null when no rule did.
let skippingRule reason : string | null =
    match reason with
    | SkippedByRule rule -> rule
    | SampledOut _
    | DeleteIgnored _
    | NotJson -> null

/// The requests a decision sends: none for a skip or a rejection, one, or (mirroring) one per destination.
let requests decision : Request list =
    match decision with
    | Send request -> [ request ]
    | Mirror requests -> requests
    | Skip _
    | Reject _ -> []

let describeSkip reason =
    match reason with
    | SampledOut route -> $"sampled out ({route})"
    | DeleteIgnored route -> $"delete ignored: deletes are off ({route})"
    | NotJson -> "payload is not JSON (--validatejson)"
    | SkippedByRule rule -> $"skipped by rule '{rule}'"

let describeReject reason =
    match reason with
    | Undecodable error -> Envelope.describe error
    | RuleError(rule, message) -> $"rule '{rule}' failed: {message}"
    | PayloadTooLarge(size, limit) -> $"payload is {size} bytes, over --max-payload-bytes {limit}"
    | UnsafeHeader name -> $"header '{Printable.show name}' would carry a control or non-ASCII character (CR, LF, NUL...)"
    | BadUrl(url, why) -> $"destination '{Printable.showUpTo Printable.MaxUrlShown url}' is not usable: {why}"

/// Why a decision sends nothing (a skip or a rejection); "" when it sends.
let describeDecision decision =
    match decision with
    | Skip reason -> describeSkip reason
    | Reject reason -> describeReject reason
    | Send _
    | Mirror _ -> ""

/// The header that names the replayed record, so destinations can drop duplicates.
[<Literal>]
let ReplayIdHeader = "X-Replay-Id"

let private toEnvelope format (record: Record) =
    match format with
    | Bagheera -> Envelope.decode record.Value
    | Raw ->
        match record.Key with
        | null
        | [||] -> Ok(Envelope.ofRaw (Record.replayId record) record.Value)
        // A raw key becomes the id: bounded like an envelope's id, so a megabyte key
        // cannot become a megabyte URL.
        | key when key.Length > MaxIdBytes -> Error(FieldTooLong("key", key.Length, MaxIdBytes))
        | key ->
            if Text.Unicode.Utf8.IsValid(ReadOnlySpan key) then
                Ok(Envelope.ofRaw (Text.Encoding.UTF8.GetString key) record.Value)
            else
                Error(InvalidUtf8 "key")

/// True when the bytes are one well-formed JSON document. JSON text is UTF-8
/// (RFC 8259), and Utf8JsonReader does not check the bytes inside strings.
let isJson (payload: ReadOnlyMemory<byte>) =
    if not (Text.Unicode.Utf8.IsValid payload.Span) then
        false
    else
        let mutable reader = Utf8JsonReader(payload.Span, JsonReaderOptions(CommentHandling = JsonCommentHandling.Disallow))
        try
            while reader.Read() do
                ()
            reader.BytesConsumed = int64 payload.Length && reader.TokenType <> JsonTokenType.None
        with :? JsonException ->
            false

/// Header values travel on one line: CR, LF and other controls (tab aside) would
/// let a record forge headers or requests. Values must be ASCII too: .NET refuses
/// to send anything else, which would otherwise be retried forever.
let isSafeHeader (name: string, value: string) =
    let tokenChar (c: char) =
        c > ' ' && c < '\127' && "\"(),/:;<=>?@[\\]{}".IndexOf c < 0
    name <> ""
    && String.forall tokenChar name
    && String.forall (fun c -> c = '\t' || (c >= ' ' && c < '\127')) value

let private urlOptions = UriCreationOptions(DangerousDisablePathAndQueryCanonicalization = true)

/// The first character that must not appear unencoded in a URL on the wire, if any.
/// Without path canonicalisation .NET writes the path as given, so a raw CR/LF
/// here would split the request line into forged headers and requests.
let private unencodable (url: string) =
    // Everything from '!' to '~' may appear as written; the search runs per record.
    match url.AsSpan().IndexOfAnyExceptInRange('!', '~') with
    | -1 -> None
    | index -> Some index

/// Parses a finished URL without normalising its path, so an escaped segment
/// reaches the destination as written.
let parseUrl (url: string) : Result<Uri, string> =
    let mutable options = urlOptions
    let mutable uri: Uri | null = null
    match unencodable url with
    | Some index ->
        let shown = Printable.show (string url[index])
        Error $"character {index + 1} ('{shown}') is a space, control or non-ASCII character; it must be percent-encoded"
    | None when not (Uri.TryCreate(url, &options, &uri)) -> Error "not an absolute URL"
    | None ->
        match uri with
        | null -> Error "not an absolute URL"
        | uri when uri.Scheme <> Uri.UriSchemeHttp && uri.Scheme <> Uri.UriSchemeHttps ->
            Error $"scheme '{uri.Scheme}' is not http or https"
        | uri when uri.Host = "" -> Error "the URL has no host"
        | uri -> Ok uri

let private placeholderValues (record: Record) (envelope: Envelope) key : Destination.Values =
    { Key = key
      Namespace = envelope.Namespace
      Topic = record.Topic
      Partition = record.Partition
      Offset = record.Offset
      ApiVersion = envelope.ApiVersion
      Partitions = envelope.Partitions }

/// The payload to send: none for a DELETE, else the route's rewrite of it, bounded
/// like a consumed payload so a rule cannot make what the limit keeps out.
let private body settings (envelope: Envelope) (route: Route) : Result<ReadOnlyMemory<byte>, RejectReason> =
    if envelope.Operation = Delete then
        Ok ReadOnlyMemory.Empty
    else
        match route.Body with
        | None -> Ok envelope.Payload
        | Some rewrite ->
            match rewrite envelope.Payload with
            | Error(rule, message) -> Error(RuleError(rule, message))
            | Ok rewritten when rewritten.Length > settings.MaxPayloadBytes ->
                let message = $"its body made {rewritten.Length} bytes, over --max-payload-bytes {settings.MaxPayloadBytes}"
                Error(RuleError(route.Name, message))
            | Ok rewritten -> Ok rewritten

/// The URL of one destination for this record, or why there is none.
let private url settings (record: Record) (envelope: Envelope) key (target: Target) : Result<Uri, RejectReason> =
    // Values from the record are checked before they are placed; a URL a rule
    // built is the rule's (trusted code's) choice and only has to be well formed.
    let url, refused =
        match target with
        | Pattern pattern ->
            let values = placeholderValues record envelope key
            Destination.expand settings.Escaping values pattern, Destination.refusal values pattern
        | Url url -> url, None
    let parsed =
        match refused with
        | Some why -> Error why
        | None -> parseUrl url
    match parsed with
    | Error why -> Error(BadUrl(url, why))
    | Ok uri -> Ok uri

let private request settings entropy (record: Record) (envelope: Envelope) (route: Route) =
    // Whatever the request carries is taken from this envelope, so a dropped address
    // cannot reach it by any placeholder, header or body.
    let envelope = if route.DropIp then Envelope.withoutIpAddr envelope else envelope
    let isDelete = envelope.Operation = Delete
    // Bagheera sent a fresh UUID only for stores; a delete must name the real document.
    let key = if route.CopyKeys || isDelete then envelope.Id else entropy.NewKey()
    match url settings record envelope key route.Target with
    | Error reason -> Reject reason
    | Ok uri ->
        match route.Headers |> List.tryFind (isSafeHeader >> not) with
        | Some(name, _) -> Reject(UnsafeHeader name)
        | None ->
            // The rewrite runs last: it is the costliest step, and only a request that
            // will be sent needs it.
            match body settings envelope route with
            | Error reason -> Reject reason
            | Ok payload ->
                let method = route.Method |> Option.defaultValue (if isDelete then Method.Delete else Post)
                let first =
                    { Method = method
                      Url = uri
                      Headers = (ReplayIdHeader, Record.replayId record) :: route.Headers
                      Body = payload
                      OrderingKey = envelope.Id
                      Route = route.Name
                      StatusPolicy = route.StatusPolicy
                      Destination = 0 }
                match route.Mirrors with
                | [] -> Send first
                | mirrors ->
                    // Every copy is the same request but for its URL; one that cannot be built
                    // rejects the record, so that no destination gets what the others do not.
                    let copies =
                        mirrors
                        |> List.mapi (fun i target -> url settings record envelope key target |> Result.map (fun uri -> { first with Url = uri; Destination = i + 1 }))
                    match copies |> List.tryPick (function Error reason -> Some reason | Ok _ -> None) with
                    | Some reason -> Reject reason
                    | None -> Mirror(first :: [ for copy in copies do match copy with Ok r -> yield r | Error _ -> () ])

/// Decides what happens to one consumed record.
let decide (settings: Settings) (router: Router) (entropy: Entropy) (record: Record) : Decision =
    if record.Value.Length > settings.MaxPayloadBytes then
        Reject(PayloadTooLarge(record.Value.Length, settings.MaxPayloadBytes))
    else
        match toEnvelope settings.Format record with
        | Error error -> Reject(Undecodable error)
        | Ok envelope ->
            let isDelete = envelope.Operation = Delete
            if settings.ValidateJson && not isDelete && not (isJson envelope.Payload) then
                Skip NotJson
            else
                match router record envelope with
                | SkipByRule rule -> Skip(SkippedByRule rule)
                | RuleFailed(rule, message) -> Reject(RuleError(rule, message))
                | Use route ->
                    if isDelete && not route.Deletes then
                        Skip(DeleteIgnored route.Name)
                    elif not (Sampling.keep settings.SampleMode route.Sample envelope.Id entropy.Draw) then
                        Skip(SampledOut route.Name)
                    else
                        request settings entropy record envelope route
