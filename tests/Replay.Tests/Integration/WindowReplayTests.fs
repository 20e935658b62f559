/// Replaying a window of time at a pace, through real parts: the embedded broker with
/// records produced under explicit Kafka timestamps, the real `replay` program (and an
/// in-process replay where the test must act while it runs), and a real HTTP server
/// that notes when each request arrives.
module Replay.Tests.WindowReplayTests

open System
open System.Collections.Generic
open System.IO
open System.Net.Http
open System.Text.RegularExpressions
open Confluent.Kafka
open Expecto
open Replay.Core
open Replay.Tests

let private within = TimeSpan.FromSeconds 60.0

/// Writes records to the given partitions under explicit CreateTime timestamps (Unix ms).
let private produceStamped (bootstrap: string) topic (records: (int * Broker.Message * int64) seq) =
    let config = ProducerConfig(BootstrapServers = bootstrap, Acks = Acks.All, EnableIdempotence = true, LingerMs = 5.0)
    use producer = ProducerBuilder<string, byte[]>(config).Build()
    let mutable failure: string option = None
    for partition, m, stamp in records do
        let message = Message<string, byte[]>(Key = m.Key, Value = m.Value, Timestamp = Timestamp(stamp, TimestampType.CreateTime))
        producer.Produce(TopicPartition(topic, Partition partition), message, fun report -> if report.Error.IsError then failure <- Some report.Error.Reason)
    producer.Flush(TimeSpan.FromSeconds 30.0) |> ignore
    failure |> Option.iter (failwithf "produce failed: %s")

let private propertiesFile (bootstrap: string) (extra: string list) =
    let file = Path.Combine(Temp.dir (), "kafka.properties")
    // KIP-848 groups are assigned at once on the embedded broker.
    File.WriteAllLines(file, [ $"bootstrap.servers={bootstrap}"; "group.protocol=consumer" ] @ extra)
    file

let private idOf (hit: HttpRecorder.Hit) = hit.Path.Substring(hit.Path.LastIndexOf '/' + 1)

/// Partition and offset, from the X-Replay-Id every request carries (topic/partition/offset).
let private positionOf (hit: HttpRecorder.Hit) =
    let parts = hit.Headers["X-Replay-Id"].Split '/'
    int parts[1], int64 parts[2]

let private iso (t: DateTimeOffset) = t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ")

let private ms (t: DateTimeOffset) = t.ToUnixTimeMilliseconds()

/// The resident memory of a process, from /proc (bytes); None once it has gone.
let private residentBytes (pid: int) =
    try
        File.ReadAllLines $"/proc/{pid}/status"
        |> Array.tryFind (fun l -> l.StartsWith "VmRSS:")
        |> Option.map (fun l -> 1024L * int64 (l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]))
    with :? IOException ->
        None

let private percentile (p: float) (values: float[]) =
    let sorted = Array.sort values
    sorted[min (sorted.Length - 1) (int (p * float sorted.Length))]

/// What one paced run showed.
type private Paced =
    { Code: int
      Stderr: string
      /// (record id, arrival in ms) for every accepted request.
      Arrivals: (string * float) list
      /// Resident memory samples (bytes), from the first arrival on.
      Resident: int64 list
      /// Commits seen during the run that passed a record the destination had not received.
      CommitsPastDelivery: string list
      /// replay_schedule_behind_seconds as scraped during the run.
      Behind: float list }

let private http = new HttpClient(Timeout = TimeSpan.FromSeconds 10.0)

let private scrapeBehind (url: string) =
    try
        http.GetStringAsync(url).GetAwaiter().GetResult().Split '\n'
        |> Array.tryFind (fun l -> l.StartsWith "replay_schedule_behind_seconds ")
        |> Option.map (fun l -> Double.Parse(l.Substring(l.LastIndexOf ' ' + 1), Globalization.CultureInfo.InvariantCulture))
    with _ ->
        None

/// Runs `replay run ... --speed speed` as a child process over the whole topic, sampling
/// its memory, its commits against what arrived, and its schedule metric while it runs.
let private pacedRun (cluster: Replay.Host.Kafka.MockCluster) props partitions group (until: DateTimeOffset) (speed: string) =
    use server = HttpRecorder.start (HttpRecorder.always 201)
    use child =
        ReplayProcess.spawn
            [ "run"; "-p"; props; "-t"; "t"; "-gid"; group; "--from"; "earliest"; "--until"; iso until; "--speed"; speed
              "--dest"; $"{server.Url}/s/%%k"; "--metrics-port"; "0"; "--progress-interval"; "1s" ]
    let resident = List<int64>()
    let commitsPastDelivery = List<string>()
    let behind = List<float>()
    let mutable exited = None
    let mutable sample = 0
    while exited.IsNone do
        exited <- child.WaitForExit(TimeSpan.FromMilliseconds 100.0)
        if exited.IsNone && not server.Accepted.IsEmpty then
            residentBytes child.Process.Id |> Option.iter resident.Add
            sample <- sample + 1
            if sample % 20 = 0 then
                // Committed first, then what arrived: a commit may only cover records already received.
                let committed = Broker.committed cluster.BootstrapServers group "t" partitions
                let arrived = server.Hits |> List.map positionOf |> HashSet
                for KeyValue(p, upTo) in committed do
                    for offset in 0L .. upTo - 1L do
                        if not (arrived.Contains(p, offset)) then commitsPastDelivery.Add $"p{p} committed {upTo} before offset {offset} arrived"
                match Regex.Match(child.Stderr, "metrics: (http://\S+/metrics)") with
                | m when m.Success -> scrapeBehind m.Groups[1].Value |> Option.iter behind.Add
                | _ -> ()
    { Code = exited.Value
      Stderr = child.Stderr
      Arrivals = server.Accepted |> List.map (fun h -> idOf h, h.ArrivedMs)
      Resident = List.ofSeq resident
      CommitsPastDelivery = List.ofSeq commitsPastDelivery
      Behind = List.ofSeq behind }

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Window end to end"
        [ test "--from T1 --until T2 replays exactly the records stamped in [T1, T2), commits each partition at the window's end and exits 0; the next window goes on from there" {
              use cluster = Broker.start "t" 3
              let start = DateTimeOffset.UtcNow.AddHours(-3.0)
              let at (minute: int) = start.AddMinutes(float minute)
              // A record a minute: p0 and p1 for 30 minutes, p2 for 15 (nothing at or after T2: it
              // ends where it is read to its end). Records sit exactly on T1 and T2.
              let records =
                  [ for minute in 0..29 do
                        for p in 0..2 do
                            if p < 2 || minute < 15 then
                                let id = $"p{p}-m{minute}"
                                yield p, Data.store id "{}", ms (at minute) ]
              produceStamped cluster.BootstrapServers "t" records
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let props = propertiesFile cluster.BootstrapServers []
              let replay extra =
                  ReplayProcess.run ([ "run"; "-p"; props; "-t"; "t"; "-gid"; "window"; "--dest"; $"{server.Url}/s/%%k" ] @ extra) within
              let ids (minutes: int seq) (ps: int list) =
                  set [ for p in ps do
                            for minute in minutes do
                                if p < 2 || minute < 15 then yield $"p{p}-m{minute}" ]

              let code, _, stderr = replay [ "--from"; iso (at 5); "--until"; iso (at 20) ]
              Expect.equal code 0 $"the window ends by itself with exit 0: {stderr}"
              Expect.stringContains stderr $"until {iso (at 20)}" "the banner says where it ends"
              let first = server.Accepted |> List.map idOf
              Expect.equal (set first) (ids [ 5..19 ] [ 0; 1; 2 ]) "exactly the records stamped in [T1, T2): T1's included, T2's not"
              Expect.equal first.Length 40 "each once"
              Expect.equal
                  (Broker.committed cluster.BootstrapServers "window" "t" 3)
                  (Map [ 0, 20L; 1, 20L; 2, 15L ])
                  "each partition committed at the window's end: T2's record, or the end of a partition without one"

              // The same group, the next window: it resumes at T2's records and never moves back.
              let code, _, stderr = replay [ "--until"; iso (at 25) ]
              Expect.equal code 0 $"the next window exits 0: {stderr}"
              let second = server.Accepted |> List.skip first.Length |> List.map idOf
              Expect.equal (set second) (ids [ 20..24 ] [ 0; 1 ]) "[T2, T3): the next records, none again"
              Expect.equal second.Length 10 "each once"
              Expect.equal (Broker.committed cluster.BootstrapServers "window" "t" 3) (Map [ 0, 25L; 1, 25L; 2, 15L ]) "committed on"
          }

          test "--until on a live topic: a partition with nothing at or after it ends once the until-time and its grace have passed; what is stamped before it is replayed, even when it reaches Kafka late" {
              use cluster = Broker.start "t" 2
              let until = DateTimeOffset.UtcNow.AddSeconds 2.0
              produceStamped cluster.BootstrapServers "t" [ 0, Data.store "early-0" "{}", ms DateTimeOffset.UtcNow; 1, Data.store "early-1" "{}", ms DateTimeOffset.UtcNow ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let route = ReplayProcess.route $"{server.Url}/s/%%k" 1.0 true true
              let setup = ReplayProcess.settings cluster.BootstrapServers "live" "t" route
              use replay = ReplayProcess.start { setup with Run = { setup.Run with Until = ValueSome(ms until) } }
              Expect.isTrue (server.WaitForAccepted(2, within)) "the records before the until-time arrive"
              // p0 gets a record stamped after the until-time: the partition ends there.
              produceStamped cluster.BootstrapServers "t" [ 0, Data.store "after" "{}", ms (until.AddSeconds 1.0) ]
              // After the until-time, p1 gets one stamped before it (a producer slow to deliver): within the grace.
              Expect.isTrue (Wait.until within (fun () -> DateTimeOffset.UtcNow > until.AddMilliseconds 300.0)) "the until-time passes"
              Expect.isNone (replay.Wait TimeSpan.Zero) "the run waits out the grace"
              produceStamped cluster.BootstrapServers "t" [ 1, Data.store "late" "{}", ms (until.AddMilliseconds -100.0) ]
              Expect.equal (replay.Wait within) (Some 0) "the run ends by itself with exit 0"
              let ended = DateTimeOffset.UtcNow
              Expect.isGreaterThanOrEqual ended (until.AddMilliseconds(float Lease.untilGraceMs)) "not before the grace has passed"
              Expect.equal (server.Accepted |> List.map idOf |> set) (set [ "early-0"; "early-1"; "late" ]) "what was stamped before the until-time, and nothing after"
              Expect.equal (Broker.committed cluster.BootstrapServers "live" "t" 2) (Map [ 0, 1L; 1, 2L ]) "p0 at its first record past the until-time, p1 at its end"
          }

          test "--speed 1 keeps the records' original spacing and --speed 4 takes a quarter of the time (within 5%); memory stays flat and commits follow deliveries" {
              let partitions = 8
              use cluster = Broker.start "t" partitions
              // 2,000 records of 16 KB (32 MB, far more than the 2 MB prefetch allowed below) spread
              // irregularly over 20 s of timestamps, an hour ago.
              let count, spanMs = 2_000, 20_000
              let random = Random 20261130
              let offsets = Array.init count (fun i -> if i = 0 then 0 elif i = count - 1 then spanMs else random.Next(0, spanMs + 1)) |> Array.sort
              let origin = DateTimeOffset.UtcNow.AddHours(-1.0)
              let pad = String('x', 16_000)
              let stampOf = Dictionary<string, int64>()
              produceStamped
                  cluster.BootstrapServers
                  "t"
                  [ for i, offset in Array.indexed offsets do
                        let id = $"doc-{i}"
                        stampOf[id] <- ms origin + int64 offset
                        yield i % partitions, Data.store id $"{{\"i\":{i},\"pad\":\"{pad}\"}}", stampOf[id] ]
              let props = propertiesFile cluster.BootstrapServers [ "queued.max.messages.kbytes=2048" ]
              let until = origin.AddMilliseconds(float spanMs + 1.0)

              let mb (bytes: int64) = float bytes / 1048576.0
              // The same records replayed unpaced: what an ordinary replay of them costs in memory.
              let unpaced = pacedRun cluster props partitions "speed-max" until "max"
              Expect.equal unpaced.Code 0 $"--speed max exits 0: {unpaced.Stderr}"
              Expect.equal unpaced.Arrivals.Length count "--speed max: every record"
              let ordinaryPeak = unpaced.Resident |> List.map mb |> List.max

              let check (speed: float) (run: Paced) =
                  Expect.equal run.Code 0 $"--speed {speed}: exits 0 at the window's end: {run.Stderr}"
                  Expect.equal run.Arrivals.Length count $"--speed {speed}: every record, once"
                  Expect.isEmpty run.CommitsPastDelivery $"--speed {speed}: commits never pass a record not yet delivered"
                  let first = run.Arrivals |> List.minBy snd |> snd
                  let firstStamp = stampOf.Values |> Seq.min
                  let expectedSpan = float spanMs / speed
                  let span = (run.Arrivals |> List.maxBy snd |> snd) - first
                  // Arrival against place in the schedule (the original offset / speed), fitted with a
                  // straight line: its slope is the pace (1 = the original spacing at this speed), and each
                  // record's distance from it is how far off its time it arrived. The fit leaves out where
                  // the schedule's clock started, which the test cannot see.
                  let xs = [| for id, _ in run.Arrivals -> float (stampOf[id] - firstStamp) / speed |]
                  let ys = [| for _, at in run.Arrivals -> at - first |]
                  let mx, my = Array.average xs, Array.average ys
                  let slope = Array.fold2 (fun acc x y -> acc + (x - mx) * (y - my)) 0.0 xs ys / (xs |> Array.sumBy (fun x -> (x - mx) * (x - mx)))
                  let off = Array.map2 (fun x y -> abs (y - (my + slope * (x - mx)))) xs ys
                  let resident = run.Resident |> List.map mb
                  // The second half of the run: started long since, memory must not climb while the backlog is worked through.
                  let settled = resident |> List.skip (resident.Length / 2)
                  let growth = List.max settled - List.head settled
                  let peak = List.max resident
                  printfn
                      "--speed %g: pace %.3f of the original spacing / %g (span %.2f s for %.2f s); off the schedule median %.0f ms, p99 %.0f ms, max %.0f ms; resident %.0f..%.0f MB (unpaced peak %.0f MB; growth over the second half %.1f MB; %d samples); behind schedule %A s"
                      speed slope speed (span / 1000.0) (expectedSpan / 1000.0)
                      (percentile 0.5 off) (percentile 0.99 off) (Array.max off)
                      (List.min resident) peak ordinaryPeak growth resident.Length
                      (run.Behind |> List.map (fun b -> Math.Round(b, 3)))
                  Expect.isLessThanOrEqual (abs (slope - 1.0)) 0.05 $"--speed {speed}: the original spacing / {speed}, within 5%%"
                  // 95%, not 99: on two cores shared with the rest of the suite, the last percent at --speed 4 (a
                  // 5 s span) caught scheduling stalls of 260 ms in two of three full runs; the bound on every
                  // record below still holds the outliers.
                  Expect.isLessThanOrEqual (percentile 0.95 off) (0.05 * expectedSpan) $"--speed {speed}: 95%% of the records within 5%% of the span of their time"
                  Expect.isLessThanOrEqual (Array.max off) (0.10 * expectedSpan) $"--speed {speed}: every record within 10%% of the span of its time (the first ones wait for a process just started)"
                  // A replay that kept records until due would hold the whole 32 MB backlog.
                  Expect.isLessThan (peak - ordinaryPeak) 12.0 $"--speed {speed}: no more memory than an unpaced replay of the same records ({peak:F0} against {ordinaryPeak:F0} MB; the backlog is 32 MB)"
                  // At --speed 4 the run is over before the process has warmed up: its peak says it all.
                  // (Keeping what passes would add 16 MB over the second half at --speed 1; the GC's own swing is a few.)
                  if speed = 1.0 then
                      Expect.isLessThan growth 10.0 $"--speed {speed}: memory stays flat while the backlog is worked through (grew {growth:F1} MB)"
                  Expect.isNonEmpty run.Behind $"--speed {speed}: /metrics reports how far behind the schedule the run is"
                  Expect.isLessThan (List.max run.Behind) 1.0 $"--speed {speed}: on schedule, about 0 s behind"
                  Expect.stringContains run.Stderr "behind_schedule_s=" $"--speed {speed}: the progress line says it too"

              check 1.0 (pacedRun cluster props partitions "speed-1" until "1")
              check 4.0 (pacedRun cluster props partitions "speed-4" until "4")
          } ]
