/// The route flags as an operator meets them: --ok-on, --retry-on, --drop-on and
/// --fail-on read once into the policy every request carries, --drop-ip, and
/// --scrub-key-file; every bad value is refused with the flag's name and exit 2.
module Replay.Tests.RouteCliTests

open System
open System.IO
open System.Text
open Expecto
open Replay.Core
open Replay.Core.Outcome
open Replay.Host.Commands
open Replay.Host.Rules
open Replay.Host.Security
open Replay.Tests

let private minimal = [ "-b"; "127.0.0.1:9"; "-gid"; "g"; "-t"; "t"; "--dest"; "http://127.0.0.1:9/s/%k" ]

/// `replay run` with the minimum a run needs, plus `extra`: the settings or the message.
let private build (secrets: Secrets) (extra: string list) =
    let result = RunCommand.Build(RunCommand.Create().Parse(List.toArray (minimal @ extra)), secrets)
    if result.IsOk then
        result.Value.Services.DeadLetters.Dispose()
        Ok result.Value
    else
        Error result.Error

let private fails (extra: string list) (mentions: string list) =
    match build (Secrets()) extra with
    | Ok _ -> failtestf "%A was accepted" extra
    | Error message ->
        for m in mentions do
            Expect.stringContains message m $"the message for {extra} mentions '{m}'"

/// The route the run's router gives a record.
let private routeOf (settings: Replay.Host.Replay.ReplayJob) =
    let sample = SampleRecord()
    let record = sample.ToRecord()
    match Envelope.decode record.Value with
    | Ok envelope ->
        match settings.Services.Router.Invoke().Route record envelope with
        | Use route -> route
        | other -> failtestf "expected a route, got %A" other
    | Error e -> failtestf "%A" e

let private verdict (route: Route) status = classify route.StatusPolicy (Answered(Answer.status status None))

let private keyFile (text: string) =
    let path = Temp.file "scrub.key"
    File.WriteAllText(path, text)
    File.SetUnixFileMode(path, UnixFileMode.UserRead ||| UnixFileMode.UserWrite)
    path

[<Tests>]
let tests =
    testList
        "Route flags"
        [ test "the four status flags make one policy the defaults route carries; --drop-ip too" {
              match build (Secrets()) [ "--ok-on"; "404,409"; "--retry-on"; "423"; "--drop-on"; "410,5xx"; "--fail-on"; "503"; "--drop-ip" ] with
              | Error message -> failtest message
              | Ok settings ->
                  let route = routeOf settings
                  Expect.equal (verdict route 404) Delivered "--ok-on 404"
                  Expect.equal (verdict route 423) (Retry None) "--retry-on 423"
                  Expect.equal (verdict route 410) (Dropped 410) "--drop-on 410"
                  Expect.equal (verdict route 502) (Dropped 502) "--drop-on 5xx"
                  Expect.isTrue (verdict route 503).IsPermanent "--fail-on 503, narrower than 5xx"
                  Expect.equal (verdict route 429) (Retry None) "what no flag names keeps the defaults"
                  Expect.isTrue route.DropIp "--drop-ip"
              match build (Secrets()) [] with
              | Ok settings ->
                  let route = routeOf settings
                  Expect.isFalse route.DropIp "off by default"
                  Expect.equal (StatusPolicy.describe route.StatusPolicy) (StatusPolicy.describe StatusPolicy.defaults) "defaults by default"
              | Error message -> failtest message
          }

          test "bad status lists and clashes are refused naming the flag" {
              fails [ "--ok-on"; "4o4" ] [ "--ok-on 4o4"; "write 404, 4xx or 500-503" ]
              fails [ "--drop-on"; "600" ] [ "--drop-on 600"; "statuses 100-599" ]
              fails [ "--retry-on"; "," ] [ "--retry-on"; "no status given" ]
              fails [ "--fail-on"; "503-500" ] [ "--fail-on 503-500" ]
              fails [ "--ok-on"; "404"; "--drop-on"; "404" ] [ "--ok-on/--retry-on/--drop-on/--fail-on"; "status 404 is given two meanings (ok and drop)" ]
          }

          test "--scrub-key-file: missing, short and unreadable keys are refused; a good key becomes a secret" {
              fails [ "--scrub-key-file"; Temp.file "absent.key" ] [ "--scrub-key-file"; "does not exist"; "openssl rand -hex 32" ]
              fails [ "--scrub-key-file"; keyFile "short\n" ] [ "--scrub-key-file"; "5-byte key"; "at least 16" ]
              fails [ "--scrub-key-file"; Temp.dir () ] [ "--scrub-key-file"; "is a directory" ]
              let secrets = Secrets()
              match build secrets [ "--scrub-key-file"; keyFile "0123456789abcdef0123456789abcdef\n" ] with
              | Ok _ -> Expect.equal (secrets.Redact "k=0123456789abcdef0123456789abcdef") "k=[redacted]" "redacted wherever it would be printed"
              | Error message -> failtest message
          }

          test "what --drop-on drops is counted per route and status, finishes its record, and shows in the summary" {
              let stats = Replay.Host.Delivery.ReplayStats()
              stats.Consume 10
              stats.Consume 10
              stats.Consume 10
              stats.Drop("defaults", 404)
              stats.Drop("v2", 410)
              stats.Drop("defaults", 404)
              Expect.equal stats.Dropped 3L "three dropped"
              Expect.equal stats.DroppedBy[struct ("defaults", 404)] 2L "per route and status"
              Expect.equal stats.Finished stats.Consumed "a dropped record is finished"
              Expect.stringContains (stats.Summary()) "dropped 3 (404 by 'defaults': 2, 410 by 'v2': 1)" "in the summary"
              Expect.isFalse ((Replay.Host.Delivery.ReplayStats()).Summary().Contains "dropped") "and only when there were drops"
          }

          test "the real program exits 2 on a bad route flag, for run and redrive alike" {
              let code, _, stderr = ReplayProcess.run (("run" :: minimal) @ [ "--drop-on"; "gone" ]) (TimeSpan.FromSeconds 60.0)
              Expect.equal code 2 "run: exit 2"
              Expect.stringContains stderr "--drop-on gone" "names the flag"
              let deadLetters = Temp.file "dead.jsonl"
              File.WriteAllText(deadLetters, "")
              let code, _, stderr =
                  ReplayProcess.run [ "redrive"; "--file"; deadLetters; "--dest"; "http://127.0.0.1:9/s/%k"; "--scrub-key-file"; Temp.file "absent.key" ] (TimeSpan.FromSeconds 60.0)
              Expect.equal code 2 "redrive: exit 2"
              Expect.stringContains stderr "--scrub-key-file" "names the flag"
          } ]
