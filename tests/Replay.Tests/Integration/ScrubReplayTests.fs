/// Scrubbing end to end: the embedded broker, `replay run` with a rules file whose
/// `body:` removes fields, a real HTTP server on 127.0.0.1 that must never see
/// them — for live POSTs, for dead letters sent again by `replay redrive`, and for
/// records after a reload brings the rule in — while dead letters keep the
/// original record, and a body that cannot scrub dead-letters its record.
module Replay.Tests.ScrubReplayTests

open System
open System.IO
open System.Text
open Expecto
open Replay.Core
open Replay.Core.Envelope
open Replay.Host.Commands
open Replay.Host.Delivery
open Replay.Host.Rules
open Replay.Tests

let private within = TimeSpan.FromSeconds 60.0

let private secretOf i = $"secret-client-{i}"

/// A telemetry-like document carrying a client id and an address to scrub.
let private document i =
    $"""{{"id":"doc-{i}","clientId":"{secretOf i}","meta":{{"ip":"198.51.100.{i % 250}","v":1}},"n":{i}}}"""

let private produce (cluster: Replay.Host.Kafka.MockCluster) (ids: int list) =
    Broker.produce cluster.BootstrapServers "t" [ for i in ids -> Data.store $"doc-{i}" (document i) ]

let private bodyOf (hit: HttpRecorder.Hit) = Encoding.UTF8.GetString hit.Body

let private idOf (hit: HttpRecorder.Hit) = hit.Path.Split('/') |> Array.last

/// A log the test can read while the replay writes to it from other threads.
type private Log() =
    let text = new StringWriter()
    let writer = TextWriter.Synchronized text
    member _.Writer = writer
    member _.Text = lock writer (fun () -> text.ToString())

/// `replay run --rules FILE` settings, through the command's own flag handling.
let private runSettings (cluster: Replay.Host.Kafka.MockCluster) (file: string) (extra: string list) =
    let parse =
        RunCommand.Create().Parse(
            List.toArray ([ "-b"; cluster.BootstrapServers; "-t"; "t"; "-gid"; "g"; "--from"; "earliest"; "--rules"; file ] @ extra)
        )
    let built = RunCommand.Build parse
    if not built.IsOk then failtestf "run settings: %s" built.Error
    built.Value.Services.Rules, ReplayProcess.ofJob built.Value (Broker.kafkaSettings cluster.BootstrapServers "g")

let private scrubbing (server: HttpRecorder.Recorder) =
    $"""defaults:
  dest: {server.Url}/submit/telemetry/{{id}}
  body: Json.Remove("clientId").Set("meta.ip", null)
"""

let private payloadOf (letter: DeadLetter) =
    match decode (ReadOnlyMemory(Convert.FromBase64String letter.ValueBase64)) with
    | Ok envelope -> Encoding.UTF8.GetString envelope.Payload.Span
    | Error e -> failtestf "the dead letter's value is not the envelope: %A" e

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Scrubbing end to end"
        [ test "a body rule removes a field: the server never sees it, neither in POSTs nor in redriven dead letters" {
              use cluster = Broker.start "t" 3
              let ids = [ 1..40 ]
              produce cluster ids
              let refused (hit: HttpRecorder.Hit) = (idOf hit).EndsWith "7"
              use server = HttpRecorder.start (fun hit _ -> if refused hit then 400 else 201)
              use dir = new RulesFiles.Directory()
              let file = dir.File "scrub.yaml"
              RulesFiles.write file (scrubbing server)
              let deadLetters = dir.File "dead.jsonl"
              let rules, settings = runSettings cluster file [ "--until-end"; "--dead-letter"; deadLetters ]
              use _ = rules
              use run = ReplayProcess.start settings
              Expect.equal (run.Wait within) (Some 0) "until-end exits 0"
              settings.DeadLetters.Dispose()

              Expect.equal server.Hits.Length ids.Length "every record was sent once"
              for hit in server.Hits do
                  let body = bodyOf hit
                  Expect.isFalse (body.Contains "clientId" || body.Contains "secret-client") $"no client id reached the server: {body}"
                  Expect.isFalse (body.Contains "198.51.100.") $"no address reached the server: {body}"
                  Expect.stringContains body "\"ip\":null" "the address field is there, emptied"
              let refusedIds = set [ for i in ids do if (string i).EndsWith "7" then yield $"doc-{i}" ]
              let letters = DeadLetterFile.Read deadLetters |> List.ofSeq
              Expect.equal (letters |> List.map _.Id |> Set.ofList) refusedIds "the refused records are dead letters"
              for letter in letters do
                  Expect.stringContains (payloadOf letter) "secret-client-" "a dead letter keeps the original record, to be scrubbed again"

              // The destination is fixed: redrive the dead letters through the real program, with the rules.
              server.SetResponder(HttpRecorder.always 201)
              let before = server.Hits.Length
              let code, stdout, stderr =
                  ReplayProcess.run [ "redrive"; "--file"; deadLetters; "--rules"; file; "--dead-letter"; dir.File "dead-2.jsonl" ] within
              Expect.equal code 0 $"redrive exits 0 ({stderr})"
              let redriven = server.Hits |> List.skip before
              Expect.equal (redriven |> List.map idOf |> Set.ofList) refusedIds "redrive sent exactly the dead letters"
              for hit in redriven do
                  let body = bodyOf hit
                  Expect.isFalse (body.Contains "secret-client") $"a redriven record is scrubbed too: {body}"
              Expect.isFalse ((stdout + stderr).Contains "secret-client") "nor does its output show what was removed"
          }

          test "a body that cannot scrub dead-letters its record with the reason; it never goes out unscrubbed" {
              use cluster = Broker.start "t" 2
              let good = [ 1..10 ]
              produce cluster good
              // Not JSON, and a member name twice: a scrub cannot be sure of either.
              Broker.produce
                  cluster.BootstrapServers
                  "t"
                  [ Data.store "bad-text" "clientId=secret-client-text"
                    Data.store "bad-twice" """{"clientId":"secret-client-a","clientId":"secret-client-b"}""" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              use dir = new RulesFiles.Directory()
              let file = dir.File "scrub.yaml"
              RulesFiles.write
                  file
                  $"""defaults:
  dest: {server.Url}/submit/telemetry/{{id}}
rules:
  - name: scrub
    when: true
    body: Json.Remove("clientId")
"""
              let deadLetters = dir.File "dead.jsonl"
              let log = Log()
              use rules = LiveRules.Start(file, RuleBase.Flags, log.Writer, watch = false).Value
              let settings =
                  { ReplayProcess.settings cluster.BootstrapServers "g" "t" (ReplayProcess.route "http://unused.example/%k" 1.0 true true) with
                      Router = rules.Router
                      DeadLetters = new DeadLetterFile(deadLetters) }
                  |> ReplayProcess.untilEnd
              use run = ReplayProcess.start settings
              Expect.equal (run.Wait within) (Some 0) "until-end exits 0"
              settings.DeadLetters.Dispose()

              Expect.equal (server.Hits |> List.map idOf |> Set.ofList) (set [ for i in good -> $"doc-{i}" ]) "only what could be scrubbed was sent"
              // Records refused before a request exists are dead-lettered by their Kafka key.
              let keyOf (letter: DeadLetter) = Encoding.UTF8.GetString(Convert.FromBase64String letter.KeyBase64)
              let letters = DeadLetterFile.Read deadLetters |> List.ofSeq |> List.sortBy keyOf
              Expect.equal (letters |> List.map keyOf) [ "bad-text"; "bad-twice" ] "each failing record is one dead letter"
              Expect.stringStarts letters[0].Reason "rule 'scrub' failed: JsonBodyException: the payload is not JSON" "the reason, for text"
              Expect.stringStarts letters[1].Reason "rule 'scrub' failed: JsonBodyException: the payload is not JSON a scrub can trust" "and for a repeated name"
              for letter in letters do
                  Expect.isFalse (letter.Reason.Contains "secret-client") "the reason does not quote the payload"
                  Expect.stringContains (payloadOf letter) "secret-client" "the dead letter keeps the original"
              Expect.equal rules.Failures 2L "counted as rule failures"
              Expect.equal run.Stats.DeadLettered 2L "and as dead letters"
              Expect.stringContains log.Text "rules: rule 'scrub' (generation 1) failed on t/" "the first failure is logged"
              Expect.isFalse (log.Text.Contains "secret-client") "the log does not quote the payload"
          }

          test "a reload that adds a body rule scrubs every record consumed after it, and none is lost or sent twice" {
              use cluster = Broker.start "t" 2
              use server = HttpRecorder.start (HttpRecorder.always 201)
              use dir = new RulesFiles.Directory()
              let file = dir.File "live.yaml"
              RulesFiles.write file $"defaults:\n  dest: {server.Url}/submit/telemetry/{{id}}\n"
              let log = Log()
              use rules = LiveRules.Start(file, RuleBase.Flags, log.Writer).Value
              let settings = ReplayProcess.settings cluster.BootstrapServers "g" "t" (ReplayProcess.route "http://unused.example/%k" 1.0 true true)
              use run = ReplayProcess.start { settings with Router = rules.Router }
              produce cluster [ 1..20 ]
              Expect.isTrue (server.WaitForAccepted(20, within)) "the first batch arrives"
              Expect.isTrue (server.Hits |> List.forall (fun h -> (bodyOf h).Contains "secret-client")) "unscrubbed before the rule exists"

              RulesFiles.write file (scrubbing server)
              Expect.isTrue (rules.WaitForAttempts(1, within)) "the edit is picked up"
              Expect.equal rules.Generation 2 $"generation 2 is in force (log: {log.Text})"
              produce cluster [ 21..60 ]
              Expect.isTrue (server.WaitForAccepted(60, within)) "the second batch arrives"
              Expect.equal (run.Stop()) 0 "stops cleanly"
              Expect.equal (server.Hits |> List.map idOf |> List.sort) (List.sort [ for i in 1..60 -> $"doc-{i}" ]) "each record once"
              for hit in server.Hits do
                  let n = int ((idOf hit).Substring 4)
                  if n > 20 then
                      Expect.isFalse ((bodyOf hit).Contains "secret-client") $"doc-{n}, consumed after the reload, is scrubbed"
          } ]
