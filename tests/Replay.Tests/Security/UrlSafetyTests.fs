/// Record data against the URL and the headers, through the pure core: every id a
/// producer could write either becomes a request that stays on the operator's host
/// and under the operator's path, as a server that decodes and then normalises the
/// path would see it, or is rejected with its reason. A crafted corpus names the
/// known attacks; properties cover arbitrary strings built from their pieces.
module Replay.Tests.UrlSafetyTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Pipeline

let private prefix = "/submit/telemetry/"
let private host = "127.0.0.1:8080"

let private settings escaping =
    { ReplayProcess.pipeline with Escaping = escaping }

let private entropy =
    { NewKey = fun () -> "00000000-0000-0000-0000-000000000000"
      Draw = fun () -> 0.5 }

let private record (id: string) =
    { Topic = "telemetry"
      Partition = 0
      Offset = 7L
      Key = null
      Value = ReadOnlyMemory(ChildReplay.envelope "telemetry" id "{}")
      Headers = [||]
      TimestampMs = 0L }

/// What the core decides for a record with this id, sent to http://HOST/submit/{namespace}/%k
/// by a route that also copies the id into a header.
let private decideFor escaping (headers: (string * string) list) (id: string) =
    let route = { ReplayProcess.route $"http://{host}/submit/{{namespace}}/%%k" 1.0 true true with Headers = headers }
    decide (settings escaping) (Route.always route) entropy (record id)

/// RFC 3986 remove_dot_segments, after decoding the path as far as it decodes and
/// treating '\' as '/': the path as the most permissive server would resolve it.
let private resolvedPath (path: string) =
    let rec decodeFully (text: string) rounds =
        let next = Uri.UnescapeDataString text
        if next = text || rounds = 0 then text else decodeFully next (rounds - 1)
    let segments = (decodeFully path 5).Replace('\\', '/').Split('/')
    let output = Collections.Generic.List<string>()
    for segment in segments |> Array.skip 1 do
        match segment with
        | "." -> ()
        | ".." -> if output.Count > 0 then output.RemoveAt(output.Count - 1)
        | s -> output.Add s
    "/" + String.Join("/", output)

/// The safety law for one decision: a request stays on the host and under the
/// prefix with only wire-safe characters, or the record is rejected with a reason.
let private staysInside (decision: Decision) =
    match decision with
    | Send request ->
        let url = request.Url.OriginalString
        url |> Seq.forall (fun c -> c > ' ' && c < '\127')
        && request.Url.Authority = host
        && request.Url.AbsolutePath.StartsWith prefix
        && (resolvedPath request.Url.AbsolutePath).StartsWith prefix
        && request.Headers |> List.forall isSafeHeader
    // Rejected with a reason: unsafe URL or header, or an id the decoder refuses (empty, too long).
    | Reject _ -> true
    | Skip _
    | Mirror _ -> false

/// Ids built from the pieces attacks are made of, plus arbitrary text.
let private hostileIds =
    let pieces =
        [ ".."; "."; "/"; "\\"; "%2E"; "%2e"; "%2F"; "%5C"; "%25"; "%"; "?"; "#"; "&"; "="; "@"; ":"; "\r"; "\n"
          "\r\n"; "\u0000"; "\u007f"; " "; "\t"; "ü"; "\u2028"; "\u202e"; "admin"; "a"; "x=1"; "//"; "http://evil.example" ]
    let built = Gen.elements pieces |> Gen.listOf |> Gen.map (String.concat "")
    Gen.oneof [ built; ArbMap.defaults |> ArbMap.generate<string> |> Gen.map (fun s -> if isNull s then "" else s) ]
    |> Arb.fromGen

type private Expected =
    | Delivered of path: string
    | Refused of because: string

[<Tests>]
let tests =
    testList
        "Hostile input: URL and header safety"
        [ testList
              "crafted ids, escaped as one segment (default)"
              [ for id, expected in
                    [ "doc-1", Delivered "doc-1"
                      "a b", Delivered "a%20b"
                      "x?y#z", Delivered "x%3Fy%23z"
                      "100%", Delivered "100%25"
                      "a/b", Delivered "a%2Fb"
                      "...", Delivered "..."
                      ".hidden", Delivered ".hidden"
                      "ü", Delivered "%C3%BC"
                      "@evil.example", Delivered "%40evil.example"
                      "http://evil.example/", Delivered "http%3A%2F%2Fevil.example%2F"
                      "..", Refused "dot segment"
                      ".", Refused "dot segment"
                      "../../admin?x=1", Refused "dot segment"
                      "a/../../b", Refused "dot segment"
                      "..\\..\\admin", Refused "dot segment"
                      "%2E%2E", Refused "dot segment"
                      "%2e%2e%2fadmin", Refused "dot segment"
                      "%252E%252E", Refused "dot segment"
                      "doc\r\nX-Injected: 1", Refused "control character"
                      "doc%0D%0AX-Injected: 1", Refused "control character"
                      "doc\u0000", Refused "control character" ] do
                    test $"id {Printable.show id}" {
                        match expected, decideFor Destination.Segment [] id with
                        | Delivered path, Send request ->
                            Expect.equal request.Url.OriginalString $"http://{host}{prefix}{path}" "escaped as one segment under the prefix"
                        | Refused because, Reject(BadUrl(_, why) as reason) ->
                            Expect.stringContains why because "the reason says what is wrong"
                            Expect.isFalse ((describeReject reason).Contains '\r' || (describeReject reason).Contains '\n') "the reason is one printable line"
                        | _, other -> failtestf "expected %A, got %A" expected other
                    } ]

          testList
              "crafted ids, inserted verbatim (--raw-keys)"
              [ for id, expected in
                    [ "doc-1", Delivered "doc-1"
                      "a/b", Delivered "a/b"
                      "a b", Refused "must be percent-encoded"
                      "ü", Refused "must be percent-encoded"
                      "..", Refused "dot segment"
                      "a/../../admin", Refused "dot segment"
                      "%2E%2E%2Fadmin", Refused "dot segment"
                      // Found by the property below: the segment `..` ends where the query or fragment begins.
                      "..?aadmin", Refused "dot segment"
                      "..#top", Refused "dot segment"
                      "..;jsessionid=1", Refused "dot segment"
                      "a..?b", Delivered "a..?b"
                      "doc\r\nHost: evil.example", Refused "control character" ] do
                    test $"id {Printable.show id}" {
                        match expected, decideFor Destination.Verbatim [] id with
                        | Delivered path, Send request -> Expect.equal request.Url.OriginalString $"http://{host}{prefix}{path}" "inserted as written"
                        | Refused because, Reject(BadUrl(_, why)) -> Expect.stringContains why because "the reason says what is wrong"
                        | _, other -> failtestf "expected %A, got %A" expected other
                    } ]

          testProperty "any id, escaped: the request stays on the host and under the prefix, or the record is rejected" (fun () ->
              Prop.forAll hostileIds (fun id -> staysInside (decideFor Destination.Segment [] id)))

          testProperty "any id, verbatim: the request stays on the host and under the prefix, or the record is rejected" (fun () ->
              Prop.forAll hostileIds (fun id -> staysInside (decideFor Destination.Verbatim [] id)))

          testProperty "any id copied into a header by a rule: a one-line ASCII header, or the record is rejected" (fun () ->
              Prop.forAll hostileIds (fun id ->
                  match decideFor Destination.Segment [ "X-Document", id ] id with
                  | Send request -> request.Headers |> List.forall isSafeHeader
                  | Reject(UnsafeHeader "X-Document") -> id |> Seq.exists (fun c -> c < ' ' && c <> '\t' || c >= '\127')
                  | Reject _ -> true
                  | Skip _
                  | Mirror _ -> false))

          test "a raw-format key is bounded like an envelope id" {
              let raw = { ReplayProcess.pipeline with Format = Raw }
              let route = ReplayProcess.route $"http://{host}/submit/%%k" 1.0 true true
              let withKey (key: byte[]) = { record "unused" with Key = key; Value = ReadOnlyMemory "{}"B }
              match decide raw (Route.always route) entropy (withKey (Array.create 2000 (byte 'k'))) with
              | Reject(Undecodable(Envelope.FieldTooLong("key", 2000, limit))) -> Expect.equal limit Envelope.MaxIdBytes "the envelope's limit"
              | other -> failtestf "a 2000-byte key was not refused: %A" other
              match decide raw (Route.always route) entropy (withKey "doc-1"B) with
              | Send request -> Expect.equal request.Url.AbsolutePath "/submit/doc-1" "a normal key is the id"
              | other -> failtestf "expected a request, got %A" other
          }

          test "header values with CR, LF, NUL or non-ASCII are unsafe; names must be tokens" {
              for header, safe in
                  [ ("X-A", "plain value"), true
                    ("X-A", "tab\tinside"), true
                    ("X-A", "a\r\nX-Injected: 1"), false
                    ("X-A", "a\nb"), false
                    ("X-A", "nul\u0000"), false
                    ("X-A", "del\u007f"), false
                    ("X-A", "ü"), false
                    ("X A", "v"), false
                    ("X-A:", "v"), false
                    ("", "v"), false ] do
                  Expect.equal (isSafeHeader header) safe $"{header}"
          }

          test "a URL a rule built must be wire-safe: raw CR/LF, spaces and non-ASCII are refused" {
              for url, says in
                  [ "http://h/a\r\nX-Injected: y\r\n\r\nGET /evil", "control"
                    "http://h/a b", "space"
                    "http://h/ü", "non-ASCII"
                    "ftp://h/x", "scheme"
                    "/relative", "is not http" ] do
                  match parseUrl url with
                  | Ok uri -> failtestf "%s was accepted as %O" (Printable.show url) uri
                  | Error why -> Expect.stringContains why says (Printable.show url)
              Expect.isOk (parseUrl "https://h:8443/a%20b?x=%0D") "escaped characters are fine"
          }

          test "a destination pattern may not take its scheme, host or port from the record" {
              for pattern in
                  [ "http://{namespace}.example/%k"; "http://host:{partition}/x/%k"; "http://%k/x"; "{namespace}://host/%k" ] do
                  match Destination.parse pattern with
                  | Error _ -> ()
                  | Ok parsed ->
                      Expect.isNotNull (Replay.Host.Commands.RunCommand.CheckDestination parsed) $"{pattern} is refused at start"
              match Destination.parse "http://host/submit/{namespace}/%k?from={topic}" with
              | Ok parsed -> Expect.isNull (Replay.Host.Commands.RunCommand.CheckDestination parsed) "values in the path and query are fine"
              | Error e -> failtest e
          }

          test "reasons show hostile text as one bounded, visible line" {
              Expect.equal (Printable.show "a\r\nb\tc\u0000\u202e\\") "a\\r\\nb\\tc\\u0000\\u202e\\\\" "controls, bidi overrides and backslashes made visible"
              let long = Printable.show (String('x', 5000))
              Expect.isLessThan long.Length (Printable.MaxShown + 100) "a megabyte key does not flood the log"
              Expect.stringContains long "(5000 characters)" "the cut says how long the value was"
          } ]
