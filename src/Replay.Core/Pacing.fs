/// The pace of a replay (--speed): records go out with the spacing their Kafka
/// timestamps had, divided by a factor, on one clock for every partition — or as fast
/// as the destination allows (max, the default).
///
/// The schedule starts with the first record the run reads: its timestamp is the
/// window's beginning and falls on the moment it was read; a record stamped t is due
/// (t - beginning) / factor after that. Records stamped before the beginning (another
/// partition's first records, a producer's clock) and records without a timestamp are
/// due at once. The schedule is absolute: a record sent late (a slow destination) does
/// not push the later ones back, so a run that fell behind catches up as fast as it can.
///
/// A record that is not due stays in Kafka, not in the process: its partition pauses and
/// the host seeks back to it (Defer), to be fetched again `leadMs` before it is due.
/// Within the lead the record itself is kept — one per partition, its partition paused
/// (Hold) — and taken when due, so that the time a fetch takes does not make it late.
/// A paced run therefore holds at most one record per partition besides its in-flight
/// budget, and only for the lead.
module Replay.Core.Pacing

open System
open System.Globalization

type Speed =
    /// As fast as the destination allows: no schedule.
    | Max
    /// The original spacing divided by this factor (1: as recorded, 10: ten times faster).
    | Times of factor: float

[<Literal>]
let MinFactor = 0.001

[<Literal>]
let MaxFactor = 1_000_000.0

let private usage =
    "use a factor of the records' original pace (1 = as recorded, 10 = ten times faster, 0.5 = half as fast) or max (as fast as the destination allows)"

/// Reads `max`, or a factor such as `1`, `10`, `0.5` (a trailing `x` is allowed: `10x`).
let parse (text: string) : Result<Speed, string> =
    let trimmed = text.Trim()
    if trimmed.Equals("max", StringComparison.OrdinalIgnoreCase) then
        Ok Max
    else
        let number = if trimmed.EndsWith('x') || trimmed.EndsWith('X') then trimmed[.. trimmed.Length - 2] else trimmed
        match Double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture) with
        | true, factor when Double.IsFinite factor && factor >= MinFactor && factor <= MaxFactor -> Ok(Times factor)
        | true, factor when Double.IsFinite factor ->
            Error $"must be between {MinFactor.ToString CultureInfo.InvariantCulture} and {MaxFactor.ToString CultureInfo.InvariantCulture} times the original pace; {usage}"
        | _ -> Error usage

/// Why a speed cannot run, or None.
let problem (speed: Speed) =
    match speed with
    | Times factor when not (Double.IsFinite factor && factor >= MinFactor && factor <= MaxFactor) ->
        Some $"--speed must be between {MinFactor.ToString CultureInfo.InvariantCulture} and {MaxFactor.ToString CultureInfo.InvariantCulture}, or max"
    | _ -> None

/// `max`, or the factor as written back (`4x`, `0.5x`).
let describe (speed: Speed) =
    match speed with
    | Max -> "max"
    | Times factor -> factor.ToString("0.###", CultureInfo.InvariantCulture) + "x"

/// A paced run's schedule: the record stamped `WindowStartMs` (Unix milliseconds) falls
/// on `OriginMs` of the run's clock; later timestamps follow at their spacing / `Factor`.
[<Struct>]
type Schedule =
    { Factor: float
      WindowStartMs: int64
      OriginMs: int64 }

/// The farthest ahead a record can be due (about 30,000 years): a bogus timestamp far in
/// the future must not overflow the clock.
let private farthestMs = 1e15

/// When the record stamped `timestampMs` is due on the run's clock. Never before its
/// time: the division rounds up.
let dueAt (schedule: Schedule) (timestampMs: int64) : int64 =
    let since = timestampMs - schedule.WindowStartMs
    if since <= 0L then
        schedule.OriginMs
    else
        schedule.OriginMs + int64 (min (Math.Ceiling(float since / schedule.Factor)) farthestMs)

/// How long before its due time a partition waiting for a record resumes fetching, and
/// how far ahead a record is kept rather than left in Kafka: a fetch after a resume
/// takes up to `fetch.wait.max.ms` (500 ms by default; a paced run asks for 100).
[<Literal>]
let leadMs = 1_000L

/// What becomes of a record, by the schedule (an enum: the host switches on it).
type Pace =
    /// Due: hand it on.
    | Now = 0
    /// Due within the lead: keep it, pause its partition, take it at the lease's PacedUntil.
    | Hold = 1
    /// Due later: leave it in Kafka (seek back to it); its partition pauses until the
    /// lease's PacedUntil, the lead before it is due.
    | Defer = 2

/// The schedule of one run, started by its first record, and how far behind it the run
/// is. Called by the consuming thread only; `BehindMs` may be read from any thread.
[<Sealed>]
type Pacer(speed: Speed) =
    let mutable schedule: Schedule voption = ValueNone
    let mutable behind = 0L

    member _.Speed = speed
    member _.IsPaced = speed <> Max
    member _.Schedule = schedule

    /// How late the latest record handed on was against its due time: how far behind the
    /// schedule the replay runs (a few milliseconds when on time; a record kept for the
    /// lead is taken when due).
    member _.BehindMs = Threading.Volatile.Read(&behind)

    /// Whether the record stamped `timestampMs` of `lease`'s partition is due at `now`
    /// (the run's clock, in milliseconds); marks the lease when it must wait.
    member _.Pace(lease: Lease, timestampMs: int64, now: int64) : Pace =
        match speed with
        | Times factor when timestampMs >= 0L ->
            let current =
                match schedule with
                | ValueSome s -> s
                | ValueNone ->
                    let s = { Factor = factor; WindowStartMs = timestampMs; OriginMs = now }
                    schedule <- ValueSome s
                    s
            let due = dueAt current timestampMs
            if due <= now then
                Threading.Volatile.Write(&behind, now - due)
                lease.Holding <- false
                lease.PacedUntil <- Int64.MinValue
                Pace.Now
            elif due - now <= leadMs then
                lease.Holding <- true
                lease.PacedUntil <- due
                Pace.Hold
            else
                lease.Holding <- false
                lease.PacedUntil <- due - leadMs
                Pace.Defer
        | _ -> Pace.Now
