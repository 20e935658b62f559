/// The command line as a Bagheera user meets it: the seed's shapes rewritten, durations,
/// and bad input answered with a clear message and exit code 2 by the real program.
module Replay.Tests.CliTests

open System
open Expecto
open Replay.Host.Cli
open Replay.Tests

let private within = TimeSpan.FromSeconds 60.0

[<Tests>]
let tests =
    testList
        "Cli"
        [ test "Bagheera's class name becomes `run`; bare flags mean `run` too" {
              Expect.equal (BagheeraArgs.Normalize [| "com.mozilla.bagheera.consumer.KafkaReplayConsumer"; "-t"; "x" |]) [| "run"; "-t"; "x" |] "class name"
              Expect.equal (BagheeraArgs.Normalize [| "-t"; "x" |]) [| "run"; "-t"; "x" |] "no command"
              Expect.equal (BagheeraArgs.Normalize [| "--help" |]) [| "--help" |] "help stays help"
          }

          test "the JVM's -Dhttp.proxyHost/-Dhttp.proxyPort become --proxy" {
              let got = BagheeraArgs.Normalize [| "run"; "-Dhttp.proxyHost=proxy.local"; "-Dhttp.proxyPort=3128"; "-t"; "x" |]
              Expect.equal got [| "run"; "-t"; "x"; "--proxy"; "http://proxy.local:3128" |] "rewritten"
          }

          test "durations read as an operator writes them" {
              for text, expected in [ "500ms", 0.5; "30s", 30.0; "5m", 300.0; "2h", 7200.0; "1d", 86400.0; "15", 15.0 ] do
                  match Duration.TryParse text with
                  | true, value -> Expect.equal value.TotalSeconds expected text
                  | _ -> failtest $"'{text}' should parse"
              for text in [ "soon"; "-5s"; "" ] do
                  Expect.isFalse (fst (Duration.TryParse text)) $"'{text}' is refused"
          }

          test "bad input exits 2 with a message that names the flag or file" {
              let cases =
                  [ [ "run"; "--bogus" ], "Unrecognized command or argument '--bogus'"
                    [ "run"; "-t"; "x"; "-gid"; "g"; "--dest"; "http://h/%k" ], "--bootstrap-servers"
                    [ "run"; "-t"; "x"; "-b"; "127.0.0.1:1"; "--dest"; "http://h/%k" ], "-gid"
                    [ "run"; "-t"; "x"; "-b"; "127.0.0.1:1"; "-gid"; "g"; "--dest"; "http://h/%k"; "--sample"; "1.5" ], "--sample"
                    [ "run"; "-t"; "x"; "-b"; "127.0.0.1:1"; "-gid"; "g"; "--dest"; "ftp://h/%k" ], "--dest"
                    [ "run"; "-t"; "x"; "-b"; "127.0.0.1:1"; "-gid"; "g"; "--dest"; "http://h/%k"; "--request-timeout"; "soon" ], "--request-timeout"
                    [ "run"; "-t"; "x"; "-p"; "/nonexistent.properties"; "-gid"; "g"; "--dest"; "http://h/%k" ], "/nonexistent.properties" ]
              for args, expected in cases do
                  let code, _, stderr = ReplayProcess.run args within
                  Expect.equal code 2 $"{args} exits 2 ({stderr})"
                  Expect.stringContains stderr expected $"{args} names what is wrong"
          }

          test "a bad flag shows the usage of its command" {
              let _, _, stderr = ReplayProcess.run [ "run"; "--bogus" ] within
              Expect.stringContains stderr "Usage: replay run [options]" "usage line"
          } ]
