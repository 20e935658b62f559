/// `on-status:` and `drop-ip:` in a real rules file, through the real parser and
/// Roslyn: what they do to a record's route and request, and every mistake reported
/// at its YAML line.
module Replay.Tests.RulesPerRouteFileTests

open System
open Expecto
open Microsoft.FSharp.Core
open Replay.Core
open Replay.Core.Outcome
open Replay.Host.Rules
open Replay.Tests

let private path = "rules/x.yaml"

/// No --dest: the files below name their own.
let private noDest = Unchecked.defaultof<Destination.Pattern>

let private loadWith (flags: RuleBase) (text: string) = RulesLoader.FromText(path, text, flags, 1)

let private errorsWith flags (text: string) =
    let struct (generation, diagnostics) = loadWith flags text
    Expect.isNull generation "a file with errors yields no generation"
    diagnostics |> Seq.filter _.IsError |> Seq.map string |> List.ofSeq

let private errorsOf = errorsWith RuleBase.Flags

let private loadedWith flags (text: string) =
    let struct (generation, diagnostics) = loadWith flags text
    match generation with
    | null -> failtestf "the rules did not load:\n%s" (String.Join("\n", diagnostics))
    | generation -> generation

let private hasError (expected: string) (errors: string list) =
    Expect.exists errors (fun e -> e = expected) $"expected\n  {expected}\namong\n  {String.Join('\n', errors)}"

let private settings: Pipeline.Settings =
    { Format = Pipeline.Bagheera
      SampleMode = Sampling.ByDocument
      ValidateJson = false
      Escaping = Destination.Segment
      MaxPayloadBytes = 1 <<< 20 }

let private entropy: Pipeline.Entropy = { NewKey = (fun () -> "k"); Draw = (fun () -> 0.5) }

let private decide (generation: RuleGeneration) (configure: SampleRecord -> unit) =
    let sample = SampleRecord()
    configure sample
    Pipeline.decide settings generation.Router.Route entropy (sample.ToRecord())

let private request decision =
    match decision with
    | Pipeline.Send request -> request
    | other -> failtestf "expected a request, got %A" other

let private verdict (request: Pipeline.Request) status = classify request.StatusPolicy (Answered(Answer.status status None))

let private policyOf (entries: (string * StatusPolicy.Meaning) list) =
    entries
    |> List.map (fun (text, meaning) -> Result.defaultWith failwith (StatusPolicy.parseRange text), meaning)
    |> StatusPolicy.create
    |> Result.defaultWith failwith

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Rules file per route"
        [ test "on-status refines the flags' policy for the defaults and per rule" {
              let flags = RuleBase(noDest, Sampling.Rate.all, true, true, StatusPolicy = policyOf [ "404", StatusPolicy.Drop ])
              let generation =
                  loadedWith
                      flags
                      """defaults:
  dest: http://d.example/{id}
  on-status: {409: ok, 5xx: retry, 501: fail}
rules:
  - name: v2
    when: Namespace == "v2"
    on-status:
      404: ok
      "500-503": drop
"""
              let plain = request (decide generation ignore)
              Expect.equal (verdict plain 404) (Dropped 404) "--drop-on 404 holds where the file says nothing"
              Expect.equal (verdict plain 409) Delivered "409: ok"
              Expect.isTrue (verdict plain 501).IsPermanent "501: fail, narrower than 5xx"
              let v2 = request (decide generation (fun s -> s.Namespace <- "v2"))
              Expect.equal (verdict v2 404) Delivered "the rule's 404: ok"
              Expect.equal (verdict v2 502) (Dropped 502) "the rule's range"
              Expect.equal (verdict v2 409) Delivered "inherited from the defaults"
              Expect.equal (verdict v2 504) (Retry None) "inherited 5xx: retry"
              generation.Unload()
          }

          test "on-status, drop-ip and body mistakes are reported at their lines" {
              let errors =
                  errorsOf
                      """defaults:
  dest: http://d.example/{id}
  on-status: {4o4: drop, 409: maybe}
  drop-ip: false
rules:
  - name: clash
    when: true
    on-status: {4xx: ok, 400-499: drop}
  - name: shape
    when: true
    on-status: drop
  - name: skipper
    when: true
    action: skip
    on-status: {404: ok}
"""
              errors |> hasError "rules/x.yaml(3,15): error: on-status: '4o4' is not a status: write 404, 4xx or 500-503 (statuses 100-599)"
              errors |> hasError "rules/x.yaml(3,31): error: on-status: 'maybe' is not a status meaning; use ok, retry, drop or fail"
              errors
              |> hasError
                  "rules/x.yaml(4,12): error: `drop-ip:` can only be true: once the address is dropped (by --drop-ip, the defaults or a rule) nothing sends it again; leave the key out instead"
              errors |> hasError "rules/x.yaml(8,16): error: on-status: status 4xx is given two meanings (ok and drop)"
              errors
              |> hasError
                  "rules/x.yaml(11,16): error: `on-status:` maps statuses to what they mean, e.g. {404: drop, 409: ok, 5xx: retry}; meanings are ok, retry, drop and fail"
              errors
              |> hasError "rules/x.yaml(14,13): error: rule 'skipper' skips its records, so it sends nothing: remove its dest, sample, headers and other settings"
              Expect.hasLength errors 6 "every mistake, and only those"
          } ]
