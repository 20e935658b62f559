/// Bagheera's Java .properties file, read for librdkafka: the format's corners, and the
/// Kafka 0.8 keys that must be explained rather than passed on.
module Replay.Tests.PropertiesFileTests

open System
open System.IO
open Expecto
open Replay.Host.Kafka

let private parse text =
    PropertiesFile.Parse text |> Seq.map (fun e -> e.Key, e.Value) |> List.ofSeq

let private write (text: string) =
    let path = Temp.file "kafka.consumer.properties"
    File.WriteAllText(path, text)
    path

[<Tests>]
let tests =
    testList
        "PropertiesFile"
        [ test "key=value, key: value and key value; comments and blank lines are skipped" {
              let got = parse "# comment\n! also a comment\n\na=1\nb: 2\nc 3\n  d = 4  \n"
              Expect.equal got [ "a", "1"; "b", "2"; "c", "3"; "d", "4  " ] "Java's separators (trailing blanks belong to the value)"
          }

          test "a trailing backslash continues the line; escapes are decoded" {
              let got = parse "list=a,\\\n    b,\\\n    c\npath=C\\\\kafka\\tx\nuni=caf\\u00e9\n"
              Expect.equal got [ "list", "a,b,c"; "path", "C\\kafka\tx"; "uni", "café" ] "continuations and escapes"
          }

          test "a key without a value has an empty value" {
              Expect.equal (parse "flag\n") [ "flag", "" ] "empty value"
          }

          test "librdkafka keys load as they are" {
              let loaded = PropertiesFile.Load(write "bootstrap.servers=k1:9092,k2:9092\nauto.offset.reset=earliest\n")
              Expect.isTrue loaded.IsOk "loads"
              Expect.equal loaded.Value["bootstrap.servers"] "k1:9092,k2:9092" "kept"
              Expect.equal loaded.Value["auto.offset.reset"] "earliest" "kept"
          }

          test "Kafka 0.8 keys are refused with the line and what to write instead" {
              let path = write "zk.connect=zk:2181\ngroupid=x\nconsumer.threads=4\nfetch.size=1048576\n"
              let loaded = PropertiesFile.Load path
              Expect.isFalse loaded.IsOk "refused"
              let message = loaded.Error
              Expect.stringContains message $"{path}(1): 'zk.connect'" "names the file and line"
              Expect.stringContains message "bootstrap.servers" "zk.connect -> bootstrap.servers"
              Expect.stringContains message "group.id" "groupid -> group.id"
              Expect.stringContains message "--concurrency" "consumer.threads -> --concurrency"
              Expect.stringContains message "fetch.max.bytes" "fetch.size -> fetch.max.bytes"
          }

          test "Kafka 0.8's prefetch keys point to the prefetch librdkafka reads, with the default a run really uses" {
              let loaded = PropertiesFile.Load(write "queued.max.message.chunks=10\n")
              Expect.isFalse loaded.IsOk "refused"
              let actual = Replay.Host.Kafka.ConsumerSettings.Build(readOnlyDict [ "bootstrap.servers", "k:9092" ], false)
              Expect.stringContains loaded.Error $"queued.max.messages.kbytes (the prefetch size; {actual.QueuedMaxMessagesKbytes.Value} by default)" "today's default"
          }

          test "the consumer config: prefetch defaults unless the file sets them; the no-loss settings always" {
              let config (pairs: (string * string) list) =
                  Replay.Host.Kafka.ConsumerSettings.Build(readOnlyDict pairs, false)
              let defaults = config [ "bootstrap.servers", "k:9092" ]
              Expect.equal defaults.QueuedMaxMessagesKbytes (Nullable 8192) "8 MB prefetch"
              Expect.equal defaults.FetchMaxBytes (Nullable(8 * 1024 * 1024)) "8 MB a fetch"
              let bigRecords = config [ "message.max.bytes", "20000000" ]
              Expect.equal bigRecords.FetchMaxBytes (Nullable()) "never below what one record may be"
              Expect.equal defaults.FetchQueueBackoffMs (Nullable 10) "short pause when the prefetch is full"
              Expect.equal defaults.AutoCommitIntervalMs (Nullable 1000) "commit every second"
              let tuned =
                  config [ "queued.max.messages.kbytes", "65536"; "fetch.queue.backoff.ms", "1000"; "fetch.max.bytes", "52428800"
                           "enable.auto.offset.store", "true"; "enable.auto.commit", "false" ]
              Expect.equal tuned.QueuedMaxMessagesKbytes (Nullable 65536) "operator's prefetch kept"
              Expect.equal tuned.FetchQueueBackoffMs (Nullable 1000) "operator's backoff kept"
              Expect.equal tuned.FetchMaxBytes (Nullable 52428800) "operator's fetch size kept"
              Expect.equal tuned.EnableAutoOffsetStore (Nullable false) "offsets are stored only after delivery"
              Expect.equal tuned.EnableAutoCommit (Nullable true) "stored offsets are committed"
          }

          test "a missing file is named" {
              let loaded = PropertiesFile.Load "/nonexistent/kafka.properties"
              Expect.isFalse loaded.IsOk "refused"
              Expect.stringContains loaded.Error "does not exist" "says so"
          } ]
