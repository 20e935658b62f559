/// The no-loss contract under faults, through real parts: the embedded broker, real
/// HTTP servers, real files (`/dev/full` fails every write), child processes with
/// their own consumer-group membership, and kafka-python reading what we wrote.
/// Each test is one of the ways the contract was seen to break.
module Replay.Tests.FaultTests

open System
open System.IO
open System.Net.Http
open System.Threading
open System.Threading.Tasks
open Expecto
open Replay.Core
open Replay.Host.Commands
open Replay.Host.Delivery
open Replay.Tests

let private within = TimeSpan.FromSeconds 90.0

let private setup (cluster: Replay.Host.Kafka.MockCluster) (server: HttpRecorder.Recorder) =
    ReplayProcess.settings cluster.BootstrapServers "g" "t" (ReplayProcess.route $"{server.Url}/submit/telemetry/%%k" 1.0 true true)

let private idOf (hit: HttpRecorder.Hit) = hit.Path.Split('/') |> Array.last

let private properties (bootstrap: string) =
    ChildReplay.properties (Temp.file "kafka.properties") [ $"bootstrap.servers={bootstrap}"; "auto.offset.reset=earliest" ]

/// A handler that fails like a bug would, for the first attempts of one id, and
/// otherwise sends for real.
type private BuggyHandler(failures: int) =
    inherit DelegatingHandler(new SocketsHttpHandler())
    let mutable left = failures
    member _.Left = left
    override _.SendAsync(request, cancel) =
        if request.RequestUri.AbsolutePath.EndsWith "/boom" && Interlocked.Decrement(&left) >= 0 then
            raise (InvalidOperationException "a bug in the sending path")
        base.SendAsync(request, cancel)

/// A dead-letter sink on a real file that fails (as /dev/full does) until told otherwise.
type private SwitchingSink(good: string) =
    let full = new DeadLetterFile("/dev/full")
    let file = new DeadLetterFile(good)
    member val Failing = true with get, set
    interface IDeadLetterSink with
        member this.Write letter = if this.Failing then (full :> IDeadLetterSink).Write letter else (file :> IDeadLetterSink).Write letter
        member _.Dispose() =
            (full :> IDisposable).Dispose()
            (file :> IDisposable).Dispose()

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Faults"
        [ test "a 503 with Retry-After: 4294968 s, or a date 60 days ahead, waits --max-backoff and then delivers" {
              for retryAfter in [ "4294968"; DateTime.UtcNow.AddDays(60.0).ToString "r" ] do
                  use cluster = Broker.start "t" 1
                  Broker.produce cluster.BootstrapServers "t" [ Data.store "a" "{}"; Data.store "b" "{}" ]
                  use server = HttpRecorder.start (fun _ attempt -> if attempt = 1 then 503 else 201)
                  server.RetryAfterText <- Some retryAfter
                  let settings = setup cluster server |> ReplayProcess.untilEnd |> ReplayProcess.withRetry (fun r -> { r with MaxBackoff = TimeSpan.FromSeconds 1.0 })
                  use replay = ReplayProcess.start settings
                  Expect.equal (replay.Wait within) (Some 0) $"until-end finishes (Retry-After: {retryAfter})"
                  Expect.equal (server.Accepted |> List.map idOf |> set) (set [ "a"; "b" ]) "both delivered after one wait each"
                  Expect.equal replay.Stats.DeadLettered 0L "nothing given up"
          }

          test "durations past what a timer accepts are refused at the flag, naming it" {
              for flag, value in [ "--request-timeout", "50d"; "--max-backoff", "2d"; "--poison-after", "31d"; "--shutdown-timeout", "40d" ] do
                  let parse = RunCommand.Create().Parse [| "-b"; "127.0.0.1:9"; "-gid"; "g"; "-t"; "t"; "--dest"; "http://127.0.0.1:9/%k"; flag; value |]
                  let built = RunCommand.Build parse
                  Expect.isFalse built.IsOk $"{flag} {value} refused"
                  Expect.stringContains built.Error flag "names the flag"
          }

          test "an exception inside the sending path is a failed attempt of its record: retried, and its lane goes on" {
              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ Data.store "boom" "1"; Data.store "boom" "2"; Data.store "fine" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              use handler = new BuggyHandler(3)
              let log = new StringWriter()
              let settings = { setup cluster server with Handler = handler; Log = TextWriter.Synchronized log } |> ReplayProcess.untilEnd
              use replay = ReplayProcess.start settings
              Expect.equal (replay.Wait within) (Some 0) "finishes"
              Expect.equal (server.Accepted |> List.filter (fun h -> idOf h = "boom") |> List.map (fun h -> Text.Encoding.UTF8.GetString h.Body)) [ "1"; "2" ] "the lane delivered both, in order"
              Expect.isLessThanOrEqual handler.Left 0 "the bug struck three times"
              Expect.stringContains (log.ToString()) "a bug in the sending path" "the log names the failure with its record"
          }

          test "dead letters that cannot be written (/dev/full) hold their partition; --until-end then stops non-zero with the cause" {
              // The bound is --max-retry-duration, or --poison-after when no limit is set (by default, 10m).
              for limit in [ "--max-retry-duration"; "--poison-after" ] do
                  use cluster = Broker.start "t" 1
                  Broker.produce cluster.BootstrapServers "t" [ Data.store "ok-1" "{}"; Data.store "bad" "{}"; Data.store "ok-2" "{}" ]
                  use server = HttpRecorder.start (fun hit _ -> if idOf hit = "bad" then 400 else 201)
                  let code, _, stderr =
                      ReplayProcess.run
                          [ "run"; "-t"; "t"; "-gid"; "g"; "-p"; properties cluster.BootstrapServers; "--until-end"
                            "--dest"; $"{server.Url}/submit/telemetry/%%k"; "--dead-letter"; "/dev/full"; limit; "2s" ]
                          within
                  Expect.equal code 1 $"{limit}: a failure, not success and not bad settings ({stderr})"
                  Expect.stringContains stderr "dead letters cannot be written" "says why"
                  Expect.stringContains stderr "stopping" "and that it stopped"
                  let committed = Broker.committed cluster.BootstrapServers "g" "t" 1
                  Expect.equal committed[0] 1L "committed up to the record whose dead letter is missing, not past it"
                  Expect.contains (server.Accepted |> List.map idOf) "ok-2" "records after it were still sent"
          }

          test "a dead-letter sink that fails and recovers: the record waits, then its dead letter lands and the commit moves on" {
              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ Data.store "bad" "{}"; Data.store "ok" "{}" ]
              use server = HttpRecorder.start (fun hit _ -> if idOf hit = "bad" then 400 else 201)
              let file = Temp.file "dead.jsonl"
              let sink = new SwitchingSink(file)
              use replay = ReplayProcess.start { setup cluster server with DeadLetters = sink }
              Expect.isTrue (Wait.until within (fun () -> replay.Stats.DeadLetterWriteFailures >= 2L)) "the write fails and is tried again"
              Expect.isTrue (server.WaitForAccepted(1, within)) "the other record is delivered meanwhile"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 1) 0L "nothing committed past the waiting record"
              sink.Failing <- false
              Expect.isTrue (Wait.until within (fun () -> Broker.committedTotal cluster.BootstrapServers "g" "t" 1 = 2L)) "committed once the dead letter is written"
              Expect.equal (replay.Stop()) 0 "stops cleanly"
              Expect.equal (DeadLetterFile.Read file |> Seq.map (fun l -> l.Id) |> List.ofSeq) [ "bad" ] "the dead letter, once"
          }

          test "redrive --file ends non-zero with the cause when its own dead-letter sink cannot be written" {
              let input = Temp.file "dead.jsonl"
              do
                  use sink = new DeadLetterFile(input)
                  (sink :> IDeadLetterSink).Write(DeadLetter("t", 0, 0L, "x", "POST", "http://x/x", "test", Nullable(), 1, DateTimeOffset.UtcNow, null,
                                                             Convert.ToBase64String(Envelope.encode (Data.envelope "telemetry" "x" "{}" Envelope.CreateUpdate)), null))
              use server = HttpRecorder.start (HttpRecorder.always 400)
              let code, _, stderr =
                  ReplayProcess.run
                      [ "redrive"; "--file"; input; "--dest"; $"{server.Url}/submit/telemetry/%%k"; "--dead-letter"; "/dev/full"; "--max-retry-duration"; "2s" ]
                      within
              Expect.equal code 1 $"fails ({stderr})"
              Expect.stringContains stderr "dead letters could not be written" "names the cause"
          }

          test "redrive --file into its own file reads in batches within the in-flight budget: writes to the file go through, what it appends is not read again" {
              let file = Temp.file "dead.jsonl"
              let ids = [ for i in 1..30 -> $"x-{i}" ]
              do
                  use sink = new DeadLetterFile(file)
                  for i, id in List.indexed ids do
                      (sink :> IDeadLetterSink).Write(DeadLetter("t", 0, int64 i, id, "POST", $"http://x/{id}", "test", Nullable(), 1, DateTimeOffset.UtcNow, null,
                                                                 Convert.ToBase64String(Envelope.encode (Data.envelope "telemetry" id "{}" Envelope.CreateUpdate)), null))
              // Every answer takes 200 ms, so the requests out at once show in when they arrived.
              let refused (hit: HttpRecorder.Hit) = hit.Path.EndsWith "5"
              use server = HttpRecorder.startSlow (fun _ -> TimeSpan.FromMilliseconds 200.0) (fun hit _ -> if refused hit then 400 else 201)
              let code, _, stderr =
                  ReplayProcess.run
                      [ "redrive"; "--file"; file; "--dest"; $"{server.Url}/submit/telemetry/%%k"; "--dead-letter"; file; "--max-in-flight-records"; "4" ]
                      within
              Expect.equal code 1 $"some were refused again, so not a success ({stderr})"
              Expect.stringContains stderr "30 dead letters read" "read every letter once"
              let hits = server.Hits
              Expect.equal (hits |> List.map idOf |> List.sort) (List.sort ids) "each letter sent once"
              // All requests that arrived within 190 ms of each other were out together (each takes 200).
              let arrivals = hits |> List.map (fun h -> h.ArrivedMs) |> List.sort
              let together = arrivals |> List.map (fun t -> arrivals |> List.filter (fun u -> u >= t && u < t + 190.0) |> List.length) |> List.max
              Expect.isLessThanOrEqual together 4 "never more requests out than --max-in-flight-records"
              let letters = DeadLetterFile.Read file |> List.ofSeq
              Expect.equal (letters |> List.take 30 |> List.map (fun l -> l.Id)) ids "the file's own letters kept"
              Expect.equal (letters |> List.skip 30 |> List.map (fun l -> l.Id) |> List.sort) [ "x-15"; "x-25"; "x-5" ] "the refused ones appended to it, once each"
          }

          test "redrive --file takes a file as an editor leaves it (a byte-order mark, no last newline) and refuses one with a bad value before sending anything" {
              let letter id =
                  let dead =
                      DeadLetter("t", 0, 0L, id, "POST", $"http://x/{id}", "test", Nullable(), 1, DateTimeOffset.UtcNow, null,
                                 Convert.ToBase64String(Envelope.encode (Data.envelope "telemetry" id "{}" Envelope.CreateUpdate)), null)
                  // As Replay writes it: one line of its own dead-letter file.
                  let file = Temp.file "one.jsonl"
                  do
                      use sink = new DeadLetterFile(file)
                      (sink :> IDeadLetterSink).Write dead
                  File.ReadAllText(file).TrimEnd '\n'
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let redrive file = ReplayProcess.run [ "redrive"; "--file"; file; "--dest"; $"{server.Url}/submit/telemetry/%%k" ] within
              let edited = Temp.file "edited.jsonl"
              File.WriteAllText(edited, letter "a" + "\r\n\r\n" + letter "b", Text.UTF8Encoding(true))
              let code, _, stderr = redrive edited
              Expect.equal code 0 $"exit 0 ({stderr})"
              Expect.equal (server.Accepted |> List.map idOf |> List.sort) [ "a"; "b" ] "both sent, the last one too"
              let bad = Temp.file "bad.jsonl"
              File.WriteAllText(bad, letter "c" + "\n" + (letter "d").Replace("\"value\":\"", "\"value\":\"%%%") + "\n")
              let code, _, stderr = redrive bad
              Expect.equal code 2 $"refused ({stderr})"
              Expect.stringContains stderr "line 2 is not a dead letter Replay can send" "names the line"
              Expect.equal server.Accepted.Length 2 "nothing of that file was sent"
          }

          test "one poison id is dead-lettered after --poison-after while the others flow; its partition holds a bounded span meanwhile" {
              use cluster = Broker.start "t" 1
              let n = 200
              Broker.produce cluster.BootstrapServers "t" (Data.store "poison" "{}" :: [ for i in 1..n -> Data.store $"id-{i}" "{}" ])
              use server = HttpRecorder.start (fun hit _ -> if idOf hit = "poison" then 500 else 201)
              let file = Temp.file "dead.jsonl"
              let settings =
                  { setup cluster server with DeadLetters = new DeadLetterFile(file) }
                  |> ReplayProcess.untilEnd
                  |> ReplayProcess.withRetry (fun r -> { r with MaxBackoff = TimeSpan.FromMilliseconds 200.0; PoisonAfter = TimeSpan.FromSeconds 3.0 })
                  |> ReplayProcess.withBudget (fun b -> { b with MaxSpanPerPartition = 20 })
              use replay = ReplayProcess.start settings
              Expect.isTrue (Wait.until within (fun () -> replay.Consumer.Observer.PausedCount = 1)) "the partition pauses when its span is full"
              Expect.isLessThanOrEqual replay.Stats.Consumed 25L "no more records held than the span allows"
              Expect.equal (replay.Wait within) (Some 0) "the poison is given up and the run finishes"
              let letter = DeadLetterFile.Read file |> Seq.exactlyOne
              Expect.equal letter.Id "poison" "the poison record"
              Expect.stringContains letter.Reason "poison" "the reason says so"
              Expect.equal letter.LastStatus (Nullable 500) "with its last answer"
              Expect.equal (server.Accepted.Length) n "every other record delivered"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 1) (int64 n + 1L) "committed to the end"
          }

          test "dead letters to a topic keep the original key, value and headers byte for byte (read by kafka-python)" {
              use cluster = Broker.start "t" 1
              cluster.CreateTopic("dead", 1)
              let binary = [| 0uy; 0xFFuy; 0xC3uy; 0x28uy |]
              let config = Confluent.Kafka.ProducerConfig(BootstrapServers = cluster.BootstrapServers)
              do
                  use producer = Confluent.Kafka.ProducerBuilder<string, byte[]>(config).Build()
                  let headers = Confluent.Kafka.Headers()
                  headers.Add("trace", Text.Encoding.UTF8.GetBytes "one")
                  headers.Add("trace", Text.Encoding.UTF8.GetBytes "two")
                  headers.Add("binary", binary)
                  headers.Add("Authorization", Text.Encoding.UTF8.GetBytes "Bearer s3cret")
                  let value = Envelope.encode (Data.envelope "telemetry" "no" "{}" Envelope.CreateUpdate)
                  producer.ProduceAsync("t", Confluent.Kafka.Message<string, byte[]>(Key = "no", Value = value, Headers = headers)).GetAwaiter().GetResult() |> ignore
              use server = HttpRecorder.start (HttpRecorder.always 400)
              let code, _, stderr =
                  ReplayProcess.run
                      [ "run"; "-t"; "t"; "-gid"; "g"; "-p"; properties cluster.BootstrapServers; "--until-end"
                        "--dest"; $"{server.Url}/submit/telemetry/%%k"; "--dead-letter-topic"; "dead" ]
                      within
              Expect.equal code 0 $"until-end exits 0 ({stderr})"
              let script =
                  """
import sys, json
from kafka import KafkaConsumer, TopicPartition
c = KafkaConsumer(bootstrap_servers=sys.argv[1], enable_auto_commit=False, consumer_timeout_ms=20000)
tp = TopicPartition("dead", 0)
c.assign([tp]); c.seek_to_beginning(tp)
for m in c:
    print(json.dumps({"key": m.key.hex(), "headers": [[k, (v or b"").hex()] for k, v in m.headers]}))
    break
"""
              let path = Temp.file "read.py"
              File.WriteAllText(path, script)
              let info = Diagnostics.ProcessStartInfo("/usr/bin/python3", $"{path} {cluster.BootstrapServers}", RedirectStandardOutput = true, RedirectStandardError = true)
              use python = Diagnostics.Process.Start info
              let output = python.StandardOutput.ReadToEnd()
              python.WaitForExit()
              Expect.equal python.ExitCode 0 $"kafka-python read it ({python.StandardError.ReadToEnd()})"
              let read = Text.Json.JsonDocument.Parse(output).RootElement
              let hex (bytes: byte[]) = Convert.ToHexString(bytes).ToLowerInvariant()
              Expect.equal (read.GetProperty("key").GetString()) (hex (Text.Encoding.UTF8.GetBytes "no")) "original key"
              let headers = [ for h in read.GetProperty("headers").EnumerateArray() -> h[0].GetString(), h[1].GetString() ]
              let original = headers |> List.filter (fun (name, _) -> not (name.StartsWith "replay-dead-letter"))
              Expect.equal
                  original
                  [ "trace", hex (Text.Encoding.UTF8.GetBytes "one")
                    "trace", hex (Text.Encoding.UTF8.GetBytes "two")
                    "binary", hex binary
                    "Authorization", hex (Text.Encoding.UTF8.GetBytes "Bearer s3cret") ]
                  "every header, repeats and binary values included, unredacted"
          }

          test "an error out of consuming (the topic's authorization withdrawn) commits what was delivered and stops non-zero, naming the broker's reason" {
              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..5 -> Data.store $"d-{i}" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let log = new StringWriter()
              use replay = ReplayProcess.start { setup cluster server with Log = TextWriter.Synchronized log }
              Expect.isTrue (server.WaitForAccepted(5, within)) "the five are delivered"
              // Every fetch from now on: TOPIC_AUTHORIZATION_FAILED (29), which librdkafka hands to Consume as an error.
              cluster.PushRequestErrors(Replay.Host.Kafka.KafkaApi.Fetch, Array.create 1000 29)
              Expect.equal (replay.Wait within) (Some Replay.Host.Cli.ExitCodes.Failure) "a failure: not success, and not the bad-settings code"
              let text = log.ToString()
              Expect.stringContains text "consuming stopped" "says that consuming stopped"
              Expect.stringContains (text.ToLowerInvariant()) "authoriz" "with the broker's reason"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 1) 5L "what was delivered is committed"
          } ]

[<Tests>]
let rebalances =
    testSequenced
    <| testList
        "Faults across members"
        [ test "a revoke is a fence: a member retrying a document stops before the next owner sends it" {
              use cluster = Broker.start "t" 2
              let ids = [ for i in 0..9 -> $"x-{i}" ]
              Broker.produce cluster.BootstrapServers "t" ([ for id in ids -> Data.store id "{}" ] @ [ for id in ids -> Data.remove id ])
              // A's requests all fail (it retries), B's succeed; arrivals are kept in order.
              let arrivals = Collections.Concurrent.ConcurrentQueue<string * string * string>()
              use server =
                  HttpRecorder.start (fun hit _ ->
                      let who = hit.Path.Split('/')[1]
                      arrivals.Enqueue(who, hit.Method, idOf hit)
                      if who = "a" then 503 else 201)
              let props = properties cluster.BootstrapServers
              let args who = [ "run"; "-t"; "t"; "-gid"; "g"; "-p"; props; "--dest"; $"{server.Url}/{who}/%%k"; "--max-backoff"; "200ms"; "--shutdown-timeout"; "1s" ]
              use a = ReplayProcess.spawn (args "a")
              Expect.isTrue (Wait.until within (fun () -> arrivals |> Seq.filter (fun (w, _, _) -> w = "a") |> Seq.length >= 20)) $"A is retrying ({a.Stderr})"
              use b = ReplayProcess.spawn (args "b")
              Expect.isTrue (Wait.until within (fun () -> arrivals |> Seq.exists (fun (w, m, _) -> w = "b" && m = "DELETE"))) $"B took a partition over and deleted ({b.Stderr})"
              // A keeps retrying what it still owns; give it the time of several retries before stopping it.
              let seen = arrivals.Count
              Expect.isTrue (Wait.until within (fun () -> arrivals |> Seq.skip seen |> Seq.filter (fun (w, _, _) -> w = "a") |> Seq.length >= 10)) "A is still retrying its own"
              a.Signal 15
              Expect.isSome (a.WaitForExit within) "A stops"
              b.Signal 15
              Expect.isSome (b.WaitForExit within) "B stops"
              let log = arrivals.ToArray() |> List.ofArray
              for id in ids do
                  match log |> List.tryFindIndexBack (fun (w, m, i) -> w = "b" && m = "DELETE" && i = id) with
                  | Some deleted ->
                      let late = log |> List.skip (deleted + 1) |> List.filter (fun (w, _, i) -> w = "a" && i = id)
                      Expect.isEmpty late $"nothing of A's for {id} after B deleted it"
                  | None -> ()
          }

          test "--until-end never moves a group's commit back when another member had committed past the start mark" {
              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..10 -> Data.store $"id-{i}" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              // A normal member first: it owns the partition.
              use normal = ReplayProcess.start (setup cluster server)
              Expect.isTrue (server.WaitForAccepted(10, within)) "the first member delivers the first ten"
              // The one-off run starts now: its mark is 10. It gets no partition while the first member holds it.
              use oneOff = ReplayProcess.start (setup cluster server |> ReplayProcess.untilEnd)
              Broker.produce cluster.BootstrapServers "t" [ for i in 11..15 -> Data.store $"id-{i}" "{}" ]
              Expect.isTrue (Wait.until within (fun () -> Broker.committedTotal cluster.BootstrapServers "g" "t" 1 = 15L)) "the first member committed past the mark"
              Expect.equal (normal.Stop()) 0 "the first member leaves"
              Expect.equal (oneOff.Wait within) (Some 0) "the one-off run takes over, finds itself past its mark, and exits"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 1) 15L "the commit stays at 15, not back at the mark (10)"
          } ]
