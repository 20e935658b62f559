/// The walking skeleton end to end: the embedded broker, the replay, and a real
/// HTTP server on 127.0.0.1 — in this process and as the real `replay` program.
module Replay.Tests.ReplayTests

open System
open System.IO
open Expecto
open Replay.Core
open Replay.Host.Delivery
open Replay.Tests

let private store = Data.store
let private remove = Data.remove
let private within = TimeSpan.FromSeconds 60.0
let private text (bytes: byte[]) = Text.Encoding.UTF8.GetString bytes

let private replayAll (cluster: Replay.Host.Kafka.MockCluster) topic (route: Route) (adjust: ReplayProcess.Setup -> ReplayProcess.Setup) =
    let settings = ReplayProcess.settings cluster.BootstrapServers "g" topic route |> ReplayProcess.untilEnd |> adjust
    use replay = ReplayProcess.start settings
    let code = replay.Wait within
    Expect.equal code (Some 0) "until-end exits 0"
    replay.Stats

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Replay end to end"
        [ test "replays every envelope as POST dest(id) with its payload, and DELETEs" {
              use cluster = Broker.start "t" 4
              let ids = [ for i in 1..200 -> $"doc-{i}" ]
              let messages = [ for id in ids -> store id $"{{\"n\":\"{id}\"}}" ] @ [ remove "doc-7"; remove "doc-9" ]
              Broker.produce cluster.BootstrapServers "t" messages
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let route = ReplayProcess.route $"{server.Url}/submit/telemetry/%%k" 1.0 true true
              replayAll cluster "t" route id |> ignore
              let got = server.Accepted |> List.map (fun h -> h.Method, h.Path, text h.Body) |> Set.ofList
              let expected =
                  Set.ofList (
                      [ for id in ids -> "POST", $"/submit/telemetry/{id}", $"{{\"n\":\"{id}\"}}" ]
                      @ [ "DELETE", "/submit/telemetry/doc-7", ""; "DELETE", "/submit/telemetry/doc-9", "" ]
                  )
              Expect.equal got expected "the server received exactly the expected (method, path, body) set"
              Expect.equal server.Hits.Length 202 "no request twice"
              let replayIds = server.Accepted |> List.choose (fun h -> h.Headers.TryFind "X-Replay-Id") |> Set.ofList
              Expect.equal replayIds.Count 202 "every request names its record in X-Replay-Id"
          }

          test "deletes off (Bagheera's --delete false) sends no DELETE and still commits past them" {
              use cluster = Broker.start "t" 2
              Broker.produce cluster.BootstrapServers "t" [ store "a" "{}"; remove "a"; store "b" "{}"; remove "b" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let stats = replayAll cluster "t" (ReplayProcess.route $"{server.Url}/s/%%k" 1.0 false true) id
              Expect.equal (server.Hits |> List.map (fun h -> h.Method) |> List.distinct) [ "POST" ] "only POSTs"
              Expect.equal stats.DeletesIgnored 2L "both deletes counted as ignored"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 2) 4L "offsets move past the ignored deletes"
          }

          test "copy-keys false sends a fresh UUID per store, and the real id for deletes" {
              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ store "a" "{}"; store "b" "{}"; remove "a" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              replayAll cluster "t" (ReplayProcess.route $"{server.Url}/s/%%k" 1.0 true false) id |> ignore
              let posts = server.Accepted |> List.filter (fun h -> h.Method = "POST") |> List.map (fun h -> h.Path.Substring 3)
              Expect.equal posts.Length 2 "two stores"
              for key in posts do
                  Expect.isTrue (fst (Guid.TryParse key)) $"'{key}' is a UUID"
              Expect.notEqual posts[0] posts[1] "a fresh UUID each"
              let deletes = server.Accepted |> List.filter (fun h -> h.Method = "DELETE") |> List.map (fun h -> h.Path)
              Expect.equal deletes [ "/s/a" ] "deletes name the source document"
          }

          test "sample 0.1 replays a fraction of documents within binomial bounds, the same ones every run" {
              use cluster = Broker.start "t" 4
              let n = 3000
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..n -> store $"id-{i}" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let route = ReplayProcess.route $"{server.Url}/s/%%k" 0.1 true true
              let stats = replayAll cluster "t" route id
              let kept = server.Accepted.Length
              let sigma = sqrt (float n * 0.1 * 0.9)
              Expect.isLessThan (abs (float kept - 300.0)) (5.0 * sigma) $"{kept} of {n} kept at rate 0.1"
              Expect.equal (stats.SampledOut + int64 kept) (int64 n) "every record either sent or sampled out"
              let expected =
                  [ for i in 1..n do
                        if Sampling.position $"id-{i}" < 0.1 then $"/s/id-{i}" ]
                  |> Set.ofList
              Expect.equal (server.Accepted |> List.map (fun h -> h.Path) |> Set.ofList) expected "exactly the ids whose hash falls below the rate"
          }

          test "through a forward proxy, requests arrive in absolute form at the proxy" {
              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ store "a" "{\"x\":1}" ]
              use proxy = HttpRecorder.start (HttpRecorder.always 201)
              let route = ReplayProcess.route "http://replay-destination.invalid:8080/submit/telemetry/%k" 1.0 true true
              replayAll cluster "t" route (fun s -> { s with Proxy = Net.WebProxy(proxy.Url) }) |> ignore
              let hit = Expect.wantSome (List.tryExactlyOne proxy.Accepted) "one request at the proxy"
              Expect.equal hit.RawTarget "http://replay-destination.invalid:8080/submit/telemetry/a" "absolute-form target"
              Expect.equal (text hit.Body) "{\"x\":1}" "payload forwarded"
          }

          test "a malformed envelope is dead-lettered with its reason; later records still arrive; offsets advance" {
              use cluster = Broker.start "t" 1
              let garbage = Broker.message "bad" [| 0x1Auy; 0xFFuy; 0xFFuy; 0xFFuy; 0x0Fuy; 1uy |]
              Broker.produce cluster.BootstrapServers "t" [ store "a" "{}"; garbage; store "b" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let file = Temp.file "dead.jsonl"
              let stats =
                  replayAll cluster "t" (ReplayProcess.route $"{server.Url}/s/%%k" 1.0 true true) (fun s ->
                      { s with DeadLetters = new DeadLetterFile(file) })
              // Different ids run in parallel: no order between them is promised.
              Expect.equal (server.Accepted |> List.map (fun h -> h.Path) |> set) (set [ "/s/a"; "/s/b" ]) "both good records"
              Expect.equal stats.DecodeErrors 1L "one decode error counted"
              let letters = DeadLetterFile.Read file |> List.ofSeq
              let letter = Expect.wantSome (List.tryExactlyOne letters) "one dead letter"
              Expect.equal letter.Offset 1L "at the malformed record's offset"
              Expect.stringContains letter.Reason "truncated" "the reason says what is wrong"
              let committed = Broker.committed cluster.BootstrapServers "g" "t" 1
              Expect.equal committed[0] 3L "committed past all three records"
          }

          test "stopping and restarting resumes after the last delivered record: nothing lost, nothing twice" {
              use cluster = Broker.start "t" 4
              let n = 1000
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..n -> store $"id-{i}" "{}" ]
              // Slow enough that the stop lands mid-stream.
              use server = HttpRecorder.startSlow (fun _ -> TimeSpan.FromMilliseconds 5.0) (HttpRecorder.always 201)
              let route = ReplayProcess.route $"{server.Url}/s/%%k" 1.0 true true
              let settings =
                  ReplayProcess.settings cluster.BootstrapServers "g" "t" route
                  |> ReplayProcess.withDelivery (fun d -> { d with Concurrency = Fixed 4 })
                  |> ReplayProcess.withBudget (fun b -> { b with MaxInFlightRecords = 20 })
              do
                  use first = ReplayProcess.start settings
                  Expect.isTrue (server.WaitForAccepted(100, within)) "the first run delivers some"
                  Expect.equal (first.Stop()) 0 "a graceful stop exits 0"
              let afterFirst = server.Accepted.Length
              Expect.isLessThan afterFirst n "stopped mid-stream"
              replayAll cluster "t" route id |> ignore
              let paths = server.Accepted |> List.map (fun h -> h.Path)
              Expect.equal (Set.ofList paths).Count n "every record delivered across the two runs"
              Expect.equal paths.Length n "a graceful stop commits what it delivered: nothing is sent twice"
          } 
          test "Bagheera's own command line, against `replay broker` filled by an independent client (kafka-python), via -Dhttp.proxyHost" {
              let python = "/usr/bin/python3"
              let probe = Diagnostics.Process.Start(python, "-c \"import kafka\"")
              probe.WaitForExit()
              Expect.equal probe.ExitCode 0 "kafka-python is needed: apt-get install python3-kafka (.ci/run installs it)"
              use broker = ReplayProcess.spawn [ "broker"; "--topic"; "seed"; "--partitions"; "4" ]
              Expect.isTrue (Wait.until within (fun () -> broker.Stdout.Contains "bootstrap.servers=")) $"the broker announces itself ({broker.Stderr})"
              let bootstrap = broker.Stdout.Trim().Replace("bootstrap.servers=", "")
              // Envelopes hand-encoded in Python, so the decoder is checked against bytes it did not write.
              let script = Temp.file "produce.py"
              File.WriteAllLines(
                  script,
                  [| "import sys"
                     "from kafka import KafkaProducer"
                     "def varint(n):"
                     "    out = bytearray()"
                     "    while True:"
                     "        b = n & 0x7f; n >>= 7"
                     "        if n: out.append(b | 0x80)"
                     "        else: out.append(b); return bytes(out)"
                     "def field(num, data): return varint(num << 3 | 2) + varint(len(data)) + data"
                     "def envelope(i, delete):"
                     "    msg = field(2, b\"telemetry\") + field(3, f\"py-{i}\".encode()) + field(5, b\"\" if delete else f'{{\"i\":{i}}}'.encode())"
                     "    msg += varint(6 << 3) + varint(2 * 1700000000000)"
                     "    if delete: msg += varint(7 << 3) + varint(1)"
                     "    return msg"
                     "p = KafkaProducer(bootstrap_servers=sys.argv[1], acks=\"all\")"
                     "for i in range(300): p.send(\"seed\", key=f\"py-{i}\".encode(), value=envelope(i, False))"
                     "for i in range(0, 300, 30): p.send(\"seed\", key=f\"py-{i}\".encode(), value=envelope(i, True))"
                     "p.flush()" |]
              )
              let produce = Diagnostics.Process.Start(python, $"{script} {bootstrap}")
              Expect.isTrue (produce.WaitForExit 60000) "kafka-python wrote the topic"
              Expect.equal produce.ExitCode 0 "kafka-python succeeded"
              let properties = Temp.file "kafka.consumer.properties"
              File.WriteAllLines(properties, [ $"bootstrap.servers={bootstrap}"; "auto.offset.reset=earliest" ])
              use proxy = HttpRecorder.start (HttpRecorder.always 201)
              let code, _, stderr =
                  ReplayProcess.run
                      [ "com.mozilla.bagheera.consumer.KafkaReplayConsumer"; "-t"; "seed"; "-gid"; "replay-seed"; "-p"; properties
                        "--copy-keys"; "true"; "--dest"; "http://replay-host.invalid/submit/telemetry/%k"; "--sample"; "1"
                        "--delete"; "false"; "-Dhttp.proxyHost=127.0.0.1"; $"-Dhttp.proxyPort={proxy.Port}"; "--until-end" ]
                      within
              Expect.equal code 0 $"exit 0 ({stderr})"
              let got = proxy.Accepted |> List.map (fun h -> h.Method, h.RawTarget, text h.Body) |> Set.ofList
              let expected = set [ for i in 0..299 -> "POST", $"http://replay-host.invalid/submit/telemetry/py-{i}", $"{{\"i\":{i}}}" ]
              Expect.equal got expected "every record, as POST dest(id) with its payload, through the proxy; no DELETE with --delete false"
          } ]

