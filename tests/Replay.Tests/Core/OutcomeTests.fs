/// What an HTTP attempt means for its record, and how long to wait before the next.
module Replay.Tests.OutcomeTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Core.Outcome
open Replay.Tests.Generators

let private retryAfter: Gen<TimeSpan option> =
    Gen.frequency
        [ 1, Gen.constant None
          2, Gen.choose (0, 1_000_000) |> Gen.map (fun ms -> Some(TimeSpan.FromMilliseconds(float ms))) ]

let private statuses ranges = Gen.elements [ for lo, hi in ranges do yield! [ lo..hi ] ]

let private classification =
    testList
        "classify"
        [ property "2xx is Delivered" (Gen.zip (statuses [ 200, 299 ]) retryAfter) (fun (status, after) ->
              Expect.equal (classify (Answered(status, after))) Delivered $"{status}")

          property "408, 429 and 5xx are Retry, carrying Retry-After" (Gen.zip (statuses [ 408, 408; 429, 429; 500, 599 ]) retryAfter)
          <| fun (status, after) -> Expect.equal (classify (Answered(status, after))) (Retry after) $"{status}"

          property "3xx and the other 4xx are Permanent" (statuses [ 300, 399; 400, 407; 409, 428; 430, 499 ]) (fun status ->
              match classify (Answered(status, Some(TimeSpan.FromSeconds 1.0))) with
              | Permanent reason -> Expect.stringContains reason (string status) "the reason names the status"
              | other -> failtest $"{status} gave {other}")

          test "timeouts and unreachable destinations are Retry without a wait of their own" {
              Expect.equal (classify TimedOut) (Retry None) "timeout"
              Expect.equal (classify (Unreachable "connection refused")) (Retry None) "refused"
          } ]

/// Backoff parameters: base and cap in milliseconds, the attempt number, the draw.
let private parameters =
    gen {
        let! baseMs = Gen.choose (1, 10_000)
        let! capMs = Gen.choose (0, 600_000)
        let! attempt = Gen.frequency [ 4, Gen.choose (0, 40); 1, Gen.elements [ 1_000; Int32.MaxValue ] ]
        let! d = draw
        return TimeSpan.FromMilliseconds(float baseMs), TimeSpan.FromMilliseconds(float capMs), attempt, d
    }

let private ceiling (baseDelay: TimeSpan) (cap: TimeSpan) attempt =
    min cap.TotalMilliseconds (baseDelay.TotalMilliseconds * Math.Pow(2.0, float (min attempt 30)))

/// One tick: TimeSpan keeps 100 ns, so a computed wait may be a tick off the real number.
let private tick = TimeSpan.FromTicks 1L

let private backoffs =
    testList
        "backoff"
        [ property "without Retry-After: ceiling · draw, within [0, min(cap, base·2^n)]" parameters (fun (baseDelay, cap, attempt, d) ->
              let wait = backoff baseDelay cap attempt d None
              let bound = ceiling baseDelay cap attempt
              Expect.isGreaterThanOrEqual wait TimeSpan.Zero "never negative"
              Expect.isLessThanOrEqual wait.TotalMilliseconds bound "never past the ceiling"
              Expect.isLessThanOrEqual (abs (wait.TotalMilliseconds - bound * d)) tick.TotalMilliseconds "full jitter: the draw scales the ceiling")

          property "a longer Retry-After wins, whole; a shorter one changes nothing" (Gen.zip parameters retryAfter)
          <| fun ((baseDelay, cap, attempt, d), after) ->
              let jittered = backoff baseDelay cap attempt d None
              let wait = backoff baseDelay cap attempt d after
              match after with
              // The destination knows its recovery time; --max-retry-duration bounds the total instead.
              | Some server when server > jittered -> Expect.equal wait server "the server's wait"
              | _ -> Expect.equal wait jittered "the jittered wait"

          property "the ceiling doubles per attempt until the cap" (Gen.zip (Gen.choose (1, 1000)) (Gen.choose (0, 20))) (fun (baseMs, attempt) ->
              let baseDelay = TimeSpan.FromMilliseconds(float baseMs)
              let cap = TimeSpan.FromHours 1.0
              // A draw just under 1 shows the ceiling.
              let top n = (backoff baseDelay cap n 0.999999 None).TotalMilliseconds
              let expected = min cap.TotalMilliseconds (2.0 * top attempt / 0.999999) * 0.999999
              // Each wait is truncated to whole ticks: allow the rounding of both.
              Expect.isLessThanOrEqual (abs (top (attempt + 1) - expected)) (3.0 * tick.TotalMilliseconds) $"attempt {attempt + 1}")

          test "a draw of 0 waits not at all; huge attempt numbers stay at the cap" {
              Expect.equal (backoff (TimeSpan.FromSeconds 1.0) (TimeSpan.FromSeconds 30.0) 5 0.0 None) TimeSpan.Zero "draw 0"
              let wait = backoff (TimeSpan.FromSeconds 1.0) (TimeSpan.FromSeconds 30.0) Int32.MaxValue 0.5 None
              Expect.equal wait (TimeSpan.FromSeconds 15.0) "half the cap"
          } ]

[<Tests>]
let tests = testList "Outcome" [ classification; backoffs ]
