/// The per-record decision: keys, deletes, JSON validation, the raw format, size
/// and header limits, the replay id, zero-copy bodies and unusable URLs.
module Replay.Tests.PipelineTests

open System
open System.Runtime.InteropServices
open System.Text
open System.Text.Json
open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Pipeline
open Replay.Tests.Generators

let private settings =
    { Format = Bagheera
      SampleMode = Sampling.ByDocument
      ValidateJson = false
      Escaping = Destination.Segment
      MaxPayloadBytes = 1 <<< 20 }

let private pattern text =
    match Destination.parse text with
    | Ok pattern -> Pattern pattern
    | Error message -> failtest message

let private route = Route.defaults "defaults" (pattern "http://h/submit/%k") Sampling.Rate.all true true

let private entropy: Entropy =
    { NewKey = (fun () -> failtest "no fresh key was expected")
      Draw = (fun () -> failtest "no draw was expected") }

let private decideWith settings route record = decide settings (Route.always route) entropy record

let private sent decision =
    match decision with
    | Send request -> request
    | Mirror requests -> failtest $"expected one request, got {requests.Length}"
    | Skip reason -> failtest $"expected Send, got Skip: {describeSkip reason}"
    | Reject reason -> failtest $"expected Send, got Reject: {describeReject reason}"

let private skipped decision =
    match decision with
    | Skip reason -> reason
    | Send request -> failtest $"expected Skip, got Send to {request.Url}"
    | Mirror _ -> failtest "expected Skip, got Mirror"
    | Reject reason -> failtest $"expected Skip, got Reject: {describeReject reason}"

let private rejected decision =
    match decision with
    | Reject reason -> reason
    | Send request -> failtest $"expected Reject, got Send to {request.Url}"
    | Mirror _ -> failtest "expected Reject, got Mirror"
    | Skip reason -> failtest $"expected Reject, got Skip: {describeSkip reason}"

let private store id = envelopeRecord 7L (simpleEnvelope id Envelope.CreateUpdate "{\"a\":1}"B)
let private delete id = envelopeRecord 8L (simpleEnvelope id Envelope.Delete [||])

let private submitPath key = "/submit/" + Destination.escapeSegment key

let private keys =
    testList
        "keys and deletes"
        [ property "copy-keys false: a store carries the passed-in key, a delete the real id" (Gen.zip (documentId 30) (documentId 30))
          <| fun (id, fresh) ->
              let mutable asked = 0
              let entropy = { entropy with NewKey = fun () -> asked <- asked + 1; fresh }
              let route = { route with CopyKeys = false }
              let storeRequest = sent (decide settings (Route.always route) entropy (store id))
              Expect.equal storeRequest.Url.AbsolutePath (submitPath fresh) "store URL carries the fresh key"
              Expect.equal storeRequest.OrderingKey id "ordering still follows the document"
              Expect.equal asked 1 "one fresh key for the store"
              let deleteRequest = sent (decide settings (Route.always route) entropy (delete id))
              Expect.equal deleteRequest.Url.AbsolutePath (submitPath id) "delete URL carries the real id"
              Expect.equal deleteRequest.Method Method.Delete "a DELETE"
              Expect.equal asked 1 "no fresh key for the delete"

          property "copy-keys true: stores and deletes carry the id" (documentId 30) (fun id ->
              Expect.equal (sent (decideWith settings route (store id))).Url.AbsolutePath (submitPath id) "store"
              Expect.equal (sent (decideWith settings route (delete id))).Url.AbsolutePath (submitPath id) "delete")

          test "a store is a POST with the payload, a delete a DELETE with no body" {
              let storeRequest = sent (decideWith settings route (store "doc"))
              Expect.equal storeRequest.Method Post "POST"
              Expect.equal (storeRequest.Body.ToArray()) "{\"a\":1}"B "the payload"
              let deleteRequest = sent (decideWith settings route (delete "doc"))
              Expect.equal deleteRequest.Method Method.Delete "DELETE"
              Expect.isTrue deleteRequest.Body.IsEmpty "no body"
          }

          test "deletes off: a delete is skipped as DeleteIgnored, stores still go" {
              let route = { route with Deletes = false }
              Expect.equal (skipped (decideWith settings route (delete "doc"))) (DeleteIgnored "defaults") "skipped"
              sent (decideWith settings route (store "doc")) |> ignore
          }

          test "a route's method replaces the implied POST" {
              let route = { route with Method = Some Put }
              Expect.equal (sent (decideWith settings route (store "doc"))).Method Put "PUT"
          }

          test "random sampling decides with the passed-in draw" {
              let settings = { settings with SampleMode = Sampling.Random }
              let half =
                  match Sampling.Rate.create 0.5 with
                  | Ok r -> r
                  | Error e -> failtest e
              let route = { route with Sample = half }
              let withDraw d = decide settings (Route.always route) { entropy with Draw = fun () -> d } (store "doc")
              sent (withDraw 0.49) |> ignore
              Expect.equal (skipped (withDraw 0.5)) (SampledOut "defaults") "a draw at the rate is out"
          }

          test "a rule's skip and a rule's failure are reported with the rule's name" {
              let skipByRule = decide settings (fun _ _ -> SkipByRule "quiet") entropy (store "doc")
              Expect.equal (skipped skipByRule) (SkippedByRule "quiet") "skip"
              let failed = decide settings (fun _ _ -> RuleFailed("broken", "boom")) entropy (store "doc")
              Expect.equal (rejected failed) (RuleError("broken", "boom")) "failure"
          }

          test "an undecodable value is rejected with the decoder's error" {
              let garbage = record "t" 0 1L null (ReadOnlyMemory [| 0x1Auy; 0x80uy |])
              Expect.equal (rejected (decideWith settings route garbage)) (Undecodable(Envelope.Truncated "id")) "the precise error"
          } ]

/// JSON texts as producers write them: scalars, nested arrays and objects, and
/// whitespace around tokens.
let private jsonText: Gen<string> =
    let space = Gen.elements [ ""; " "; "\n"; "\t"; "\r\n  " ]
    let scalar =
        Gen.oneof
            [ Gen.elements [ "null"; "true"; "false"; "0"; "-1.5e3"; "12345678901234567890" ]
              text 10 |> Gen.map (fun s -> JsonSerializer.Serialize s) ]
    let rec value depth =
        if depth = 0 then
            scalar
        else
            Gen.frequency
                [ 3, scalar
                  1,
                  gen {
                      let! items = Gen.listOf (value (depth - 1)) |> Gen.resize 4
                      let! s = space
                      return "[" + s + String.Join("," + s, items) + "]"
                  }
                  1,
                  gen {
                      let! names = Gen.listOf (text 5) |> Gen.resize 4
                      let! items = Gen.listOfLength names.Length (value (depth - 1))
                      let members = List.map2 (fun n v -> JsonSerializer.Serialize(n: string) + ":" + v) names items
                      return "{" + String.Join(",", members) + "}"
                  } ]
    gen {
        let! before = space
        let! v = value 3
        let! after = space
        return before + v + after
    }

/// The oracle: strict UTF-8 decoding, then System.Text.Json's document parser.
let private parsesAsJson (bytes: byte[]) =
    try
        let text = UTF8Encoding(false, true).GetString bytes
        use _ = JsonDocument.Parse text
        true
    with
    | :? JsonException
    | :? DecoderFallbackException -> false

let private json =
    let validating = { settings with ValidateJson = true }
    let withPayload (payload: byte[]) = envelopeRecord 1L (simpleEnvelope "doc" Envelope.CreateUpdate payload)
    testList
        "validatejson"
        [ property "JSON payloads are sent" jsonText (fun text ->
              let payload = Encoding.UTF8.GetBytes text
              Expect.isTrue (isJson (ReadOnlyMemory payload)) text
              sent (decideWith validating route (withPayload payload)) |> ignore)

          property "isJson agrees with System.Text.Json on damaged JSON" (Gen.zip jsonText (Gen.zip (Gen.choose (0, 200)) (Gen.elements [ "}"; "{"; ","; "\""; "x"; ""; "\u0000"; "]]" ])))
          <| fun (text, (position, inserted)) ->
              let at = min position text.Length
              let damaged = Encoding.UTF8.GetBytes(text.Substring(0, at) + inserted + text.Substring(at).TrimStart('"'))
              Expect.equal (isJson (ReadOnlyMemory damaged)) (parsesAsJson damaged) (Encoding.UTF8.GetString damaged)

          property "isJson agrees with System.Text.Json on arbitrary bytes" (bytes 40) (fun bytes ->
              Expect.equal (isJson (ReadOnlyMemory bytes)) (parsesAsJson bytes) (Convert.ToHexString bytes))

          testList
              "non-JSON payloads are skipped as NotJson"
              [ for label, text in
                    [ "empty", ""
                      "blank", "  \n"
                      "unclosed", "{\"a\":1"
                      "two documents", "{} {}"
                      "trailing garbage", "{}x"
                      "plain text", "hello"
                      "comment", "// c\n{}"
                      "trailing comma", "[1,]"
                      "single quotes", "{'a':1}" ] do
                    test label {
                        Expect.equal (skipped (decideWith validating route (withPayload (Encoding.UTF8.GetBytes text)))) NotJson label
                    } ]

          test "invalid UTF-8 is not JSON" {
              Expect.equal (skipped (decideWith validating route (withPayload [| 0x22uy; 0xFFuy; 0x22uy |]))) NotJson "in a string"
              Expect.equal (skipped (decideWith validating route (withPayload [| 0x22uy; 0xEDuy; 0xA0uy; 0x80uy; 0x22uy |]))) NotJson "an encoded surrogate"
          }

          test "a delete is not validated (it has no payload)" {
              Expect.equal (sent (decideWith validating route (delete "doc"))).Method Method.Delete "sent"
          } ]

let private raw =
    let rawSettings = { settings with Format = Raw }
    testList
        "raw format"
        [ property "key = id, value = payload, POST" (Gen.zip (documentId 30) (bytes 100)) (fun (id, value) ->
              let record = record "t" 2 9L (Encoding.UTF8.GetBytes id) (ReadOnlyMemory value)
              let request = sent (decideWith rawSettings route record)
              Expect.equal request.Url.AbsolutePath (submitPath id) "the key is the id"
              Expect.equal request.Method Post "POST"
              Expect.equal (request.Body.ToArray()) value "the value is the body"
              Expect.equal request.OrderingKey id "ordered by the key")

          test "no key, or an empty key: the id is topic/partition/offset" {
              for key in [ null; [||] ] do
                  let request = sent (decideWith rawSettings route (record "t" 2 9L key (ReadOnlyMemory "x"B)))
                  Expect.equal request.Url.AbsolutePath (submitPath "t/2/9") "the record's coordinates"
                  Expect.equal request.OrderingKey "t/2/9" "ordered by them"
          }

          test "a key that is not UTF-8 is rejected" {
              let record = record "t" 0 1L [| 0xFFuy |] (ReadOnlyMemory "x"B)
              Expect.equal (rejected (decideWith rawSettings route record)) (Undecodable(Envelope.InvalidUtf8 "key")) "precise"
          } ]

let private limits =
    let rawSettings = { settings with Format = Raw; MaxPayloadBytes = 100 }
    let withSize size = record "t" 0 1L "k"B (ReadOnlyMemory(Array.zeroCreate<byte> size))
    let header name value = { route with Headers = [ name, value ] }
    let unsafeChar = Gen.elements ([ for c in 0..31 do if c <> 9 then char c ] @ [ '\127' ])
    testList
        "limits"
        [ test "a value over --max-payload-bytes is PayloadTooLarge, one at the limit is sent" {
              Expect.equal (rejected (decideWith rawSettings route (withSize 101))) (PayloadTooLarge(101, 100)) "one over"
              sent (decideWith rawSettings route (withSize 100)) |> ignore
          }

          test "an oversized envelope is rejected before it is decoded" {
              let big = envelopeRecord 1L (simpleEnvelope "doc" Envelope.CreateUpdate (Array.zeroCreate 200))
              match rejected (decideWith { settings with MaxPayloadBytes = 100 } route big) with
              | PayloadTooLarge(size, 100) -> Expect.equal size big.Value.Length "the record's size"
              | other -> failtest $"{other}"
          }

          property "a header value with a control character is UnsafeHeader" (Gen.zip (Gen.zip (text 10) (text 10)) unsafeChar)
          <| fun ((before, after), control) ->
              let route = header "X-Trace" (before + string control + after)
              Expect.equal (rejected (decideWith settings route (store "doc"))) (UnsafeHeader "X-Trace") "rejected"

          test "CR, LF and CRLF in header values are UnsafeHeader" {
              for value in [ "a\rb"; "a\nb"; "a\r\nX-Evil: 1"; "\u0000" ] do
                  Expect.equal (rejected (decideWith settings (header "X-Trace" value) (store "doc"))) (UnsafeHeader "X-Trace") value
          }

          test "header names must be tokens" {
              for name in [ ""; "X Trace"; "X-Trace:"; "X\r\nEvil"; "é" ] do
                  Expect.equal (rejected (decideWith settings (header name "v") (store "doc"))) (UnsafeHeader name) $"'{name}'"
          }

          test "tabs are fine in header values" {
              let request = sent (decideWith settings (header "X-Trace" "a\tb c") (store "doc"))
              Expect.contains request.Headers ("X-Trace", "a\tb c") "the header is kept"
          }

          test "non-ASCII header values are refused (.NET will not send them; retrying could never help)" {
              Expect.equal (rejected (decideWith settings (header "X-Trace" "é 中") (store "doc"))) (UnsafeHeader "X-Trace") "refused"
          } ]

let private request =
    testList
        "the request"
        [ property "X-Replay-Id is topic/partition/offset" (Gen.zip (Gen.elements [ "t"; "telemetry.v2"; "a_b-c" ]) (Gen.zip (Gen.choose (0, 1000)) (Gen.choose (0, Int32.MaxValue))))
          <| fun (topic, (partition, offset)) ->
              let envelope = simpleEnvelope "doc" Envelope.CreateUpdate "{}"B
              let record = record topic partition (int64 offset * 3L) null (ReadOnlyMemory(Envelope.encode envelope))
              let request = sent (decideWith settings route record)
              Expect.contains request.Headers (ReplayIdHeader, $"{topic}/{partition}/{int64 offset * 3L}") "the replay id"

          test "the body is the payload's slice of the record, not a copy" {
              let payload = "{\"hello\":1}"B
              let encoded = Envelope.encode (simpleEnvelope "doc" Envelope.CreateUpdate payload)
              let buffer = Array.concat [ [| 1uy; 2uy |]; encoded; [| 3uy |] ]
              let record = record "t" 0 1L null (ReadOnlyMemory(buffer, 2, encoded.Length))
              let body = (sent (decideWith settings route record)).Body
              match MemoryMarshal.TryGetArray body with
              | true, segment ->
                  Expect.isTrue (Object.ReferenceEquals(segment.Array, buffer)) "the body points into the record's array"
                  Expect.equal (body.ToArray()) payload "and holds the payload"
              | false, _ -> failtest "the body is not backed by an array"
          }

          test "a raw body is the record value itself" {
              let buffer = "..{}.."B
              let record = record "t" 0 1L "k"B (ReadOnlyMemory(buffer, 2, 2))
              let body = (sent (decideWith { settings with Format = Raw } route record)).Body
              match MemoryMarshal.TryGetArray body with
              | true, segment ->
                  Expect.isTrue (Object.ReferenceEquals(segment.Array, buffer)) "same array"
                  Expect.equal (segment.Offset, segment.Count) (2, 2) "same slice"
              | false, _ -> failtest "the body is not backed by an array"
          }

          test "a rule's URL is used as it is" {
              let route = { route with Target = Url "http://h/computed?x=1" }
              Expect.equal (string (sent (decideWith settings route (store "doc"))).Url) "http://h/computed?x=1" "as computed"
          }

          testList
              "a URL that is not absolute http(s) is BadUrl"
              [ for target in
                    [ Url "ftp://h/x"
                      Url "not a url"
                      Url "/relative/path"
                      Url "http:///nohost"
                      pattern "file://h/docs/%k"
                      pattern "gopher://h/%k" ] do
                    let label =
                        match target with
                        | Url url -> url
                        | Pattern p -> p.Text
                    test label {
                        match rejected (decideWith settings { route with Target = target } (store "doc")) with
                        | BadUrl(url, _) -> Expect.stringStarts url (label.Replace("%k", "")) "names the URL"
                        | other -> failtest $"{other}"
                    } ] ]

[<Tests>]
let tests = testList "Pipeline" [ keys; json; raw; limits; request ]
