/// What the consuming thread does with what it reads: each record is admitted (past
/// its partition's end, not due yet by the --speed schedule, or taken), each decided
/// record goes to the delivery engine or is finished at once, each finished job moves
/// its partition's checkpoint, and the set of partitions that must be paused follows
/// from the budget, the partitions' ends, their spans and the schedule. The host reads
/// Kafka and carries these out.
module Replay.Core.Consuming

open Replay.Core.Pipeline

/// What became of a consumed record.
type Taken =
    | Submitted
    | Skipped of SkipReason
    | Rejected of RejectReason

/// What becomes of a record just read (an enum: the host switches on it).
type Admission =
    /// Decide it and hand it on: it is open in its partition's checkpoint from now on.
    | Take = 0
    /// It lies past its partition's end (--until-end, --until): not replayed, not
    /// consumed; the partition is done once nothing below it is open.
    | PastEnd = 1
    /// Not due yet, but within the pacing lead: keep this one record (its partition
    /// pauses) and admit it again at the lease's PacedUntil.
    | Hold = 2
    /// Not due for longer: seek its partition back to it (it stays in Kafka); the
    /// partition pauses until the lease's PacedUntil.
    | Defer = 3

/// Admits the record at `offset`, stamped `timestampMs`, read at `now` on the run's clock.
/// A record that is held or deferred is not open anywhere: what may be committed stays
/// at or below it, and after a crash or a revoke it is read again.
let admit (pacer: Pacing.Pacer) (lease: Lease) (offset: int64) (timestampMs: int64) (now: int64) : Admission =
    if Lease.pastEnd offset timestampMs lease then
        Admission.PastEnd
    else
        match pacer.Pace(lease, timestampMs, now) with
        | Pacing.Pace.Now ->
            Lease.intake offset timestampMs lease |> ignore
            Admission.Take
        | Pacing.Pace.Hold ->
            Lease.movedOn lease
            Admission.Hold
        | _ ->
            Lease.movedOn lease
            Admission.Defer

/// A record kept for the schedule is due at `now`, and the budget lets it go: admit it
/// again. While every partition is paused for the budget it waits with the rest.
let heldIsDue (mode: Backpressure.Mode) (lease: Lease) (now: int64) =
    lease.Holding && now >= lease.PacedUntil && mode <> Backpressure.Paused

/// Hands a decided record on. Skips finish at once; a rejected record waits for
/// its dead letter, like a failed delivery. The partition's span is judged at once,
/// so that no partition holds more than its limit (plus this record). Call under
/// the engine's lock.
let take (engine: DeliveryEngine) (budget: Backpressure.Budget) (lease: Lease) (offset: int64) (bytes: int64) (decision: Decision) (source: obj) : Taken =
    lease.SpanFull <- Backpressure.spanFull budget lease.SpanFull (Checkpoint.span lease.Progress)
    match decision with
    | Send request ->
        engine.Submit(Job(ValueSome request, lease, offset, bytes, source))
        Submitted
    | Skip reason ->
        Lease.finish offset lease
        Skipped reason
    | Reject reason ->
        engine.SubmitRejected(Job(ValueNone, lease, offset, bytes, source), describeReject reason)
        Rejected reason

/// A finished job reaches the consuming thread: its record is done unless abandoned.
let finished (job: Job) =
    match job.Result with
    | Abandoned
    | Pending -> ()
    | Delivered
    | Dropped _
    | DeadLettered -> Lease.finish job.Offset job.Lease

/// Re-evaluates each partition's span against its limit.
let updateSpans (budget: Backpressure.Budget) (leases: Lease seq) =
    for lease in leases do
        lease.SpanFull <- Backpressure.spanFull budget lease.SpanFull (Checkpoint.span lease.Progress)

/// Every partition of this member is at its end (--until-end, --until) with nothing open.
let allDone (leases: Lease seq) = not (Seq.isEmpty leases) && Seq.forall Lease.isDone leases
