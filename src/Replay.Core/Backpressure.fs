/// When consuming stops, so that memory stays bounded whatever the destination does.
///
/// Two budgets. Records in flight (and their bytes): when full, consuming first
/// just waits for room — a destination is usually only slower than Kafka — and only
/// when the budget stays full is every partition paused, because librdkafka drops
/// its prefetched records on pause and fetches them again on resume. Resuming waits
/// until half the budget is free, so pause and resume do not alternate per record.
/// And records held per partition: one record that stays open keeps everything
/// consumed after it in the partition's checkpoint, so a partition whose span grows
/// past its limit is paused on its own until the span is half that again.
module Replay.Core.Backpressure

type Budget =
    { MaxInFlightRecords: int
      MaxInFlightBytes: int64
      /// How long the budget may stay full before the partitions are paused.
      PauseAfterFullMs: int64
      /// Records one partition may hold behind its oldest open record.
      MaxSpanPerPartition: int }

let defaults =
    { MaxInFlightRecords = 512
      MaxInFlightBytes = 64L <<< 20
      PauseAfterFullMs = 1000L
      MaxSpanPerPartition = 16_000 }

type Mode =
    | Flowing
    /// Full since this time (milliseconds of the caller's clock).
    | Full of since: int64
    | Paused

/// What the consuming loop does next (an enum: the host switches on it).
type Decision =
    /// Take the next record.
    | Consume = 0
    /// Take nothing for a moment: sleep until there is room again.
    | WaitForRoom = 1
    /// Pause every partition.
    | PauseAll = 2
    /// Resume the partitions paused by PauseAll.
    | ResumeAll = 3
    /// Stay paused (keep serving Kafka's callbacks, take nothing).
    | StayPaused = 4

/// The budget is spent: nothing more may be taken until something finishes.
let isFull budget (inFlight: int) (bytes: int64) =
    inFlight >= budget.MaxInFlightRecords || bytes >= budget.MaxInFlightBytes

/// One turn of the consuming loop.
let step (budget: Budget) (mode: Mode) (inFlight: int) (bytes: int64) (now: int64) : struct (Mode * Decision) =
    match mode with
    | Paused ->
        if inFlight <= budget.MaxInFlightRecords / 2 && bytes <= budget.MaxInFlightBytes / 2L then
            struct (Flowing, Decision.ResumeAll)
        else
            struct (Paused, Decision.StayPaused)
    | _ when not (isFull budget inFlight bytes) -> struct (Flowing, Decision.Consume)
    | Flowing -> struct (Full now, Decision.WaitForRoom)
    | Full since when now - since < budget.PauseAfterFullMs -> struct (mode, Decision.WaitForRoom)
    | Full _ -> struct (Paused, Decision.PauseAll)

/// Room enough to wake a consumer waiting for room: a quarter of the budget free,
/// so that it does not wake per finished record.
let hasRoom (budget: Budget) (inFlight: int) (bytes: int64) =
    inFlight <= budget.MaxInFlightRecords * 3 / 4 && bytes <= budget.MaxInFlightBytes * 3L / 4L

/// Whether a partition's span keeps it waiting: full past the limit, free again at half.
let spanFull (budget: Budget) (wasFull: bool) (span: int) =
    if wasFull then span > budget.MaxSpanPerPartition / 2 else span > budget.MaxSpanPerPartition

/// Why consuming is held as a whole besides the budget: every partition stays paused
/// while a hold lasts.
type Hold =
    | Free
    /// `--max-dead-letter-ratio`: too many of the last records became dead letters (DeadLetterBrake).
    | DeadLetterRatio

/// Whether a partition should be paused at `now` (the run's clock), for any reason: the
/// whole budget is paused, consuming is held, its end is reached (--until-end, --until),
/// its span is full, or it waits for a record that is not due yet (--speed: kept in the
/// process, or left in Kafka until shortly before it is due).
let wantsPause (mode: Mode) (hold: Hold) (lease: Lease) (now: int64) =
    mode = Paused || hold <> Free || lease.ReachedEnd || lease.SpanFull || lease.Holding || lease.PacedUntil > now
