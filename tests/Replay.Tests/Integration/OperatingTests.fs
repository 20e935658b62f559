/// Operating a replay: the metrics a scraper sees against what the HTTP server
/// received, start positions by time, one-off runs, dry runs and the packaged tool —
/// through the embedded broker, real HTTP on 127.0.0.1 and the real `replay` program.
module Replay.Tests.OperatingTests

open System
open System.IO
open System.Net.Http
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Confluent.Kafka
open Expecto
open Replay.Core
open Replay.Host.Delivery
open Replay.Host.Operating
open Replay.Host.Replay
open Replay.Tests

let private within = TimeSpan.FromSeconds 60.0
let private http = new HttpClient(Timeout = TimeSpan.FromSeconds 10.0)


/// The samples of a Prometheus text exposition, keyed by `name{labels}` as written.
let private parseMetrics (text: string) =
    text.Split '\n'
    |> Array.filter (fun l -> l <> "" && not (l.StartsWith "#"))
    |> Array.map (fun l ->
        let cut = l.LastIndexOf ' '
        l.Substring(0, cut), Double.Parse(l.Substring(cut + 1), Globalization.CultureInfo.InvariantCulture))
    |> Map.ofArray

let private scrape (url: Uri) =
    parseMetrics (http.GetStringAsync(url).GetAwaiter().GetResult())

let private metric name (samples: Map<string, float>) =
    samples.TryFind name |> Option.defaultValue nan

/// Sum of every sample of a metric family (all label sets).
let private family name (samples: Map<string, float>) =
    samples |> Map.toSeq |> Seq.filter (fun (k, _) -> k = name || k.StartsWith(name + "{")) |> Seq.sumBy snd

let private status (url: Uri) (path: string) =
    use response = http.GetAsync(Uri(url, path)).GetAwaiter().GetResult()
    int response.StatusCode

/// Writes records with explicit Kafka timestamps, round-robin over partitions.
let private produceAt (bootstrap: string) topic partitions (records: (Broker.Message * DateTimeOffset) list) =
    use producer = ProducerBuilder<string, byte[]>(ProducerConfig(BootstrapServers = bootstrap, Acks = Acks.All)).Build()
    records
    |> List.iteri (fun i (m, time) ->
        let message = Message<string, byte[]>(Key = m.Key, Value = m.Value, Timestamp = Timestamp time)
        producer.ProduceAsync(TopicPartition(topic, Partition(i % partitions)), message).GetAwaiter().GetResult() |> ignore)

let private propertiesFile (bootstrap: string) =
    let file = Path.Combine(Temp.dir (), "kafka.properties")
    // KIP-848 groups are assigned at once on the embedded broker.
    File.WriteAllLines(file, [ $"bootstrap.servers={bootstrap}"; "group.protocol=consumer" ])
    file

let private idOf (hit: HttpRecorder.Hit) = hit.Path.Substring(hit.Path.LastIndexOf '/' + 1)

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Operating"
        [ test "metrics scraped during a replay match what the HTTP server received" {
              use cluster = Broker.start "t" 4
              let stores = [ for i in 1..400 -> $"doc-{i}" ]
              let deleted = [ for i in 1..40 -> $"doc-{i * 10}" ]
              let garbage = [ for i in 1..5 -> Broker.message $"bad-{i}" [| 0x1Auy; 0xFFuy; 0xFFuy; 0xFFuy; 0x0Fuy; 1uy |] ]
              Broker.produce
                  cluster.BootstrapServers
                  "t"
                  ([ for id in stores -> Data.store id $"{{\"id\":\"{id}\"}}" ] @ [ for id in deleted -> Data.remove id ] @ garbage)
              // The destination refuses some documents for good: those become dead letters.
              let refused (id: string) = id.EndsWith "13"
              use server = HttpRecorder.start (fun hit _ -> if refused (idOf hit) then 400 else 201)
              let route = ReplayProcess.route $"{server.Url}/submit/telemetry/%%k" 0.5 false true
              // A rule that skips documents ending in 7, as a rules file would.
              let ruleSkips (id: string) = id.EndsWith "7"
              let router =
                  FSharpRouter(fun (_: Record) (envelope: Envelope.Envelope) ->
                      if ruleSkips envelope.Id then SkipByRule "no-sevens" else Use route)
              let settings = { ReplayProcess.settings cluster.BootstrapServers "g" "t" route with Router = fun () -> router }
              let kafka =
                  dict [ yield! settings.Run.Kafka |> Seq.map (fun kv -> kv.Key, kv.Value); yield "statistics.interval.ms", "200" ]
                  |> Collections.Generic.Dictionary
              let job =
                  ReplayJob(
                      { settings.Run with Kafka = kafka },
                      settings.Services,
                      OperatingSettings(MetricsPort = Nullable 0, ProgressInterval = Nullable(TimeSpan.FromMilliseconds 200.0))
                  )
              let log = new StringWriter()
              let run = OperatedRun.StartAsync(job, TextWriter.Synchronized log, TextWriter.Null, false).GetAwaiter().GetResult()
              use stop = new CancellationTokenSource()
              let task = Task.Factory.StartNew((fun () -> run.Run stop.Token), TaskCreationOptions.LongRunning)
              let url = run.MetricsUrl
              Expect.equal (status url "/healthz") 200 "alive as soon as it listens"

              // The reference model: what each record should become.
              let sampled id = Sampling.position id < 0.5
              let expectSkippedByRule = (stores @ deleted) |> List.filter ruleSkips |> List.length
              let expectDeletesIgnored = deleted |> List.filter (ruleSkips >> not) |> List.length
              let candidates = stores |> List.filter (fun id -> not (ruleSkips id))
              let expectSampledOut = candidates |> List.filter (sampled >> not) |> List.length
              let expectRefused = candidates |> List.filter (fun id -> sampled id && refused id) |> List.length
              let total = stores.Length + deleted.Length + garbage.Length

              let accounted (m: Map<string, float>) =
                  metric "replay_records_sent_total" m + metric "replay_records_sampled_out_total" m
                  + metric "replay_records_deletes_ignored_total" m + metric "replay_records_not_json_total" m
                  + family "replay_records_skipped_by_rule_total" m + family "replay_dead_letters_total" m
              // In flight reaches 0 a moment before the consuming thread counts what finished:
              // settled is when every consumed record is accounted for as well.
              let settled () =
                  let m = scrape url
                  metric "replay_records_consumed_total" m = float total
                  && accounted m = float total
                  && metric "replay_in_flight_records" m = 0.0
                  && family "replay_consumer_lag" m = 0.0
                  && (m |> Map.exists (fun k _ -> k.StartsWith "replay_consumer_lag{"))
              Expect.isTrue (Wait.until within settled) "every record consumed and finished, lag 0 reported"
              Expect.isTrue (Wait.until within (fun () -> status url "/readyz" = 200)) "ready: assigned and not stuck"
              let m = scrape url
              let sent = metric "replay_records_sent_total" m
              let sampledOut = metric "replay_records_sampled_out_total" m
              let dead = family "replay_dead_letters_total" m
              Expect.equal (accounted m) (float total) "consumed = sent + sampled out + skipped + dead letters"
              Expect.equal sent (float server.Accepted.Length) "sent = what the server accepted"
              Expect.equal (family "replay_requests_total" m) (float server.Hits.Length) "every request the server saw was counted once"
              Expect.equal (metric "replay_requests_total{destination=\"destination\",route=\"defaults\",method=\"POST\",status_class=\"2xx\",status=\"201\"}" m) (float server.Accepted.Length) "2xx by destination, route, method and status"
              Expect.equal (metric "replay_requests_total{destination=\"destination\",route=\"defaults\",method=\"POST\",status_class=\"4xx\",status=\"400\"}" m) (float expectRefused) "4xx by destination, route, method and status"
              Expect.equal (metric "replay_request_duration_seconds_count{destination=\"destination\",method=\"POST\"}" m) (float server.Hits.Length) "one latency sample per attempt"
              Expect.equal (metric "replay_destination_records_total{destination=\"destination\",outcome=\"sent\"}" m) (float server.Accepted.Length) "sent, per destination"
              Expect.equal (metric "replay_records_skipped_by_rule_total{rule=\"no-sevens\"}" m) (float expectSkippedByRule) "skips counted per rule"
              Expect.equal (metric "replay_records_deletes_ignored_total" m) (float expectDeletesIgnored) "deletes ignored"
              Expect.equal sampledOut (float expectSampledOut) "sampled out"
              Expect.equal dead (float (expectRefused + garbage.Length)) "dead letters: refused plus undecodable"
              Expect.equal (metric "replay_dead_letters_total{reason=\"permanent_status\"}" m) (float expectRefused) "refused ones by their class"
              Expect.equal (metric "replay_dead_letters_total{reason=\"undecodable\"}" m) (float garbage.Length) "undecodable ones by theirs"
              Expect.equal (metric "replay_dead_letters_total{reason=\"poison\"}" m) 0.0 "every class is shown, at 0 until it happens"
              Expect.equal (metric "replay_decode_errors_total" m) (float garbage.Length) "decode errors"
              Expect.equal (metric "replay_assigned_partitions" m) 4.0 "owns the four partitions"
              Expect.equal (metric "replay_paused_partitions" m) 0.0 "nothing paused"
              Expect.equal (metric "replay_in_flight_bytes" m) 0.0 "no bytes in flight"
              Expect.isTrue (m.ContainsKey "replay_rule_reloads_total") "rule reload counter exposed"

              stop.Cancel()
              Expect.equal (task.Result) 0 "a graceful stop exits 0"
              run.DisposeAsync().AsTask().GetAwaiter().GetResult()
              let lines = log.ToString()
              Expect.stringContains lines "progress consumed=" "periodic structured progress lines when not on a terminal"
              Expect.stringContains lines $"replay: consumed {total}," "the closing summary"
          }

          test "--from a time replays only the records at or after it; committed offsets win unless --reset" {
              use cluster = Broker.start "t" 2
              let now = DateTimeOffset.UtcNow
              // Record i is stamped (100 - i) x 10 minutes ago, minus 5 minutes so that no record sits
              // near a boundary however long the runs below take to start.
              let stampOf i = now.AddMinutes(float ((i - 100) * 10 - 5))
              produceAt cluster.BootstrapServers "t" 2 [ for i in 0..99 -> Data.store $"doc-{i}" "{}", stampOf i ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let props = propertiesFile cluster.BootstrapServers
              let replay group (extra: string list) =
                  ReplayProcess.run
                      ([ "run"; "-p"; props; "-t"; "t"; "-gid"; group; "--until-end"; "--dest"; $"{server.Url}/s/%%k" ] @ extra)
                      within
              let received () = server.Accepted |> List.map idOf |> Set.ofList
              let ids range = range |> Seq.map (fun i -> $"doc-{i}") |> Set.ofSeq

              let code, _, stderr = replay "relative" [ "--from"; "-400m" ]
              Expect.equal code 0 $"exits 0; stderr: {stderr}"
              Expect.equal (received ()) (ids [ 61..99 ]) "-400m: only the records of the last 400 minutes"
              Expect.equal server.Accepted.Length 39 "each once"
              let committed = Broker.committed cluster.BootstrapServers "relative" "t" 2
              Expect.equal (committed |> Map.toList |> List.sumBy snd) 100L "the group is committed to the end of both partitions"

              let at = (stampOf 69).AddMinutes(5.0).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ")
              let before = server.Accepted.Length
              let code, _, stderr = replay "absolute" [ "--from"; at ]
              Expect.equal code 0 $"exits 0; stderr: {stderr}"
              let second = server.Accepted |> List.skip before |> List.map idOf |> Set.ofList
              Expect.equal second (ids [ 70..99 ]) $"--from {at}: records 70..99"

              // The relative group has committed everything: a new --from does not move it ...
              let before = server.Accepted.Length
              let code, _, stderr = replay "relative" [ "--from"; "-200m" ]
              Expect.equal code 0 $"exits 0; stderr: {stderr}"
              Expect.equal server.Accepted.Length before "committed offsets win: nothing replayed"
              Expect.stringContains stderr "resuming the group's committed offsets on 2 of 2 partitions" "says why --from did not apply"
              Expect.stringContains stderr "add --reset" "and how to make it apply"
              // ... unless --reset, which says loudly what it overrides.
              let code, _, stderr = replay "relative" [ "--from"; "-200m"; "--reset" ]
              Expect.equal code 0 $"exits 0; stderr: {stderr}"
              let third = server.Accepted |> List.skip before |> List.map idOf |> Set.ofList
              Expect.equal third (ids [ 81..99 ]) "--reset: the last 200 minutes again"
              Expect.stringContains stderr "warning: --reset" "a clear warning"
              Expect.stringContains stderr "from offset" "says where each partition starts"

              // --from committed resumes only: the resumed group runs, a new group is refused by name.
              let code, _, stderr = replay "relative" [ "--from"; "committed" ]
              Expect.equal code 0 $"a group with commits resumes; stderr: {stderr}"
              let code, _, stderr = replay "new-group" [ "--from"; "committed" ]
              Expect.equal code 2 "a group without commits stops with the usage exit code"
              Expect.stringContains stderr "--from committed: t[" "names the partition"
              Expect.stringContains stderr "--from earliest" "and the fix"
          }

          test "--until-end exits 0 after exactly the records present at start, with a JSON summary" {
              use cluster = Broker.start "t" 2
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..300 -> Data.store $"old-{i}" "{}" ]
              // Slow enough that records written mid-run arrive while the replay is still going.
              use server = HttpRecorder.startSlow (fun _ -> TimeSpan.FromMilliseconds 10.0) (HttpRecorder.always 201)
              let props = propertiesFile cluster.BootstrapServers
              use child =
                  ReplayProcess.spawn
                      [ "run"; "-p"; props; "-t"; "t"; "-gid"; "g"; "--from"; "earliest"; "--until-end"; "--concurrency"; "2"
                        "--dest"; $"{server.Url}/s/%%k"; "--log-format"; "json"; "--progress-interval"; "200ms"; "--metrics-port"; "0" ]
              Expect.isTrue (server.WaitForAccepted(20, within)) "the replay is under way"
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..100 -> Data.store $"new-{i}" "{}" ]
              // The real program's endpoint, found from its own log line.
              let metricsUrl () =
                  child.Stderr.Split '\n'
                  |> Array.tryPick (fun l ->
                      let i = l.IndexOf "http://127.0.0.1:"
                      if i < 0 then None else Some(Uri(l.Substring(i).Split(' ', '"').[0])))
              Expect.isTrue (Wait.until within (fun () -> (metricsUrl ()).IsSome)) "prints where metrics are served"
              let url = (metricsUrl ()).Value
              Expect.isTrue (Wait.until within (fun () -> metric "replay_records_consumed_total" (scrape url) > 0.0)) "the program's /metrics counts"
              Expect.equal (child.WaitForExit within) (Some 0) $"exits 0; stderr: {child.Stderr}"
              let got = server.Accepted |> List.map idOf
              Expect.equal (Set.ofList got) (Set.ofList [ for i in 1..300 -> $"old-{i}" ]) "exactly the records present at start"
              Expect.equal got.Length 300 "each once"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 2) 300L "committed up to the start marks, not past them"
              let events =
                  child.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                  |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)
              let ofEvent name =
                  events |> Array.filter (fun e -> e.TryGetProperty("event") |> fst && e.GetProperty("event").GetString() = name)
              Expect.isNonEmpty (ofEvent "progress") "progress as JSON lines"
              let summary = Expect.wantSome (ofEvent "summary" |> Array.tryExactlyOne) "one summary"
              Expect.equal (summary.GetProperty("consumed").GetInt64()) 300L "the summary counts the records present at start"
              Expect.equal (summary.GetProperty("sent").GetInt64()) 300L "all sent"
          }

          test "--dry-run prints every request and sends and commits nothing" {
              use cluster = Broker.start "t" 2
              let ids = [ for i in 1..50 -> $"doc-{i}" ]
              Broker.produce cluster.BootstrapServers "t" [ for id in ids -> Data.store id $"{{\"id\":\"{id}\"}}" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let props = propertiesFile cluster.BootstrapServers
              let code, stdout, stderr =
                  ReplayProcess.run
                      [ "run"; "-p"; props; "-t"; "t"; "-gid"; "g"; "--from"; "earliest"; "--until-end"; "--dry-run"
                        "--dest"; $"{server.Url}/submit/telemetry/%%k" ]
                      within
              Expect.equal code 0 $"exits 0; stderr: {stderr}"
              Expect.isEmpty server.Hits "the HTTP server received nothing"
              let lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
              Expect.equal lines.Length ids.Length "one line per request"
              for id in ids do
                  let body = $"{{\"id\":\"{id}\"}}"
                  let line = lines |> Array.tryFind (fun l -> l.StartsWith $"POST {server.Url}/submit/telemetry/{id} ")
                  let line = Expect.wantSome line $"{id} printed with method and URL"
                  Expect.stringContains line $"({body.Length} bytes)" "the body size"
                  Expect.stringContains line "X-Replay-Id: t/" "the headers"
              Expect.stringContains stderr "dry run: 50 requests printed" "the summary says so"
              let committed = Broker.committed cluster.BootstrapServers "g" "t" 2
              Expect.isTrue (committed |> Map.forall (fun _ o -> o < 0L)) $"no offsets committed: {committed}"
          }

          test "the packed tool installs into a temporary tool path and replay --help runs" {
              let root =
                  let rec up (dir: DirectoryInfo) =
                      if File.Exists(Path.Combine(dir.FullName, "Replay.sln")) then dir.FullName else up dir.Parent
                  up (DirectoryInfo AppContext.BaseDirectory)
              let work = Temp.dir ()
              let packages = Path.Combine(work, "packages")
              let tools = Path.Combine(work, "tools")
              let dotnet (args: string list) =
                  let info = Diagnostics.ProcessStartInfo("dotnet", args, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = root)
                  use p = Diagnostics.Process.Start info
                  let out = p.StandardOutput.ReadToEndAsync()
                  let err = p.StandardError.ReadToEndAsync()
                  p.WaitForExit()
                  p.ExitCode, out.Result + err.Result
              // The host the tests run against is already built: pack it as build.ps1 pack does, without rebuilding.
              // The configuration the tests were built in (build.ps1 test builds Release).
              let configuration = if AppContext.BaseDirectory.Contains "/bin/Release/" then "Release" else "Debug"
              let code, output = dotnet [ "pack"; "src/Replay.Host"; "-c"; configuration; "--no-build"; "-o"; packages; "-nologo" ]
              Expect.equal code 0 $"dotnet pack: {output}"
              // Only the local folder as a source: the install must not depend on (or pick up) anything else.
              let config = Path.Combine(work, "nuget.config")
              File.WriteAllText(config, $"""<configuration><packageSources><clear /><add key="local" value="{packages}" /></packageSources></configuration>""")
              let code, output = dotnet [ "tool"; "install"; "--tool-path"; tools; "--configfile"; config; "Replay" ]
              Expect.equal code 0 $"dotnet tool install: {output}"
              let run (args: string list) =
                  let info = Diagnostics.ProcessStartInfo(Path.Combine(tools, "replay"), args, RedirectStandardOutput = true, RedirectStandardError = true)
                  use p = Diagnostics.Process.Start info
                  let out = p.StandardOutput.ReadToEndAsync()
                  let err = p.StandardError.ReadToEndAsync()
                  Expect.isTrue (p.WaitForExit 30000) "replay answers within 30 s"
                  p.ExitCode, out.Result, err.Result
              let code, help, err = run [ "--help" ]
              Expect.equal code 0 $"replay --help exits 0; stderr: {err}"
              Expect.stringContains help "replay run --help" "the root help says where to start"
              let code, help, _ = run [ "run"; "--help" ]
              Expect.equal code 0 "replay run --help exits 0"
              for flag in [ "--metrics-port"; "--from"; "--reset"; "--dry-run"; "--until-end"; "--log-format"; "Examples:" ] do
                  Expect.stringContains help flag $"run's help shows {flag}"
              // The installed layout must still find librdkafka, for the embedded broker too.
              let code, demo, err = run [ "demo"; "--count"; "200" ]
              Expect.equal code 0 $"replay demo from the installed tool; stderr: {err}"
              Expect.stringContains demo "every record consumed is accounted for" "the demo's numbers add up"
              let code, compared, err = run [ "demo"; "--compare"; "--count"; "300" ]
              Expect.equal code 0 $"replay demo --compare from the installed tool; stderr: {err}"
              Expect.stringContains compared "exactly the documents the new server changed came out different" "the comparison finds what changed"
          } ]
