/// Rules end to end: the embedded broker, a replay routed by a real rules file,
/// real HTTP servers on 127.0.0.1; the file edited (well and badly) while the
/// replay runs; and proof that a replaced generation's code is unloaded.
module Replay.Tests.RulesReplayTests

open System
open System.IO
open System.Runtime.CompilerServices
open Expecto
open Replay.Core
open Replay.Core.Envelope
open Replay.Host.Commands
open Replay.Host.Delivery
open Replay.Host.Rules
open Replay.Tests

let private within = TimeSpan.FromSeconds 60.0

let private envelope ns id (payload: string) : Envelope = Data.envelope ns id payload CreateUpdate

let private doc ns id headers : Broker.Message =
    { Key = id
      Value = encode (envelope ns id $"{{\"id\":\"{id}\"}}")
      Headers = headers }

/// A log the test can read while the replay writes to it from other threads.
type private Log() =
    let text = new StringWriter()
    let writer = TextWriter.Synchronized text
    member _.Writer = writer
    member _.Text = lock writer (fun () -> text.ToString())

let private paths (server: HttpRecorder.Recorder) =
    server.Accepted |> List.map (fun hit -> hit.Path) |> List.sort

/// Starts live rules that follow the file; fails the test if the file does not load.
let private live (file: string) (log: Log) =
    let started = LiveRules.Start(file, RuleBase.Flags, log.Writer)
    if not started.IsOk then failtestf "rules did not load: %s" started.Error
    started.Value

/// A replay of topic "t" routed by the live rules.
let private replay (cluster: Replay.Host.Kafka.MockCluster) (rules: LiveRules) =
    let settings = ReplayProcess.settings cluster.BootstrapServers "g" "t" (ReplayProcess.route "http://unused.example/%k" 1.0 true true)
    ReplayProcess.start { settings with Router = rules.Router }

let private toServer (name: string) (server: HttpRecorder.Recorder) =
    $"""defaults:
  dest: {server.Url}/{name}/{{id}}
  sample: 1
rules: []
"""

/// Loads a generation, routes one record through it, replaces it, and returns a
/// weak reference to its load context. Kept out of line so no local of the caller
/// keeps the old generation alive.
[<MethodImpl(MethodImplOptions.NoInlining)>]
let private replacedGeneration (rules: LiveRules) =
    let old = rules.Current
    let record = SampleRecord().ToRecord()
    match Envelope.decode record.Value with
    | Ok envelope -> rules.Router().Route record envelope |> ignore
    | Error e -> failtestf "%A" e
    // Tracking resurrection: the context counts as alive until its unload has really completed.
    let weak = WeakReference(old.Context, trackResurrection = true)
    Expect.isTrue (rules.Reload()) "the reload succeeds"
    weak

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Rules end to end"
        [ test "two namespaces go to two servers with copied headers and a sample override; others follow the defaults" {
              use cluster = Broker.start "t" 4
              use serverA = HttpRecorder.start (HttpRecorder.always 201)
              use serverB = HttpRecorder.start (HttpRecorder.always 204)
              let telemetry = [ for i in 1..60 -> $"t-{i}" ]
              let metrics = [ for i in 1..80 -> $"m-{i}" ]
              let others = [ for i in 1..40 -> $"o-{i}" ]
              let channel i = if i % 2 = 0 then "nightly" else "release"
              Broker.produce
                  cluster.BootstrapServers
                  "t"
                  ([ for i, id in List.indexed telemetry -> doc "telemetry" id [ "channel", channel i; "noise", "n" ] ]
                   @ [ for id in metrics -> doc "metrics" id [ "trace", $"trace-{id}" ] ]
                   @ [ for id in others -> doc "other" id [ "channel", "nightly" ] ])
              use dir = new RulesFiles.Directory()
              let file = dir.File "two-servers.yaml"
              RulesFiles.write
                  file
                  $"""# Records of no rule are dropped: the defaults sample nothing.
defaults:
  sample: 0
rules:
  - name: telemetry to A
    when: Namespace == "telemetry"
    dest: {serverA.Url}/submit/{{namespace}}/{{id}}
    sample: 1
    copy-headers: [channel]
    headers:
      X-Replay-Source: '"prod-" + Topic'
  - name: metrics to B, half
    when: Namespace == "metrics"
    dest: {serverB.Url}/ingest/{{id}}
    sample: 0.5
    copy-headers:
      - X-Trace: trace
      - X-Namespace: '{{namespace}}'
"""
              // Through `replay run`'s own flag handling: --dest is the base the file refines.
              let parse =
                  RunCommand.Create().Parse(
                      [| "-b"; cluster.BootstrapServers; "-t"; "t"; "-gid"; "g"; "--from"; "earliest"; "--until-end"
                         "--dest"; "http://flags.example/%k"; "--rules"; file |]
                  )
              let built = RunCommand.Build parse
              if not built.IsOk then failtestf "run settings: %s" built.Error
              let job = built.Value
              use rules = job.Services.Rules
              let settings = ReplayProcess.settings cluster.BootstrapServers "g" "t" (ReplayProcess.route "http://unused.example/%k" 1.0 true true)
              use run =
                  ReplayProcess.start
                      { settings with
                          Run = { job.Run with Kafka = settings.Run.Kafka }
                          Router = job.Services.Router.Invoke
                          DeadLetters = job.Services.DeadLetters }
              Expect.equal (run.Wait within) (Some 0) "until-end exits 0"

              Expect.equal (paths serverA) [ for id in List.sort telemetry -> $"/submit/telemetry/{id}" ] "A got every telemetry document, once"
              for hit in serverA.Accepted do
                  let id = hit.Path.Substring("/submit/telemetry/".Length)
                  let i = List.findIndex ((=) id) telemetry
                  Expect.equal (hit.Headers.TryFind "channel") (Some(channel i)) "the channel header is copied unchanged"
                  Expect.equal (hit.Headers.TryFind "X-Replay-Source") (Some "prod-t") "the computed header is set"
                  Expect.isFalse (hit.Headers.ContainsKey "noise") "headers not named are not copied"
              let keptMetrics = metrics |> List.filter (fun id -> Sampling.keep Sampling.ByDocument (Result.defaultWith failwith (Sampling.Rate.create 0.5)) id (fun () -> 0.0))
              Expect.isTrue (keptMetrics.Length > 10 && keptMetrics.Length < 70) "the half sample keeps some and drops some"
              Expect.equal (paths serverB) [ for id in List.sort keptMetrics -> $"/ingest/{id}" ] "B got exactly the sampled half of metrics, by document id"
              for hit in serverB.Accepted do
                  let id = hit.Path.Substring("/ingest/".Length)
                  Expect.equal (hit.Headers.TryFind "X-Trace") (Some $"trace-{id}") "the Kafka header is copied under its new name"
                  Expect.equal (hit.Headers.TryFind "X-Namespace") (Some "metrics") "the envelope field is copied"
              Expect.equal run.Stats.Delivered (int64 (telemetry.Length + keptMetrics.Length)) "delivered = what the rules send"
              Expect.equal run.Stats.SampledOut (int64 (metrics.Length - keptMetrics.Length + others.Length)) "the rest is counted as sampled out"
              Expect.equal run.Stats.Finished run.Stats.Consumed "every consumed record is accounted for"
          }

          test "an edit mid-run routes later records by the new rules; nothing is lost or sent twice" {
              use cluster = Broker.start "t" 2
              use serverA = HttpRecorder.start (HttpRecorder.always 201)
              use serverB = HttpRecorder.start (HttpRecorder.always 201)
              use dir = new RulesFiles.Directory()
              let file = dir.File "live.yaml"
              RulesFiles.write file (toServer "a" serverA)
              let log = Log()
              use rules = live file log
              use run = replay cluster rules
              let before = [ for i in 1..50 -> $"before-{i}" ]
              Broker.produce cluster.BootstrapServers "t" [ for id in before -> doc "telemetry" id [] ]
              Expect.isTrue (serverA.WaitForAccepted(before.Length, within)) "A receives the first batch"

              RulesFiles.write file (toServer "b" serverB)
              // The attempt counter moves after the swap and its log line: wait on it, then look.
              Expect.isTrue (rules.WaitForAttempts(1, within)) "the edit is picked up"
              Expect.equal rules.Generation 2 $"generation 2 is in force (log: {log.Text})"
              Expect.stringContains log.Text "rules: generation 2 in force: 0 rules from" "the reload is logged with its generation"
              let after = [ for i in 1..50 -> $"after-{i}" ]
              Broker.produce cluster.BootstrapServers "t" [ for id in after -> doc "telemetry" id [] ]
              Expect.isTrue (serverB.WaitForAccepted(after.Length, within)) "B receives the second batch"
              Expect.equal (run.Stop()) 0 "stops cleanly"

              Expect.equal (paths serverA) [ for id in List.sort before -> $"/a/{id}" ] "A got exactly the first batch"
              Expect.equal (paths serverB) [ for id in List.sort after -> $"/b/{id}" ] "B got exactly the second batch"
              Expect.equal (serverA.Hits.Length + serverB.Hits.Length) (before.Length + after.Length) "total received = total expected, none twice"
          }

          test "a broken edit mid-run keeps the old rules working and names the line; fixing it brings the new rules" {
              use cluster = Broker.start "t" 2
              use serverA = HttpRecorder.start (HttpRecorder.always 201)
              use serverB = HttpRecorder.start (HttpRecorder.always 201)
              use dir = new RulesFiles.Directory()
              let file = dir.File "live.yaml"
              RulesFiles.write file (toServer "a" serverA)
              let log = Log()
              use rules = live file log
              use run = replay cluster rules
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..20 -> doc "telemetry" $"one-{i}" [] ]
              Expect.isTrue (serverA.WaitForAccepted(20, within)) "A receives the first batch"

              RulesFiles.write
                  file
                  $"""defaults:
  dest: {serverB.Url}/b/{{id}}
rules:
  - name: typo
    when: Nmespace == "telemetry"
"""
              Expect.isTrue (rules.WaitForAttempts(1, within)) "the broken edit is tried"
              Expect.equal rules.Generation 1 "generation 1 stays in force"
              let error = $"{file}(5,11): error CS0103: The name 'Nmespace' does not exist in the current context"
              Expect.equal (rules.LastErrors |> Seq.map string |> List.ofSeq) [ error ] "the error names the line and column"
              Expect.stringContains log.Text $"rules: {file} not reloaded; generation 1 stays in force:\n  {error}" "and is logged"

              Broker.produce cluster.BootstrapServers "t" [ for i in 1..20 -> doc "telemetry" $"two-{i}" [] ]
              Expect.isTrue (serverA.WaitForAccepted(40, within)) "the old rules keep sending to A"

              RulesFiles.write file (toServer "b" serverB)
              Expect.isTrue (rules.WaitForAttempts(2, within)) "the fix is picked up"
              Expect.equal rules.Generation 2 "the fixed file is in force"
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..20 -> doc "telemetry" $"three-{i}" [] ]
              Expect.isTrue (serverB.WaitForAccepted(20, within)) "B receives the third batch"
              Expect.equal (run.Stop()) 0 "stops cleanly"
              Expect.equal serverA.Hits.Length 40 "A: batches one and two, once each"
              Expect.equal serverB.Hits.Length 20 "B: batch three, once"
          }

          test "a rule that throws dead-letters the record with the rule's name and counts it; the others are delivered" {
              use cluster = Broker.start "t" 2
              use server = HttpRecorder.start (HttpRecorder.always 201)
              use dir = new RulesFiles.Directory()
              let file = dir.File "fragile.yaml"
              RulesFiles.write
                  file
                  $"""defaults:
  dest: {server.Url}/d/{{id}}
rules:
  - name: needs a version
    when: Json("meta.version").StartsWith("2")
    dest: {server.Url}/v2/{{id}}
"""
              let good = [ for i in 1..10 -> i, $"good-{i}" ]
              let bad = [ for i in 1..5 -> $"bad-{i}" ]
              Broker.produce
                  cluster.BootstrapServers
                  "t"
                  ([ for _, id in good -> { doc "telemetry" id [] with Value = encode (envelope "telemetry" id """{"meta":{"version":"2.1"}}""") } ]
                   @ [ for id in bad -> doc "telemetry" id [] ])
              let log = Log()
              use rules = live file log
              let deadLetters = dir.File "dead.jsonl"
              let settings =
                  { ReplayProcess.settings cluster.BootstrapServers "g" "t" (ReplayProcess.route "http://unused.example/%k" 1.0 true true) with
                      Router = rules.Router
                      DeadLetters = new DeadLetterFile(deadLetters) }
                  |> ReplayProcess.untilEnd
              use run = ReplayProcess.start settings
              Expect.equal (run.Wait within) (Some 0) "until-end exits 0"
              settings.DeadLetters.Dispose()
              Expect.equal (paths server) (List.sort [ for _, id in good -> $"/v2/{id}" ]) "records the rule handles are delivered"
              let letters = DeadLetterFile.Read deadLetters |> List.ofSeq
              Expect.equal (letters |> List.map (fun l -> l.Partition, l.Offset) |> List.distinct |> List.length) bad.Length "distinct records"
              Expect.equal letters.Length bad.Length "each failing record is dead-lettered once"
              for letter in letters do
                  Expect.stringStarts letter.Reason "rule 'needs a version' failed: NullReferenceException" "the reason names the rule"
              Expect.equal rules.Failures (int64 bad.Length) "failures are counted"
              Expect.equal (rules.FailuresByRule["needs a version"]) (int64 bad.Length) "per rule"
              Expect.equal run.Stats.DeadLettered (int64 bad.Length) "and dead-lettered in the replay's stats"
              let logged = log.Text.Split('\n') |> Array.filter (fun l -> l.Contains "rule 'needs a version' (generation 1) failed")
              Expect.hasLength logged 1 "the first failure is logged, the rest only counted"
          }

          test "a reload whose rules fail on many records is rolled back, counted, and not loaded again until the file changes" {
              use dir = new RulesFiles.Directory()
              let file = dir.File "rollback.yaml"
              let rules (condition: string) =
                  $"defaults:\n  dest: http://d.example/{{id}}\nrules:\n  - name: nightly\n    when: {condition}\n    dest: http://n.example/{{id}}\n"
              RulesFiles.write file (rules "Header(\"channel\") == \"nightly\"")
              let log = Log()
              use live = LiveRules.Start(file, RuleBase.Flags, log.Writer, watch = false).Value
              let route (i: int) =
                  let sample = SampleRecord(Id = $"r-{i}", Offset = int64 i)
                  if i % 2 = 0 then sample.Headers.Add(("channel", "nightly"))
                  let record = sample.ToRecord()
                  match Envelope.decode record.Value with
                  | Ok envelope -> live.Router().Route record envelope
                  | Error e -> failtestf "%A" e
              for i in 1..100 do
                  route i |> ignore
              let rollbacksBefore = Replay.Host.Operating.RuleMetrics.Rollbacks
              // The incident's kind of edit: it compiles (CS8602 is a warning), and throws where the header is absent.
              RulesFiles.write file (rules "Header(\"channel\")!.Length > 3")
              Expect.isTrue (live.Reload(force = false)) "the edit compiles and comes into force"
              Expect.equal live.Generation 2 "generation 2"
              Expect.isTrue live.OnProbation "on probation"
              let choices = [ for i in 101..140 -> route i ]
              let failedUnder2 = choices |> List.filter (fun c -> c.IsRuleFailed) |> List.length
              Expect.equal live.Generation 1 "rolled back to generation 1"
              Expect.equal live.Rollbacks 1 "counted"
              Expect.equal (Replay.Host.Operating.RuleMetrics.Rollbacks - rollbacksBefore) 1L "and in the metrics"
              Expect.equal failedUnder2 (int RulesProbation.defaults.MinFailures) "after as many failures as the core needs to judge, no more"
              Expect.isFalse ((route 141).IsRuleFailed || (route 142).IsRuleFailed) "generation 1 routes again"
              let line = log.Text.Split('\n') |> Array.find (fun l -> l.Contains "rolled back")
              for part in [ "generation 2 rolled back"; "failed on 10 of 19 records (52.6%; generation 1 failed on 0%)"; "generation 1 is in force again"; "rule_error"; file ] do
                  Expect.stringContains line part $"the log line says {part}"
              Expect.isFalse (live.Reload(force = false)) "the unchanged file is not loaded again"
              Expect.equal live.Generation 1 "generation 1 stays"
              RulesFiles.write file (rules "Header(\"channel\")?.Length > 3")
              Expect.isTrue (live.Reload(force = false)) "a changed file is"
              Expect.equal live.Generation 3 "as generation 3: numbers are not reused"
              Expect.stringContains (live.Summary()) "1 rolled back" "the run's summary says so"
          }

          test "a replaced generation's load context is collected" {
              use dir = new RulesFiles.Directory()
              let file = dir.File "collect.yaml"
              RulesFiles.write file "defaults:\n  dest: http://d.example/{id}\nrules:\n  - name: any\n    when: Id.Length > 0\n"
              let log = Log()
              // No probation: the replaced generation is let go as soon as the new one is judged.
              use rules = LiveRules.Start(file, RuleBase.Flags, log.Writer, watch = false, probation = { RulesProbation.defaults with WindowMs = 0L }).Value
              let weak = replacedGeneration rules
              let current = WeakReference(rules.Current.Context)
              let deadline = DateTime.UtcNow + TimeSpan.FromSeconds 20.0
              while weak.IsAlive && DateTime.UtcNow < deadline do
                  GC.Collect()
                  GC.WaitForPendingFinalizers()
              Expect.isFalse weak.IsAlive "the old generation's AssemblyLoadContext was collected"
              Expect.isTrue current.IsAlive "the generation in force is not"
              Expect.equal rules.Generation 2 "generation 2 is in force"
          } ]
