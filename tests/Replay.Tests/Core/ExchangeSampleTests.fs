/// The responses log's choice of exchanges (ExchangeSample): by replay id, as
/// `--sample` is by document id, plus every attempt without a 2xx unless turned off.
module Replay.Tests.ExchangeSampleTests

open System
open Expecto
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Outcome
open Replay.Tests.Generators

let private rateOf value =
    match Sampling.Rate.create value with
    | Ok rate -> rate
    | Error message -> failtest message

let private settings rate errors : ExchangeSample.Settings = { Rate = rateOf rate; Errors = errors }

/// Topic names as Kafka allows them (letters, digits, . _ -), and some it does not, non-ASCII
/// included: the position must agree with the string's whatever the text.
let private topic =
    Gen.frequency
        [ 3, Gen.elements [ "t"; "telemetry"; "replay.dead-letters_2"; "a" ]
          1, nonEmptyText 20 ]

let private replayId = Gen.zip topic (Gen.zip (Gen.choose (-3, 10_000)) (Gen.choose64 (-5L, Int64.MaxValue)))

let private answered status =
    Answered(Answer.status status None)

/// Attempts of every kind: 2xx answers, other statuses, time-outs and failures to connect.
let private attempt =
    Gen.frequency
        [ 4, Gen.choose (200, 299) |> Gen.map answered
          4, Gen.oneof [ Gen.choose (100, 199); Gen.choose (300, 599) ] |> Gen.map answered
          1, Gen.constant TimedOut
          1, Gen.constant (Unreachable "connection refused") ]

let private is2xx attempt =
    match attempt with
    | Answered a -> a.Status >= 200 && a.Status <= 299
    | _ -> false

[<Tests>]
let tests =
    testList
        "Exchange sample"
        [ property "the position of a replay id is --sample's position of its X-Replay-Id text" replayId (fun (topic, (partition, offset)) ->
              let id = String.Concat(topic, "/", string partition, "/", string offset)
              Expect.equal (ExchangeSample.position topic partition offset) (Sampling.position id) id)

          property "rate 0 chooses nothing, rate 1 everything" replayId (fun (topic, (partition, offset)) ->
              Expect.isFalse (ExchangeSample.chosen (settings 0.0 true) topic partition offset) "rate 0"
              Expect.isTrue (ExchangeSample.chosen (settings 1.0 false) topic partition offset) "rate 1")

          property "nesting: chosen at r1 ⇒ chosen at every r2 ≥ r1" (Gen.zip replayId (Gen.zip rate rate)) (fun ((t, (p, o)), (a, b)) ->
              let lower, higher = min a b, max a b
              if ExchangeSample.chosen (settings lower true) t p o then
                  Expect.isTrue (ExchangeSample.chosen (settings higher true) t p o) $"chosen at {lower} but not at {higher}")

          property "kept = chosen, or no 2xx while errors are kept" (Gen.zip attempt (Gen.zip (Gen.elements [ true; false ]) (Gen.elements [ true; false ])))
              (fun (attempt, (chosen, errors)) ->
                  let kept = ExchangeSample.kept (settings 0.5 errors) chosen attempt
                  Expect.equal kept (chosen || (errors && not (is2xx attempt))) $"%A{attempt}, chosen {chosen}, errors {errors}")

          property "at rate 0 with errors on, exactly the attempts without a 2xx are kept" (Gen.zip replayId attempt) (fun ((t, (p, o)), attempt) ->
              let s = settings 0.0 true
              let chosen = ExchangeSample.chosen s t p o
              Expect.equal (ExchangeSample.kept s chosen attempt) (not (is2xx attempt)) $"%A{attempt}")

          property "every attempt of a chosen record is kept, at every destination" (Gen.zip replayId (Gen.listOfLength 5 attempt))
              (fun ((t, (p, o)), attempts) ->
                  let s = settings 0.3 false
                  if ExchangeSample.chosen s t p o then
                      for a in attempts do
                          Expect.isTrue (ExchangeSample.kept s true a) $"%A{a}")

          test "nothing is kept only at rate 0 with errors off" {
              Expect.isTrue (ExchangeSample.keepsNothing (settings 0.0 false)) "rate 0, errors off"
              Expect.isFalse (ExchangeSample.keepsNothing (settings 0.0 true)) "rate 0, errors on"
              Expect.isFalse (ExchangeSample.keepsNothing (settings 1e-9 false)) "a tiny rate"
              Expect.isFalse (ExchangeSample.keepsNothing ExchangeSample.defaults) "the defaults"
          }

          test "over 20k consecutive offsets of two partitions, the chosen fraction is within 5 sigma of the rate" {
              let ids = [ for p in 0..1 do for o in 0L .. 9_999L -> p, o ]
              let n = float ids.Length
              for r in [ 0.001; 0.01; 0.1; 0.5; 0.9 ] do
                  let chosen = ids |> List.filter (fun (p, o) -> ExchangeSample.chosen (settings r false) "telemetry" p o) |> List.length
                  let sigma = sqrt (n * r * (1.0 - r))
                  Expect.isLessThanOrEqual (abs (float chosen - n * r)) (5.0 * sigma) $"rate {r}: chose {chosen} of {n}"
          }

          test "what happened, in words" {
              Expect.equal (ExchangeSample.outcome (answered 400)) "answered" "an answer"
              Expect.equal (ExchangeSample.outcome TimedOut) "timeout" "a time-out"
              Expect.equal (ExchangeSample.outcome (Unreachable "refused")) "unreachable" "no connection"
              Expect.equal (ExchangeSample.error (Unreachable "refused")) "refused" "its reason"
              Expect.isNull (ExchangeSample.error TimedOut) "a time-out has no reason text"
          } ]
