/// Kafka SSL/SASL settings pass from the properties file to librdkafka unchanged;
/// when librdkafka refuses one, `replay run` prints librdkafka's reason (exit 2 when
/// the client cannot even be created, a logged reason while it keeps trying to
/// connect), never a stack trace, and never the password next to it.
module Replay.Tests.KafkaSecurityTests

open System
open Expecto
open Replay.Tests
open Replay.Tests.ChildReplay

let private within = TimeSpan.FromSeconds 60.0
let private password = "Kafka-Pa55word-e4f1"

/// Runs `replay run` with a properties file holding `lines` against `bootstrap`.
let private spawnWith (dir: Certificates.TempDir) (bootstrap: string) (lines: string list) =
    ReplayProcess.spawn
        [ "run"; "-b"; bootstrap; "-t"; "t"; "-gid"; "kafka-security"; "-p"; properties (dir.File "kafka.properties") lines
          "--from"; "earliest"; "--dest"; "http://127.0.0.1:1/submit/%k" ]

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Kafka security settings"
        [ test "settings librdkafka refuses at start give its reason and exit 2, without a stack trace or the password" {
              use dir = new Certificates.TempDir()
              let missingCa = dir.File "missing-ca.pem"
              let missingKey = dir.File "missing.key"
              for lines, reason in
                  [ [ "security.protocol=SSL"; $"ssl.ca.location={missingCa}" ], "ssl.ca.location failed"
                    [ "security.protocol=SSL"; $"ssl.key.location={missingKey}"; $"ssl.key.password={password}" ], "ssl.key.location failed"
                    [ "security.protocol=SSLL" ], "Invalid value \"SSLL\" for configuration property \"security.protocol\""
                    [ $"sasl.pasword={password}" ], "No such configuration property: \"sasl.pasword\"" ] do
                  use child = spawnWith dir "127.0.0.1:1" lines
                  let code = child.WaitForExit within
                  let output = child.Stdout + child.Stderr
                  Expect.equal code (Some 2) $"{lines}: exit 2; output: {output}"
                  // Refused keys and values are named from the file (all at once); files librdkafka cannot load, at start.
                  Expect.stringContains output reason $"{lines}: librdkafka's reason"
                  Expect.isTrue (output.Contains "Kafka refused the settings: " || output.Contains "kafka.properties(") $"{lines}: says where: {output}"
                  Expect.isFalse (hasStackTrace output) $"{lines}: no stack trace"
                  Expect.isFalse (output.Contains password) $"{lines}: the password is not printed"
          }

          test "a security protocol the broker does not speak is logged with librdkafka's reason while the replay keeps trying" {
              use cluster = Broker.start "t" 1
              use dir = new Certificates.TempDir()
              for lines, reason in
                  [ [ "security.protocol=SSL" ], "SSL handshake failed"
                    [ "security.protocol=SASL_PLAINTEXT"; "sasl.mechanism=PLAIN"; "sasl.username=replay"; $"sasl.password={password}" ],
                    "SASL" ] do
                  use child = spawnWith dir cluster.BootstrapServers lines
                  Expect.isTrue (Wait.until within (fun () -> child.Stderr.Contains reason)) $"{lines}: librdkafka's reason is logged; stderr: {child.Stderr}"
                  Expect.isFalse child.Process.HasExited "the replay keeps trying, as librdkafka does"
                  child.Signal 15
                  Expect.equal (child.WaitForExit within) (Some 0) $"{lines}: SIGTERM stops it cleanly; stderr: {child.Stderr}"
                  Expect.isFalse (hasStackTrace child.Stderr) $"{lines}: no stack trace"
                  Expect.isFalse ((child.Stdout + child.Stderr).Contains password) $"{lines}: the password is not printed"
          } ]
