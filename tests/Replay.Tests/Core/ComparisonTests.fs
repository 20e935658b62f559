/// Whether a candidate answers like the primary: the structural JSON diff and its
/// laws, and the answer-level comparison (status, headers, bytes, digests) under
/// hostile bodies.
module Replay.Tests.ComparisonTests

open System
open System.Security.Cryptography
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Difference
open Replay.Core.Outcome
open Replay.Tests.Generators
open Replay.Tests.JsonGenerators

let private answerOf (status: int) (body: byte[]) : Answer =
    { Status = status
      RetryAfter = None
      Headers = [ "Content-Type", "application/json" ]
      Body = body
      BodyLength = int64 body.Length
      BodyHash = [||] }

let private jsonAnswer json = answerOf 200 (bytes json)
let private textAnswer (s: string) = answerOf 200 (Encoding.UTF8.GetBytes s)

let private settingsWith tolerance (ignored: string list) (unordered: string list) =
    match AnswerComparison.create tolerance ignored unordered [ "Content-Type" ] AnswerComparison.DefaultMaxBodyBytes with
    | Ok s -> s
    | Error e -> failtest e

let private plain = settingsWith 0.0 [] []

let private differences settings a b = (AnswerComparison.compare settings a b).Differences

let private paths settings a b = differences settings a b |> List.map _.Path |> Set.ofList

let private steps (path: string) =
    match JsonPath.parse path with
    | Ok(JsonPath.Json steps) -> steps
    | other -> failtest $"'{path}' did not read back as a JSON path: {other}"

/// True when the pattern names this concrete path or a place above it.
let private covers (pattern: JsonPath.Step list) (path: JsonPath.Step list) =
    let fits p s =
        match p, s with
        | JsonPath.Named n, JsonPath.Named m -> n = m
        | JsonPath.AnyMember, JsonPath.Named _ -> true
        | JsonPath.At i, JsonPath.At j -> i = j
        | JsonPath.AnyElement, (JsonPath.At _ | JsonPath.AnyElement) -> true
        | _ -> false
    pattern.Length <= path.Length && List.forall2 fits pattern (List.take pattern.Length path)

let private tolerance: Gen<decimal> = Gen.choose (0, 500) |> Gen.map (fun n -> decimal n / 10000m)

let private diffLaws =
    testList
        "JSON diff laws"
        [ property "diff(a, a) is empty, whatever the settings" (Gen.zip json tolerance) (fun (a, tol) ->
              let settings = settingsWith (float tol) [ "$.requestId"; "$.items[*].price" ] [ "$.items"; "$.*" ]
              Expect.isEmpty (differences settings (jsonAnswer a) (jsonAnswer a)) (text a))

          property "diff is symmetric in the paths it reports" jsonPair (fun (a, b) ->
              for settings in [ plain; settingsWith 0.0 [] [ "$.items"; "$.*" ] ] do
                  Expect.equal (paths settings (jsonAnswer a) (jsonAnswer b)) (paths settings (jsonAnswer b) (jsonAnswer a)) $"{text a}\n{text b}")

          property "every reported path reads back as the pattern that names it" jsonPair (fun (a, b) ->
              for d in differences plain (jsonAnswer a) (jsonAnswer b) do
                  Expect.equal (JsonPath.describe (JsonPath.Json(steps d.Path))) d.Path "round trip"
                  Expect.equal (JsonPath.describe (JsonPath.Json(steps d.Field))) d.Field "round trip")

          property "an ignored path and everything below it never appears" jsonPair (fun (a, b) ->
              let all = differences plain (jsonAnswer a) (jsonAnswer b)
              for d in all |> List.truncate 3 do
                  for ignored in [ d.Path; d.Field ] do
                      let pattern = steps ignored
                      let rest = differences (settingsWith 0.0 [ ignored ] []) (jsonAnswer a) (jsonAnswer b)
                      for r in rest do
                          Expect.isFalse (covers pattern (steps r.Path)) $"--ignore {ignored} still reports {r.Path}")

          property "numbers within the tolerance are equal" (Gen.zip json tolerance |> Gen.bind (fun (a, tol) -> nudge tol a |> Gen.map (fun b -> a, b, tol)))
          <| fun (a, b, tol) ->
              Expect.isEmpty (differences (settingsWith (float tol) [] []) (jsonAnswer a) (jsonAnswer b)) $"{text a}\n{text b}\ntolerance {tol}"

          property "a number beyond the tolerance differs" (Gen.zip (Gen.choose (-100000, 100000)) tolerance) (fun (n, tol) ->
              let a = JObject [ "x", JNumber(decimal n) ]
              let b = JObject [ "x", JNumber(decimal n + tol + 0.0001m) ]
              Expect.equal (paths (settingsWith (float tol) [] []) (jsonAnswer a) (jsonAnswer b)) (set [ "$.x" ]) "")

          property "reordering an unordered array changes nothing"
              (gen {
                  let! items = Gen.listOf json |> Gen.map (List.truncate 8)
                  let! reordered = shuffled items
                  let! rest = json
                  return JObject [ "items", JArray items; "rest", rest ], JObject [ "rest", rest; "items", JArray reordered ]
               })
          <| fun (a, b) ->
              Expect.isEmpty (differences (settingsWith 0.0 [] [ "$.items" ]) (jsonAnswer a) (jsonAnswer b)) $"{text a}\n{text b}"

          test "an ordered array reports positions; an unordered one the field that changed, under [*]" {
              let a = JObject [ "items", JArray [ JObject [ "id", JNumber 1m; "price", JNumber 5m ]; JObject [ "id", JNumber 2m; "price", JNumber 7m ] ] ]
              let b = JObject [ "items", JArray [ JObject [ "id", JNumber 2m; "price", JNumber 7m ]; JObject [ "id", JNumber 1m; "price", JNumber 6m ] ] ]
              Expect.equal (paths plain (jsonAnswer a) (jsonAnswer b)) (set [ "$.items[0].id"; "$.items[0].price"; "$.items[1].id"; "$.items[1].price" ]) "ordered"
              let unordered = differences (settingsWith 0.0 [] [ "$.items" ]) (jsonAnswer a) (jsonAnswer b)
              Expect.equal (unordered |> List.map (fun d -> d.Path, d.Primary, d.Candidate)) [ "$.items[*].price", "5", "6" ] "unordered"
              Expect.equal (differences plain (jsonAnswer a) (jsonAnswer b) |> List.map _.Field |> List.distinct) [ "$.items[*].id"; "$.items[*].price" ] "fields"
          }

          test "members are compared by name in any order; odd names are quoted" {
              let a = JObject [ "a", JNumber 1m; "x-y", JString "p"; "it's", JNull ]
              let b = JObject [ "it's", JBool true; "a", JNumber 1.0m; "x-y", JString "q" ]
              Expect.equal (paths plain (jsonAnswer a) (jsonAnswer b)) (set [ "$['x-y']"; "$['it\\'s']" ]) ""
          } ]

let private hostile =
    testList
        "answers from hostile servers"
        [ test "a candidate answering non-JSON where the primary answered JSON is one difference at the root" {
              let diff = AnswerComparison.compare plain (textAnswer """{"a":1}""") (textAnswer "<html>oops</html>")
              Expect.equal (diff.Differences |> List.map (fun d -> d.Path, d.Change)) [ "$", NotJson ] ""
              Expect.stringContains diff.Differences.Head.Candidate "(not JSON) <html>" "the candidate's excerpt"
          }

          test "bodies that are not JSON are compared as bytes" {
              Expect.isEmpty (differences plain (textAnswer "plain") (textAnswer "plain")) "same bytes"
              let diff = AnswerComparison.compare plain (textAnswer "plain") (textAnswer "plane")
              Expect.equal (diff.Differences |> List.map _.Path) [ "body" ] ""
              Expect.equal diff.Body AnswerComparison.Bytes ""
          }

          test "JSON nested past the depth bound is compared as bytes, without recursing" {
              let deep n = String.replicate n "[" + "1" + String.replicate n "]"
              Expect.isEmpty (differences plain (textAnswer (deep 100_000)) (textAnswer (deep 100_000))) "equal bytes"
              Expect.equal (paths plain (textAnswer (deep 100_000)) (textAnswer (deep 100_001))) (set [ "body" ]) "different bytes"
              Expect.equal (paths plain (textAnswer (deep 10)) (textAnswer (deep 100))) (set [ "$" ]) "JSON against too deep"
          }

          test "invalid UTF-8 and lone surrogate escapes inside strings are compared by their bytes" {
              let withBytes (inner: byte[]) = answerOf 200 (Array.concat [ "{\"a\":\""B; inner; "\"}"B ])
              Expect.isEmpty (differences plain (withBytes [| 0xC3uy; 0x28uy |]) (withBytes [| 0xC3uy; 0x28uy |])) "same invalid bytes"
              let diff = differences plain (withBytes [| 0xC3uy; 0x28uy |]) (withBytes [| 0xFFuy |])
              Expect.equal (diff |> List.map _.Path) [ "$.a" ] "different invalid bytes"
              Expect.isFalse (diff.Head.Primary |> Seq.exists Char.IsSurrogate) "the excerpt is well-formed text"
              Expect.isEmpty (differences plain (textAnswer """{"\ud800":"\ud800"}""") (textAnswer """{"\ud800":"\ud800"}""")) "lone surrogates"
              Expect.equal (paths plain (textAnswer """["\ud800"]""") (textAnswer """["\udc00"]""")) (set [ "$[0]" ]) ""
          }

          test "duplicate member names are compared occurrence by occurrence" {
              Expect.equal (paths plain (textAnswer """{"a":1,"a":2}""") (textAnswer """{"a":1,"a":3}""")) (set [ "$.a" ]) "second occurrence"
              let added = differences plain (textAnswer """{"a":1}""") (textAnswer """{"a":1,"a":1}""")
              Expect.equal (added |> List.map (fun d -> d.Path, d.Change)) [ "$.a", Added ] "an extra occurrence"
          }

          test "numbers: exact beyond double precision, NaN is not JSON, out-of-range numbers by text" {
              Expect.equal (paths plain (textAnswer "[12345678901234567890123]") (textAnswer "[12345678901234567890124]")) (set [ "$[0]" ]) "20+ digits"
              Expect.equal (paths plain (textAnswer "[1e-30]") (textAnswer "[2e-30]")) (set [ "$[0]" ]) "tiny values"
              Expect.isEmpty (differences plain (textAnswer "[1.0, 1e2, -0]") (textAnswer "[1, 100, 0]")) "equal values, other spellings"
              Expect.isEmpty (differences plain (textAnswer "[1e400]") (textAnswer "[1e400]")) "same out-of-range text"
              Expect.equal (paths (settingsWith 1e300 [] []) (textAnswer "[1e400]") (textAnswer "[2e400]")) (set [ "$[0]" ]) "out of range differs"
              Expect.equal (paths plain (textAnswer """{"a":NaN}""") (textAnswer """{"a":NaN}""")) Set.empty "NaN: equal bytes"
              Expect.equal (paths plain (textAnswer """{"a":1}""") (textAnswer """{"a":NaN}""")) (set [ "$" ]) "NaN is not JSON"
          }

          test "a body cut at the capture limit is compared by length and hash, never parsed" {
              let full = Encoding.UTF8.GetBytes("""{"a":[""" + String.replicate 500 "1," + "1]}")
              let other = Encoding.UTF8.GetBytes("""{"a":[""" + String.replicate 500 "1," + "2]}")
              let cut (body: byte[]) =
                  { answerOf 200 body[..99] with
                      BodyLength = int64 body.Length
                      BodyHash = SHA256.HashData body }
              let same = AnswerComparison.compare plain (cut full) (answerOf 200 full)
              Expect.isEmpty same.Differences "the cut body's hash equals the whole body's"
              Expect.equal same.Body AnswerComparison.Digest "by digest"
              let differ = AnswerComparison.compare plain (cut full) (cut other)
              Expect.equal (differ.Differences |> List.map _.Path) [ "body" ] "same length, other hash"
              Expect.stringContains differ.Differences.Head.Primary "sha256" "the excerpt names the hash"
              let noHash = { cut full with BodyHash = [||] }
              Expect.isEmpty (differences plain noHash { noHash with Body = Array.copy noHash.Body }) "without hashes: equal as far as can be told"
              Expect.equal (paths plain noHash { noHash with BodyLength = 5000L }) (set [ "body" ]) "known lengths differ"
          }

          test "bodies above --compare-max-bytes are compared by hash only" {
              let big n = JObject [ "pad", JString(String('x', 2000)); "n", JNumber n ]
              let settings =
                  match AnswerComparison.create 0.0 [] [] [] 1024L with
                  | Ok s -> s
                  | Error e -> failtest e
              let diff = AnswerComparison.compare settings (jsonAnswer (big 1m)) (jsonAnswer (big 2m))
              Expect.equal (diff.Differences |> List.map _.Path) [ "body" ] "not $.n"
              Expect.equal diff.Body AnswerComparison.Digest ""
              Expect.isEmpty (differences settings (jsonAnswer (big 1m)) (jsonAnswer (big 1m))) "same hash"
          }

          test "a UTF-8 byte order mark does not make JSON into bytes" {
              let bom = answerOf 200 (Array.append [| 0xEFuy; 0xBBuy; 0xBFuy |] "{\"a\":1}"B)
              Expect.isEmpty (differences plain bom (textAnswer """{ "a" : 1 }""")) ""
          }

          test "a walk stops after MaxDifferences and says so" {
              let many n = JArray [ for i in 1..n -> JNumber(decimal (i * n)) ]
              let diff = AnswerComparison.compare plain (jsonAnswer (many 1000)) (jsonAnswer (many 1001))
              Expect.equal diff.Differences.Length AnswerComparison.MaxDifferences "bounded"
              Expect.isTrue diff.Truncated "truncated"
          }

          test "status and chosen headers are compared; others are not; ignoring works for them too" {
              let a = { textAnswer "{}" with Headers = [ "Content-Type", "application/json"; "Date", "1"; "X-A", "1" ] }
              let b = { textAnswer "{}" with Status = 503; Headers = [ "content-type", "text/html"; "Date", "2" ] }
              let settings =
                  match AnswerComparison.create 0.0 [] [] [ "Content-Type"; "X-A" ] 1024L with
                  | Ok s -> s
                  | Error e -> failtest e
              let diff = differences settings a b
              Expect.equal (diff |> List.map (fun d -> d.Path, d.Change)) [ "status", Changed; "header:content-type", Changed; "header:x-a", Removed ] ""
              let quiet =
                  match AnswerComparison.create 0.0 [ "status"; "header:Content-Type" ] [] [ "Content-Type"; "X-A" ] 1024L with
                  | Ok s -> s
                  | Error e -> failtest e
              Expect.equal (differences quiet a b |> List.map _.Path) [ "header:x-a" ] "ignored"
          }

          test "settings refuse what cannot work, saying what to write" {
              let error tolerance ignored unordered =
                  match AnswerComparison.create tolerance ignored unordered [] 1L with
                  | Error e -> e
                  | Ok _ -> failtest "accepted"
              Expect.stringContains (error nan [] []) "--tolerance" "NaN"
              Expect.stringContains (error -1.0 [] []) "--tolerance" "negative"
              Expect.stringContains (error 0.0 [ "requestId" ] []) "$.requestId" "a bare name"
              Expect.stringContains (error 0.0 [ "$.a[" ] []) "'[' without ']'" "unclosed"
              Expect.stringContains (error 0.0 [ "$.x-y" ] []) "$['x-y']" "a name that needs brackets"
              Expect.stringContains (error 0.0 [] [ "status" ]) "only JSON arrays" "unordered status"
              match AnswerComparison.create 0.0 [] [] [ "Bad Name" ] 1L with
              | Error e -> Expect.stringContains e "--compare-header" "a header name with a space"
              | Ok _ -> failtest "accepted a header name with a space"
          } ]

[<Tests>]
let tests = testList "Comparison" [ diffLaws; hostile ]
