/// Sampling laws: the edges, determinism, nested samples, the observed fraction,
/// a DELETE following its document, and Bagheera's random mode.
module Replay.Tests.SamplingTests

open System
open Expecto
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Sampling
open Replay.Tests.Generators

let private rateOf value =
    match Rate.create value with
    | Ok rate -> rate
    | Error message -> failtest message

/// Document sampling must not consume randomness: a draw fails the test.
let private noDraw () : float = failtest "document sampling drew a random number"

let private mode = Gen.elements [ ByDocument; Random ]

let private id = documentId 30

let private laws =
    testList
        "laws"
        [ property "rate 0 drops everything" (Gen.zip id mode) (fun (id, mode) ->
              // The draw most in favour of keeping, so only the rate can say no.
              Expect.isFalse (keep mode Rate.none id (fun () -> 0.0)) "Rate.none"
              Expect.isFalse (keep mode (rateOf 0.0) id (fun () -> 0.0)) "Rate.create 0")

          property "rate 1 keeps everything" (Gen.zip id mode) (fun (id, mode) ->
              Expect.isTrue (keep mode Rate.all id (fun () -> 0.999999)) "Rate.all"
              Expect.isTrue (keep mode (rateOf 1.0) id (fun () -> 0.999999)) "Rate.create 1")

          property "document sampling: the same id gets the same answer, whatever the draw" (Gen.zip id rate) (fun (id, r) ->
              let rate = rateOf r
              let first = keep ByDocument rate id noDraw
              Expect.equal (keep ByDocument rate id noDraw) first "asked again"
              Expect.equal (keep ByDocument rate (String(id.ToCharArray())) noDraw) first "an equal string, another instance")

          property "nesting: kept at r1 ⇒ kept at every r2 ≥ r1" (Gen.zip id (Gen.zip rate rate)) (fun (id, (a, b)) ->
              let lower, higher = min a b, max a b
              if keep ByDocument (rateOf lower) id noDraw then
                  Expect.isTrue (keep ByDocument (rateOf higher) id noDraw) $"kept at {lower} but not at {higher}")

          property "random mode keeps iff its one draw is below the rate" (Gen.zip id (Gen.zip rate draw)) (fun (id, (r, d)) ->
              let mutable draws = 0
              let kept = keep Random (rateOf r) id (fun () -> draws <- draws + 1; d)
              let expected = if r >= 1.0 then true elif r <= 0.0 then false else d < r
              Expect.equal kept expected $"rate {r}, draw {d}"
              Expect.isLessThanOrEqual draws 1 "at most one draw per record")

          property "random mode ignores the id" (Gen.zip (Gen.zip id id) (Gen.zip rate draw)) (fun ((a, b), (r, d)) ->
              Expect.equal (keep Random (rateOf r) a (fun () -> d)) (keep Random (rateOf r) b (fun () -> d)) "only the draw decides") ]

/// 10,000 distinct ids from three families producers use: sequential names,
/// bare numbers and UUIDs (from a seeded generator, so the set is fixed).
let private idFamilies =
    let uuids =
        let random = System.Random 20_240_601
        [ for _ in 1..10_000 ->
              let bytes = Array.zeroCreate<byte> 16
              random.NextBytes bytes
              Guid(bytes).ToString() ]
    [ "doc-N", [ for i in 1..10_000 -> $"doc-{i}" ]
      "N", [ for i in 1..10_000 -> string i ]
      "uuid", uuids ]

let private fraction =
    testList
        "observed fraction"
        [ for family, ids in idFamilies do
              test $"for 10k {family} ids, within 5 sigma of the rate" {
                  let n = float ids.Length
                  for r in [ 0.001; 0.01; 0.1; 0.25; 0.5; 0.9; 0.99 ] do
                      let kept = ids |> List.filter (fun id -> keep ByDocument (rateOf r) id noDraw) |> List.length
                      let sigma = sqrt (n * r * (1.0 - r))
                      let deviation = abs (float kept - n * r)
                      Expect.isLessThanOrEqual deviation (5.0 * sigma) $"rate {r}: kept {kept} of {n}"
              } ]

let private deletes =
    let settings: Pipeline.Settings =
        { Format = Pipeline.Bagheera
          SampleMode = ByDocument
          ValidateJson = false
          Escaping = Destination.Segment
          MaxPayloadBytes = 1 <<< 20 }
    let route r =
        let pattern =
            match Destination.parse "http://h/submit/%k" with
            | Ok p -> p
            | Error e -> failtest e
        Route.defaults "defaults" (Pattern pattern) (rateOf r) true true
    let entropy: Pipeline.Entropy = { NewKey = (fun () -> "fresh"); Draw = noDraw }
    let sampled decision =
        match decision with
        | Pipeline.Send _ -> false
        | Pipeline.Skip(Pipeline.SampledOut _) -> true
        | _ -> failtest "expected Send or a sampled-out Skip"
    testList
        "a DELETE follows its document"
        [ property "a CREATE and a DELETE of one id get the same decision" (Gen.zip id rate) (fun (id, r) ->
              let decide = Pipeline.decide settings (Route.always (route r)) entropy
              let create = decide (envelopeRecord 0L (simpleEnvelope id Envelope.CreateUpdate "{}"B))
              let delete = decide (envelopeRecord 1L (simpleEnvelope id Envelope.Delete [||]))
              Expect.equal (sampled delete) (sampled create) $"rate {r}") ]

let private rates =
    testList
        "Rate.create"
        [ test "rejects NaN, negatives, infinities and values above 1" {
              for value in [ Double.NaN; -0.001; -1.0; Double.NegativeInfinity; 1.000001; 2.0; Double.PositiveInfinity ] do
                  Expect.isError (Rate.create value) $"{value}"
          }

          property "accepts every value in [0, 1] as it is" rate (fun r ->
              match Rate.create r with
              | Ok rate -> Expect.equal (Rate.value rate) r "the value kept"
              | Error message -> failtest message)

          test "parseMode knows document, deterministic and random, in any case" {
              Expect.equal (parseMode "document") (Ok ByDocument) "document"
              Expect.equal (parseMode "Deterministic") (Ok ByDocument) "deterministic"
              Expect.equal (parseMode "RANDOM") (Ok Random) "random"
              Expect.isError (parseMode "coin") "unknown"
          } ]

[<Tests>]
let tests = testList "Sampling" [ laws; fraction; deletes; rates ]
