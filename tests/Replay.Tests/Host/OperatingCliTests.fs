/// The operating flags as an operator meets them: --from's forms, and errors that
/// name the flag at fault and say what to write instead.
module Replay.Tests.OperatingCliTests

open System
open Expecto
open Replay.Host.Commands
open Replay.Host.Operating

let private now = DateTimeOffset(2026, 5, 1, 12, 0, 0, TimeSpan.Zero)

let private parse text =
    let result = StartPosition.Parse(text, now)
    if result.IsOk then Ok result.Value else Error result.Error

/// `replay run` with the minimum a run needs, plus `extra`: the settings or the message.
let private build (extra: string list) =
    let command = RunCommand.Create()
    let args = [ "-b"; "127.0.0.1:9"; "-gid"; "g"; "-t"; "t"; "--dest"; "http://127.0.0.1:9/s/%k" ] @ extra
    let result = RunCommand.Build(command.Parse(List.toArray args))
    if result.IsOk then
        result.Value.Services.DeadLetters.Dispose()
        Ok result.Value
    else
        Error result.Error

let private fails (extra: string list) (mentions: string list) =
    match build extra with
    | Ok _ -> failtestf "%A was accepted" extra
    | Error message ->
        for m in mentions do
            Expect.stringContains message m $"the message for {extra} mentions '{m}'"

[<Tests>]
let tests =
    testList
        "Operating flags"
        [ test "--from takes names, ISO-8601 times and durations back from now" {
              Expect.equal (parse "earliest") (Ok StartPosition.Earliest) "earliest"
              Expect.equal (parse "LATEST") (Ok StartPosition.Latest) "case does not matter"
              Expect.equal (parse "committed") (Ok StartPosition.Committed) "committed"
              Expect.equal (parse "-2h") (Ok(StartPosition.At(now.AddHours -2.0))) "-2h"
              Expect.equal (parse "-90m") (Ok(StartPosition.At(now.AddMinutes -90.0))) "-90m"
              Expect.equal (parse "-PT1H30M") (Ok(StartPosition.At(now.AddMinutes -90.0))) "ISO-8601 duration"
              Expect.equal (parse "2026-05-01T10:00:00Z") (Ok(StartPosition.At(now.AddHours -2.0))) "UTC time"
              Expect.equal (parse "2026-05-01T12:00:00+02:00") (Ok(StartPosition.At(now.AddHours -2.0))) "time with an offset"
              Expect.equal (parse "2026-05-01T10:00:00") (Ok(StartPosition.At(now.AddHours -2.0))) "no offset means UTC"
          }

          test "--from rejects what it cannot read, and times in the future" {
              for text in [ "yesterday"; "-"; "-2x"; "5/1/2026"; "2026-13-01T00:00:00Z"; "-0s" ] do
                  match parse text with
                  | Ok p -> failtestf "'%s' was read as %O" text p
                  | Error message ->
                      Expect.stringContains message "--from" "names the flag"
                      Expect.stringContains message "-2h" "shows what to write"
              match parse "2026-06-01T00:00:00Z" with
              | Ok p -> failtestf "a future time was read as %O" p
              | Error message -> Expect.stringContains message "--from latest" "suggests latest for new records"
          }

          test "replay run's operating flags reach the settings" {
              match build [ "--from"; "-2h"; "--reset"; "--dry-run"; "--metrics-port"; "0"; "--metrics-host"; "::"; "--log-format"; "json"; "--progress-interval"; "500ms" ] with
              | Error message -> failtest message
              | Ok s ->
                  Expect.equal s.Services.Start.Kind StartKind.Time "a time start"
                  Expect.isTrue s.Services.Reset "--reset"
                  Expect.isTrue s.Run.DryRun "--dry-run"
                  Expect.equal s.Operating.MetricsPort (Nullable 0) "--metrics-port"
                  Expect.equal (string s.Operating.MetricsHost) "::" "--metrics-host"
                  Expect.equal s.Operating.LogFormat LogFormat.Json "--log-format"
                  Expect.equal s.Operating.ProgressInterval (Nullable(TimeSpan.FromMilliseconds 500.0)) "--progress-interval"
                  Expect.equal s.Run.Kafka["auto.offset.reset"] "earliest" "an expired commit falls back to the oldest record"
              match build [ "--from"; "committed" ] with
              | Error message -> failtest message
              | Ok s -> Expect.equal s.Run.Kafka["auto.offset.reset"] "error" "committed: librdkafka must not guess"
          }

          test "bad operating flags get a message naming the flag and the fix" {
              fails [ "--from"; "yesterday" ] [ "--from 'yesterday'"; "earliest"; "-2h" ]
              fails [ "--reset" ] [ "--reset"; "--from" ]
              fails [ "--reset"; "--from"; "committed" ] [ "--from committed"; "earliest" ]
              fails [ "--metrics-port"; "9464"; "--metrics-host"; "metrics.example" ] [ "--metrics-host 'metrics.example'"; "0.0.0.0" ]
              fails [ "--metrics-host"; "0.0.0.0" ] [ "--metrics-host"; "--metrics-port" ]
              fails [ "--metrics-port"; "70000" ] [ "--metrics-port 70000"; "65535" ]
              fails [ "--log-format"; "xml" ] [ "--log-format 'xml'"; "json" ]
          } ]
