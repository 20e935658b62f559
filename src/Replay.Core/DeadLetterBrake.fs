/// `--max-dead-letter-ratio`: when too many of the last records became dead letters,
/// consuming is held. Dead letters are kept (a file, a topic), so nothing is lost — but a
/// destination that refuses everything after a bad deploy, or rules gone wrong, would
/// otherwise turn the whole topic into dead letters at full speed.
///
/// The window is the last 1,000 records that were to be sent (delivered, dropped or
/// dead-lettered; skipped records do not count, so sampling does not dilute it), judged
/// once 100 have finished. Over the ratio, every partition is paused (through
/// Backpressure.wantsPause, the one place pauses are decided) for a minute; then
/// consuming resumes as a probe with a fresh window: 100 records under the ratio and
/// the brake is off again, over it and it holds again for twice as long (up to 10
/// minutes). A circuit breaker, in other words: an operator who fixes the destination
/// sees the replay resume by itself, one who fixes the rules sees it resume at once
/// (the host releases the brake on a new rules generation), and a restart always resumes.
module Replay.Core.DeadLetterBrake

type Settings =
    { /// Hold when more than this share of the window's records became dead letters.
      MaxRatio: float
      /// The window: the last Buckets × BucketSize finished records, counted per bucket.
      BucketSize: int
      Buckets: int
      /// Records that must have finished (since the start or a probe began) before judging.
      MinRecords: int
      /// The first hold; each probe that trips again doubles it, up to MaxHoldMs.
      HoldMs: int64
      MaxHoldMs: int64 }

/// The brake at a ratio, every other parameter at its default.
let settings (maxRatio: float) =
    { MaxRatio = maxRatio
      BucketSize = 100
      Buckets = 10
      MinRecords = 100
      HoldMs = 60_000L
      MaxHoldMs = 600_000L }

/// Whether a --max-dead-letter-ratio can work, or why not.
let problem (maxRatio: float) =
    if maxRatio >= 0.0 && maxRatio < 1.0 then None
    else Some $"--max-dead-letter-ratio {maxRatio}: use a fraction from 0 up to 1 (not 1 itself), e.g. 0.5 to pause when more than half the records become dead letters"

/// The outcomes of the last finished records, counted in buckets: adding one costs a few
/// increments and no allocation, on the consuming thread only.
[<Sealed>]
type Window(bucketSize: int, buckets: int) =
    let finished = Array.zeroCreate<int> buckets
    let dead = Array.zeroCreate<int> buckets
    let mutable current = 0
    let mutable totalFinished = 0
    let mutable totalDead = 0

    new(settings: Settings) = Window(settings.BucketSize, settings.Buckets)

    member _.Add(deadLettered: bool) =
        if finished[current] >= bucketSize then
            current <- (current + 1) % buckets
            totalFinished <- totalFinished - finished[current]
            totalDead <- totalDead - dead[current]
            finished[current] <- 0
            dead[current] <- 0
        finished[current] <- finished[current] + 1
        totalFinished <- totalFinished + 1
        if deadLettered then
            dead[current] <- dead[current] + 1
            totalDead <- totalDead + 1

    /// Records in the window (between (Buckets - 1) × BucketSize and Buckets × BucketSize once full).
    member _.Finished = totalFinished
    /// Those that became dead letters.
    member _.DeadLettered = totalDead

    member _.Clear() =
        System.Array.Clear finished
        System.Array.Clear dead
        current <- 0
        totalFinished <- 0
        totalDead <- 0

/// A finished record into the window: delivered and dropped records are fine, dead
/// letters are not. (Abandoned records, revoked or stopped, never end here.)
let observe (window: Window) (ended: Conclusion) =
    match ended with
    | Conclusion.Delivered
    | Conclusion.Dropped -> window.Add false
    | Conclusion.DeadLettered -> window.Add true
    | _ -> ()

type State =
    /// Consuming; the next hold lasts this long.
    | Open of nextHoldMs: int64
    /// Held since this time (the caller's clock), for this long.
    | Holding of since: int64 * holdMs: int64
    /// Consuming again after a hold of this length, with a fresh window: tripping again
    /// holds twice as long.
    | Probing of lastHoldMs: int64

let initial (settings: Settings) = Open settings.HoldMs

/// What the consuming loop does (an enum: the host switches on it).
type Decision =
    | Keep = 0
    /// Start holding: pause every partition, say why.
    | Hold = 1
    /// The hold is over: clear the window, resume, say a probe begins.
    | Release = 2
    /// A probe's records came through under the ratio: the brake is off.
    | Recovered = 3

/// Too many dead letters among enough finished records.
let over (settings: Settings) (finished: int) (dead: int) =
    finished >= settings.MinRecords && float dead > settings.MaxRatio * float finished

/// One turn: the state and what to do, from the window's counts at `now`.
let step (settings: Settings) (state: State) (finished: int) (dead: int) (now: int64) : struct (State * Decision) =
    match state with
    | Open hold when over settings finished dead -> struct (Holding(now, hold), Decision.Hold)
    | Open _ -> struct (state, Decision.Keep)
    | Holding(since, hold) when now - since >= hold -> struct (Probing hold, Decision.Release)
    | Holding _ -> struct (state, Decision.Keep)
    | Probing hold when over settings finished dead -> struct (Holding(now, min settings.MaxHoldMs (hold * 2L)), Decision.Hold)
    | Probing _ when finished >= settings.MinRecords -> struct (Open settings.HoldMs, Decision.Recovered)
    | Probing _ -> struct (state, Decision.Keep)

/// Something changed that may have mended the cause (a new rules generation): a hold
/// ends now, as a probe.
let release (state: State) : struct (State * Decision) =
    match state with
    | Holding(_, hold) -> struct (Probing hold, Decision.Release)
    | _ -> struct (state, Decision.Keep)

/// What the pause decision hears from the brake.
let hold (state: State) =
    match state with
    | Holding _ -> Backpressure.DeadLetterRatio
    | _ -> Backpressure.Free
