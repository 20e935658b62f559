/// The adaptive concurrency limit (`--concurrency auto`) as laws over generated stories of
/// attempts going out and coming back, and as a simulation against modelled servers on a
/// virtual clock: where the limit settles when latency rises past a knee, when it stays
/// flat, and when the server slows down for everyone.
module Replay.Tests.ConcurrencyLimitTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Outcome
open Replay.Tests.Generators

type private Event =
    /// An attempt goes on the wire (when the limit allows it).
    | Send
    /// The oldest attempt on the wire comes back.
    | Answer of rttMs: int
    | PushBack
    | Quiet
    /// Time passes.
    | Wait of ms: int

let private event: Gen<Event> =
    Gen.frequency
        [ 4, Gen.constant Send
          4, Gen.choose (1, 200) |> Gen.map Answer
          1, Gen.constant PushBack
          1, Gen.constant Quiet
          3, Gen.choose (0, 100) |> Gen.map Wait ]

let private story = Gen.zip (Gen.choose (1, 80)) (Gen.listOf event |> Gen.resize 400)

let private ms (n: float) = TimeSpan.FromMilliseconds n

/// Plays a story as the host would (never more attempts out than the limit, never more back
/// than went out), calling `check` with the state before and after every step and the time.
let private play (settings: ConcurrencyLimit.Settings) (events: Event list) check =
    let mutable state = ConcurrencyLimit.initial
    let mutable now = TimeSpan.Zero
    for e in events do
        let before = state
        match e with
        | Send when state.InFlight < state.Limit -> state <- ConcurrencyLimit.started state
        | Send -> ()
        | Answer rtt when state.InFlight > 0 -> state <- ConcurrencyLimit.finished settings (ConcurrencyLimit.Answered(ms (float rtt))) now state
        | PushBack when state.InFlight > 0 -> state <- ConcurrencyLimit.finished settings ConcurrencyLimit.BackPressure now state
        | Quiet when state.InFlight > 0 -> state <- ConcurrencyLimit.finished settings ConcurrencyLimit.Silent now state
        | Answer _
        | PushBack
        | Quiet -> ()
        | Wait n -> now <- now + ms (float n)
        check before state now
    state

/// One round under full load: as many attempts out as the limit allows, all back after `rtt`.
let private fullRound (settings: ConcurrencyLimit.Settings) (rtt: TimeSpan) (state: ConcurrencyLimit.State, now: TimeSpan) =
    let mutable state = state
    while state.InFlight < state.Limit do
        state <- ConcurrencyLimit.started state
    let now = now + rtt
    for _ in 1 .. state.InFlight do
        state <- ConcurrencyLimit.finished settings (ConcurrencyLimit.Answered rtt) now state
    state, now

/// The limit after each of `rounds` full rounds.
let private fullWindows settings rtt rounds =
    List.scan (fun at _ -> fullRound settings rtt at) (ConcurrencyLimit.initial, TimeSpan.Zero) [ 1..rounds ]
    |> List.tail
    |> List.map (fun (state, _) -> state.Limit)

let private laws =
    testList
        "laws"
        [ property "the limit stays within [1, max], whatever the answers and the timing" story (fun (max, events) ->
              let settings = ConcurrencyLimit.upTo max
              play settings events (fun _ after _ ->
                  Expect.isGreaterThanOrEqual after.Limit 1 "at least 1"
                  Expect.isLessThanOrEqual after.Limit max "at most --max-concurrency")
              |> ignore)

          property "it never changes twice within one window" story (fun (max, events) ->
              let settings = ConcurrencyLimit.upTo max
              // After each change: the window that change opened, which must end before the next.
              let mutable opened: TimeSpan voption = ValueNone
              play settings events (fun before after now ->
                  if after.Limit <> before.Limit then
                      match opened with
                      | ValueSome ends -> Expect.isGreaterThanOrEqual now ends "a second change waits for the window to end"
                      | ValueNone -> ()
                      Expect.isGreaterThan after.WindowEnds now "a change opens a window that ends later"
                      opened <- ValueSome after.WindowEnds)
              |> ignore)

          property "constant latency, no push back, every window full: one more per window, up to max" (Gen.zip (Gen.choose (1, 70)) (Gen.choose (1, 500)))
          <| fun (max, rttMs) ->
              let limits = fullWindows (ConcurrencyLimit.upTo max) (ms (float rttMs)) (max + 5)
              // The first round trip only starts the long-term mean; each window after it adds one.
              let expected = [ for w in 1 .. max + 5 -> min max w ]
              Expect.equal limits expected "1, 2, 3, ... max, max"

          property "a push back lowers the limit at the end of its window (by the decrease ratio, at least 1)" (Gen.zip (Gen.choose (2, 64)) (Gen.choose (1, 300)))
          <| fun (limit, rttMs) ->
              let settings = ConcurrencyLimit.defaults
              let rtt = ms (float rttMs)
              let grown, now = List.fold (fun at _ -> fullRound settings rtt at) (ConcurrencyLimit.initial, TimeSpan.Zero) [ 1..limit ]
              Expect.equal grown.Limit limit "grown to the limit under test"
              // One attempt out, pushed back as its window ends.
              let mutable state = ConcurrencyLimit.started grown
              state <- ConcurrencyLimit.finished settings ConcurrencyLimit.BackPressure (now + rtt) state
              Expect.equal state.Limit (Math.Max(1, int (float limit * settings.DecreaseRatio))) "decreased once"
              Expect.isLessThan state.Limit limit "lower than before"

          property "an answer that pushed back, timed out or could not connect is back pressure; any other is a round trip" (Gen.choose (100, 599))
          <| fun status ->
              let rtt = ms 12.0
              let expected =
                  if List.contains status [ 429; 502; 503; 504 ] then ConcurrencyLimit.BackPressure else ConcurrencyLimit.Answered rtt
              Expect.equal (ConcurrencyLimit.signal (Answered(Answer.status status None)) rtt) expected $"{status}"
              Expect.equal (ConcurrencyLimit.signal TimedOut rtt) ConcurrencyLimit.BackPressure "a time-out"
              Expect.equal (ConcurrencyLimit.signal (Unreachable "connection refused") rtt) ConcurrencyLimit.BackPressure "refused"

          test "a round trip equal to the long-term one is not rising, even with no deviation at all" {
              let settings = ConcurrencyLimit.upTo 8
              let mutable state = ConcurrencyLimit.initial
              let mutable now = TimeSpan.Zero
              // One attempt at a time (full only while the limit is 1), the same round trip every time.
              for _ in 1..20 do
                  state <- ConcurrencyLimit.started state
                  now <- now + ms 10.0
                  state <- ConcurrencyLimit.finished settings (ConcurrencyLimit.Answered(ms 10.0)) now state
              Expect.equal state.Limit 2 "grew while full (at 1), then held at 2: never shrank for an unchanged round trip"
          }

          test "the settings refuse what cannot work, naming the flag" {
              Expect.equal (ConcurrencyLimit.problem (ConcurrencyLimit.upTo 0)) (Some "--max-concurrency 0: must be at least 1") "0"
              Expect.equal (ConcurrencyLimit.problem (ConcurrencyLimit.upTo 10_001)) (Some "--max-concurrency 10001: at most 10000") "too many"
              Expect.isNone (ConcurrencyLimit.problem ConcurrencyLimit.defaults) "the defaults work"
              Expect.isSome (ConcurrencyLimit.problem { ConcurrencyLimit.defaults with DecreaseRatio = 1.0 }) "a decrease must decrease"
          } ]

/// A server on a virtual clock: how long a request takes when `busy` requests (itself
/// included) are being served as it arrives, jittered; answers are measured with some
/// noise on top, as a busy machine adds. Returns the time-weighted distribution of
/// requests on the wire after a warm-up.
let private simulateWith (noiseMs: float) (settings: ConcurrencyLimit.Settings) (latency: float -> int -> float) seconds seed =
    let random = Random(seed: int)
    let mutable state = ConcurrencyLimit.initial
    let completions = Collections.Generic.PriorityQueue<struct (float * float), float>()
    let mutable busy = 0
    let mutable now = 0.0
    let mutable last = 0.0
    let warmUp = 2000.0
    let time = Array.zeroCreate (settings.Max + 1)
    let fill () =
        while state.InFlight < state.Limit do
            state <- ConcurrencyLimit.started state
            busy <- busy + 1
            let jitter = 1.0 + 0.3 * -Math.Log(1.0 - random.NextDouble())
            let took = latency now busy * jitter
            completions.Enqueue(struct (now, now + took), now + took)
    fill ()
    while now < seconds * 1000.0 do
        let struct (sentAt, doneAt) = completions.Dequeue()
        if doneAt > warmUp then
            time[state.InFlight] <- time[state.InFlight] + (doneAt - max last warmUp)
        last <- doneAt
        now <- doneAt
        busy <- busy - 1
        let measured = doneAt - sentAt + noiseMs * random.NextDouble()
        state <- ConcurrencyLimit.finished settings (ConcurrencyLimit.Answered(ms measured)) (ms now) state
        fill ()
    let total = Array.sum time
    let mean = (time |> Array.mapi (fun n t -> float n * t) |> Array.sum) / total
    let percentile p =
        let mutable seen = 0.0
        let mutable n = 0
        while seen + time[n] < p * total do
            seen <- seen + time[n]
            n <- n + 1
        n
    mean, percentile 0.5, percentile 0.9

let private simulate = simulateWith 2.0

let private settles =
    testList
        "against modelled servers"
        [ test "latency that triples with every request past 8: the limit settles near 8, never near 64" {
              let steep _ busy = 5.0 * Math.Pow(3.0, float (max 0 (busy - 8)))
              for seed in 1..3 do
                  let mean, p50, p90 = simulate ConcurrencyLimit.defaults steep 40.0 seed
                  Expect.isTrue (mean >= 7.0 && mean <= 10.0) $"seed {seed}: mean in flight {mean:F1} near 8"
                  Expect.isLessThanOrEqual p90 10 $"seed {seed}: p50 {p50}, p90 {p90}"
          }

          test "latency that grows 20 ms with every request past 8: near 8 as well" {
              let linear _ busy = 5.0 + 20.0 * float (max 0 (busy - 8))
              let mean, _, p90 = simulate ConcurrencyLimit.defaults linear 40.0 1
              Expect.isTrue (mean >= 7.0 && mean <= 10.0) $"mean in flight {mean:F1}"
              Expect.isLessThanOrEqual p90 10 "p90"
          }

          test "a flat latency is not starved: the limit stays near --max-concurrency" {
              let flat _ _ = 5.0
              let mean, _, _ = simulate ConcurrencyLimit.defaults flat 40.0 1
              Expect.isGreaterThan mean 48.0 $"mean in flight {mean:F1} of 64"
          }

          test "a server that slows down for everyone is learned again: back near its knee, not stuck at 1" {
              // After 15 s every request takes four times as long, and the knee stays at 8.
              let slowing now busy = (if now > 15_000.0 then 20.0 else 5.0) * Math.Pow(2.0, float (min 6 (max 0 (busy - 8))))
              let mean, p50, _ = simulate ConcurrencyLimit.defaults slowing 40.0 1
              Expect.isTrue (mean >= 7.0 && mean <= 11.0) $"mean in flight {mean:F1}, p50 {p50}"
          }

          test "a destination answering in a fraction of a millisecond, 7 times slower at 64 at once, is not held back" {
              // Rises under MinRise are as likely the replay's own machine: a local nginx behaved so and
              // still took three times the records a second at 64 as at 8.
              let fast _ busy = 0.2 + 0.02 * float busy
              let mean, _, _ = simulateWith 0.2 ConcurrencyLimit.defaults fast 20.0 1
              Expect.isGreaterThan mean 48.0 $"mean in flight {mean:F1} of 64"
              let heldBack, _, _ = simulateWith 0.2 { ConcurrencyLimit.defaults with MinRise = TimeSpan.Zero } fast 20.0 1
              Expect.isLessThan heldBack 24.0 $"without MinRise it would be held at {heldBack:F1}"
          }

          test "without the unloaded round trip (Vector's rules alone) the steep server drifts well past its knee" {
              // Why the core adds the tolerance: this is the drift it prevents.
              let steep _ busy = 5.0 * Math.Pow(3.0, float (max 0 (busy - 8)))
              let mean, _, _ = simulate { ConcurrencyLimit.defaults with Tolerance = 1e12 } steep 40.0 1
              Expect.isGreaterThan mean 11.0 $"mean in flight {mean:F1}"
          } ]

[<Tests>]
let tests = testList "ConcurrencyLimit" [ laws; settles ]
