/// What a prototype's answers mean, through the real program: a prototype that answers 404
/// for a namespace it does not serve yet and 409 for documents it already has. With
/// `--ok-on 409 --drop-on 404` nothing becomes a dead letter, every record is committed, and
/// the drops are counted per route and status; a rule's `on-status` overrides the flags.
module Replay.Tests.StatusPolicyReplayTests

open System
open Expecto
open Replay.Core
open Replay.Host.Delivery
open Replay.Tests
open Replay.Tests.ChildReplay

let private within = TimeSpan.FromSeconds 90.0

let private doc (ns: string) (id: string) =
    Broker.message id (envelope ns id $"{{\"id\":\"{id}\"}}")

/// Every labelled sample of a metric in one scrape, labels as written -> value.
let private samples (url: string) (name: string) =
    scrape url |> Map.filter (fun series _ -> series.StartsWith(name + "{")) |> Map.toList |> List.map (fun (series, v) -> series.Substring name.Length, v) |> Map.ofList

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Status policy"
        [ test "404 for a namespace and 409 for some ids: --ok-on 409 --drop-on 404 leaves no dead letters, counts drops per route and status; on-status overrides" {
              use cluster = Broker.start "t" 2
              let telemetry = [ for i in 1..40 -> $"t-{i}" ]
              let crash = [ for i in 1..20 -> $"c-{i}" ]
              let metrics = [ for i in 1..10 -> $"m-{i}" ]
              let already id = id = "t-4" || id = "t-8" || id = "t-15" || id.StartsWith "m-"
              use server =
                  HttpRecorder.start (fun hit _ ->
                      if hit.Path.StartsWith "/submit/crash/" then 404
                      elif already (hit.Path.Substring(hit.Path.LastIndexOf '/' + 1)) then 409
                      else 201)
              Broker.produce cluster.BootstrapServers "t"
                  [ for id in telemetry -> doc "telemetry" id
                    for id in crash -> doc "crash" id
                    for id in metrics -> doc "metrics" id ]
              use dir = new RulesFiles.Directory()
              let file = dir.File "rules.yaml"
              // The flags hold for the defaults; the metrics rule says its 409 is a drop, not a success.
              RulesFiles.write file
                  $"defaults:\n  dest: {server.Url}/submit/{{namespace}}/{{id}}\n  sample: 1\nrules:\n  - name: metrics\n    when: Namespace == \"metrics\"\n    on-status: {{409: drop}}\n"
              let state = Temp.dir ()
              use child =
                  ReplayProcess.spawn
                      [ "run"; "-p"; properties (Temp.file "kafka.properties") [ $"bootstrap.servers={cluster.BootstrapServers}"; "auto.offset.reset=earliest" ]
                        "-t"; "t"; "-gid"; "g"; "--rules"; file
                        "--ok-on"; "409"; "--drop-on"; "404"; "--state-dir"; state; "--metrics-port"; "0" ]
              let total = telemetry.Length + crash.Length + metrics.Length
              Expect.isTrue
                  (Wait.until within (fun () -> Broker.committedTotal cluster.BootstrapServers "g" "t" 2 = int64 total))
                  $"every record is committed, dropped ones too ({child.Stderr})"
              let url = Expect.wantSome (metricsUrl child) $"the metrics URL ({child.Stderr})"
              let dropped = samples url "replay_records_dropped_total"
              Expect.equal
                  dropped
                  (Map.ofList [ "{route=\"defaults\",status=\"404\"}", float crash.Length; "{route=\"metrics\",status=\"409\"}", float metrics.Length ])
                  "drops by route and status: the crash namespace's 404s by the flag, the metrics rule's 409s by its on-status"
              let counted = samples url "replay_dead_letters_total" |> Map.values |> Seq.sum
              Expect.equal counted 0.0 "no dead letters counted"
              child.Signal 15
              Expect.equal (child.WaitForExit within) (Some 0) $"stops cleanly ({child.Stderr})"
              Expect.isEmpty (deadLetters (StateDirectory.DeadLetterFile(state, "g"))) "no dead letters written"
              // 409 under --ok-on is a delivery: the server saw each telemetry document once and answered it.
              let seen = server.Hits |> List.filter (fun h -> h.Path.StartsWith "/submit/telemetry/") |> List.map (fun h -> h.Path)
              Expect.equal (List.sort seen) (List.sort [ for id in telemetry -> $"/submit/telemetry/{id}" ]) "each telemetry document once, 409s included"
              Expect.equal (server.Hits |> List.filter (fun h -> h.Path.StartsWith "/submit/crash/")).Length crash.Length "each 404 sent once, never retried"
          } ]
