/// How many requests may be on the wire at once under `--concurrency auto`: adaptive
/// request concurrency as Vector does it (ARC, its RFC 1858), an AIMD loop in the
/// manner of TCP congestion control, fed with what the destination's answers say
/// about its load. A prototype that slows down is not drowned, and one that is fast
/// is not starved.
///
/// Every attempt that ends gives one Signal: an answer after a round trip, a push
/// back (429, 502, 503, 504, a time-out, a connection that failed), or nothing about
/// load. Time is cut into windows about one round trip long (the long-term mean). At
/// the end of a window its mean round trip is compared with the long-term mean, an
/// EWMA over past windows, and with that mean's deviation:
/// - the limit grows by one when the window was full (the limit was reached), nothing
///   pushed back and the round trip did not rise (window mean at most the long-term
///   mean): evidence that the destination takes more without slowing down;
/// - it shrinks by DecreaseRatio (rounded down, never below 1) when something pushed
///   back or the window mean rose past the long-term mean plus RttDeviationScale
///   deviations;
/// - otherwise it stays.
/// So it changes at most once per window: one slow burst costs one step, not one per
/// answer.
///
/// One addition to Vector's rules. Its long-term mean follows the round trip wherever
/// it goes, so a destination whose latency climbs in steps smaller than its own jitter
/// is followed up rather than protected. Simulated with jitter (ConcurrencyLimitTests),
/// Vector's rules alone held about 13 requests in flight against a server whose latency
/// triples with every request past 8, 21 where it grows 20 ms a request, and 45 to 51
/// where it grows in proportion (8 workers and a queue). So the limit also answers to
/// the round trip without load, learned while the limit is 1 or 2 (at the start, and
/// again whenever it falls that low): a window slower than Tolerance times that, and by
/// MinRise at least, is overload, which shrinks the limit and keeps it from growing. The same servers then
/// hold 8, 8 and 14 to 16, a server that slows down for everyone is learned again, and
/// one with a flat latency still gets 58 to 59 of 64.
///
/// Nothing here reads a clock: the host passes the time and each round trip in.
module Replay.Core.ConcurrencyLimit

open System

type Settings =
    { /// The limit never goes above this (`--max-concurrency`); the host keeps this many senders ready.
      Max: int
      /// The factor a decrease multiplies the limit by, in (0, 1).
      DecreaseRatio: float
      /// The weight of a new window's mean in the long-term mean, in (0, 1].
      EwmaAlpha: float
      /// How many deviations above the long-term mean a window's mean must be to count as rising.
      RttDeviationScale: float
      /// A window whose mean round trip is more than this many times the unloaded one is overload...
      Tolerance: float
      /// ...and at least this much slower than it: below that, the replay's own machine is as
      /// likely the cause as the destination.
      MinRise: TimeSpan
      /// The shortest window, so that a destination answering in microseconds is not
      /// judged again after every answer.
      MinWindow: TimeSpan }

/// Vector's tuned parameters (decrease to 90%, EWMA weight 0.4, 2.5 deviations); overload
/// at twice the unloaded round trip, where a server with a queue has as many requests
/// waiting as in service (Netflix's Gradient2 limit tolerates 1.5 to 2 times its long-term
/// latency), and 5 ms slower at least: a local nginx answered in 0.2 ms alone and 1.5 ms at
/// 64 at once on a busy 2-core machine, yet took three times the records a second at 64, since
/// most of each request's time there was the replay's own; and at most 64 on the wire: the
/// fixed `--concurrency` default, so that switching to `auto` never loads a destination more
/// than a default run did.
let defaults =
    { Max = 64
      DecreaseRatio = 0.9
      EwmaAlpha = 0.4
      RttDeviationScale = 2.5
      Tolerance = 2.0
      MinRise = TimeSpan.FromMilliseconds 5.0
      MinWindow = TimeSpan.FromMilliseconds 1.0 }

/// The defaults, with at most `max` on the wire.
let upTo (max: int) = { defaults with Max = max }

/// What one finished attempt says about the destination's load.
[<Struct>]
type Signal =
    /// It answered, and did not push back, after this round trip.
    | Answered of rtt: TimeSpan
    /// It pushed back: too many requests, unavailable, timed out, or would not talk.
    | BackPressure
    /// Nothing about load: abandoned by a revoke or a stop, or a bug on our side.
    | Silent

/// Statuses that ask the client to send less: 429 and 503 directly; 502 and 504 are a
/// proxy saying that the server behind it refused or timed out.
let isBackPressure (status: int) = status = 429 || status = 502 || status = 503 || status = 504

/// The Signal of an attempt that took `rtt`.
let signal (attempt: Outcome.Attempt) (rtt: TimeSpan) : Signal =
    match attempt with
    | Outcome.Answered answer when isBackPressure answer.Status -> BackPressure
    | Outcome.Answered _ -> Answered rtt
    | Outcome.TimedOut
    | Outcome.Unreachable _ -> BackPressure

/// The long-term round trip: an exponentially weighted mean and variance (in ticks).
[<Struct>]
type Average = { Mean: float; Variance: float }

[<Struct>]
type State =
    { /// Attempts allowed on the wire at once now, in [1, Max].
      Limit: int
      /// Attempts on the wire now.
      InFlight: int
      /// The long-term round trip; none before the first answer.
      Past: Average voption
      /// The mean round trip (ticks) while the limit was 1 or 2; none before the first such window.
      Unloaded: float voption
      /// When the current window ends (the caller's clock); meaningless before the first answer.
      WindowEnds: TimeSpan
      /// The current window's answers: the sum of their round trips in ticks, and how many.
      RttTicks: int64
      Answers: int
      /// Something pushed back in the current window.
      PushedBack: bool
      /// The limit was reached in the current window: the window was full.
      Full: bool }

/// One attempt at a time, until the destination's answers show it takes more.
let initial =
    { Limit = 1
      InFlight = 0
      Past = ValueNone
      Unloaded = ValueNone
      WindowEnds = TimeSpan.Zero
      RttTicks = 0L
      Answers = 0
      PushedBack = false
      Full = false }

/// An attempt goes on the wire.
let started (state: State) =
    let inFlight = state.InFlight + 1
    { state with InFlight = inFlight; Full = state.Full || inFlight >= state.Limit }

/// The EWMA of mean and variance (West's recurrence), as Vector keeps it.
let private update (alpha: float) (past: Average) (sample: float) =
    let difference = sample - past.Mean
    let increment = alpha * difference
    { Mean = past.Mean + increment; Variance = (1.0 - alpha) * (past.Variance + difference * increment) }

/// The limit at the end of a window, from the window's mean round trip (if it had answers).
let private judge (settings: Settings) (past: Average) (overloaded: bool) (current: float voption) (state: State) =
    let threshold = sqrt past.Variance * settings.RttDeviationScale
    let steady =
        match current with
        | ValueSome mean -> mean <= past.Mean && not overloaded
        | ValueNone -> false
    // Strictly above: a round trip equal to the long-term one is not rising, even when
    // the deviation is zero.
    let rising =
        match current with
        | ValueSome mean -> mean > past.Mean + threshold || overloaded
        | ValueNone -> false
    if state.Limit < settings.Max && state.Full && not state.PushedBack && steady then
        state.Limit + 1
    elif state.Limit > 1 && (state.PushedBack || rising) then
        max 1 (int (float state.Limit * settings.DecreaseRatio))
    else
        state.Limit

/// The unloaded round trip learns from windows run at a limit of 1, whatever they show
/// (nothing else of ours was on the wire), and from windows at 2 that were not overload.
let private learnUnloaded (settings: Settings) (overloaded: bool) (current: float voption) (state: State) =
    match current, state.Unloaded with
    | ValueSome mean, unloaded when state.Limit = 1 || (state.Limit = 2 && not overloaded && not state.PushedBack) ->
        match unloaded with
        | ValueSome before -> ValueSome(before + settings.EwmaAlpha * (mean - before))
        | ValueNone -> ValueSome mean
    | _, unloaded -> unloaded

let private nextWindow (settings: Settings) (now: TimeSpan) (past: Average) (state: State) =
    let length = TimeSpan.FromTicks(int64 (min past.Mean (float TimeSpan.MaxValue.Ticks / 4.0)))
    { state with
        Past = ValueSome past
        WindowEnds = now + max length settings.MinWindow
        RttTicks = 0L
        Answers = 0
        PushedBack = false
        Full = false }

/// An attempt came off the wire at `now`, saying `signal`; at a window's end, the limit is judged.
let finished (settings: Settings) (signal: Signal) (now: TimeSpan) (state: State) : State =
    let state = { state with InFlight = max 0 (state.InFlight - 1) }
    let state =
        match signal with
        | Answered rtt -> { state with RttTicks = state.RttTicks + max 0L rtt.Ticks; Answers = state.Answers + 1 }
        | BackPressure -> { state with PushedBack = true }
        | Silent -> state
    let current = if state.Answers > 0 then ValueSome(float state.RttTicks / float state.Answers) else ValueNone
    match state.Past, current with
    | ValueNone, ValueNone -> state
    // The first answer: the long-term mean starts from it, and so does the first window.
    | ValueNone, ValueSome first -> nextWindow settings now { Mean = first; Variance = 0.0 } state
    | ValueSome past, _ when now >= state.WindowEnds ->
        let overloaded =
            match current, state.Unloaded with
            | ValueSome mean, ValueSome unloaded ->
                mean > settings.Tolerance * unloaded && mean - unloaded > float settings.MinRise.Ticks
            | _ -> false
        let limit = min settings.Max (max 1 (judge settings past overloaded current state))
        let unloaded = learnUnloaded settings overloaded current state
        let past =
            match current with
            | ValueSome mean -> update settings.EwmaAlpha past mean
            | ValueNone -> past
        nextWindow settings now past { state with Limit = limit; Unloaded = unloaded }
    | ValueSome _, _ -> state

/// More senders than any destination should take from one replay: the in-flight budget
/// (`--max-in-flight-records`) bounds what is sent long before.
let MostEver = 10_000

/// Why the settings cannot work, or None.
let problem (settings: Settings) : string option =
    if settings.Max < 1 then Some $"--max-concurrency {settings.Max}: must be at least 1"
    elif settings.Max > MostEver then Some $"--max-concurrency {settings.Max}: at most {MostEver}"
    elif not (settings.DecreaseRatio > 0.0 && settings.DecreaseRatio < 1.0) then Some "the decrease ratio must be between 0 and 1"
    elif not (settings.EwmaAlpha > 0.0 && settings.EwmaAlpha <= 1.0) then Some "the EWMA weight must be in (0, 1]"
    elif not (settings.RttDeviationScale >= 0.0) || Double.IsInfinity settings.RttDeviationScale then Some "the deviation scale must be 0 or more"
    elif not (settings.Tolerance > 1.0) || Double.IsInfinity settings.Tolerance then Some "the tolerance must be more than 1"
    elif settings.MinRise < TimeSpan.Zero then Some "the least rise that counts as overload must not be negative"
    elif settings.MinWindow <= TimeSpan.Zero then Some "the shortest window must be positive"
    else None
