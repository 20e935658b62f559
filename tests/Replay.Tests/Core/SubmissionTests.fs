/// Bagheera's submission contract (the core of `replay ingest`), the client address
/// rule, and the law that ties ingest to replay: the destination placeholders
/// `{api_version}` and `{partitions}` rebuild the path the client submitted to.
module Replay.Tests.SubmissionTests

open System
open System.Net
open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Submission

let private anyNamespace = fun (_: string) -> true
let private only (names: string list) = fun ns -> List.contains ns names

let private path version ns id partitions =
    { ApiVersion = version
      Namespace = ns
      Id = id
      Partitions = partitions }

let private parsed rawPath =
    match parsePath anyNamespace rawPath with
    | Ok p -> p
    | Error e -> failtestf "%s was refused: %s" rawPath (describe e)

let private refused known rawPath =
    match parsePath known rawPath with
    | Ok p -> failtestf "%s was accepted as %A" rawPath p
    | Error e -> e

/// The destination that gives a replayed request the path its client used.
let private original =
    match Destination.parse "http://sink.test/{api_version}/submit/{namespace}/{id}/{partitions}" with
    | Ok p -> p
    | Error e -> failwith e

let private rebuild (p: Path) =
    let values: Destination.Values =
        { Key = defaultArg p.Id ""
          Namespace = p.Namespace
          Topic = "t"
          Partition = 0
          Offset = 0L
          ApiVersion = p.ApiVersion
          Partitions = p.Partitions }
    (Destination.expand Destination.Segment values original).Substring("http://sink.test".Length)

/// The path a careful client writes for these values: each segment escaped once.
let private canonical (p: Path) =
    [ if p.ApiVersion <> "" then p.ApiVersion
      "submit"
      p.Namespace
      yield! Option.toList p.Id
      yield! p.Partitions ]
    |> List.mapi (fun i s -> if i = 0 && s = p.ApiVersion then s else Destination.escapeSegment s)
    |> String.concat "/"
    |> (+) "/"

/// Text a client could put in a segment: any Unicode scalar values, dots and slashes
/// included (escaped on the wire), never empty.
let private segmentText =
    let scalar =
        Gen.frequency
            [ 6, Gen.elements [ 'a' .. 'z' ]
              2, Gen.elements [ '.'; '/'; ' '; '%'; '?'; '#'; '+'; '~'; '-'; '_'; ':'; '@' ]
              2, Gen.choose (0xA0, 0xD7FF) |> Gen.map char ]
    Gen.nonEmptyListOf scalar |> Gen.map (fun cs -> String(Array.ofList cs)) |> Gen.resize 12

let private submissionPaths =
    gen {
        let! version = Gen.elements [ ""; "1"; "1.0"; "2" ]
        let! ns = segmentText
        let! id = segmentText
        let! partitions = Gen.listOf segmentText |> Gen.resize 5
        return path version ns (Some id) partitions
    }
    |> Arb.fromGen

[<Tests>]
let tests =
    testList
        "Submission"
        [ testList
              "path"
              [ test "namespace alone: the server chooses the id" {
                    Expect.equal (parsed "/submit/telemetry") (path "" "telemetry" None []) "no id, no version"
                }
                test "version prefix, id and partitions" {
                    Expect.equal
                        (parsed "/1.0/submit/telemetry/doc-1/release/45.0")
                        (path "1.0" "telemetry" (Some "doc-1") [ "release"; "45.0" ])
                        "all parts"
                }
                test "segments are percent-decoded as UTF-8" {
                    Expect.equal
                        (parsed "/submit/telemetry/a%20b/caf%C3%A9/x%2Fy")
                        (path "" "telemetry" (Some "a b") [ "café"; "x/y" ])
                        "decoded once"
                }
                test "empty segments carry nothing" {
                    Expect.equal (parsed "//submit//telemetry/doc/") (path "" "telemetry" (Some "doc") []) "skipped"
                }
                test "anything but [/{version}]/submit/{namespace} is not a submission (404)" {
                    for raw in [ "/"; "/submit"; "/submit/"; "/map/telemetry/x"; "/v1/submit/telemetry"; "/1..0/submit/t"; "/telemetry/submit" ] do
                        let rejection = refused anyNamespace raw
                        Expect.equal (status rejection) 404 $"{raw} -> 404"
                        Expect.isTrue rejection.IsNotASubmission $"{raw} is not a submission"
                }
                test "an unknown namespace is 404 and named" {
                    let rejection = refused (only [ "telemetry" ]) "/submit/metrics/x"
                    Expect.equal rejection (UnknownNamespace "metrics") "named"
                    Expect.equal (status rejection) 404 "404"
                    Expect.stringContains (describe rejection) "--namespaces" "says which flag decides"
                }
                test "what no envelope could carry is 400, naming the field" {
                    let cases =
                        [ "/submit/telemetry/%ZZ", "id"
                          "/submit/telemetry/%FF", "id"
                          "/submit/telemetry/..", "id"
                          "/submit/telemetry/x/.", "partition 1"
                          "/submit/" + String('n', Envelope.MaxTextBytes + 1), "namespace"
                          "/submit/telemetry/" + String('i', Envelope.MaxIdBytes + 1), "id"
                          "/submit/telemetry/x/" + String.replicate (Envelope.MaxPartitions + 1) "p/", "partitions" ]
                    for raw, field in cases do
                        match refused anyNamespace raw with
                        | BadField(f, why) as rejection ->
                            Expect.equal f field $"{raw.Substring(0, min 40 raw.Length)} names its field"
                            Expect.equal (status rejection) 400 "400"
                            Expect.isNotEmpty why "says why"
                        | other -> failtestf "%s: expected a bad field, got %A" raw other
                }
                test "the longest id an envelope may carry is accepted" {
                    let id = String('i', Envelope.MaxIdBytes)
                    Expect.equal (parsed ("/submit/t/" + id)).Id (Some id) "at the limit"
                } ]
          testList
              "method"
              [ test "POST and PUT store, DELETE removes, OPTIONS is a preflight" {
                    let p = path "" "t" (Some "x") []
                    Expect.equal (action "POST" p) (Ok(Store p)) "POST"
                    Expect.equal (action "put" p) (Ok(Store p)) "PUT, any case"
                    Expect.equal (action "DELETE" p) (Ok(Remove(p, "x"))) "DELETE"
                    Expect.equal (action "OPTIONS" p) (Ok Preflight) "OPTIONS"
                }
                test "GET, HEAD and others are 405" {
                    for m in [ "GET"; "HEAD"; "PATCH"; "TRACE" ] do
                        match action m (path "" "t" (Some "x") []) with
                        | Error rejection -> Expect.equal (status rejection) 405 $"{m} -> 405"
                        | Ok a -> failtestf "%s was accepted as %A" m a
                }
                test "DELETE without an id is 400: there is nothing to delete" {
                    match action "DELETE" (path "" "t" None []) with
                    | Error rejection -> Expect.equal (status rejection) 400 "400"
                    | Ok a -> failtestf "accepted as %A" a
                } ]
          testList
              "envelopes"
              [ test "X-Obsolete-Document: comma-separated, repeated headers, blanks skipped, in order" {
                    Expect.equal (obsoleteIds [ "a, b"; " c ,, " ]) (Ok [ "a"; "b"; "c" ]) "three ids"
                    Expect.equal (obsoleteIds []) (Ok []) "none"
                }
                test "an obsolete id no envelope could carry is refused" {
                    let result = obsoleteIds [ String('x', Envelope.MaxIdBytes + 1) ]
                    Expect.isError result "too long"
                }
                test "a store writes the document, then one DELETE per obsolete id; all decode again" {
                    let context = { ClientIp = [| 10uy; 1uy; 2uy; 3uy |]; Timestamp = 1_700_000_000_123L }
                    let p = path "1.0" "telemetry" (Some "doc") [ "release"; "45" ]
                    let body = ReadOnlyMemory(Text.Encoding.UTF8.GetBytes "{\"a\":1}")
                    let writes = store context p "doc" body [ "old-1"; "old-2" ]
                    Expect.equal [ for w in writes -> w.Key ] [ "doc"; "old-1"; "old-2" ] "keys are the ids, in order"
                    let decoded =
                        [ for w in writes ->
                              match Envelope.decode (ReadOnlyMemory(Envelope.encode w.Envelope)) with
                              | Ok e -> e
                              | Error e -> failtestf "%s" (Envelope.describe e) ]
                    let first = decoded.Head
                    Expect.equal first.Operation Envelope.CreateUpdate "a store"
                    Expect.equal (first.Namespace, first.Id, first.ApiVersion, first.Partitions) ("telemetry", "doc", "1.0", [ "release"; "45" ]) "path parts"
                    Expect.equal (first.Payload.ToArray()) (body.ToArray()) "payload"
                    Expect.equal (first.IpAddr.ToArray()) context.ClientIp "client address bytes"
                    Expect.equal first.Timestamp context.Timestamp "timestamp"
                    for old in decoded.Tail do
                        Expect.equal old.Operation Envelope.Delete "a delete"
                        Expect.equal (old.Namespace, old.ApiVersion, old.Partitions) ("telemetry", "", []) "a plain /submit/{namespace}/{id} delete"
                        Expect.isTrue old.Payload.IsEmpty "no payload"
                }
                test "a DELETE keeps the version and partitions of its path" {
                    let write = remove { ClientIp = [| 127uy; 0uy; 0uy; 1uy |]; Timestamp = 5L } (path "1" "t" (Some "x") [ "p" ]) "x"
                    Expect.equal (write.Key, write.Envelope.Operation, write.Envelope.ApiVersion, write.Envelope.Partitions) ("x", Envelope.Delete, "1", [ "p" ]) "delete"
                } ]
          testList
              "destination rebuilds the submitted path"
              [ test "without version and partitions the optional segments vanish with their slash" {
                    Expect.equal (rebuild (path "" "telemetry" (Some "doc") [])) "/submit/telemetry/doc" "no // and no trailing /"
                }
                test "with version and partitions each segment is escaped once" {
                    Expect.equal
                        (rebuild (path "1.0" "telemetry" (Some "a b") [ "café"; "x/y"; ".." ]))
                        "/1.0/submit/telemetry/a%20b/caf%C3%A9/x%2Fy/%2E%2E"
                        "escaped"
                }
                test "an empty {partitions} before a query drops its slash; other placeholders are not optional" {
                    let pattern = Destination.parse "http://h/{namespace}/x/{id}/{partitions}?q=1" |> Result.defaultWith failwith
                    let values: Destination.Values =
                        { Key = "k"; Namespace = ""; Topic = "t"; Partition = 0; Offset = 0L; ApiVersion = ""; Partitions = [] }
                    Expect.equal (Destination.expand Destination.Segment values pattern) "http://h//x/k?q=1" "only {partitions} is optional"
                }
                testProperty "parsePath ∘ canonical = id, and expand rebuilds the canonical path exactly" (Prop.forAll submissionPaths (fun p ->
                    let raw = canonical p
                    parsePath anyNamespace raw = Ok p && rebuild p = raw)) ]
          testList
              "client address"
              [ let trusted text = ClientAddress.parseTrusted text |> Result.defaultWith failwith
                let ip (text: string) = IPAddress.Parse text
                let resolve proxies peer headers = (ClientAddress.resolve (trusted proxies) (ip peer) headers).ToString()
                test "an untrusted peer's X-Forwarded-For is ignored" {
                    Expect.equal (resolve "" "127.0.0.1" [ "203.0.113.7" ]) "127.0.0.1" "no proxies trusted"
                    Expect.equal (resolve "10.0.0.0/8" "192.0.2.1" [ "203.0.113.7" ]) "192.0.2.1" "peer outside the trusted range"
                }
                test "through trusted proxies: the rightmost address that is not one of them" {
                    Expect.equal (resolve "10.0.0.0/8" "10.0.0.2" [ "198.51.100.1, 203.0.113.9"; "10.0.0.1" ]) "203.0.113.9" "spoofed left entry ignored"
                    Expect.equal (resolve "10.0.0.0/8, ::1" "::1" [ "[2001:db8::5]:4711" ]) "2001:db8::5" "IPv6 with port"
                    Expect.equal (resolve "127.0.0.1" "127.0.0.1" [ "203.0.113.9:80" ]) "203.0.113.9" "IPv4 with port"
                }
                test "a hop that is not an address ends the walk at the proxy that wrote it" {
                    Expect.equal (resolve "10.0.0.0/8" "10.0.0.2" [ "203.0.113.9, unknown" ]) "10.0.0.2" "garbage"
                }
                test "when every hop is trusted, the leftmost is the client" {
                    Expect.equal (resolve "10.0.0.0/8" "10.0.0.2" [ "10.0.0.7, 10.0.0.1" ]) "10.0.0.7" "leftmost"
                }
                test "IPv4-mapped peers are stored as IPv4" {
                    Expect.equal (resolve "" "::ffff:192.0.2.4" []) "192.0.2.4" "mapped"
                }
                test "a bad --trusted-proxies entry is named" {
                    match ClientAddress.parseTrusted "10.0.0.1, 10.0.0.0/99" with
                    | Error e -> Expect.stringContains e "10.0.0.0/99" "names the entry"
                    | Ok _ -> failtest "accepted"
                    match ClientAddress.parseTrusted "proxy.example" with
                    | Error e -> Expect.stringContains e "proxy.example" "names the entry"
                    | Ok _ -> failtest "accepted"
                } ] ]
