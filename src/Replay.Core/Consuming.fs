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
    /// Handed to the engines; `shed` lists the best-effort destinations that were
    /// skipped because their own budget was full.
    | Submitted of shed: int list
    | Skipped of SkipReason
    | Rejected of RejectReason

/// What the host counts of a taken record.
type ICounters =
    abstract Skipped: kind: SkipKind * rule: string | null -> unit
    abstract Undecodable: unit -> unit
    /// A best-effort destination was skipped for this record: its budget was full.
    abstract Shed: destination: int -> unit

/// Counts a taken record; true when it finishes later, through the engines.
let count (counters: ICounters) (taken: Taken) : bool =
    match taken with
    | Submitted shed ->
        for destination in shed do
            counters.Shed destination
        true
    | Skipped reason ->
        counters.Skipped(skipKind reason, skippingRule reason)
        false
    | Rejected reason ->
        match reason with
        | Undecodable _ -> counters.Undecodable()
        | RuleError _
        | PayloadTooLarge _
        | UnsafeHeader _
        | BadUrl _ -> ()
        true

let private full (budget: Backpressure.Budget) (engine: DeliveryEngine) =
    engine.InFlight >= budget.MaxInFlightRecords || engine.InFlightBytes >= budget.MaxInFlightBytes

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
/// again. While every partition is paused for the budget or the dead-letter brake, it
/// waits with the rest.
let heldIsDue (mode: Backpressure.Mode) (hold: Backpressure.Hold) (lease: Lease) (now: int64) =
    lease.Holding && now >= lease.PacedUntil && mode <> Backpressure.Paused && hold = Backpressure.Hold.Free

/// Hands a decided record on: `engines` holds one engine per destination of the run,
/// `bestEffort` says which of them never hold a record. Skips finish at once; a
/// rejected record waits for its dead letter (through the first destination's engine),
/// like a failed delivery. A best-effort destination whose budget is full is skipped
/// for this record, so that it cannot slow the others. The partition's span is judged
/// at once, so that no partition holds more than its limit (plus this record). Call
/// under the engines' lock.
let take
    (engines: DeliveryEngine[])
    (bestEffort: bool[])
    (budget: Backpressure.Budget)
    (lease: Lease)
    (offset: int64)
    (bytes: int64)
    (decision: Decision)
    (source: obj)
    : Taken =
    lease.SpanFull <- Backpressure.spanFull budget lease.SpanFull (Checkpoint.span lease.Progress)
    match decision with
    | Send request ->
        engines[request.Destination].Submit(Job(ValueSome request, lease, offset, bytes, source))
        Submitted []
    | Mirror requests ->
        let sent, shed = requests |> List.partition (fun r -> not bestEffort[r.Destination] || not (full budget engines[r.Destination]))
        let copies = Copies(sent |> List.filter (fun r -> not bestEffort[r.Destination]) |> List.length, engines.Length)
        for request in sent do
            let job = Job(ValueSome request, lease, offset, bytes, source)
            job.Copies <- copies
            job.BestEffort <- bestEffort[request.Destination]
            engines[request.Destination].Submit job
        Submitted(shed |> List.map (fun r -> r.Destination))
    | Skip reason ->
        Lease.finish offset lease
        Skipped reason
    | Reject reason ->
        engines[0].SubmitRejected(Job(ValueNone, lease, offset, bytes, source), DeadLetterCause.ofReject reason, describeReject reason)
        Rejected reason

let private severity result =
    match result with
    | DeadLettered -> 3
    | Dropped _ -> 2
    | Delivered -> 1
    | Pending
    | Abandoned -> 0

/// How a record ended: what its required copies came to, and the status that
/// dropped it when it was dropped.
[<Struct>]
type RecordEnd =
    { Conclusion: Conclusion
      DroppedStatus: int
      Route: string
      /// Why it is a dead letter, when it is one.
      Cause: DeadLetterCause }

let private ended (job: Job) (result: JobResult) (cause: DeadLetterCause) =
    ValueSome
        { Conclusion = JobResult.conclusion result
          DroppedStatus = JobResult.droppedStatus result
          Route = (if job.HasRequest then job.Request.Route else "")
          Cause = cause }

/// A finished job reaches the consuming thread. When that finishes its record —
/// its only job, or the last required copy — the record's checkpoint moves and its
/// end is returned; an abandoned job leaves the record open.
let finished (job: Job) : RecordEnd voption =
    match job.Copies with
    | null ->
        match job.Result with
        | Abandoned
        | Pending -> ValueNone
        | result ->
            Lease.finish job.Offset job.Lease
            ended job result job.Cause
    | copies when job.BestEffort ->
        copies.Finished[job.Request.Destination] <- job
        ValueNone
    | copies ->
        if job.HasRequest then copies.Finished[job.Request.Destination] <- job
        match job.Result with
        | Abandoned
        | Pending ->
            copies.Abandoned <- true
            ValueNone
        | result ->
            copies.Remaining <- copies.Remaining - 1
            if severity result > severity copies.Outcome then
                copies.Outcome <- result
                copies.Cause <- job.Cause
            if copies.Remaining = 0 && not copies.Abandoned then
                Lease.finish job.Offset job.Lease
                ended job copies.Outcome copies.Cause
            else
                ValueNone

/// Re-evaluates each partition's span against its limit.
let updateSpans (budget: Backpressure.Budget) (leases: Lease seq) =
    for lease in leases do
        lease.SpanFull <- Backpressure.spanFull budget lease.SpanFull (Checkpoint.span lease.Progress)

/// Every partition of this member is at its end (--until-end, --until) with nothing open.
let allDone (leases: Lease seq) = not (Seq.isEmpty leases) && Seq.forall Lease.isDone leases
