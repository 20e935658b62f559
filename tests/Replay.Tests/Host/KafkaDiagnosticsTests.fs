/// librdkafka's messages as the operator reads them: in plain words, once, then counted.
/// A fake clock drives the window; the log is a StringWriter.
module Replay.Tests.KafkaDiagnosticsTests

open System
open System.IO
open Confluent.Kafka
open Expecto
open Replay.Host.Kafka

let private describe raw =
    let struct (text, _) = KafkaDiagnostics.Describe raw
    text

[<Tests>]
let tests =
    testList
        "Kafka diagnostics"
        [ test "librdkafka's wording made plain and stable" {
              let refused = "cannot reach 127.0.0.1:9: connection refused"
              for raw in
                  [ "[thrd:127.0.0.1:9/bootstrap]: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)"
                    "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 1ms in state CONNECT, 4 identical error(s) suppressed)"
                    "GroupCoordinator: 127.0.0.1:9: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)"
                    "127.0.0.1:9/1: Connect to ipv4#127.0.0.1:9 failed: Connection refused" ] do
                  Expect.equal (describe raw) refused raw
              Expect.equal (describe "1/1 brokers are down") "no broker answers (1 of 1 down)" "all down"
              Expect.equal
                  (describe "kafka-1:9092/bootstrap: Failed to resolve 'kafka-1:9092': Name or service not known (after 2ms in state CONNECT)")
                  "cannot resolve kafka-1:9092: name or service not known"
                  "unresolvable"
              Expect.equal (describe "ssl://127.0.0.1:9/bootstrap: SSL handshake failed: x") "127.0.0.1:9: SSL handshake failed: x" "other messages keep their words"
          }

          test "a message is shown once, counted while it repeats, and shown with its count once a window" {
              let log = new StringWriter()
              let mutable now = 0L
              use diagnostics = new KafkaDiagnostics(log, TimeSpan.FromSeconds 30.0, fun () -> now)
              let error = Error(ErrorCode.Local_Transport, "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)")
              for i in 1..380 do
                  now <- int64 i * 75L
                  diagnostics.OnError error
              Expect.equal (log.ToString().Trim()) "kafka: cannot reach 127.0.0.1:9: connection refused" "shown once so far"
              now <- 30_075L
              diagnostics.Flush(``final`` = false)
              Expect.stringContains (log.ToString()) "kafka: cannot reach 127.0.0.1:9: connection refused; 380 attempts in 30 s" "then with its count"
              let before = log.ToString()
              now <- 61_000L
              diagnostics.Flush(``final`` = false)
              Expect.equal (log.ToString()) before "a quiet window prints nothing, and forgets the message"
              diagnostics.OnError error
              Expect.equal (log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Length) 3 "its return is shown at once"
              Expect.equal diagnostics.LastProblem "cannot reach 127.0.0.1:9: connection refused" "the latest problem, for the exit message"
          } ]
