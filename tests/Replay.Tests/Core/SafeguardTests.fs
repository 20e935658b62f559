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
