/// Mirroring through real parts: one read of the topic, several real HTTP servers,
/// each with its own lanes, retries and budget; commits wait for every required
/// destination and never for a best-effort one.
module Replay.Tests.MirrorTests

open System
open Expecto
open Replay.Core
open Replay.Tests

let private within = TimeSpan.FromSeconds 90.0

/// Per id, the sequence numbers in the order a server accepted them.
let private sequencesById (server: HttpRecorder.Recorder) =
    server.Accepted
    |> List.filter (fun h -> h.Method = "POST")
    |> List.groupBy (fun h -> h.Path.Split('/') |> Array.last)
    |> List.map (fun (id, hits) -> id, hits |> List.map (fun h -> Data.seqOf h.Body))
    |> Map.ofList

let private pattern (text: string) =
    match Destination.parse text with
    | Ok p -> Pattern p
    | Error e -> failwith e

let private slot name bestEffort : DestinationSlot = { Name = name; BestEffort = bestEffort }

/// A replay of topic t to `first`, mirrored to `others`.
let private mirrored (cluster: Replay.Host.Kafka.MockCluster) (first: string) (others: (string * bool) list) =
    let route = ReplayProcess.route first 1.0 true true
    let route = { route with Mirrors = [ for url, _ in others -> pattern url ] }
    let setup = ReplayProcess.settings cluster.BootstrapServers "g" "t" route
    { setup with
        Run =
            { setup.Run with
                Destinations = slot "first" false :: [ for i, (_, bestEffort) in List.indexed others -> slot $"mirror-{i + 1}" bestEffort ] } }

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Mirroring"
        [ test "two destinations, one flaky and one slow: both get every record, each in per-id order" {
              use cluster = Broker.start "t" 3
              let ids, versions = 40, 3
              Broker.produce cluster.BootstrapServers "t" (Data.versioned ids versions)
              use flaky = HttpRecorder.start (fun _ attempt -> if attempt <= 2 then 503 else 201)
              use slow = HttpRecorder.startSlow (fun _ -> TimeSpan.FromMilliseconds 3.0) (HttpRecorder.always 201)
              let setup =
                  mirrored cluster $"{flaky.Url}/submit/telemetry/%%k" [ $"{slow.Url}/submit/telemetry/%%k", false ]
                  |> ReplayProcess.untilEnd
              use replay = ReplayProcess.start setup
              Expect.equal (replay.Wait within) (Some 0) "until-end finishes"
              for server, name in [ flaky, "flaky"; slow, "slow" ] do
                  let sequences = sequencesById server
                  Expect.equal sequences.Count ids $"every id reached the {name} destination"
                  for KeyValue(id, seqs) in sequences do
                      Expect.equal seqs [ 1..versions ] $"{id} arrived in Kafka order at the {name} destination"
              Expect.equal replay.Stats.Delivered (int64 (ids * versions)) "each record counted once, not once per destination"
              Expect.equal [ for d in replay.Stats.Destinations -> d.Sent ] [ int64 (ids * versions); int64 (ids * versions) ] "and each destination's copies apart"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 3) (int64 (ids * versions)) "committed to the end"
          }

          test "commits wait for every required destination: the second one down holds them, and when it is up they move" {
              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..20 -> Data.store $"id-{i}" "{}" ]
              use up = HttpRecorder.start (HttpRecorder.always 201)
              let port = HttpRecorder.freePort ()
              let setup = mirrored cluster $"{up.Url}/submit/telemetry/%%k" [ $"http://127.0.0.1:{port}/submit/telemetry/%%k", false ]
              use replay = ReplayProcess.start setup
              Expect.isTrue (up.WaitForAccepted(20, within)) "the first destination has every record"
              Expect.isTrue (Wait.until within (fun () -> replay.Stats.Retries > 20L)) "the second one is being retried"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 1) 0L "nothing committed while a required destination lacks them"
              use down = HttpRecorder.startOn port (HttpRecorder.always 201)
              Expect.isTrue (Wait.until within (fun () -> Broker.committedTotal cluster.BootstrapServers "g" "t" 1 = 20L)) "committed once both have them"
              Expect.equal (replay.Stop()) 0 "stops cleanly"
              Expect.equal up.Accepted.Length 20 "the first destination got each record once: retries stay with the destination that needed them"
          }

          test "a best-effort destination that is down holds no commit and no exit: its copies are dropped or shed, counted" {
              use cluster = Broker.start "t" 2
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..200 -> Data.store $"id-{i}" "{}" ]
              use a = HttpRecorder.start (HttpRecorder.always 201)
              use b = HttpRecorder.start (HttpRecorder.always 201)
              let deadPort = HttpRecorder.freePort ()
              let properties = ChildReplay.properties (Temp.file "kafka.properties") [ $"bootstrap.servers={cluster.BootstrapServers}"; "auto.offset.reset=earliest" ]
              let code, _, stderr =
                  ReplayProcess.run
                      [ "run"; "-t"; "t"; "-gid"; "g"; "-p"; properties; "--until-end"; "--max-backoff"; "100ms"; "--max-in-flight-records"; "20"
                        "--dest"; $"{a.Url}/submit/telemetry/%%k"; "--dest"; $"{b.Url}/submit/telemetry/%%k"
                        "--dest-best-effort"; $"http://127.0.0.1:{deadPort}/submit/telemetry/%%k" ]
                      within
              Expect.equal code 0 $"until-end exits 0 ({stderr})"
              Expect.equal a.Accepted.Length 200 "the first required destination has every record"
              Expect.equal b.Accepted.Length 200 "and the second"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 2) 200L "committed to the end without the best-effort one"
              let line = Text.RegularExpressions.Regex.Match(stderr, $@"127\.0\.0\.1:{deadPort} \(best effort\): sent (\d+), dropped (\d+), dead letters (\d+)(?:, shed (\d+))?(?:, unfinished (\d+))?")
              Expect.isTrue line.Success $"the summary names the best-effort destination with its counts ({stderr})"
              let count (group: int) = if line.Groups[group].Success then int line.Groups[group].Value else 0
              Expect.equal (count 1, count 3) (0, 0) "nothing sent there, and never a dead letter for it"
              Expect.equal (count 2 + count 4 + count 5) 200 "every copy is counted: dropped (after its retries), shed (its budget full) or unfinished (still retrying at the end)"
              Expect.isLessThanOrEqual (count 5) 20 "no more unfinished than its budget holds"
              for server in [ a; b ] do
                  Expect.stringContains stderr $"127.0.0.1:{Uri(server.Url).Port}: sent 200, dropped 0, dead letters 0" "the required ones are whole"
          } ]
