/// The delivery engine under faults: retries, dead letters, outages, crashes,
/// scale-out and broker trouble — always the embedded broker and a real HTTP server.
module Replay.Tests.DeliveryTests

open System
open System.IO
open Expecto
open Replay.Host.Delivery
open Replay.Host.Kafka
open Replay.Tests

let private within = TimeSpan.FromSeconds 90.0
let private text (bytes: byte[]) = Text.Encoding.UTF8.GetString bytes

/// Per id, the sequence numbers in the order the server accepted them.
let private sequencesById (server: HttpRecorder.Recorder) =
    server.Accepted
    |> List.filter (fun h -> h.Method = "POST")
    |> List.groupBy (fun h -> h.Path)
    |> List.map (fun (path, hits) -> path, hits |> List.map (fun h -> Data.seqOf h.Body))
    |> Map.ofList

let private replayUntilEnd (cluster: MockCluster) (server: HttpRecorder.Recorder) partitions adjust =
    let settings =
        ReplayProcess.settings cluster.BootstrapServers "g" "t" (ReplayProcess.route $"{server.Url}/submit/telemetry/%%k" 1.0 true true)
        |> ReplayProcess.untilEnd
        |> adjust
    use replay = ReplayProcess.start settings
    Expect.equal (replay.Wait within) (Some 0) "until-end exits 0"
    ignore partitions
    replay.Stats

let private propertiesFile (bootstrap: string) (extra: string list) =
    ChildReplay.properties (Temp.file "kafka.consumer.properties") ([ $"bootstrap.servers={bootstrap}"; "auto.offset.reset=earliest" ] @ extra)

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Delivery"
        [ test "per-id order holds at concurrency 64 against a slow, jittery destination" {
              use cluster = Broker.start "t" 8
              let ids, versions = 200, 5
              Broker.produce cluster.BootstrapServers "t" (Data.versioned ids versions)
              let random = Random 11
              use server = HttpRecorder.startSlow (fun _ -> TimeSpan.FromMilliseconds(float (lock random (fun () -> random.Next 4)))) (HttpRecorder.always 201)
              replayUntilEnd cluster server 8 (ReplayProcess.withDelivery (fun d -> { d with Concurrency = Replay.Core.Fixed 64 })) |> ignore
              let sequences = sequencesById server
              Expect.equal sequences.Count ids "every id arrived"
              for KeyValue(path, seqs) in sequences do
                  Expect.equal seqs [ 1..versions ] $"{path} arrived in Kafka order"
          }

          test "--pipeline 8 against a server that closes the connection after every fifth answer: each record delivered once, in order per id" {
              use cluster = Broker.start "t" 4
              let ids, versions = 100, 3
              Broker.produce cluster.BootstrapServers "t" (Data.versioned ids versions)
              // As nginx at its keepalive_requests: the answer says close, what was sent behind it is drained unread.
              let closeAfter (stream: Stream) =
                  task {
                      let closing = ScriptedHttp.ascii "HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                      stream.Write(closing, 0, closing.Length)
                      (stream :?> Net.Sockets.NetworkStream).Socket.Shutdown Net.Sockets.SocketShutdown.Send
                      let sink = Array.zeroCreate<byte> 4096
                      try
                          while stream.Read(sink, 0, sink.Length) > 0 do ()
                      with :? IOException -> ()
                      return false
                  }
              let created = ScriptedHttp.ascii "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
              use server = new ScriptedHttp.Server(fun i -> if i % 5 = 4 then ScriptedHttp.Scripted closeAfter else ScriptedHttp.Answer(created, 0))
              let settings =
                  ReplayProcess.settings cluster.BootstrapServers "g" "t" (ReplayProcess.route $"{server.Url}/submit/telemetry/%%k" 1.0 true true)
                  |> ReplayProcess.untilEnd
                  |> ReplayProcess.withDelivery (fun d -> { d with Concurrency = Replay.Core.Fixed 64; Pipelining = 8 })
              use replay = ReplayProcess.start settings
              Expect.equal (replay.Wait within) (Some 0) "until-end exits 0"
              let received = server.Received
              let byId =
                  received
                  |> List.groupBy (fun r -> (r.Head.Split ' ').[1])
                  |> List.map (fun (path, hits) -> path, hits |> List.map (fun h -> Data.seqOf h.Body))
              Expect.equal byId.Length ids "every id arrived"
              for path, seqs in byId do
                  Expect.equal seqs [ 1..versions ] $"{path}: each version once, in Kafka order"
              Expect.isGreaterThan server.Connections (received.Length / 5) "the server closed a connection after every fifth answer"
              Expect.isGreaterThan (received |> List.countBy (fun r -> r.Connection) |> List.map snd |> List.max) 1 "connections carried several requests"
              Expect.equal replay.Stats.DeadLettered 0L "nothing given up"
          }

          test "503 to the first attempts of every request: all delivered, none dead-lettered, order intact" {
              use cluster = Broker.start "t" 4
              Broker.produce cluster.BootstrapServers "t" (Data.versioned 50 3)
              use server = HttpRecorder.start (fun _ attempt -> if attempt <= 2 then 503 else 201)
              let stats = replayUntilEnd cluster server 4 id
              Expect.equal server.Accepted.Length 150 "every record delivered once"
              Expect.equal stats.DeadLettered 0L "nothing dead-lettered"
              Expect.isGreaterThanOrEqual stats.Retries 300L "two retries per record"
              for KeyValue(path, seqs) in sequencesById server do
                  Expect.equal seqs [ 1; 2; 3 ] $"{path} in order despite retries"
          }

          test "Retry-After from the destination is honoured" {
              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ Data.store "a" "{}" ]
              let times = Collections.Concurrent.ConcurrentQueue<DateTime>()
              use server =
                  HttpRecorder.start (fun _ attempt ->
                      times.Enqueue DateTime.UtcNow
                      if attempt = 1 then 429 else 201)
              server.RetryAfterSeconds <- Some 1
              // Retry-After is honoured up to --max-backoff (the tests' default of 500 ms would cap it).
              replayUntilEnd cluster server 1 (ReplayProcess.withRetry (fun r -> { r with MaxBackoff = TimeSpan.FromSeconds 5.0 })) |> ignore
              let t = times.ToArray()
              Expect.equal t.Length 2 "one retry"
              Expect.isGreaterThanOrEqual (t[1] - t[0]).TotalSeconds 0.9 "waited as Retry-After asked, not the 20 ms base backoff"
          }

          test "400 for some ids: exactly those dead-lettered, the rest delivered, offsets move on; redrive sends them later" {
              use cluster = Broker.start "t" 4
              let n = 100
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..n -> Data.store $"doc-{i}" $"{{\"i\":{i}}}" ]
              let refused (hit: HttpRecorder.Hit) = hit.Path.EndsWith "0"
              use server = HttpRecorder.start (fun hit _ -> if refused hit then 400 else 201)
              let file = Temp.file "dead.jsonl"
              let stats = replayUntilEnd cluster server 4 (fun s -> { s with DeadLetters = new DeadLetterFile(file) })
              let expectedDead = set [ for i in 10..10..n -> $"doc-{i}" ]
              let letters = DeadLetterFile.Read file |> List.ofSeq
              Expect.equal (letters |> List.map (fun l -> l.Id) |> Set.ofList) expectedDead "exactly the refused ids"
              for l in letters do
                  Expect.equal l.LastStatus (Nullable 400) "last status recorded"
                  Expect.equal l.Attempts 1 "a 400 is not retried"
                  Expect.equal l.Method "POST" "method recorded"
                  Expect.stringContains l.Url l.Id "URL recorded"
                  Expect.stringContains l.Reason "400" "reason names the status"
              Expect.equal stats.DeadLettered 10L "counted"
              Expect.equal server.Accepted.Length (n - 10) "all others delivered"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 4) (int64 n) "offsets moved past the dead letters"
              // The destination is fixed: redrive through the real program.
              server.SetResponder(HttpRecorder.always 201)
              let code, _, stderr =
                  ReplayProcess.run [ "redrive"; "--file"; file; "--dest"; $"{server.Url}/submit/telemetry/%%k" ] within
              Expect.equal code 0 $"redrive exits 0 ({stderr})"
              let redriven = server.Accepted |> List.skip (n - 10) |> List.map (fun h -> h.Path.Split('/') |> Array.last) |> Set.ofList
              Expect.equal redriven expectedDead "redrive delivered exactly the dead letters"
          }

          test "--max-retry-duration turns an endless 503 into a dead letter, and the replay moves on" {
              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ Data.store "stuck" "{}"; Data.store "fine" "{}" ]
              use server = HttpRecorder.start (fun hit _ -> if hit.Path.EndsWith "stuck" then 503 else 201)
              let file = Temp.file "dead.jsonl"
              replayUntilEnd cluster server 1 (fun s ->
                  { ReplayProcess.withRetry (fun r -> { r with MaxRetryDuration = Some(TimeSpan.FromMilliseconds 400.0) }) s with
                      DeadLetters = new DeadLetterFile(file) })
              |> ignore
              let letter = DeadLetterFile.Read file |> Seq.exactlyOne
              Expect.equal letter.Id "stuck" "the stuck id"
              Expect.stringContains letter.Reason "max-retry-duration" "reason names the limit"
              Expect.equal (server.Accepted |> List.map (fun h -> h.Path)) [ "/submit/telemetry/fine" ] "the other id delivered"
          }

          test "destination down: consuming pauses within the budget, then everything arrives once it is up" {
              use cluster = Broker.start "t" 4
              let n = 4000
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..n -> Data.store $"id-{i}" "{\"pad\":\"0123456789\"}" ]
              let port = HttpRecorder.freePort ()
              let route = ReplayProcess.route $"http://127.0.0.1:{port}/submit/telemetry/%%k" 1.0 true true
              let settings =
                  ReplayProcess.settings cluster.BootstrapServers "g" "t" route
                  |> ReplayProcess.untilEnd
                  |> ReplayProcess.withBudget (fun b -> { b with MaxInFlightRecords = 200 })
              use replay = ReplayProcess.start settings
              Expect.isTrue (Wait.until within (fun () -> replay.Consumer.Observer.IsBackpressured)) "consuming pauses"
              let consumedWhileDown = replay.Stats.Consumed
              Expect.isLessThanOrEqual consumedWhileDown 200L "no more records taken than the in-flight budget"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 4) 0L "nothing committed while nothing was delivered"
              use server = HttpRecorder.startOn port (HttpRecorder.always 201)
              Expect.equal (replay.Wait within) (Some 0) "finishes once the destination is up"
              Expect.equal (server.Accepted |> List.map (fun h -> h.Path) |> Set.ofList).Count n "every record delivered"
              Expect.equal replay.Stats.DeadLettered 0L "an outage is not a reason to dead-letter"
              use self = Diagnostics.Process.GetCurrentProcess()
              printfn "outage test: %d records, 0 lost, %d consumed while down (budget 200), test process peak RSS %d MB" n consumedWhileDown (self.PeakWorkingSet64 / 1048576L)
          }

          test "--max-rate bounds the request rate" {
              use cluster = Broker.start "t" 2
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..60 -> Data.store $"id-{i}" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let clock = Diagnostics.Stopwatch()
              replayUntilEnd cluster server 2 (fun s ->
                  clock.Start()
                  ReplayProcess.withDelivery (fun d -> { d with MaxRate = Some 40.0 }) s)
              |> ignore
              Expect.equal server.Accepted.Length 60 "all delivered"
              // A token bucket refilled at 40/s cannot deliver 60 requests in under ~1.4 s (2 tokens may be ready at once).
              Expect.isGreaterThanOrEqual clock.Elapsed.TotalSeconds 1.4 "not faster than the limit"
          }

          test "dead letters to a topic keep key, value and headers; redrive --topic sends them" {
              use cluster = Broker.start "t" 2
              cluster.CreateTopic("dead", 1)
              Broker.produce cluster.BootstrapServers "t" [ Data.store "ok" "{}"; { Data.store "no" "{\"x\":1}" with Headers = [ "channel", "nightly" ] } ]
              use server = HttpRecorder.start (fun hit _ -> if hit.Path.EndsWith "/no" then 400 else 201)
              replayUntilEnd cluster server 2 (fun s -> { s with DeadLetters = new DeadLetterTopic(s.Run.Kafka, "dead") }) |> ignore
              let config = Confluent.Kafka.ConsumerConfig(BootstrapServers = cluster.BootstrapServers, GroupId = "check", AutoOffsetReset = Confluent.Kafka.AutoOffsetReset.Earliest)
              use check = Confluent.Kafka.ConsumerBuilder<string, byte[]>(config).Build()
              check.Assign(Confluent.Kafka.TopicPartitionOffset("dead", Confluent.Kafka.Partition 0, Confluent.Kafka.Offset.Beginning))
              let record = check.Consume(TimeSpan.FromSeconds 20.0)
              Expect.isNotNull record "a dead letter on the topic"
              Expect.equal record.Message.Key "no" "original key"
              Expect.equal record.Message.Value (Data.store "no" "{\"x\":1}").Value "original value"
              let header name = record.Message.Headers |> Seq.tryFind (fun h -> h.Key = name) |> Option.map (fun h -> text (h.GetValueBytes()))
              Expect.equal (header "channel") (Some "nightly") "original header"
              Expect.isSome (header DeadLetterTopic.ReasonHeader) "reason header"
              Expect.equal (header DeadLetterTopic.StatusHeader) (Some "400") "status header"
              Expect.isSome (header DeadLetterTopic.DestinationHeader) "which destination"
              server.SetResponder(HttpRecorder.always 201)
              let code, _, stderr =
                  ReplayProcess.run
                      [ "redrive"; "--topic"; "dead"; "-b"; cluster.BootstrapServers; "-gid"; "redrive"; "--dest"; $"{server.Url}/submit/telemetry/%%k" ]
                      within
              Expect.equal code 0 $"redrive exits 0 ({stderr})"
              Expect.contains (server.Accepted |> List.map (fun h -> h.Path)) "/submit/telemetry/no" "redriven"
          } ]

/// The `replay run` arguments of a Bagheera user, against the test's broker and server.
let private seedArgs (properties: string) (server: HttpRecorder.Recorder) extra =
    [ "run"; "-t"; "t"; "-gid"; "g"; "-p"; properties; "--copy-keys"; "true"
      "--dest"; $"{server.Url}/submit/telemetry/%%k"; "--sample"; "1"; "--delete"; "true" ]
    @ extra

let private distinctPaths (server: HttpRecorder.Recorder) =
    server.Accepted |> List.map (fun h -> h.Path) |> Set.ofList

[<Tests>]
let failures =
    testSequenced
    <| testList
        "Delivery under failure"
        [ test "SIGKILL mid-stream, then a restart: every id at least once, duplicates within the window" {
              use cluster = Broker.start "t" 4
              // A dead member's partitions move on after 5 s instead of 45 s.
              cluster.SetGroupSessionTimeout(TimeSpan.FromSeconds 5.0)
              let n = 3000
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..n -> Data.store $"id-{i}" "{}" ]
              use server = HttpRecorder.startSlow (fun _ -> TimeSpan.FromMilliseconds 2.0) (HttpRecorder.always 201)
              let properties = propertiesFile cluster.BootstrapServers [ "auto.commit.interval.ms=200" ]
              let concurrency = 8
              do
                  use first = ReplayProcess.spawn (seedArgs properties server [ "-nt"; string concurrency ])
                  Expect.isTrue (server.WaitForAccepted(500, within)) $"the first process delivers ({first.Stderr})"
                  first.Kill()
                  Expect.isSome (first.WaitForExit within) "killed"
              let beforeRestart = server.Accepted.Length
              Expect.isLessThan beforeRestart n "killed mid-stream"
              use second = ReplayProcess.spawn (seedArgs properties server [ "-nt"; string concurrency ])
              Expect.isTrue (Wait.until within (fun () -> (distinctPaths server).Count = n)) $"every id arrives after the restart ({second.Stderr})"
              second.Signal 15
              Expect.equal (second.WaitForExit within) (Some 0) "SIGTERM drains, commits and exits 0"
              let duplicates = server.Accepted.Length - n
              printfn "kill test: %d records, 0 lost, %d duplicates (%d delivered before the kill)" n duplicates beforeRestart
              // Duplicates come only from records delivered but not yet committed at the kill: the
              // requests in flight plus what the destination (at most concurrency / 2 ms per request)
              // accepted within two 200 ms commit intervals (the commit under way may not land).
              let maxRate = float concurrency / 0.002
              let window = concurrency + int (maxRate * 0.4)
              Expect.isLessThanOrEqual duplicates window $"duplicates bounded by the in-flight window and commit interval ({window})"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 4) (int64 n) "everything committed at the end"
          }

          test "two instances in one group split the partitions; when one stops the other finishes its partitions" {
              use cluster = Broker.start "t" 8
              let n = 4000
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..n -> Data.store $"id-{i}" "{}" ]
              use server = HttpRecorder.startSlow (fun _ -> TimeSpan.FromMilliseconds 5.0) (HttpRecorder.always 201)
              let route = ReplayProcess.route $"{server.Url}/submit/telemetry/%%k" 1.0 true true
              let make () =
                  ReplayProcess.settings cluster.BootstrapServers "g" "t" route
                  |> ReplayProcess.withDelivery (fun d -> { d with Concurrency = Replay.Core.Fixed 2 })
                  |> ReplayProcess.withBudget (fun b -> { b with MaxInFlightRecords = 50 })
              use a = ReplayProcess.start (make ())
              Expect.isTrue (Wait.until within (fun () -> a.Consumer.Observer.AssignedCount = 8)) "the first member takes all partitions"
              use b = ReplayProcess.start (make ())
              Expect.isTrue
                  (Wait.until within (fun () -> b.Consumer.Observer.AssignedCount > 0 && a.Consumer.Observer.AssignedCount + b.Consumer.Observer.AssignedCount = 8))
                  "the second member gets a share"
              printfn "split: %d + %d partitions" a.Consumer.Observer.AssignedCount b.Consumer.Observer.AssignedCount
              Expect.isTrue (Wait.until within (fun () -> b.Stats.Delivered > 100L)) "the second member delivers"
              Expect.equal (b.Stop()) 0 "the second member stops cleanly"
              Expect.isTrue (Wait.until within (fun () -> a.Consumer.Observer.AssignedCount = 8)) "the survivor takes its partitions back"
              Expect.isTrue (Wait.until within (fun () -> (distinctPaths server).Count = n)) "every id arrives"
              Expect.equal (a.Stop()) 0 "the survivor stops cleanly"
              Expect.equal server.Accepted.Length n "graceful hand-overs send nothing twice"
          }

          test "broker faults (commit errors, broker down and up) lose nothing" {
              use cluster = Broker.start "t" 4
              let n = 3000
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..n -> Data.store $"id-{i}" "{}" ]
              use server = HttpRecorder.startSlow (fun _ -> TimeSpan.FromMilliseconds 2.0) (HttpRecorder.always 201)
              let route = ReplayProcess.route $"{server.Url}/submit/telemetry/%%k" 1.0 true true
              let s =
                  ReplayProcess.settings cluster.BootstrapServers "g" "t" route
                  |> ReplayProcess.withDelivery (fun d -> { d with Concurrency = Replay.Core.Fixed 4 })
              // COORDINATOR_NOT_AVAILABLE (15) and REQUEST_TIMED_OUT (7) for the next commits.
              cluster.PushRequestErrors(KafkaApi.OffsetCommit, 15, 7, 15, 7, 15)
              use replay = ReplayProcess.start s
              Expect.isTrue (server.WaitForAccepted(500, within)) "delivering"
              cluster.SetBrokerDown 1
              // Prefetched records keep flowing while the broker is gone; their commits fail meanwhile.
              Expect.isTrue (server.WaitForAccepted(1000, within)) "delivering during the outage"
              cluster.SetBrokerUp 1
              Expect.isTrue (Wait.until within (fun () -> (distinctPaths server).Count = n)) "every id arrives after the broker is back"
              Expect.isTrue
                  (Wait.until within (fun () -> Broker.committedTotal cluster.BootstrapServers "g" "t" 4 = int64 n))
                  "everything committed once the broker is back, before the replay stops"
              Expect.equal (replay.Stop()) 0 "stops cleanly"
          }

          test "a second signal stops at once and commits nothing undelivered" {
              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..20 -> Data.store $"id-{i}" "{}" ]
              // A destination that never answers successfully: nothing can be delivered.
              use server = HttpRecorder.start (HttpRecorder.always 503)
              let properties = propertiesFile cluster.BootstrapServers []
              use child = ReplayProcess.spawn (seedArgs properties server [ "--shutdown-timeout"; "60s" ])
              Expect.isTrue (Wait.until within (fun () -> server.Hits.Length >= 20)) "retrying"
              // SIGTERM, handled as SIGINT is: a suite started in the background without job control
              // runs with SIGINT ignored, and its children inherit that.
              child.Signal 15
              Expect.isTrue (Wait.until within (fun () -> child.Stderr.Contains "stopping")) $"the first signal starts draining (exited: {child.HasExited}; stderr: {child.Stderr})"
              child.Signal 15
              Expect.equal (child.WaitForExit within) (Some 130) "the second signal exits at once with 130"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 1) 0L "nothing committed"
          } ]
