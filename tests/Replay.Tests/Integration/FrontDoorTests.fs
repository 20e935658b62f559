/// The operator's front door, through the real program against the embedded broker: what an
/// absent broker, a missing topic, a busy group or a resumed group sound like; Mozilla's command
/// line in the JVM's order; the start banner and JSON logs; the progress line on a real
/// pseudo-terminal; and every command's errors and signals.
module Replay.Tests.FrontDoorTests

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open System.Text.RegularExpressions
open Expecto
open Replay.Host.Cli
open Replay.Tests
open Replay.Tests.ChildReplay

let private within = TimeSpan.FromSeconds 60.0

let private lines (text: string) =
    text.Split('\n', StringSplitOptions.RemoveEmptyEntries) |> Array.map (fun l -> l.TrimEnd '\r')

/// Every line parsed as JSON; fails the test on a line that is not.
let private jsonLines (text: string) =
    lines text
    |> Array.map (fun line ->
        try
            JsonDocument.Parse(line).RootElement
        with :? JsonException ->
            failtestf "not a JSON line: %s" line)

let private str (e: JsonElement) (name: string) =
    match e.TryGetProperty name with
    | true, v when v.ValueKind = JsonValueKind.String -> v.GetString()
    | _ -> null

let private events name (all: JsonElement[]) = all |> Array.filter (fun e -> str e "event" = name)

let private props (bootstrap: string) (extra: string list) =
    properties (Temp.file "kafka.properties") ([ $"bootstrap.servers={bootstrap}" ] @ extra)

let private count (needle: string) (text: string) =
    Regex.Matches(text, Regex.Escape needle).Count

/// The ids replayed to a recorder (last path segment).
let private ids (server: HttpRecorder.Recorder) =
    server.Accepted |> List.map (fun h -> h.Path.Substring(h.Path.LastIndexOf '/' + 1)) |> Set.ofList

/// Runs `replay ARGS` under `script` on a pseudo-terminal `columns` wide; returns the exit code and
/// everything the terminal received.
let private onTerminal (columns: int) (args: string list) =
    let quote (s: string) = "'" + s.Replace("'", "'\\''") + "'"
    let command =
        $"stty cols {columns} rows 24; exec dotnet {quote ReplayProcess.programPath} "
        + String.Join(" ", args |> List.map quote)
    let info = ProcessStartInfo("script", RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false)
    for a in [ "-qfec"; command; "/dev/null" ] do
        info.ArgumentList.Add a
    use proc = Process.Start info
    let out = proc.StandardOutput.ReadToEndAsync()
    let err = proc.StandardError.ReadToEndAsync()
    Expect.isTrue (proc.WaitForExit(int within.TotalMilliseconds)) "the replay on the terminal ends"
    proc.WaitForExit()
    proc.ExitCode, out.Result + err.Result

let private ansi = Regex(@"\x1b(\[[0-9;?]*[A-Za-z]|[=>])")

/// The pieces a terminal shows: lines, and within a line the text after each carriage return.
let private fragments (output: string) =
    output.Split('\n')
    |> Array.collect (fun line -> line.Split('\r'))
    |> Array.map (fun f -> ansi.Replace(f, ""))
    |> Array.filter (fun f -> f <> "")

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Front door"
        [ test "an absent broker: a few deduplicated lines with a count, exit 69, in text and in JSON with real levels" {
              let port = HttpRecorder.freePort ()
              let args format =
                  [ "run"; "-b"; $"127.0.0.1:{port}"; "-t"; "t"; "-gid"; "g"; "--dest"; "http://127.0.0.1:9/s/%k"
                    "--until-end"; "--connect-timeout"; "3s"; "--log-format"; format ]
              let code, _, stderr = ReplayProcess.run (args "text") within
              Expect.equal code ExitCodes.KafkaUnreachable $"exit 69, not 2 (bad settings): {stderr}"
              let all = lines stderr
              Expect.isLessThan all.Length 10 $"a handful of lines, not one per attempt: {stderr}"
              let reach = $"cannot reach 127.0.0.1:{port}: connection refused"
              Expect.equal (count $"kafka: {reach}" stderr) 2 $"shown once, then once with its count: {stderr}"
              Expect.isMatch stderr $"kafka: {Regex.Escape reach}; [0-9]+ attempts in [0-9]+ s" "the count"
              Expect.stringContains stderr $"cannot reach Kafka at 127.0.0.1:{port} within 3s (--connect-timeout)" "the verdict"
              Expect.isFalse (stderr.Contains "kafka Error") "librdkafka's own line is not repeated next to the error"
              Expect.isFalse (stderr.Contains "refused the settings") "not called a settings problem"

              let code, _, stderr = ReplayProcess.run (args "json") within
              Expect.equal code ExitCodes.KafkaUnreachable "exit 69 in JSON mode too"
              let all = jsonLines stderr
              let kafka = events "kafka" all
              Expect.isNonEmpty kafka "Kafka's complaints are events"
              for e in kafka do
                  Expect.equal (str e "level") "error" "an unreachable broker is an error, not info"
                  Expect.equal (str e "broker") $"127.0.0.1:{port}" "the broker as a field"
                  Expect.equal (str e "problem") "unreachable" "the kind of problem as a field"
              Expect.isTrue (kafka |> Array.exists (fun e -> fst (e.TryGetProperty "attempts"))) "the count as a field"
              let verdict = Expect.wantSome (events "preflight" all |> Array.tryExactlyOne) "one verdict"
              Expect.equal (verdict.GetProperty("exit_code").GetInt32()) ExitCodes.KafkaUnreachable "its exit code"
          }

          test "a broker that goes away mid-run: said once, counted, and the replay carries on" {
              use cluster = Broker.start "t" 2
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..20 -> Data.store $"a-{i}" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              use child =
                  ReplayProcess.spawn
                      [ "run"; "-p"; props cluster.BootstrapServers []; "-t"; "t"; "-gid"; "g"; "--from"; "earliest"
                        "--dest"; $"{server.Url}/s/%%k" ]
              Expect.isTrue (server.WaitForAccepted(20, within)) "replaying"
              cluster.SetBrokerDown 1
              Expect.isTrue (Wait.until within (fun () -> child.Stderr.Contains "kafka: ")) $"the outage is reported: {child.Stderr}"
              cluster.SetBrokerUp 1
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..20 -> Data.store $"b-{i}" "{}" ]
              Expect.isTrue (server.WaitForAccepted(40, within)) "replaying again once the broker is back"
              child.Signal 15
              Expect.equal (child.WaitForExit within) (Some 0) $"stops cleanly: {child.Stderr}"
              let kafka = lines child.Stderr |> Array.filter (fun l -> l.StartsWith "kafka: ")
              Expect.isLessThan kafka.Length 12 $"a few lines for the whole outage: {child.Stderr}"
              for line in kafka |> Array.map (fun l -> Regex.Replace(l, "; [0-9]+ attempts in [0-9]+ s$", "")) |> Array.countBy id do
                  Expect.isLessThanOrEqual (snd line) 2 $"each message at most twice (once, then with its count): {fst line}"
          }

          test "a missing topic: exit 2 with the nearest name and the topics there are" {
              use cluster = Broker.start "telemetry" 1
              cluster.CreateTopic("crash", 1)
              let code, _, stderr =
                  ReplayProcess.run
                      [ "run"; "-b"; cluster.BootstrapServers; "-t"; "telemtry"; "-gid"; "g"; "--dest"; "http://127.0.0.1:9/%k"; "--until-end" ]
                      within
              Expect.equal code 2 $"exit 2: {stderr}"
              Expect.stringContains stderr "topic 'telemtry' does not exist" "what is wrong"
              Expect.stringContains stderr "did you mean telemetry?" "the nearest name"
              Expect.stringContains stderr "(topics there: crash, telemetry)" "the topics"
              Expect.isFalse (stderr.Contains "Subscribed topic not available") "not librdkafka's words"
              let code, _, stderr =
                  ReplayProcess.run
                      [ "redrive"; "--topic"; "telemtry"; "-b"; cluster.BootstrapServers; "-gid"; "g"; "--dest"; "http://127.0.0.1:9/%k" ]
                      within
              Expect.equal code 2 $"redrive: exit 2 too: {stderr}"
              Expect.stringContains stderr "did you mean telemetry?" "redrive: the nearest name too"
          }

          test "a ^regex that matches no topic yet waits, says so, and replays once one appears" {
              use cluster = Broker.start "other" 1
              use server = HttpRecorder.start (HttpRecorder.always 201)
              use child =
                  ReplayProcess.spawn
                      [ "run"; "-p"; props cluster.BootstrapServers []; "-t"; "^tele.*"; "-gid"; "g"; "--from"; "earliest"
                        "--dest"; $"{server.Url}/s/%%k" ]
              Expect.isTrue (Wait.until within (fun () -> child.Stderr.Contains "no topic matches ^tele.* yet; waiting")) $"says it waits: {child.Stderr}"
              Expect.isFalse child.Process.HasExited "and waits rather than exiting"
              cluster.CreateTopic("telemetry", 2)
              Broker.produce cluster.BootstrapServers "telemetry" [ for i in 1..10 -> Data.store $"r-{i}" "{}" ]
              Expect.isTrue (server.WaitForAccepted(10, within)) $"replays the new topic: {child.Stderr}"
              child.Signal 15
              Expect.equal (child.WaitForExit within) (Some 0) "stops cleanly"
          }

          test "Mozilla's command line in the JVM's order: -Dhttp.nonProxyHosts honoured, other -D noted once, class name anywhere" {
              use cluster = Broker.start "t" 2
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..30 -> Data.store $"m-{i}" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              // The proxy records what reaches it: nothing should, 127.0.0.1 is excepted.
              use proxy = HttpRecorder.start (HttpRecorder.always 502)
              let code, _, stderr =
                  ReplayProcess.run
                      [ "-Dhttp.proxyHost=127.0.0.1"; $"-Dhttp.proxyPort={proxy.Port}"; "-Dhttp.nonProxyHosts=localhost|127.*"
                        "-Dlog4j.configuration=file:conf/log4j.properties"; "com.mozilla.bagheera.consumer.KafkaReplayConsumer"
                        "-t"; "t"; "-gid"; "bagheera"; "-p"; props cluster.BootstrapServers [ "auto.offset.reset=earliest" ]
                        "--copy-keys"; "true"; "--dest"; $"{server.Url}/submit/telemetry/%%k"; "--sample"; "1"; "--delete"; "false"
                        "--until-end" ]
                      within
              Expect.equal code 0 $"exit 0: {stderr}"
              Expect.equal (ids server) (set [ for i in 1..30 -> $"m-{i}" ]) "every record, straight to the destination"
              Expect.isEmpty proxy.Hits "nothing through the proxy: -Dhttp.nonProxyHosts excepts 127.*"
              Expect.equal (count "ignoring -Dlog4j.configuration" stderr) 1 "one line for the ignored property"
              Expect.stringContains stderr $"proxy http://127.0.0.1:{proxy.Port} (--no-proxy exceptions)" "the banner names the proxy"
          }

          test "a failure through the proxy names the proxy" {
              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ Data.store "p-1" "{}" ]
              let dead = Temp.file "dead.jsonl"
              let proxyPort = HttpRecorder.freePort ()
              let code, _, stderr =
                  ReplayProcess.run
                      [ "run"; "-p"; props cluster.BootstrapServers []; "-t"; "t"; "-gid"; "g"; "--from"; "earliest"; "--until-end"
                        "--dest"; "http://destination.invalid/s/%k"; "--proxy"; $"http://127.0.0.1:{proxyPort}"
                        "--max-retry-duration"; "1s"; "--dead-letter"; dead ]
                      within
              Expect.equal code 0 $"exit 0: {stderr}"
              let letter = Expect.wantSome (deadLetters dead |> List.tryExactlyOne) "one dead letter"
              Expect.stringContains letter.Reason $"through proxy http://127.0.0.1:{proxyPort}" $"the reason names the proxy: {letter.Reason}"
          }

          test "the start banner says everything in one line; in JSON every line is an object, dead letters included" {
              use cluster = Broker.start "t" 2
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..20 -> Data.store $"d-{i}" "{}" ]
              use server = HttpRecorder.start (fun hit _ -> if hit.Path.EndsWith "3" then 400 else 201)
              use dir = new RulesFiles.Directory()
              let rules = dir.File "rules.yaml"
              RulesFiles.write rules "defaults:\n  sample: 1\nrules: []\n"
              let state = Temp.dir ()
              let args format =
                  [ "run"; "-p"; props cluster.BootstrapServers []; "-t"; "t"; "-gid"; $"banner-{format}"; "--from"; "earliest"; "--until-end"
                    "--dest"; $"{server.Url}/s/%%k"; "--sample"; "1"; "--rules"; rules; "--log-format"; format ]
                  @ (if format = "json" then [ "--dead-letter"; "-" ] else [ "--state-dir"; state; "--pipeline"; "4" ])
              let code, _, stderr = ReplayProcess.run (args "text") within
              Expect.equal code 0 $"exit 0: {stderr}"
              let banner = Expect.wantSome (lines stderr |> Array.tryFind (fun l -> l.StartsWith "replay: group ")) "a banner"
              let deadLetterFile = IO.Path.Combine(state, "banner-text.dead-letters.jsonl")
              for part in [ "group banner-text"; "topic t"; "from earliest"; $"to {server.Url}/s/%%k"; "proxy none"; "sample 1 by document"
                            "answers defaults (2xx ok; 408, 429, 5xx retry; other fail)"; $"dead letters to file {deadLetterFile}"
                            $"rules {rules} (generation 1)"; "concurrency 64 (pipelined, 4 a connection on http:// without a proxy)" ] do
                  Expect.stringContains banner part $"the banner says {part}"
              Expect.isNonEmpty (deadLetters deadLetterFile) "the dead letters are in the group's default file"
              Expect.isMatch stderr @"replay: consumed 20, sent [0-9]+, skipped [0-9]+ .*; in [0-9.]+ s \([0-9]+ records/s\)" "the summary: one vocabulary, elapsed time and rate"

              let code, _, stderr = ReplayProcess.run (args "json") within
              Expect.equal code 0 $"exit 0: {stderr}"
              let all = jsonLines stderr
              let start = Expect.wantSome (events "start" all |> Array.tryExactlyOne) "one start event"
              Expect.equal (str start "group") "banner-json" "group"
              Expect.equal (str start "topic") "t" "topic"
              Expect.equal (str start "from") "earliest" "from"
              Expect.equal (start.GetProperty("destinations").[0].GetString()) $"{server.Url}/s/%%k" "destinations"
              Expect.equal (str start "proxy") "none" "proxy"
              Expect.equal (str start "rules") rules "rules"
              Expect.equal (start.GetProperty("rules_generation").GetInt32()) 1 "generation"
              Expect.isNotNull (str start "status_policy") "status policy"
              let dead = events "dead_letter" all
              Expect.isNonEmpty dead "dead letters are events"
              for e in dead do
                  Expect.equal (str e "level") "warn" "at level warn"
                  Expect.equal (str e "topic") "t" "with the topic"
                  Expect.isTrue (e.GetProperty("offset").GetInt64() >= 0L) "the offset"
                  Expect.stringContains (str e "reason") "400" "and the reason"
              let summary = Expect.wantSome (events "summary" all |> Array.tryExactlyOne) "one summary"
              Expect.isTrue (fst (summary.TryGetProperty "elapsed_s") && fst (summary.TryGetProperty "records_per_s")) "elapsed and rate"
              Expect.equal (summary.GetProperty("consumed").GetInt64())
                  (summary.GetProperty("sent").GetInt64() + summary.GetProperty("skipped").GetInt64() + summary.GetProperty("dead_letters").GetInt64())
                  "consumed = sent + skipped + dead letters"
              let levels = all |> Array.map (fun e -> str e "level") |> Set.ofArray
              Expect.isTrue (levels.Contains "warn") $"more than one level: {levels}"
          }

          test "a group with commits resumes them and says --from is ignored, for every kind of --from" {
              use cluster = Broker.start "t" 2
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..10 -> Data.store $"c-{i}" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let p = props cluster.BootstrapServers []
              let replay (extra: string list) =
                  ReplayProcess.run ([ "run"; "-p"; p; "-t"; "t"; "-gid"; "again"; "--until-end"; "--dest"; $"{server.Url}/s/%%k" ] @ extra) within
              let code, _, stderr = replay [ "--from"; "earliest" ]
              Expect.equal code 0 $"the first run: {stderr}"
              Expect.equal server.Accepted.Length 10 "replays everything once"
              let time = DateTimeOffset.UtcNow.AddHours(-1.0).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ")
              for from in [ "earliest"; "latest"; "-1h"; time ] do
                  let code, _, stderr = replay [ "--from"; from ]
                  Expect.equal code 0 $"--from {from}: {stderr}"
                  Expect.stringContains stderr "resuming the group's committed offsets on 2 of 2 partitions" $"--from {from}: says it resumes"
                  Expect.isMatch stderr "--from [^ ]+ is ignored for them, add --reset to start there" $"--from {from}: and how to start there"
                  Expect.stringContains stderr "consumed 0," $"--from {from}: nothing again"
              Expect.equal server.Accepted.Length 10 "nothing was sent twice"
          }

          test "a member that owns no partitions says why it waits" {
              use cluster = Broker.start "t" 1
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let p = props cluster.BootstrapServers []
              let startMember () = ReplayProcess.spawn [ "run"; "-p"; p; "-t"; "t"; "-gid"; "busy"; "--dest"; $"{server.Url}/s/%%k" ]
              use first = startMember ()
              Expect.isTrue (Wait.until within (fun () -> first.Stderr.Contains "assigned: t[0]")) $"the first member owns the partition: {first.Stderr}"
              use second = startMember ()
              Expect.isTrue
                  (Wait.until within (fun () -> second.Stderr.Contains "waiting for the group to assign partitions"))
                  $"the second says it waits: {second.Stderr}"
              Expect.stringContains second.Stderr "a previous member's session may hold them up to 45 s" "and why"
              for child in [ second; first ] do
                  child.Signal 15
                  Expect.equal (child.WaitForExit within) (Some 0) $"stops cleanly: {child.Stderr}"
          }

          test "on a terminal the progress line fits 80 and 40 columns, shows % and ETA, and leaves no fragments" {
              use cluster = Broker.start "t" 2
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..300 -> Data.store $"w-{i}" "{}" ]
              use server = HttpRecorder.startSlow (fun _ -> TimeSpan.FromMilliseconds 8.0) (HttpRecorder.always 201)
              for columns in [ 80; 40 ] do
                  let code, output =
                      onTerminal
                          columns
                          [ "run"; "-p"; props cluster.BootstrapServers []; "-t"; "t"; "-gid"; $"tty-{columns}"; "--from"; "earliest"
                            "--until-end"; "--concurrency"; "1"; "--progress-interval"; "200ms"; "--dest"; $"{server.Url}/s/%%k" ]
                  Expect.equal code 0 $"{columns} columns: exit 0: {output}"
                  let status = fragments output |> Array.filter (fun f -> f.Contains "rec/s" || f.Contains "ETA")
                  Expect.isNonEmpty status $"{columns} columns: a status line was shown: {output}"
                  for line in status do
                      Expect.isLessThan line.Length columns $"{columns} columns: '{line}' fits without wrapping"
                  Expect.isTrue (status |> Array.exists (fun l -> Regex.IsMatch(l, "[0-9]+% ETA [0-9]+:[0-9]{2}"))) $"{columns} columns: percent and ETA: %A{status}"
                  let summary = fragments output |> Array.filter (fun f -> f.Contains "consumed 300,")
                  Expect.isNonEmpty summary "the summary"
                  for line in summary do
                      Expect.isTrue (line.StartsWith "replay: consumed 300,") $"the summary is on a line of its own, no status left on it: '{line}'"
          }

          test "on a terminal, --concurrency auto shows its current limit on the progress line" {
              use cluster = Broker.start "t" 2
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..300 -> Data.store $"a-{i}" "{}" ]
              use server = HttpRecorder.startSlow (fun _ -> TimeSpan.FromMilliseconds 8.0) (HttpRecorder.always 201)
              let code, output =
                  onTerminal
                      160
                      [ "run"; "-p"; props cluster.BootstrapServers []; "-t"; "t"; "-gid"; "tty-auto"; "--from"; "earliest"; "--until-end"
                        "--concurrency"; "auto"; "--max-concurrency"; "16"; "--progress-interval"; "200ms"; "--dest"; $"{server.Url}/s/%%k" ]
              Expect.equal code 0 $"exit 0: {output}"
              let limits =
                  fragments output
                  |> Array.choose (fun f ->
                      let m = Regex.Match(f, "rec/s.*  limit ([0-9]+)")
                      if m.Success then Some(int m.Groups[1].Value) else None)
              Expect.isNonEmpty limits $"the status line shows the limit: {output}"
              Expect.isTrue (limits |> Array.forall (fun l -> l >= 1 && l <= 16)) $"within [1, --max-concurrency]: %A{limits}"
              Expect.stringContains output "concurrency auto (1 to 16)" "the banner says so"
          }

          test "--dry-run: the summary says what would be sent, not that it was" {
              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..5 -> Data.store $"y-{i}" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let args format =
                  [ "run"; "-p"; props cluster.BootstrapServers []; "-t"; "t"; "-gid"; "g"; "--from"; "earliest"; "--until-end"; "--dry-run"
                    "--dest"; $"{server.Url}/s/%%k"; "--log-format"; format ]
              let code, stdout, stderr = ReplayProcess.run (args "text") within
              Expect.equal code 0 $"exit 0: {stderr}"
              Expect.isEmpty server.Hits "nothing sent"
              Expect.stringContains stderr "consumed 5, would send 5," "would send"
              Expect.isFalse (Regex.IsMatch(stderr, "(sent|delivered) 5")) $"never 'sent 5': {stderr}"
              Expect.equal (lines stdout).Length 5 "one printed request per record"
              let code, _, stderr = ReplayProcess.run (args "json") within
              Expect.equal code 0 "exit 0"
              let summary = Expect.wantSome (events "summary" (jsonLines stderr) |> Array.tryExactlyOne) "a summary"
              Expect.equal (summary.GetProperty("sent").GetInt64()) 0L "sent 0"
              Expect.equal (summary.GetProperty("would_send").GetInt64()) 5L "would send 5"
          }

          test "sink on a taken port: one line and exit 2; a signal stops it in its own words" {
              use taken = HttpRecorder.start (HttpRecorder.always 201)
              let code, stdout, stderr = ReplayProcess.run [ "sink"; "--port"; string taken.Port ] within
              Expect.equal code 2 $"exit 2: {stderr}"
              Expect.stringContains stderr $"replay sink: cannot listen on 127.0.0.1:{taken.Port}: the address is already in use; choose another --port" "why and the fix"
              Expect.isFalse (hasStackTrace (stdout + stderr)) "no stack trace"
              use sink = ReplayProcess.spawn [ "sink"; "--port"; "0" ]
              Expect.isTrue (Wait.until within (fun () -> sink.Stdout.Contains "sink listening on")) "the sink listens"
              sink.Signal 15
              Expect.equal (sink.WaitForExit within) (Some 0) "exit 0"
              Expect.stringContains sink.Stderr "replay sink: stopping the sink" "its own words"
              Expect.isFalse (sink.Stderr.Contains "in-flight requests") "not the replay's"
          }

          test "produce to an absent broker: a signal ends it at once, without librdkafka's raw lines; a time-out exits 69" {
              let port = HttpRecorder.freePort ()
              use child = ReplayProcess.spawn [ "produce"; "-b"; $"127.0.0.1:{port}"; "-t"; "t"; "--count"; "10" ]
              Expect.isTrue (Wait.until within (fun () -> child.Stderr.Contains $"cannot reach 127.0.0.1:{port}")) $"says why: {child.Stderr}"
              let signalled = Stopwatch.StartNew()
              child.Signal 15
              Expect.equal (child.WaitForExit within) (Some 0) $"a signal ends it: {child.Stderr}"
              Expect.isLessThan signalled.Elapsed.TotalSeconds 10.0 "at once, not after librdkafka's five minutes"
              Expect.stringContains child.Stderr "replay produce: stopping" "in its own words"
              Expect.isFalse (child.Stderr.Contains "%3|") "no raw librdkafka lines"
              Expect.isFalse (child.Stderr.Contains "in-flight requests") "not the replay's words"
              let code, _, stderr = ReplayProcess.run [ "produce"; "-b"; $"127.0.0.1:{port}"; "-t"; "t"; "--connect-timeout"; "2s" ] within
              Expect.equal code ExitCodes.KafkaUnreachable $"exit 69: {stderr}"
              Expect.isLessThan (lines stderr).Length 6 $"a few lines: {stderr}"
          }

          test "broker --port: the same address across restarts, and a taken port is one line and exit 2" {
              let port = HttpRecorder.freePort ()
              for round in 1..2 do
                  use broker = ReplayProcess.spawn [ "broker"; "--port"; string port; "--topic"; "t"; "--partitions"; "2" ]
                  Expect.isTrue (Wait.until within (fun () -> broker.Stdout.Contains "bootstrap.servers=")) $"round {round}: it starts: {broker.Stderr}"
                  Expect.stringContains broker.Stdout $"bootstrap.servers=127.0.0.1:{port}" $"round {round}: the address asked for"
                  let bootstrap = $"127.0.0.1:{port}"
                  Broker.produce bootstrap "t" [ for i in 1..10 -> Data.store $"s-{round}-{i}" "{}" ]
                  use server = HttpRecorder.start (HttpRecorder.always 201)
                  let code, _, stderr =
                      ReplayProcess.run
                          [ "run"; "-b"; bootstrap; "-t"; "t"; "-gid"; "g"; "--from"; "earliest"; "--until-end"; "--dest"; $"{server.Url}/s/%%k" ]
                          within
                  Expect.equal code 0 $"round {round}: a replay through the fixed address: {stderr}"
                  Expect.equal server.Accepted.Length 10 $"round {round}: every record"
                  if round = 1 then
                      let code, _, stderr = ReplayProcess.run [ "broker"; "--port"; string port ] within
                      Expect.equal code 2 $"a second broker on the same port: exit 2: {stderr}"
                      Expect.stringContains stderr $"cannot listen on 127.0.0.1:{port}" "says why"
                      Expect.isFalse (hasStackTrace stderr) "no stack trace"
                  broker.Signal 15
                  Expect.equal (broker.WaitForExit within) (Some 0) $"round {round}: stops on a signal"
                  Expect.stringContains broker.Stderr "replay broker: stopping the broker" "in its own words"
          } ]

/// The repository's build script, as the README's first commands use it.
[<Tests>]
let buildScript =
    testSequenced
    <| testList
        "Build script"
        [ let root =
              lazy
                  (let rec up (dir: DirectoryInfo) =
                      if File.Exists(Path.Combine(dir.FullName, "build.ps1")) then dir.FullName else up dir.Parent
                   up (DirectoryInfo AppContext.BaseDirectory))
          let pwsh (args: string list) =
              let info = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = root.Value)
              for a in [ "pwsh"; "-NoProfile"; "build.ps1" ] @ args do
                  info.ArgumentList.Add a
              use p = Process.Start info
              let out = p.StandardOutput.ReadToEndAsync()
              let err = p.StandardError.ReadToEndAsync()
              Expect.isTrue (p.WaitForExit(300_000)) $"build.ps1 {args} ends"
              p.WaitForExit()
              p.ExitCode, out.Result + err.Result

          test "build.ps1 demo passes its arguments on" {
              let code, output = pwsh [ "demo"; "--count"; "300"; "--sample"; "1" ]
              Expect.equal code 0 $"exit 0: {output}"
              Expect.stringContains output "submit    300 HTTP submissions" "--count reached the demo"
              Expect.stringContains output "replay    sample 1 by document" "--sample too"
          }

          test "build.ps1 install puts a working replay where it says" {
              let tools = Path.Combine(Temp.dir (), "tools")
              let code, output = pwsh [ "install"; "--tool-path"; tools ]
              Expect.equal code 0 $"exit 0: {output}"
              Expect.stringContains output $"replay is installed in {tools}" "says where"
              let info = ProcessStartInfo(Path.Combine(tools, "replay"), "--help", RedirectStandardOutput = true, RedirectStandardError = true)
              use p = Process.Start info
              let help = p.StandardOutput.ReadToEnd()
              p.WaitForExit()
              Expect.equal p.ExitCode 0 "the installed replay runs"
              Expect.stringContains help "replay run --help" "and is this program"
          } ]
