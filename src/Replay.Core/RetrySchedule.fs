/// How long a failing record waits before its next attempt, and when it stops
/// trying. Every input is bounded: the jittered backoff and a server's
/// `Retry-After` are capped by `--max-backoff`, and a wait that would end past the
/// `--max-retry-duration` deadline ends at the deadline instead, so no timer is ever
/// handed a duration the runtime refuses and no record waits past its bound.
///
/// A record that keeps failing while other records to the same destination are
/// delivered is poison: after `--poison-after` of such failing it is given up
/// (dead-lettered), so that it cannot hold its partition's commit for hours. While
/// the destination fails for everyone (an outage), nothing accrues: the replay
/// waits, it does not throw records away.
module Replay.Core.RetrySchedule

open System

/// The longest any wait may be: far below the ~49.7 days where .NET timers throw.
let MaxWait = TimeSpan.FromDays 1.0

type Settings =
    { /// The first backoff's ceiling; it doubles per attempt up to MaxBackoff.
      BaseDelay: TimeSpan
      /// No wait is longer, a server's Retry-After included.
      MaxBackoff: TimeSpan
      /// None: retry until delivered (or poison).
      MaxRetryDuration: TimeSpan option
      PoisonAfter: TimeSpan }

let defaults =
    { BaseDelay = TimeSpan.FromMilliseconds 100.0
      MaxBackoff = TimeSpan.FromMinutes 5.0
      MaxRetryDuration = None
      PoisonAfter = TimeSpan.FromMinutes 10.0 }

let private clamp (low: TimeSpan) (high: TimeSpan) (value: TimeSpan) = if value < low then low elif value > high then high else value

/// Settings with every duration within what a timer accepts: the checks at the
/// flags say so to the operator; this makes the bound hold whatever comes in.
let bounded (settings: Settings) =
    let maxBackoff = clamp TimeSpan.Zero MaxWait settings.MaxBackoff
    { BaseDelay = clamp TimeSpan.Zero maxBackoff settings.BaseDelay
      MaxBackoff = maxBackoff
      MaxRetryDuration = settings.MaxRetryDuration |> Option.map (clamp TimeSpan.Zero TimeSpan.MaxValue)
      PoisonAfter = clamp TimeSpan.Zero TimeSpan.MaxValue settings.PoisonAfter }

/// Exponential backoff with full jitter: uniform in [0, min(MaxBackoff, base·2^n)),
/// `draw` uniform in [0, 1). A longer `Retry-After` wins, up to MaxBackoff.
let backoff (settings: Settings) (attempt: int) (draw: float) (retryAfter: TimeSpan option) : TimeSpan =
    let exponent = min (max attempt 0) 30
    let cap = settings.MaxBackoff.TotalMilliseconds
    let ceiling = min cap (settings.BaseDelay.TotalMilliseconds * Math.Pow(2.0, float exponent))
    let jittered = TimeSpan.FromMilliseconds(ceiling * (min (max draw 0.0) 1.0))
    match retryAfter with
    | Some wait when wait > jittered -> if wait > settings.MaxBackoff then settings.MaxBackoff else wait
    | _ -> jittered

/// A record's history of failed attempts, in milliseconds of the caller's clock.
[<Struct>]
type Failing =
    { /// When the first attempt failed.
      Since: int64
      Attempts: int
      LastFailure: int64
      /// Failing time during which the destination delivered other records.
      PoisonMs: int64 }

/// Adds a failed attempt at `now`. `healthy` says whether the destination is
/// serving other records meanwhile (see DeliveryEngine): if so, the time since this
/// record's previous failure counts towards poison.
let fail (previous: Failing voption) (now: int64) (healthy: bool) : Failing =
    match previous with
    | ValueNone ->
        { Since = now
          Attempts = 1
          LastFailure = now
          PoisonMs = 0L }
    | ValueSome f ->
        { f with
            Attempts = f.Attempts + 1
            LastFailure = max now f.LastFailure
            PoisonMs = if healthy then f.PoisonMs + max 0L (now - f.LastFailure) else f.PoisonMs }

/// What happens after a failed attempt.
type Next =
    | WaitFor of TimeSpan
    /// Stop trying: the record becomes a dead letter of this class, for this reason.
    | GiveUp of cause: DeadLetterCause * reason: string

let private describeDuration (d: TimeSpan) =
    if d.TotalHours >= 1.0 && d.Minutes = 0 && d.Seconds = 0 then $"{int d.TotalHours}h"
    elif d.TotalMinutes >= 1.0 && d.Seconds = 0 && d.Milliseconds = 0 then $"{int d.TotalMinutes}m"
    elif d.Milliseconds = 0 then $"{int d.TotalSeconds}s"
    else $"{int d.TotalMilliseconds}ms"

/// After the failure recorded in `failing` (at `now`), retry after a wait, or give up.
let next (settings: Settings) (failing: Failing) (now: int64) (draw: float) (retryAfter: TimeSpan option) : Next =
    let elapsed = TimeSpan.FromMilliseconds(float (max 0L (now - failing.Since)))
    match settings.MaxRetryDuration with
    | Some limit when elapsed >= limit -> GiveUp(MaxRetryDuration, $"still failing after --max-retry-duration {describeDuration limit}")
    | _ when TimeSpan.FromMilliseconds(float failing.PoisonMs) >= settings.PoisonAfter ->
        GiveUp(Poison, $"poison: kept failing for --poison-after {describeDuration settings.PoisonAfter} while the destination accepted other records")
    | limit ->
        let wait = backoff settings failing.Attempts draw retryAfter
        match limit with
        | Some limit when elapsed + wait > limit -> WaitFor(limit - elapsed)
        | _ -> WaitFor wait
