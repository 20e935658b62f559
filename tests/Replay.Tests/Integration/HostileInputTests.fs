/// Hostile records end to end, through the real `replay run` program: a topic that
/// mixes good envelopes with path-traversal ids, CR/LF ids, an oversized payload and
/// garbage. Every good record reaches the HTTP server under the configured prefix;
/// every hostile one is dead-lettered once, with its reason, and never becomes a
/// request; the replay keeps running and delivers what comes next.
module Replay.Tests.HostileInputTests

open System
open System.Text
open Expecto
open Replay.Core
open Replay.Tests
open Replay.Tests.ChildReplay

let private within = TimeSpan.FromSeconds 60.0
let private topic = "mixed"
let private maxPayload = 4096

/// (Kafka key naming the case, record value, what its dead letter's reason must say).
let private hostile =
    let valid = envelope "telemetry" "doc-valid" """{"n":1}"""
    [ "traversal", envelope "telemetry" "../../admin?x=1" "{}", "dot segment"
      "dotdot", envelope "telemetry" ".." "{}", "dot segment"
      "dot", envelope "telemetry" "." "{}", "dot segment"
      "backslashes", envelope "telemetry" "..\\..\\admin" "{}", "dot segment"
      "encoded-traversal", envelope "telemetry" "%2E%2E%2Fadmin" "{}", "dot segment"
      "namespace-traversal", envelope "../admin" "doc-ns" "{}", "the {namespace} value"
      "crlf", envelope "telemetry" "doc\r\nX-Injected: 1" "{}", "control character"
      "encoded-crlf", envelope "telemetry" "doc%0D%0AX-Injected:1" "{}", "control character"
      "nul", envelope "telemetry" "doc\u0000" "{}", "control character"
      "oversized", envelope "telemetry" "big" (String('x', 3 * maxPayload)), $"over --max-payload-bytes {maxPayload}"
      "garbage", Array.create 12 0xFFuy, "not a BagheeraMessage"
      "truncated", valid[.. valid.Length - 3], "truncated"
      "empty-id", envelope "telemetry" "" "{}", "id is missing"
      "invalid-utf8-id", [| 0x1Auy; 2uy; 0xC3uy; 0x28uy |], "not valid UTF-8"
      "huge-id", envelope "telemetry" (String('i', 2000)) "{}", "over the limit of 1024" ]

let private goodIds =
    [ for i in 1..20 -> $"doc-{i}" ] @ [ "a b"; "x?y#z"; "100%"; "a/b"; "..."; ".hidden"; "ü-ñ"; "@evil.example" ]

let private good (id: string) = Broker.message id (envelope "telemetry" id $"{{\"id\":{Json.JsonSerializer.Serialize id}}}")

/// The request target a good id must arrive at: the prefix and the id as one escaped segment.
let private targetOf (id: string) = "/submit/telemetry/" + Destination.escapeSegment id

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Hostile input end to end"
        [ test "good records are delivered under the prefix, hostile ones dead-lettered once with their reason, and the replay keeps running" {
              use cluster = Broker.start topic 2
              use dir = new Certificates.TempDir()
              // Good and hostile records interleaved, so a hostile record sits between good ones in each partition.
              let hostileMessages = [ for key, value, _ in hostile -> Broker.message key value ]
              let goodMessages = goodIds |> List.map good
              let mixed =
                  List.zip (List.truncate hostileMessages.Length goodMessages) hostileMessages
                  |> List.collect (fun (g, h) -> [ g; h ])
                  |> fun pairs -> pairs @ List.skip hostileMessages.Length goodMessages
              Broker.produce cluster.BootstrapServers topic mixed
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let deadLetterFile = dir.File "dead.jsonl"
              use child =
                  ReplayProcess.spawn
                      [ "run"; "-b"; cluster.BootstrapServers; "-t"; topic; "-gid"; "hostile-replay"
                        "-p"; properties (dir.File "kafka.properties") []
                        "--from"; "earliest"; "--dest"; $"{server.Url}/submit/{{namespace}}/%%k"
                        "--dead-letter"; deadLetterFile; "--max-payload-bytes"; string maxPayload ]

              Expect.isTrue (server.WaitForAccepted(goodIds.Length, within)) $"every good record is delivered; stderr: {child.Stderr}"
              Expect.isTrue
                  (Wait.until within (fun () -> (deadLetters deadLetterFile).Length >= hostile.Length))
                  $"every hostile record is dead-lettered; stderr: {child.Stderr}"

              let hits = server.Hits
              Expect.equal
                  (hits |> List.map _.RawTarget |> List.sort)
                  (goodIds |> List.map targetOf |> List.sort)
                  "the server saw exactly the good records, each once, each id escaped as one segment"
              for hit in hits do
                  Expect.isTrue (hit.RawTarget.StartsWith "/submit/telemetry/") $"{hit.RawTarget} is under the prefix as sent"
                  Expect.isTrue (hit.Path.StartsWith "/submit/telemetry/") $"{hit.Path} is under the prefix as the server resolved it"
                  Expect.isFalse (hit.Headers.ContainsKey "X-Injected") "no header was injected"

              let letters = deadLetters deadLetterFile
              Expect.equal letters.Length hostile.Length "one dead letter per hostile record, none twice"
              let byCase =
                  letters
                  |> List.map (fun l -> Encoding.UTF8.GetString(Convert.FromBase64String l.KeyBase64), l)
                  |> Map.ofList
              for key, value, says in hostile do
                  match byCase.TryFind key with
                  | None -> failtestf "no dead letter for the %s record" key
                  | Some letter ->
                      Expect.stringContains letter.Reason says $"{key}: the reason says what is wrong"
                      Expect.isFalse (letter.Reason.Contains '\n' || letter.Reason.Contains '\r') $"{key}: the reason is one line"
                      Expect.equal (Convert.FromBase64String letter.ValueBase64) value $"{key}: the record is kept as consumed"
                      Expect.equal letter.Attempts 0 $"{key}: it never became a request"

              // Still running: what arrives next is delivered.
              Expect.isFalse child.Process.HasExited $"the replay is still running; stderr: {child.Stderr}"
              Broker.produce cluster.BootstrapServers topic [ for i in 1..5 -> good $"late-{i}" ]
              Expect.isTrue (server.WaitForAccepted(goodIds.Length + 5, within)) "records after the hostile ones are delivered"

              child.Signal 15
              Expect.equal (child.WaitForExit within) (Some 0) "SIGTERM drains, commits and exits 0"
              let committed = Broker.committed cluster.BootstrapServers "hostile-replay" topic 2 |> Map.values |> Seq.sum
              Expect.equal committed (int64 (mixed.Length + 5)) "every record, good or hostile, is finished and committed"
              Expect.isFalse (hasStackTrace child.Stderr) "no stack trace"
          } ]
