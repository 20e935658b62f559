/// The brakes on a replay that goes wrong, as the core decides them from counts alone: a
/// reloaded rules generation rolled back when its rules fail on clearly more records than
/// its predecessor's did (RulesProbation), and consuming held when too many of the last
/// records became dead letters (DeadLetterBrake).
module Replay.Tests.SafeguardTests

open Expecto
open FsCheck.FSharp
open Replay.Core
open Replay.Tests.Generators

let private probation = RulesProbation.defaults

/// Counts with 0 <= failed <= routed.
let private counts: FsCheck.Gen<RulesProbation.Counts> =
    gen {
        let! routed = Gen.choose (0, 5000)
        let! failed = Gen.choose (0, routed)
        return { Routed = int64 routed; Failed = int64 failed }
    }

let private elapsed = Gen.choose (0, 120_000) |> Gen.map int64

[<Tests>]
let rulesProbation =
    testList
        "Rules probation"
        [ property "after its first minute a generation passes, whatever it did" (Gen.zip3 counts counts elapsed) (fun (previous, now, ms) ->
              let verdict = RulesProbation.judge probation previous now (probation.WindowMs + ms)
              Expect.equal verdict RulesProbation.Verdict.Passed "passed")

          property "fewer failures than the minimum never roll back" (Gen.zip3 counts counts elapsed) (fun (previous, now, ms) ->
              let few = { now with Failed = min now.Failed (probation.MinFailures - 1L) }
              Expect.notEqual (RulesProbation.judge probation previous few ms) RulesProbation.Verdict.RollBack "kept")

          property "failing no more than the previous generation did, plus the margin, never rolls back" (Gen.zip3 counts counts elapsed)
          <| fun (previous, now, ms) ->
              if RulesProbation.ratio now <= RulesProbation.ratio previous + probation.Margin then
                  Expect.notEqual (RulesProbation.judge probation previous now ms) RulesProbation.Verdict.RollBack "kept"

          property "within the minute, enough failures above the previous ratio plus the margin roll back" (Gen.zip3 counts counts elapsed)
          <| fun (previous, now, ms) ->
              let inWindow = ms % probation.WindowMs
              if now.Failed >= probation.MinFailures && RulesProbation.ratio now > RulesProbation.ratio previous + probation.Margin then
                  Expect.equal (RulesProbation.judge probation previous now inWindow) RulesProbation.Verdict.RollBack "rolled back"

          test "the incident: 4,439 of 10,000 records failing after a reload is rolled back within its first records" {
              let healthy: RulesProbation.Counts = { Routed = 1_000_000L; Failed = 0L }
              // Failing on 44% of records: the tenth failure comes around the 23rd record.
              let verdicts =
                  [ for routed in 1L .. 30L -> RulesProbation.judge probation healthy { Routed = routed; Failed = routed * 4439L / 10_000L } 500L ]
              let first = verdicts |> List.findIndex ((=) RulesProbation.Verdict.RollBack)
              Expect.isLessThan first 30 $"rolled back at record {first + 1}"
          }

          test "a body that cannot scrub a fifth of the payloads by design does not make a reload look broken" {
              let before: RulesProbation.Counts = { Routed = 100_000L; Failed = 20_000L }
              Expect.equal (RulesProbation.judge probation before { Routed = 1000L; Failed = 210L } 30_000L) RulesProbation.Verdict.OnProbation "kept"
              Expect.equal (RulesProbation.judge probation before { Routed = 1000L; Failed = 450L } 30_000L) RulesProbation.Verdict.RollBack "but not one failing on 45%"
          } ]

let private brake = DeadLetterBrake.settings 0.5

/// A brake small enough to reason about: 2 buckets of 3 records, judged from 4.
let private small: DeadLetterBrake.Settings =
    { MaxRatio = 0.5
      BucketSize = 3
      Buckets = 2
      MinRecords = 4
      HoldMs = 1_000L
      MaxHoldMs = 4_000L }

/// Outcomes (true: a dead letter) with what the window must hold: the last `Buckets`
/// chunks of `BucketSize`, the newest possibly partial.
let private outcomes =
    Gen.listOf (Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ])
    |> Gen.map (fun items ->
        let chunks = List.chunkBySize small.BucketSize items
        let kept = chunks |> List.skip (max 0 (chunks.Length - small.Buckets)) |> List.concat
        items, kept)

[<Tests>]
let deadLetterBrake =
    testList
        "Dead-letter brake"
        [ property "the window holds the last buckets of outcomes (reference model)" outcomes (fun (items, kept) ->
              let window = DeadLetterBrake.Window(small)
              for dead in items do
                  window.Add dead
              Expect.equal window.Finished kept.Length "records"
              Expect.equal window.DeadLettered (kept |> List.filter id |> List.length) "dead letters")

          property "consuming is never held under the ratio, nor before enough records finished"
              (Gen.zip3 (Gen.choose (0, 2000)) (Gen.choose (0, 2000)) (Gen.choose (0, 1_000_000)))
          <| fun (finished, dead, now) ->
              let dead = min dead finished
              let struct (_, decision) = DeadLetterBrake.step brake (DeadLetterBrake.initial brake) finished dead (int64 now)
              if finished < brake.MinRecords || float dead <= brake.MaxRatio * float finished then
                  Expect.equal decision DeadLetterBrake.Decision.Keep "not held"
              else
                  Expect.equal decision DeadLetterBrake.Decision.Hold "held"

          test "a hold lasts its time, then probes; a probe over the ratio holds twice as long (up to the cap), one under it lets go" {
              let step state finished dead now = DeadLetterBrake.step small state finished dead now
              let struct (held, d) = step (DeadLetterBrake.initial small) 6 4 0L
              Expect.equal d DeadLetterBrake.Decision.Hold "over: held"
              Expect.equal (DeadLetterBrake.hold held) Backpressure.DeadLetterRatio "the pause decision hears it"
              let struct (still, d) = step held 6 4 999L
              Expect.equal d DeadLetterBrake.Decision.Keep "still held before its time"
              let struct (probing, d) = step still 6 4 1_000L
              Expect.equal d DeadLetterBrake.Decision.Release "released for a probe after 1 s"
              Expect.equal (DeadLetterBrake.hold probing) Backpressure.Free "consuming again"
              let struct (waiting, d) = step probing 3 3 1_100L
              Expect.equal d DeadLetterBrake.Decision.Keep "a probe is judged on enough records only"
              let mutable state = waiting
              let mutable now = 1_200L
              let holds = ResizeArray()
              for _ in 1..4 do
                  let struct (again, d) = step state 4 4 now
                  Expect.equal d DeadLetterBrake.Decision.Hold "the probe fails: held again"
                  match again with
                  | DeadLetterBrake.Holding(_, hold) -> holds.Add hold
                  | other -> failtestf "not holding: %A" other
                  let struct (next, _) = step again 0 0 (now + 10_000L)
                  state <- next
                  now <- now + 10_001L
              Expect.equal (List.ofSeq holds) [ 2_000L; 4_000L; 4_000L; 4_000L ] "doubling, up to the cap"
              let struct (recovered, d) = step state 4 1 now
              Expect.equal d DeadLetterBrake.Decision.Recovered "a probe under the ratio lets go"
              let struct (_, d) = step recovered 6 4 (now + 1L)
              Expect.equal d DeadLetterBrake.Decision.Hold "and the next hold starts from the first length again"
              match DeadLetterBrake.step small recovered 6 4 (now + 1L) with
              | struct (DeadLetterBrake.Holding(_, hold), _) -> Expect.equal hold small.HoldMs "1 s again"
              | other -> failtestf "%A" other
          }

          test "new rules end a hold at once, as a probe; otherwise release changes nothing" {
              let struct (held, _) = DeadLetterBrake.step small (DeadLetterBrake.initial small) 6 6 0L
              let struct (probing, d) = DeadLetterBrake.release held
              Expect.equal d DeadLetterBrake.Decision.Release "released"
              Expect.isTrue probing.IsProbing "as a probe"
              let struct (same, d) = DeadLetterBrake.release (DeadLetterBrake.initial small)
              Expect.equal d DeadLetterBrake.Decision.Keep "nothing to release"
              Expect.equal same (DeadLetterBrake.initial small) "unchanged"
          }

          test "--max-dead-letter-ratio takes a fraction in [0, 1)" {
              for ok in [ 0.0; 0.01; 0.5; 0.999 ] do
                  Expect.isNone (DeadLetterBrake.problem ok) $"{ok} is fine"
              for bad in [ -0.1; 1.0; 1.5; nan; infinity ] do
                  let message = Expect.wantSome (DeadLetterBrake.problem bad) $"{bad} is refused"
                  Expect.stringContains message "--max-dead-letter-ratio" "naming the flag"
          } ]
