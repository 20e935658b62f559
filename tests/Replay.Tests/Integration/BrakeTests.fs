/// The brakes on a replay gone wrong, through the real program: a rules reload that
/// compiles (with warning CS8602) but fails on many records is rolled back while the
/// replay runs, and --max-dead-letter-ratio pauses consuming when too many records
/// become dead letters, saying why, then probes again.
module Replay.Tests.BrakeTests

open System
open System.IO
open Expecto
open Replay.Core
open Replay.Host.Delivery
open Replay.Tests
open Replay.Tests.ChildReplay

let private within = TimeSpan.FromSeconds 90.0
let private http = new System.Net.Http.HttpClient(Timeout = TimeSpan.FromSeconds 10.0)

let private props (bootstrap: string) =
    properties (Temp.file "kafka.properties") [ $"bootstrap.servers={bootstrap}"; "auto.offset.reset=earliest" ]

let private doc (id: string) (channel: string option) : Broker.Message =
    { Data.store id $"{{\"id\":\"{id}\"}}" with Headers = channel |> Option.map (fun c -> "channel", c) |> Option.toList }

/// One sample of a scrape, by `name{labels}` as written; 0 when absent.
let private sample (url: string) (series: string) = scrape url |> Map.tryFind series |> Option.defaultValue 0.0

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Brakes"
        [ test "a reload that compiles with CS8602 and fails on half the records is rolled back by the running replay" {
              use cluster = Broker.start "t" 1
              use server = HttpRecorder.start (HttpRecorder.always 201)
              use dir = new RulesFiles.Directory()
              let file = dir.File "rules.yaml"
              let rules (condition: string) =
                  $"defaults:\n  dest: {server.Url}/d/{{id}}\n  sample: 1\nrules:\n  - name: nightly\n    when: {condition}\n    dest: {server.Url}/n/{{id}}\n"
              RulesFiles.write file (rules "Header(\"channel\") == \"nightly\"")
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..20 -> doc $"a-{i}" (if i % 2 = 0 then Some "nightly" else None) ]
              let state = Temp.dir ()
              use child =
                  ReplayProcess.spawn
                      [ "run"; "-p"; props cluster.BootstrapServers; "-t"; "t"; "-gid"; "g"; "--rules"; file; "--state-dir"; state
                        "--metrics-port"; "0" ]
              Expect.isTrue (server.WaitForAccepted(20, within)) $"generation 1 routes the first records ({child.Stderr})"

              RulesFiles.write file (rules "Header(\"channel\").Length > 3")
              Expect.isTrue (Wait.until within (fun () -> child.Stderr.Contains "generation 2 in force")) $"the edit comes into force ({child.Stderr})"
              Expect.stringContains child.Stderr "CS8602" "with the compiler's warning"
              let n = 200
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..n -> doc $"b-{i}" (if i % 2 = 0 then Some "nightly" else None) ]
              Expect.isTrue (Wait.until within (fun () -> child.Stderr.Contains "generation 2 rolled back")) $"rolled back ({child.Stderr})"
              let file = StateDirectory.DeadLetterFile(state, "g")
              let delivered () = server.Accepted.Length - 20
              Expect.isTrue (Wait.until within (fun () -> delivered () + (deadLetters file).Length = n)) "every record of the second batch finishes"
              let letters = deadLetters file
              printfn "rollback: %d of %d records dead-lettered before generation 2 was rolled back" letters.Length n
              Expect.isGreaterThanOrEqual letters.Length (int RulesProbation.defaults.MinFailures) "the failures it took to judge"
              Expect.isLessThan letters.Length 20 "and hardly more: the rest went on under generation 1"
              for l in letters do
                  Expect.equal l.ReasonClass "rule_error" "dead letters of a rule error"
                  Expect.stringContains l.Reason "rule 'nightly' failed: NullReferenceException" "naming the rule"
              Expect.stringContains child.Stderr "generation 1 is in force again" "the log says which generation is back"

              let url = Expect.wantSome (metricsUrl child) "the metrics URL"
              Expect.equal (sample url "replay_rule_rollbacks_total") 1.0 "the rollback is counted"
              Expect.equal (sample url "replay_rule_failures_total{rule=\"nightly\"}") (float letters.Length) "failures per rule"
              Expect.equal (sample url "replay_dead_letters_total{reason=\"rule_error\"}") (float letters.Length) "dead letters by reason"
              child.Signal 15
              Expect.equal (child.WaitForExit within) (Some 0) "stops cleanly"
              Expect.stringContains child.Stderr "1 rolled back" "the summary says so"
          }

          test "--max-dead-letter-ratio pauses consuming when most records become dead letters, says why, and new rules resume it" {
              use cluster = Broker.start "t" 2
              let n = 3000
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..n -> doc $"c-{i}" None ]
              // A destination that refuses everything (a bad deploy of the prototype, say).
              use server = HttpRecorder.start (HttpRecorder.always 400)
              use dir = new RulesFiles.Directory()
              let file = dir.File "rules.yaml"
              let rules (comment: string) = $"# {comment}\ndefaults:\n  dest: {server.Url}/d/{{id}}\nrules: []\n"
              RulesFiles.write file (rules "first")
              let state = Temp.dir ()
              let letters () = deadLetters (StateDirectory.DeadLetterFile(state, "g"))
              use child =
                  ReplayProcess.spawn
                      [ "run"; "-p"; props cluster.BootstrapServers; "-t"; "t"; "-gid"; "g"; "--rules"; file; "--state-dir"; state
                        "--max-dead-letter-ratio"; "0.5"; "--max-in-flight-records"; "50"; "--metrics-port"; "0" ]
              Expect.isTrue (Wait.until within (fun () -> child.Stderr.Contains "consuming paused: ")) $"paused ({child.Stderr})"
              let line = child.Stderr.Split('\n') |> Array.find (fun l -> l.Contains "consuming paused: ")
              for part in [ "became dead letters"; "over --max-dead-letter-ratio 0.5"; "Nothing is lost"; "resumes for a probe in 60 s"; "new generation" ] do
                  Expect.stringContains line part $"the line says {part}"
              let url = Expect.wantSome (metricsUrl child) "the metrics URL"
              Expect.isTrue (Wait.until within (fun () -> sample url "replay_in_flight_records" = 0.0)) "what was in flight finishes"
              Expect.equal (sample url "replay_dead_letter_brake_held") 1.0 "the metric says consuming is held"
              Expect.equal (sample url "replay_dead_letter_brake_holds_total") 1.0 "and counts the hold"
              Expect.equal (sample url "replay_paused_partitions") 2.0 "every partition is paused"
              use ready = http.GetAsync(Uri(Uri url, "/readyz")).GetAwaiter().GetResult()
              Expect.equal (int ready.StatusCode) 503 "not ready while held"
              Expect.stringContains (ready.Content.ReadAsStringAsync().GetAwaiter().GetResult()) "--max-dead-letter-ratio" "and /readyz says why"
              let heldAt = (letters ()).Length
              printfn "brake: held after %d of %d records became dead letters" heldAt n
              Expect.isLessThan heldAt 400 "held after the first hundred or so, not the whole topic"

              // The operator fixes the destination and saves the rules: consuming resumes at once, as a probe.
              server.SetResponder(HttpRecorder.always 201)
              RulesFiles.write file (rules "second")
              Expect.isTrue (Wait.until within (fun () -> child.Stderr.Contains "consuming resumes: a new rules generation came into force")) $"resumed ({child.Stderr})"
              Expect.isTrue (Wait.until within (fun () -> server.Accepted.Length + (letters ()).Length >= n)) "the rest of the topic goes out"
              Expect.isTrue (Wait.until within (fun () -> child.Stderr.Contains "dead letters are back under --max-dead-letter-ratio 0.5")) "the brake lets go"
              Expect.equal (sample url "replay_dead_letter_brake_held") 0.0 "the metric says so"
              child.Signal 15
              Expect.equal (child.WaitForExit within) (Some 0) "stops cleanly"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 2) (int64 n) "everything committed: delivered or kept as a dead letter"
          }

          test "--max-dead-letter-ratio refuses what is not a fraction below 1, with exit 2" {
              for bad in [ "1"; "1.5"; "-0.1"; "half" ] do
                  let code, _, stderr =
                      ReplayProcess.run
                          [ "run"; "-b"; "127.0.0.1:9"; "-gid"; "g"; "-t"; "t"; "--dest"; "http://127.0.0.1:9/s/%k"; "--max-dead-letter-ratio"; bad ]
                          within
                  Expect.equal code 2 $"{bad}: exit 2 ({stderr})"
                  Expect.stringContains stderr "--max-dead-letter-ratio" $"{bad}: names the flag"
                  Expect.isFalse (hasStackTrace stderr) "no stack trace"
          } ]
