/// --until and --speed as an operator meets them: the forms they take, what reaches the
/// settings, and errors that name the flag and say what to write (exit code 2).
module Replay.Tests.WindowCliTests

open System
open Expecto
open Replay.Core
open Replay.Host.Commands
open Replay.Tests

let private within = TimeSpan.FromSeconds 30.0

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

let private ms (text: string) = DateTimeOffset.Parse(text, Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds()

[<Tests>]
let tests =
    testList
        "Window flags"
        [ test "--until and --speed reach the settings; by default nothing ends by time and nothing is paced" {
              match build [] with
              | Error message -> failtest message
              | Ok s ->
                  Expect.equal s.Run.Until ValueNone "no --until"
                  Expect.equal s.Run.Speed Pacing.Max "--speed max"
              match build [ "--from"; "2026-11-30T10:00:00Z"; "--until"; "2026-11-30T11:00:00Z"; "--speed"; "10" ] with
              | Error message -> failtest message
              | Ok s ->
                  Expect.equal s.Run.Until (ValueSome(ms "2026-11-30T11:00:00Z")) "an ISO-8601 time"
                  Expect.equal s.Run.Speed (Pacing.Times 10.0) "ten times faster"
              match build [ "--from"; "2025-11-30T10:00Z"; "--until"; "2025-11-30T11:00Z" ] with
              | Error message -> failtest message
              | Ok s -> Expect.equal s.Run.Until (ValueSome(ms "2025-11-30T11:00:00Z")) "minutes without seconds, as the issue writes them"
              match build [ "--until"; "2026-11-30T12:00:00+01:00"; "--speed"; "0.5x" ] with
              | Error message -> failtest message
              | Ok s ->
                  Expect.equal s.Run.Until (ValueSome(ms "2026-11-30T11:00:00Z")) "with an offset"
                  Expect.equal s.Run.Speed (Pacing.Times 0.5) "half as fast, with an x"
              let before = DateTimeOffset.UtcNow
              match build [ "--from"; "-2h"; "--until"; "-30m" ] with
              | Error message -> failtest message
              | Ok s ->
                  let until = s.Run.Until.Value
                  Expect.isTrue
                      (until >= before.AddMinutes(-30.0).ToUnixTimeMilliseconds()
                       && until <= DateTimeOffset.UtcNow.AddMinutes(-30.0).ToUnixTimeMilliseconds())
                      "a duration back from the start, like --from"
                  Expect.isLessThan (s.Services.Start.Time.Value.ToUnixTimeMilliseconds()) until "the window is the two hours up to half an hour ago"
              match build [ "--until"; "2999-01-01T00:00:00Z" ] with
              | Error message -> failtest message
              | Ok s -> Expect.equal s.Run.Until (ValueSome(ms "2999-01-01T00:00:00Z")) "a time to come: replay until then"
          }

          test "bad --until and --speed get a message naming the flag and what to write" {
              fails [ "--until"; "yesterday" ] [ "--until 'yesterday'"; "ISO-8601"; "-2h" ]
              fails [ "--until"; "2h" ] [ "--until '2h'"; "-2h" ]
              fails [ "--until"; "-soon" ] [ "--until '-soon'"; "is not a duration" ]
              fails [ "--from"; "2026-11-30T11:00:00Z"; "--until"; "2026-11-30T10:00:00Z" ] [ "--until 2026-11-30T10:00:00.000Z is not after --from 2026-11-30T11:00:00.000Z" ]
              fails [ "--from"; "2026-11-30T11:00:00Z"; "--until"; "2026-11-30T11:00:00Z" ] [ "is not after --from" ]
              fails [ "--speed"; "fast" ] [ "--speed 'fast'"; "1 = as recorded"; "max" ]
              fails [ "--speed"; "0" ] [ "--speed '0'"; "between 0.001 and 1000000" ]
              fails [ "--speed"; "-4" ] [ "--speed '-4'"; "max" ]
          }

          test "the program exits 2 on a bad --until or --speed, before it reaches for Kafka" {
              for flag, value in [ "--speed", "fast"; "--until", "noon" ] do
                  let code, _, stderr =
                      ReplayProcess.run [ "run"; "-b"; "127.0.0.1:9"; "-t"; "t"; "-gid"; "g"; "--dest"; "http://127.0.0.1:9/%k"; flag; value ] within
                  Expect.equal code 2 $"{flag} {value} exits 2 ({stderr})"
                  Expect.stringContains stderr $"{flag} '{value}'" "names the flag and the value"
              let _, stdout, _ = ReplayProcess.run [ "run"; "--help" ] within
              Expect.stringContains stdout "--until" "--help shows --until"
              Expect.stringContains stdout "--speed" "and --speed"
          } ]
