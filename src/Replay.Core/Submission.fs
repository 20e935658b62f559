/// Bagheera's submission contract as pure functions, for `replay ingest`: a request
/// path `[/{apiVersion}]/submit/{namespace}[/{id}[/{partition}...]]` and method
/// become an action, and an accepted submission becomes the envelopes to write to
/// Kafka (keyed by document id). The HTTP server only carries bytes in and
/// statuses out. Everything accepted here decodes again with `Envelope.decode`, so
/// ingest can never write a record that a replay would have to dead-letter.
module Replay.Core.Submission

open System
open System.Text
open Replay.Core.Envelope

/// Where a submission goes, decoded from its path. Segments are percent-decoded;
/// the replay's `{api_version}` and `{partitions}` escape them again.
type Path =
    { /// "" when the path has no version prefix.
      ApiVersion: string
      Namespace: string
      /// None when the client let the server choose the id.
      Id: string option
      Partitions: string list }

/// What the request asks for, once its path is known to be a submission.
type Action =
    /// POST or PUT: store the body (and delete any obsolete documents).
    | Store of Path
    /// DELETE of the document the path names.
    | Remove of path: Path * id: string
    /// OPTIONS: a CORS preflight.
    | Preflight

/// Why a request is refused, each with the status Bagheera answered.
type Rejection =
    /// 404: the path is not `[/{apiVersion}]/submit/{namespace}...`.
    | NotASubmission of path: string
    /// 404: the namespace is not one the server accepts.
    | UnknownNamespace of name: string
    /// 405: GET, HEAD and anything but POST, PUT, DELETE and OPTIONS.
    | MethodNotAllowed of methodName: string
    /// 400: DELETE names no document.
    | DeleteWithoutId
    /// 400: a POST or PUT without a body.
    | EmptyBody
    /// 400: a path segment or header value that no envelope could carry.
    | BadField of field: string * why: string

/// The methods a submission path answers, for `Allow` and CORS headers.
let allowedMethods = "POST, PUT, DELETE, OPTIONS"

let status (rejection: Rejection) =
    match rejection with
    | NotASubmission _
    | UnknownNamespace _ -> 404
    | MethodNotAllowed _ -> 405
    | DeleteWithoutId
    | EmptyBody
    | BadField _ -> 400

let describe (rejection: Rejection) =
    match rejection with
    | NotASubmission path ->
        $"'{path}' is not a submission path; use [/{{apiVersion}}]/submit/{{namespace}}[/{{id}}[/{{partition}}...]]"
    | UnknownNamespace name -> $"namespace '{name}' is not accepted here (see --namespaces)"
    | MethodNotAllowed name -> $"{name} is not allowed on a submission path; use {allowedMethods}"
    | DeleteWithoutId -> "DELETE needs a document id: /submit/{namespace}/{id}"
    | EmptyBody -> "the request has no body: POST or PUT the document to store"
    | BadField(field, why) -> $"{field}: {why}"

/// An API version prefix: `1`, `1.0`, `2`... Bagheera accepted `1` and `1.0`.
let isApiVersion (segment: string) =
    segment <> ""
    && segment[0] <> '.'
    && segment[segment.Length - 1] <> '.'
    && not (segment.Contains "..")
    && String.forall (fun c -> Char.IsAsciiDigit c || c = '.') segment

let private hex (c: char) =
    if Char.IsAsciiDigit c then int c - int '0'
    elif c >= 'a' && c <= 'f' then int c - int 'a' + 10
    elif c >= 'A' && c <= 'F' then int c - int 'A' + 10
    else -1

/// Percent-decodes one path segment into UTF-8 text. Unlike `Uri.UnescapeDataString`
/// it refuses what it cannot decode instead of leaving it escaped, so the replay's
/// escaping rebuilds exactly the segment the client sent.
let decodeSegment (segment: string) : Result<string, string> =
    let bytes = Collections.Generic.List<byte>(segment.Length)
    let mutable error = None
    let mutable i = 0
    while error.IsNone && i < segment.Length do
        let c = segment[i]
        if c = '%' then
            if i + 2 < segment.Length && hex segment[i + 1] >= 0 && hex segment[i + 2] >= 0 then
                bytes.Add(byte (hex segment[i + 1] * 16 + hex segment[i + 2]))
                i <- i + 3
            else
                error <- Some $"'{segment}' has a '%%' that is not followed by two hex digits"
        elif c > '\127' || Char.IsControl c then
            error <- Some $"'{segment}' has a character that must be percent-encoded in a URL"
        else
            bytes.Add(byte c)
            i <- i + 1
    match error with
    | Some e -> Error e
    | None ->
        let array = bytes.ToArray()
        if Unicode.Utf8.IsValid(ReadOnlySpan array) then
            Ok(Encoding.UTF8.GetString array)
        else
            Error $"'{segment}' does not percent-decode to UTF-8 text"

let private checkLength field limit (value: string) =
    let length = Encoding.UTF8.GetByteCount value
    if length > limit then
        Error(BadField(field, $"{length} bytes long, over the limit of {limit}"))
    else
        Ok value

let private decodeField field limit (segment: string) =
    if segment = "." || segment = ".." then
        Error(BadField(field, $"the dot segment '{segment}' is not allowed (percent-encode it as %%2E to mean a literal dot)"))
    else
        match decodeSegment segment with
        | Error why -> Error(BadField(field, why))
        | Ok text when text = "" -> Error(BadField(field, "empty"))
        | Ok text -> checkLength field limit text

let private collect (results: Result<'a, 'e> list) : Result<'a list, 'e> =
    let folder item acc =
        match item, acc with
        | Ok value, Ok values -> Ok(value :: values)
        | Error e, _ -> Error e
        | _, Error e -> Error e
    List.foldBack folder results (Ok [])

/// Parses a request path (the raw, still-escaped path, without the query).
/// Empty segments (`//`, a trailing `/`) carry nothing and are skipped.
let parsePath (isKnownNamespace: string -> bool) (rawPath: string) : Result<Path, Rejection> =
    let segments = rawPath.Split('/', StringSplitOptions.RemoveEmptyEntries) |> List.ofArray
    let afterVersion =
        match segments with
        | "submit" :: rest -> Some("", rest)
        | version :: "submit" :: rest when isApiVersion version -> Some(version, rest)
        | _ -> None
    match afterVersion with
    | None
    | Some(_, []) -> Error(NotASubmission rawPath)
    | Some(version, namespaceSegment :: rest) ->
        match decodeField "namespace" MaxTextBytes namespaceSegment with
        | Error e -> Error e
        | Ok ns when not (isKnownNamespace ns) -> Error(UnknownNamespace ns)
        | Ok ns ->
            let id, partitions =
                match rest with
                | [] -> None, []
                | id :: partitions -> Some id, partitions
            if partitions.Length > MaxPartitions then
                Error(BadField("partitions", $"{partitions.Length} path segments after the id, over the limit of {MaxPartitions}"))
            else
                let id =
                    match id with
                    | None -> Ok None
                    | Some segment -> decodeField "id" MaxIdBytes segment |> Result.map Some
                match id with
                | Error e -> Error e
                | Ok id ->
                    partitions
                    |> List.mapi (fun i p -> decodeField $"partition {i + 1}" MaxTextBytes p)
                    |> collect
                    |> Result.map (fun partitions ->
                        { ApiVersion = version
                          Namespace = ns
                          Id = id
                          Partitions = partitions })

/// What a method asks of a submission path.
let action (methodName: string) (path: Path) : Result<Action, Rejection> =
    match methodName.ToUpperInvariant() with
    | "POST"
    | "PUT" -> Ok(Store path)
    | "DELETE" ->
        match path.Id with
        | Some id -> Ok(Remove(path, id))
        | None -> Error DeleteWithoutId
    | "OPTIONS" -> Ok Preflight
    | other -> Error(MethodNotAllowed other)

/// The ids of `X-Obsolete-Document` (comma-separated, the header may repeat), in
/// order. Blank entries are skipped, as a stray comma names nothing.
let obsoleteIds (headerValues: string seq) : Result<string list, Rejection> =
    headerValues
    |> Seq.collect (fun value -> value.Split ',')
    |> Seq.map _.Trim()
    |> Seq.filter (fun id -> id <> "")
    |> Seq.map (fun id ->
        if String.exists Char.IsControl id then
            Error(BadField("X-Obsolete-Document", $"the id '{id}' has a control character"))
        else
            checkLength "X-Obsolete-Document id" MaxIdBytes id)
    |> List.ofSeq
    |> collect

/// Facts about one request that come from outside the path: the server supplies them.
[<NoEquality; NoComparison>]
type Context =
    { /// The client's address as raw bytes (4 for IPv4, 16 for IPv6), as Bagheera stored it.
      ClientIp: byte[]
      /// Milliseconds since the Unix epoch.
      Timestamp: int64 }

/// One record to write: Kafka key (the document id) and value (the envelope).
[<NoEquality; NoComparison>]
type Write = { Key: string; Envelope: Envelope }

let private envelope (context: Context) ns id operation payload apiVersion partitions =
    { Key = id
      Envelope =
        { Namespace = ns
          Id = id
          IpAddr = ReadOnlyMemory context.ClientIp
          Payload = payload
          Timestamp = context.Timestamp
          Operation = operation
          ApiVersion = apiVersion
          Partitions = partitions } }

/// A store: the document itself, then one DELETE per obsolete id, as Bagheera sent
/// them. The obsolete deletes name only namespace and id: they stand for a plain
/// `DELETE /submit/{namespace}/{id}`, not for the path of the store.
let store (context: Context) (path: Path) (id: string) (body: ReadOnlyMemory<byte>) (obsolete: string list) : Write list =
    envelope context path.Namespace id CreateUpdate body path.ApiVersion path.Partitions
    :: [ for old in obsolete -> envelope context path.Namespace old Delete ReadOnlyMemory.Empty "" [] ]

/// A DELETE request: one DELETE envelope that keeps the request's version and partitions.
let remove (context: Context) (path: Path) (id: string) : Write =
    envelope context path.Namespace id Delete ReadOnlyMemory.Empty path.ApiVersion path.Partitions
