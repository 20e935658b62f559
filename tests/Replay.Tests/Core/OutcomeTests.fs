/// What an HTTP attempt means for its record (status policy, classification) and
/// how long it waits before the next (the retry schedule, every input bounded).
module Replay.Tests.OutcomeTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Outcome
open Replay.Tests.Generators

let private retryAfter: Gen<TimeSpan option> =
    Gen.frequency
        [ 1, Gen.constant None
          2, Gen.choose (0, 1_000_000) |> Gen.map (fun ms -> Some(TimeSpan.FromMilliseconds(float ms)))
          // Hostile: a 49-day, a century, and the largest a TimeSpan holds.
          1, Gen.elements [ TimeSpan.FromSeconds 4294968.0; TimeSpan.FromDays 36500.0; TimeSpan.MaxValue ] |> Gen.map Some ]

let private statuses ranges = Gen.elements [ for lo, hi in ranges do yield! [ lo..hi ] ]
let private answered status after = Answered(Answer.status status after)
let private byDefault = classify StatusPolicy.defaults

let private classification =
    testList
        "classify"
        [ property "2xx is Delivered" (Gen.zip (statuses [ 200, 299 ]) retryAfter) (fun (status, after) ->
              Expect.equal (byDefault (answered status after)) Delivered $"{status}")

          property "408, 429 and 5xx are Retry, carrying Retry-After" (Gen.zip (statuses [ 408, 408; 429, 429; 500, 599 ]) retryAfter)
          <| fun (status, after) -> Expect.equal (byDefault (answered status after)) (Retry after) $"{status}"

          property "3xx and the other 4xx are Permanent" (statuses [ 300, 399; 400, 407; 409, 428; 430, 499 ]) (fun status ->
              match byDefault (answered status (Some(TimeSpan.FromSeconds 1.0))) with
              | Permanent reason -> Expect.stringContains reason (string status) "the reason names the status"
              | other -> failtest $"{status} gave {other}")

          test "timeouts and unreachable destinations are Retry without a wait of their own" {
              Expect.equal (byDefault TimedOut) (Retry None) "timeout"
              Expect.equal (byDefault (Unreachable "connection refused")) (Retry None) "refused"
          } ]

let private policy entries =
    match StatusPolicy.create entries with
    | Ok p -> p
    | Error e -> failtest e

let private range text =
    match StatusPolicy.parseRange text with
    | Ok r -> r
    | Error e -> failtest e

let private statusPolicy =
    testList
        "status policy"
        [ test "overrides change only what they name; the narrowest entry wins" {
              let p = policy [ range "5xx", StatusPolicy.Drop; range "501", StatusPolicy.Success; range "404", StatusPolicy.Success ]
              Expect.equal (classify p (answered 404 None)) Delivered "--ok-on 404"
              Expect.equal (classify p (answered 503 None)) (Dropped 503) "5xx dropped"
              Expect.equal (classify p (answered 501 None)) Delivered "501 narrower than 5xx"
              Expect.equal (classify p (answered 429 None)) (Retry None) "429 keeps its default"
              Expect.equal (classify p (answered 400 None)) (Permanent "the destination answered 400") "400 keeps its default"
          }

          property "with no overrides every status keeps its built-in meaning" (Gen.choose (100, 599)) (fun status ->
              Expect.equal (StatusPolicy.meaning StatusPolicy.defaults status) (StatusPolicy.builtIn status) $"{status}")

          property "a layered policy answers as the upper one wherever it has an entry" (Gen.choose (100, 599)) (fun status ->
              let rule = policy [ range "404", StatusPolicy.Drop ]
              let flags = policy [ range "4xx", StatusPolicy.Success; range "5xx", StatusPolicy.Fail ]
              let expected =
                  if status = 404 then StatusPolicy.Drop
                  elif status >= 400 && status < 500 then StatusPolicy.Success
                  elif status >= 500 then StatusPolicy.Fail
                  else StatusPolicy.builtIn status
              Expect.equal (StatusPolicy.meaning (StatusPolicy.layer rule flags) status) expected $"{status}")

          test "lists parse codes, classes and ranges; nonsense is refused with the reason" {
              Expect.equal (StatusPolicy.parseList "404, 4xx,500-503") (Ok [ range "404"; { Low = 400; High = 499 }; { Low = 500; High = 503 } ]) "parsed"
              for bad in [ ""; "abc"; "99"; "600"; "6xx"; "503-500"; "4x"; "1,,x" ] do
                  Expect.isError (StatusPolicy.parseList bad) $"'{bad}' refused"
          }

          test "one status with two meanings is refused, naming it" {
              match StatusPolicy.create [ range "409", StatusPolicy.Success; range "409", StatusPolicy.Drop ] with
              | Error e -> Expect.stringContains e "409" "names the status"
              | Ok _ -> failtest "accepted a clash"
          } ]

let private settings =
    gen {
        let! baseMs = Gen.choose (1, 10_000)
        let! capMs = Gen.frequency [ 4, Gen.choose (0, 600_000); 1, Gen.constant Int32.MaxValue ]
        let! limit = Gen.frequency [ 1, Gen.constant None; 2, Gen.choose (0, 3_600_000) |> Gen.map (fun ms -> Some(TimeSpan.FromMilliseconds(float ms))) ]
        let! poisonMs = Gen.choose (0, 3_600_000)
        return
            RetrySchedule.bounded
                { BaseDelay = TimeSpan.FromMilliseconds(float baseMs)
                  MaxBackoff = TimeSpan.FromMilliseconds(float capMs)
                  MaxRetryDuration = limit
                  PoisonAfter = TimeSpan.FromMilliseconds(float poisonMs) }
    }

let private ceiling (s: RetrySchedule.Settings) attempt =
    min s.MaxBackoff.TotalMilliseconds (s.BaseDelay.TotalMilliseconds * Math.Pow(2.0, float (min attempt 30)))

/// One tick: TimeSpan keeps 100 ns, so a computed wait may be a tick off the real number.
let private tick = TimeSpan.FromTicks 1L

/// A history of failed attempts: the times between them, and whether the destination
/// delivered something else in each gap.
let private history =
    Gen.listOfLength 12 (Gen.zip (Gen.choose (0, 400_000)) (Gen.elements [ true; false ]))
    |> Gen.map (fun gaps ->
        let mutable now = 1_000L
        let mutable failing = RetrySchedule.fail ValueNone now false
        let mutable healthyMs = 0L
        for gap, healthy in gaps do
            now <- now + int64 gap
            failing <- RetrySchedule.fail (ValueSome failing) now healthy
            if healthy then healthyMs <- healthyMs + int64 gap
        failing, now, healthyMs)

let private schedule =
    testList
        "retry schedule"
        [ property "the wait is never negative, never past --max-backoff, never past a day, whatever Retry-After says"
              (Gen.zip3 settings (Gen.choose (0, Int32.MaxValue)) (Gen.zip draw retryAfter))
          <| fun (s, attempt, (d, after)) ->
              let wait = RetrySchedule.backoff s attempt d after
              Expect.isGreaterThanOrEqual wait TimeSpan.Zero "never negative"
              Expect.isLessThanOrEqual wait s.MaxBackoff "never past --max-backoff"
              Expect.isLessThanOrEqual wait RetrySchedule.MaxWait "a timer accepts it"

          property "without Retry-After: ceiling · draw (full jitter)" (Gen.zip3 settings (Gen.choose (0, 40)) draw)
          <| fun (s, attempt, d) ->
              let wait = RetrySchedule.backoff s attempt d None
              let bound = ceiling s attempt
              Expect.isLessThanOrEqual (abs (wait.TotalMilliseconds - bound * d)) tick.TotalMilliseconds "the draw scales the ceiling"

          property "a longer Retry-After wins up to --max-backoff; a shorter one changes nothing" (Gen.zip3 settings (Gen.choose (0, 40)) (Gen.zip draw retryAfter))
          <| fun (s, attempt, (d, after)) ->
              let jittered = RetrySchedule.backoff s attempt d None
              let wait = RetrySchedule.backoff s attempt d after
              match after with
              | Some server when server > jittered -> Expect.equal wait (min server s.MaxBackoff) "the server's wait, capped"
              | _ -> Expect.equal wait jittered "the jittered wait"

          property "no wait ends past the --max-retry-duration deadline; at the deadline the record is given up"
              (Gen.zip3 settings history (Gen.zip draw retryAfter))
          <| fun (s, (failing, now, _), (d, after)) ->
              let elapsed = TimeSpan.FromMilliseconds(float (now - failing.Since))
              match s.MaxRetryDuration, RetrySchedule.next s failing now d after with
              | Some limit, RetrySchedule.WaitFor wait -> Expect.isLessThanOrEqual (elapsed + wait) limit "ends by the deadline"
              | Some limit, RetrySchedule.GiveUp(cause, reason) when elapsed >= limit ->
                  Expect.stringContains reason "max-retry-duration" "says why"
                  Expect.equal cause MaxRetryDuration "classed as max-retry-duration"
              | None, RetrySchedule.WaitFor wait -> Expect.isLessThanOrEqual wait s.MaxBackoff "bounded"
              | _, RetrySchedule.GiveUp(cause, reason) ->
                  Expect.stringContains reason "poison" "only poison gives up early"
                  Expect.equal cause Poison "classed as poison"

          property "poison accrues only over the gaps when the destination served others" history (fun (failing, _, healthyMs) ->
              Expect.equal failing.PoisonMs healthyMs "the healthy gaps, exactly")

          test "an outage never makes poison; a healthy destination does, after --poison-after" {
              let s = { RetrySchedule.defaults with PoisonAfter = TimeSpan.FromMinutes 10.0 }
              let mutable outage = RetrySchedule.fail ValueNone 0L false
              for minute in 1..120 do
                  outage <- RetrySchedule.fail (ValueSome outage) (int64 minute * 60_000L) false
              Expect.equal (RetrySchedule.next s outage (120L * 60_000L) 0.5 None |> function RetrySchedule.WaitFor _ -> true | _ -> false) true "two hours of outage: still waiting"
              let mutable poison = RetrySchedule.fail ValueNone 0L false
              for minute in 1..10 do
                  poison <- RetrySchedule.fail (ValueSome poison) (int64 minute * 60_000L) true
              match RetrySchedule.next s poison (10L * 60_000L) 0.5 None with
              | RetrySchedule.GiveUp(cause, reason) ->
                  Expect.stringContains reason "poison" "given up as poison"
                  Expect.equal cause Poison "classed as poison"
              | other -> failtest $"still {other}"
          }

          test "Retry-After of 4294968 s (past .NET's timer limit) waits --max-backoff" {
              let wait = RetrySchedule.backoff RetrySchedule.defaults 1 0.5 (Some(TimeSpan.FromSeconds 4294968.0))
              Expect.equal wait (TimeSpan.FromMinutes 5.0) "capped at the default --max-backoff"
          } ]

[<Tests>]
let tests = testList "Outcome" [ classification; statusPolicy; schedule ]
