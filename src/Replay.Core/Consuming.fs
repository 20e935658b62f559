/// What the consuming thread does with what it reads: each decided record goes to
/// the delivery engine or is finished at once, each finished job moves its
/// partition's checkpoint, and the set of partitions that must be paused follows
/// from the budget, the --until-end marks and the partitions' spans. The host reads
/// Kafka and carries these out.
module Replay.Core.Consuming

open Replay.Core.Pipeline

/// What became of a consumed record.
type Taken =
    | Submitted
    | Skipped of SkipReason
    | Rejected of RejectReason

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
        engine.SubmitRejected(Job(ValueNone, lease, offset, bytes, source), DeadLetterCause.ofReject reason, describeReject reason)
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

/// Every partition of this member is at its --until-end mark with nothing open.
let allDone (leases: Lease seq) = not (Seq.isEmpty leases) && Seq.forall Lease.isDone leases
