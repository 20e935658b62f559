/// The command line as a Bagheera user and an operator meet it, through the real program:
/// Mozilla's own command line in the JVM's order, flags with units and words, help that shows
/// values the way they are written, typos answered with the nearest name, and bad input answered
/// with a message naming the flag and exit code 2 — never a .NET type name or a stack trace.
module Replay.Tests.CliTests

open System
open System.IO
open Expecto
open Replay.Host.Cli
open Replay.Tests
open Replay.Tests.ChildReplay

let private within = TimeSpan.FromSeconds 60.0

/// `replay run` with everything it needs except a reachable Kafka: it gets through the flags,
/// then stops at the pre-flight with 69 after a second. Exit 69 means "every flag was accepted".
let private runArgs (extra: string list) =
    [ "run"; "-b"; $"127.0.0.1:{HttpRecorder.freePort ()}"; "-t"; "t"; "-gid"; "g"; "--dest"; "http://127.0.0.1:9/s/%k"
      "--connect-timeout"; "1s" ]
    @ extra

let private commands (names: string list) = Collections.Generic.HashSet<string>(names) :> Collections.Generic.IReadOnlySet<string>

let private noDotNetLeaks (text: string) =
    Expect.isFalse (text.Contains "System.") $"no .NET type names: {text}"
    Expect.isFalse (hasStackTrace text) $"no stack trace: {text}"

[<Tests>]
let tests =
    testList
        "Cli"
        [ test "Bagheera's class name means `run` wherever it stands; bare flags mean `run` too" {
              let norm args = (BagheeraArgs.Normalize(args, commands [ "run"; "demo" ], fun _ -> false)).Args
              Expect.equal (norm [| "com.mozilla.bagheera.consumer.KafkaReplayConsumer"; "-t"; "x" |]) [| "run"; "-t"; "x" |] "class name first"
              Expect.equal (norm [| "-Dx.y=1"; "com.mozilla.bagheera.consumer.KafkaReplayConsumer"; "-t"; "x" |]) [| "run"; "-t"; "x" |] "after a JVM property"
              Expect.equal (norm [| "-t"; "x"; "com.mozilla.bagheera.consumer.KafkaReplayConsumer" |]) [| "run"; "-t"; "x" |] "last"
              Expect.equal (norm [| "-t"; "x" |]) [| "run"; "-t"; "x" |] "no command"
              Expect.equal (norm [| "--help" |]) [| "--help" |] "help stays help"
          }

          test "the JVM's proxy properties become --proxy and --no-proxy; others are noted by name only" {
              let got =
                  BagheeraArgs.Normalize(
                      [| "run"; "-Dhttp.proxyHost=proxy.local"; "-Dhttp.proxyPort=3128"; "-Dhttp.nonProxyHosts=localhost|*.internal"
                         "-Djavax.net.ssl.keyStorePassword=hunter2"; "-t"; "x" |],
                      commands [ "run" ],
                      fun _ -> false
                  )
              Expect.equal got.Args [| "run"; "-t"; "x"; "--proxy"; "http://proxy.local:3128"; "--no-proxy"; "localhost,*.internal" |] "rewritten"
              Expect.equal got.Notes.Count 1 "one note for the one property ignored"
              Expect.stringContains got.Notes[0] "-Djavax.net.ssl.keyStorePassword" "names it"
              Expect.isFalse (got.Notes[0].Contains "hunter2") "never its value"
          }

          test "durations and sizes read as an operator writes them, and print that way" {
              for text, expected in [ "500ms", 0.5; "30s", 30.0; "5m", 300.0; "2h", 7200.0; "1d", 86400.0; "15", 15.0; "00:00:30", 30.0 ] do
                  match Duration.TryParse text with
                  | true, value -> Expect.equal value.TotalSeconds expected text
                  | _ -> failtest $"'{text}' should parse"
              for text in [ "soon"; "-5s"; "" ] do
                  Expect.isFalse (fst (Duration.TryParse text)) $"'{text}' is refused"
              Expect.equal (Duration.Format(TimeSpan.FromSeconds 30.0)) "30s" "30s"
              Expect.equal (Duration.Format(TimeSpan.FromMinutes 2.0)) "2m" "2m"
              Expect.equal (Duration.Format(TimeSpan.FromMilliseconds 1500.0)) "1500ms" "1500ms"
              for text, expected in [ "64MiB", 64L <<< 20; "64 MiB", 64L <<< 20; "8kib", 8192L; "1GB", 1_000_000_000L; "1048576", 1048576L; "1.5KiB", 1536L ] do
                  match ByteSize.TryParse text with
                  | true, value -> Expect.equal value expected text
                  | _ -> failtest $"'{text}' should parse"
              for text in [ "lots"; "-1"; "1.5B"; "MiB" ] do
                  Expect.isFalse (fst (ByteSize.TryParse text)) $"'{text}' is refused"
              Expect.equal (ByteSize.Format(64L <<< 20)) "64 MiB" "64 MiB"
              Expect.equal (ByteSize.Format 1000L) "1000 B" "1000 B"
          }

          test "the nearest name for a typo; none for something else entirely" {
              Expect.equal (Suggest.Nearest("--dets", [ "--dest"; "--delete"; "--topic" ])) "--dest" "a swap"
              Expect.equal (Suggest.Nearest("rn", [ "run"; "demo"; "rules" ])) "run" "a missing letter"
              Expect.equal (Suggest.Nearest("telemtry", [ "telemetry"; "crash" ])) "telemetry" "a topic"
              Expect.isNull (Suggest.Nearest("zzz", [ "run"; "demo" ])) "nothing close"
          }

          test "bad input exits 2 with a message that names the flag or file, never a .NET type" {
              let cases =
                  [ [ "run"; "--bogus" ], "unknown flag '--bogus'"
                    [ "run"; "-t"; "x"; "-gid"; "g"; "--dest"; "http://h/%k" ], "--bootstrap-servers"
                    [ "run"; "-t"; "x"; "-b"; "127.0.0.1:1"; "--dest"; "http://h/%k" ], "-gid"
                    runArgs [ "--sample"; "1.5" ], "--sample"
                    runArgs [ "--sample"; "half" ], "--sample 'half': write a number"
                    runArgs [ "--concurrency"; "many" ], "--concurrency 'many': write a whole number (requests at once), or auto"
                    runArgs [ "--concurrency"; "0" ], "--concurrency 0: must be at least 1, or auto"
                    runArgs [ "--concurrency"; "auto"; "--max-concurrency"; "0" ], "--max-concurrency 0: must be at least 1"
                    runArgs [ "--concurrency"; "auto"; "--max-concurrency"; "20000" ], "--max-concurrency 20000: at most 10000"
                    runArgs [ "--concurrency"; "auto"; "--max-concurrency"; "lots" ], "--max-concurrency 'lots': write a whole number"
                    runArgs [ "--concurrency"; "16"; "--max-concurrency"; "32" ], "--max-concurrency goes with --concurrency auto"
                    runArgs [ "--pipeline"; "0" ], "--pipeline 0: must be between 1 (one request at a time) and 64"
                    runArgs [ "--pipeline"; "65" ], "--pipeline 65: must be between 1 (one request at a time) and 64"
                    runArgs [ "--pipeline"; "deep" ], "--pipeline"
                    runArgs [ "-nt"; "8"; "--concurrency"; "auto" ], "-nt 8 is a fixed number of requests at once and --concurrency auto an adaptive one"
                    runArgs [ "--max-records"; "1e3x" ], "--max-records '1e3x'"
                    runArgs [ "--max-in-flight-bytes"; "lots" ], "--max-in-flight-bytes 'lots': write bytes, or a size with a unit"
                    runArgs [ "--max-payload-bytes"; "4GiB" ], "--max-payload-bytes '4GiB': at most 2 GiB"
                    runArgs [ "--copy-keys"; "maybe" ], "--copy-keys 'maybe': write true or false"
                    runArgs [ "--request-timeout"; "soon" ], "--request-timeout"
                    [ "run"; "-t"; "x"; "-b"; "127.0.0.1:1"; "-gid"; "g"; "--dest"; "http://h/%k"; "--connect-timeout"; "0s" ], "--connect-timeout"
                    [ "run"; "-t"; "x"; "-b"; "127.0.0.1:1"; "-gid"; "g"; "--dest"; "ftp://h/%k" ], "--dest"
                    [ "run"; "-t"; "x"; "-p"; "/nonexistent.properties"; "-gid"; "g"; "--dest"; "http://h/%k" ], "/nonexistent.properties"
                    [ "sink"; "--port"; "http" ], "--port 'http'"
                    [ "produce"; "-b"; "127.0.0.1:1"; "-t"; "t"; "--count"; "ten" ], "--count 'ten'"
                    [ "broker"; "--partitions"; "0" ], "--partitions 0" ]
              for args, expected in cases do
                  let code, stdout, stderr = ReplayProcess.run args within
                  Expect.equal code 2 $"{args} exits 2 ({stderr})"
                  Expect.stringContains stderr expected $"{args} names what is wrong"
                  noDotNetLeaks (stdout + stderr)
          }

          test "a bad flag shows the usage of its command" {
              let _, _, stderr = ReplayProcess.run [ "run"; "--bogus" ] within
              Expect.stringContains stderr "Usage: replay run [options]" "usage line"
          }

          test "typos get the nearest flag or command" {
              let code, _, stderr = ReplayProcess.run [ "rn" ] within
              Expect.equal code 2 "exit 2"
              Expect.stringContains stderr "unknown command 'rn'; did you mean run?" "the command"
              let code, _, stderr = ReplayProcess.run (runArgs [ "--dets"; "http://h/%k" ]) within
              Expect.equal code 2 "exit 2"
              Expect.stringContains stderr "unknown flag '--dets'; did you mean --dest?" "the flag"
              Expect.isFalse (stderr.Contains "unexpected 'http://h/%k'") "the unknown flag's value is not a second complaint"
          }

          test "a destination without http:// says so, rather than blaming record values" {
              let code, _, stderr =
                  ReplayProcess.run [ "run"; "-t"; "x"; "-b"; "127.0.0.1:1"; "-gid"; "g"; "--dest"; "127.0.0.1:8080/submit/telemetry/%k" ] within
              Expect.equal code 2 $"exit 2 ({stderr})"
              Expect.stringContains stderr "has no scheme: write http://127.0.0.1:8080/submit/telemetry/%k" "the fix"
              Expect.isFalse (stderr.Contains "scheme or host") "not the record-value message"
          }

          test "units on sizes, yes/no on booleans, hh:mm:ss durations: accepted" {
              let code, _, stderr =
                  ReplayProcess.run
                      (runArgs
                          [ "--max-in-flight-bytes"; "64MiB"; "--max-payload-bytes"; "1 MiB"; "--copy-keys"; "yes"; "--delete"; "no"
                            "--validatejson"; "on"; "--request-timeout"; "00:00:30" ])
                      within
              Expect.equal code ExitCodes.KafkaUnreachable $"the flags were accepted; it stopped only at the absent broker ({stderr})"
          }

          test "help: one line per command at the top; flags, defaults as written and examples in each command's help" {
              let code, top, _ = ReplayProcess.run [ "--help" ] within
              Expect.equal code 0 "--help exits 0"
              Expect.isLessThan (top.Split('\n').Length) 30 $"the top level is short: {top}"
              for command in [ "run"; "compare"; "demo"; "broker"; "produce"; "sink"; "redrive"; "ingest"; "rules" ] do
                  let line = top.Split('\n') |> Array.filter (fun l -> l.TrimStart().StartsWith(command + " "))
                  Expect.equal line.Length 1 $"one line for {command}"
                  let code, help, _ = ReplayProcess.run [ command; "--help" ] within
                  Expect.equal code 0 $"{command} --help exits 0"
                  Expect.stringContains help "Examples:" $"{command} has examples"
                  noDotNetLeaks help
              let _, help, _ = ReplayProcess.run [ "run"; "--help" ] within
              for shown in [ "--request-timeout <duration>"; "[default: 30s]"; "[default: 64 MiB]"; "[default: 8 MiB]"; "--copy-keys <true|false>"
                             "-D, --delete <true|false>"; "[default: 2m]"; "--no-proxy <hosts>"; "--connect-timeout"; "69" ] do
                  Expect.stringContains help shown $"run's help shows {shown}"
              Expect.isFalse (help.Contains "00:00:") "no .NET time spans"
              Expect.isFalse (help.Contains "67108864") "no raw byte counts"
          }

          test "compare takes every flag of run but run's destinations (it names its own)" {
              let names (command: System.CommandLine.Command) = command.Options |> Seq.map _.Name |> Set.ofSeq
              let run = names (Replay.Host.Commands.RunCommand.Create())
              let compare = names (Replay.Host.Commands.CompareCommand.Create())
              Expect.isGreaterThan run.Count 40 "run's flags are all there to compare with"
              Expect.equal (Set.difference run compare) (set [ "--dest"; "--dest-best-effort" ]) "only the destinations are run's alone"
              Expect.containsAll compare [ "--state-dir"; "--max-dead-letter-ratio"; "--primary"; "--candidate"; "--secondary" ] "including these"
          }

          test "-Dhttp.nonProxyHosts alone is not -D -h: no help, no exit 0, a note that it was ignored" {
              let code, stdout, stderr = ReplayProcess.run (runArgs [ "-Dhttp.nonProxyHosts=localhost" ]) within
              Expect.equal code ExitCodes.KafkaUnreachable $"it ran (and found no Kafka) instead of printing help ({stdout})"
              Expect.isFalse (stdout.Contains "Usage:") "no help"
              Expect.stringContains stderr "ignoring -Dhttp.nonProxyHosts" "says it had nothing to apply to"
          }

          test "-D notes are printed when the settings are refused too" {
              let code, _, stderr = ReplayProcess.run (runArgs [ "-Dlog4j.configuration=x.properties"; "--sample"; "2" ]) within
              Expect.equal code 2 $"bad settings ({stderr})"
              Expect.stringContains stderr "ignoring -Dlog4j.configuration" "the note"
              Expect.stringContains stderr "--sample" "and the refusal"
          }

          test "--no-proxy without a proxy is refused with the fix" {
              let code, _, stderr = ReplayProcess.run (runArgs [ "--no-proxy"; "localhost" ]) within
              Expect.equal code 2 $"exit 2 ({stderr})"
              Expect.stringContains stderr "--no-proxy makes exceptions to --proxy" "why"
              Expect.stringContains stderr "NO_PROXY" "what to do with an environment proxy"
          }

          test "Kafka 0.8 keys and keys librdkafka refuses are named all at once, with the replacement" {
              let file = Temp.file "kafka.consumer.properties"
              File.WriteAllLines(
                  file,
                  [ "zk.connect=zk:2181"; "autocommit.interval.ms=1000"; "consumer.timeout.ms=5000"; "rebalance.max.retries=4"
                    "sasl.pasword=Secret-9f1"; "security.protocol=SSLL"; "socket.timeout.ms=30000" ]
              )
              let code, _, stderr = ReplayProcess.run [ "run"; "-p"; file; "-t"; "t"; "-gid"; "g"; "--dest"; "http://h/%k" ] within
              Expect.equal code 2 $"exit 2 ({stderr})"
              for expected in [ $"{file}: 6 settings Kafka cannot use"; "(1): 'zk.connect'"; "bootstrap.servers"
                                "(2): 'autocommit.interval.ms'"; "rename it to auto.commit.interval.ms"; "(3): 'consumer.timeout.ms'"; "--until-end"
                                "(4): 'rebalance.max.retries'"; "(5): 'sasl.pasword'"; "did you mean sasl.password?"; "(6): 'security.protocol'" ] do
                  Expect.stringContains stderr expected $"names {expected}"
              Expect.isFalse (stderr.Contains "(7)") "socket.timeout.ms is a librdkafka key too"
              Expect.isFalse (stderr.Contains "Secret-9f1") "no value is repeated"
          } ]
