/// The delivery engine's decisions, as a state machine the host drives and a
/// simulation can check: which job may be sent next, what an answer means for it,
/// how long it waits, when it becomes a dead letter, and what a revoke abandons.
///
/// Order per document: every ordering key (document id) has one lane; only the
/// lane's head is ever sent, retried or dead-lettered, and the next job moves up
/// only once the head is finished. Lanes of different keys run in parallel, and a
/// job that waits out a backoff holds nothing but its lane.
///
/// The engine does no I/O and keeps no clock: the host passes the time in, carries
/// out its effects (send, wait, write a dead letter, hand a finished job to the
/// consuming thread) and reports back. It is not thread-safe: the host serialises
/// every call (one lock), which also guards each lease's State and Unfinished count.
namespace Replay.Core

open System
open System.Collections.Generic
open Replay.Core.Outcome

type JobPhase =
    /// Behind an earlier job of the same ordering key.
    | Queued
    /// Its lane's head, handed to a sender.
    | Ready
    /// An attempt is on the wire.
    | Sending
    /// Waiting out a backoff before the next attempt.
    | BackingOff
    /// Its dead letter is being written, or waits to be written again.
    | DeadLettering
    | Done

type JobResult =
    | Pending
    | Delivered
    /// The status policy ended it without delivery (`--drop-on`).
    | Dropped of status: int
    | DeadLettered
    /// Not finished: fenced by a revoke, lost, or given up at shutdown. Its record stays
    /// uncommitted and is replayed by whoever owns the partition next.
    | Abandoned

/// JobResult without its data, for the host's counters (an enum it can switch on).
type Conclusion =
    | Pending = 0
    | Delivered = 1
    | Dropped = 2
    | DeadLettered = 3
    | Abandoned = 4

module JobResult =
    let conclusion result =
        match result with
        | Pending -> Conclusion.Pending
        | Delivered -> Conclusion.Delivered
        | Dropped _ -> Conclusion.Dropped
        | DeadLettered -> Conclusion.DeadLettered
        | Abandoned -> Conclusion.Abandoned

    /// The status that dropped it; 0 for any other result.
    let droppedStatus result =
        match result with
        | Dropped status -> status
        | Pending
        | Delivered
        | DeadLettered
        | Abandoned -> 0

/// One consumed record on its way out: a request to send, or a rejection whose
/// only way out is a dead letter.
[<Sealed>]
type Job(request: Pipeline.Request voption, lease: Lease, offset: int64, bytes: int64, source: obj) =
    member _.HasRequest = request.IsSome

    member _.Request =
        match request with
        | ValueSome r -> r
        | ValueNone -> invalidOp "a rejected record has no request"

    member _.Lease = lease
    member _.Offset = offset
    member _.Bytes = bytes
    /// The host's own view of the record (key, value, headers), for its dead letter.
    member _.Source = source
    member val Phase = Queued with get, set
    member val Result = Pending with get, set
    /// Attempts started.
    member val Attempts = 0 with get, set
    member val LastAttempt: Attempt voption = ValueNone with get, set
    /// The record's other copies, when it is mirrored; null for a single destination.
    member val Copies: Copies | null = null with get, set
    /// A copy to a best-effort destination: its end does not decide the record's.
    member val BestEffort = false with get, set
    member val internal Failing: RetrySchedule.Failing voption = ValueNone with get, set
    /// Its destination's answer count when it was first sent (see DeliveryEngine's `serving`).
    member val internal AnswersAtFirstSend = 0L with get, set
    member val internal DeadLetterFailing: RetrySchedule.Failing voption = ValueNone with get, set
    /// Why it is a dead letter.
    member val Reason: string = "" with get, set
    /// Why it is a dead letter, as one of a few classes (metrics, the dead-letter brake).
    member val Cause: DeadLetterCause = PermanentStatus with get, set
    /// The job behind this one in its lane.
    member val internal Next: Job | null = null with get, set
    /// On a lane's head: the lane's last job.
    member val internal Tail: Job | null = null with get, set

    member this.Conclusion = JobResult.conclusion this.Result

    /// The last answer's status, 0 when none came.
    member this.LastStatus =
        match this.LastAttempt with
        | ValueSome(Answered answer) -> answer.Status
        | _ -> 0

    override _.ToString() = $"{lease}@{offset}"

/// One record sent to several destinations (mirroring): it is finished once each
/// required copy is; a best-effort copy never holds it. Kept by the consuming thread.
and [<Sealed>] Copies(required: int, destinations: int) =
    member val Remaining = required with get, set
    /// Each destination's copy once it is finished, by destination (for comparing their answers).
    member val Finished: (Job | null)[] = Array.zeroCreate destinations with get
    /// A required copy was abandoned (its partition revoked): the record stays open,
    /// and the partition's next owner sends it again, to every destination.
    member val Abandoned = false with get, set
    /// The worst end of the required copies so far: a dead letter over a drop over a delivery.
    member val Outcome = Pending with get, set
    /// Why the copy that decided the outcome is a dead letter, when it is one.
    member val Cause = PermanentStatus with get, set


/// What the host carries out for the engine. Called under the engine's lock: each
/// must only hand the work on (a queue, a timer), never do it in place.
type IDeliveryEffects =
    /// The job may be sent: a sender calls Begin, sends, and reports with Complete.
    abstract Ready: Job -> unit
    /// Call Due after the wait.
    abstract Backoff: Job * TimeSpan -> unit
    /// Write the job's dead letter (Job.Reason says why), then report with
    /// DeadLetterWritten or DeadLetterFailed.
    abstract WriteDeadLetter: Job -> unit
    /// Call DeadLetterDue after the wait.
    abstract DeadLetterBackoff: Job * TimeSpan -> unit
    /// The job is finished; Job.Result says how.
    abstract Finished: Job -> unit
    /// Dead letters have not been writable for longer than the run may wait: stop, with this cause.
    abstract Fatal: string -> unit

/// What one destination last did, for telling a poison record from an outage.
[<Sealed>]
type internal Health() =
    let mutable latest: Job | null = null
    let mutable latestAt = Int64.MinValue
    let mutable previousAt = Int64.MinValue
    member val LastAnswer = Int64.MinValue with get, set
    /// Answers not worth retrying so far, to tell whether any came after a record was first sent.
    member val Answers = 0L with get, set
    member this.Answered(now: int64) =
        this.LastAnswer <- max this.LastAnswer now
        this.Answers <- this.Answers + 1L

    member _.Failed(job: Job, now: int64) =
        if not (Object.ReferenceEquals(latest, job)) then
            previousAt <- latestAt
            latest <- job
        latestAt <- now

    /// When a record other than `job` last failed here.
    member _.LastFailureOfOther(job: Job) =
        if Object.ReferenceEquals(latest, job) then previousAt else latestAt

[<Sealed>]
type DeliveryEngine(schedule: RetrySchedule.Settings, giveUpOnDeadLetters: TimeSpan option, effects: IDeliveryEffects) =
    let schedule = RetrySchedule.bounded schedule
    /// Ordering key -> the lane's head.
    let lanes = Dictionary<string, Job>(StringComparer.Ordinal)
    /// Route -> what its destination last did for whom. A route stands for its
    /// destination: it costs no URL parsing per record, and there are as few as rules.
    let health = Dictionary<string, Health>(StringComparer.Ordinal)
    let mutable lastRoute = ""
    let mutable lastHealth = Health()
    let mutable inFlight = 0
    let mutable inFlightBytes = 0L
    let mutable stopping = false

    let healthOf (job: Job) =
        let route = job.Request.Route
        if not (Object.ReferenceEquals(route, lastRoute)) then
            lastRoute <- route
            lastHealth <-
                match health.TryGetValue route with
                | true, h -> h
                | _ ->
                    let h = Health()
                    health[route] <- h
                    h
        lastHealth

    /// The destination gave an answer not worth retrying: it is serving.
    let answered (job: Job) (now: int64) = (healthOf job).Answered now

    /// The destination serves others while `job` fails: it answered other records (answers
    /// not worth retrying) since `job` was first sent, and after any other record's latest
    /// failure. In an outage the others fail too; and a record failing with nothing answered
    /// since it went out (a quiet topic when the destination went down) shows no sign of
    /// poison, so it waits as in an outage. A record whose partition's span filled up behind
    /// it still counts, however slowly it fails: the records behind it went out after it.
    let serving (job: Job) =
        let h = healthOf job
        h.LastAnswer > h.LastFailureOfOther job && h.Answers > job.AnswersAtFirstSend

    let accepts (job: Job) = not stopping && job.Lease.State = Live

    /// The job is done, wherever it stood; the caller sees to its lane.
    let conclude (job: Job) (result: JobResult) =
        job.Phase <- Done
        job.Result <- result
        inFlight <- inFlight - 1
        inFlightBytes <- inFlightBytes - job.Bytes
        job.Lease.Unfinished <- job.Lease.Unfinished - 1
        effects.Finished job

    /// A lane's head (or a rejected record, which has no lane) is done.
    let rec finish (job: Job) (result: JobResult) =
        if job.Phase <> Done then
            conclude job result
            if job.HasRequest then advance job

    /// The head finished: the next job of its lane moves up.
    and advance (head: Job) =
        let key = head.Request.OrderingKey
        match head.Next with
        | null -> lanes.Remove key |> ignore
        | next ->
            next.Tail <- head.Tail
            head.Next <- null
            lanes[key] <- next
            ready next

    and ready (job: Job) =
        if accepts job then
            job.Phase <- Ready
            effects.Ready job
        else
            finish job Abandoned

    let deadLetter (job: Job) (cause: DeadLetterCause) (reason: string) =
        job.Reason <- reason
        job.Cause <- cause
        // A best-effort copy holds nothing and leaves nothing behind: it is dropped.
        if job.BestEffort then finish job (Dropped job.LastStatus)
        elif accepts job then
            job.Phase <- DeadLettering
            effects.WriteDeadLetter job
        else
            finish job Abandoned

    /// Takes every job that `belongs` and is not on the wire out of its lane, as abandoned.
    let abandonWaiting (belongs: Job -> bool) =
        for head in List<Job>(lanes.Values) do
            // Queued jobs behind the head first: unlinked, they do not move up.
            let mutable previous = head
            let mutable current = head.Next
            while not (isNull current) do
                let job = nonNull current
                let following = job.Next
                if belongs job then
                    previous.Next <- following
                    if Object.ReferenceEquals(head.Tail, job) then head.Tail <- previous
                    job.Next <- null
                    conclude job Abandoned
                else
                    previous <- job
                current <- following
            if belongs head && head.Phase <> Sending then finish head Abandoned

    /// Jobs handed in and not finished; may be read without the lock.
    member _.InFlight = Threading.Volatile.Read(&inFlight)

    /// Their payload bytes; may be read without the lock.
    member _.InFlightBytes = Threading.Volatile.Read(&inFlightBytes)

    /// A consumed record to send, in Kafka order behind earlier jobs of its key.
    member _.Submit(job: Job) =
        inFlight <- inFlight + 1
        inFlightBytes <- inFlightBytes + job.Bytes
        job.Lease.Unfinished <- job.Lease.Unfinished + 1
        if not job.HasRequest then
            invalidArg (nameof job) "use SubmitRejected for a record without a request"
        let key = job.Request.OrderingKey
        match lanes.TryGetValue key with
        | true, head ->
            let tail = nonNull head.Tail
            tail.Next <- job
            head.Tail <- job
            job.Phase <- Queued
        | _ ->
            job.Tail <- job
            lanes[key] <- job
            ready job

    /// A consumed record that can only become a dead letter (undecodable, refused).
    /// It holds its partition's commit until the dead letter is written.
    member _.SubmitRejected(job: Job, cause: DeadLetterCause, reason: string) =
        inFlight <- inFlight + 1
        inFlightBytes <- inFlightBytes + job.Bytes
        job.Lease.Unfinished <- job.Lease.Unfinished + 1
        deadLetter job cause reason

    /// A sender is about to send: false when the job was fenced or abandoned meanwhile.
    member _.Begin(job: Job) : bool =
        if job.Phase <> Ready then
            false
        elif not (accepts job) then
            finish job Abandoned
            false
        else
            job.Phase <- Sending
            job.Attempts <- job.Attempts + 1
            if job.Failing.IsNone then job.AnswersAtFirstSend <- (healthOf job).Answers
            true

    /// The attempt started by Begin ended. `draw` is uniform in [0, 1).
    member _.Complete(job: Job, attempt: Attempt, now: int64, draw: float) =
        if job.Phase = Sending then
            job.LastAttempt <- ValueSome attempt
            let verdict = classify job.Request.StatusPolicy attempt
            match job.Lease.State, verdict with
            | Gone, _ -> finish job Abandoned
            | _, _ when stopping && verdict.IsRetry -> finish job Abandoned
            | _, Verdict.Delivered ->
                answered job now
                finish job JobResult.Delivered
            | _, Verdict.Dropped status ->
                answered job now
                finish job (JobResult.Dropped status)
            // Draining: only what already succeeded counts; the next owner redoes the rest.
            | Draining, _ -> finish job Abandoned
            | _, Permanent reason ->
                answered job now
                deadLetter job PermanentStatus reason
            | _, Retry retryAfter ->
                let healthy = job.Failing.IsSome && serving job
                (healthOf job).Failed(job, now)
                let failing = RetrySchedule.fail job.Failing now healthy
                job.Failing <- ValueSome failing
                match RetrySchedule.next schedule failing now draw retryAfter with
                | RetrySchedule.WaitFor wait ->
                    job.Phase <- BackingOff
                    effects.Backoff(job, wait)
                | RetrySchedule.GiveUp(cause, reason) -> deadLetter job cause $"{reason} ({describe attempt})"

    /// A backoff ended.
    member _.Due(job: Job) =
        if job.Phase = BackingOff then ready job

    member _.DeadLetterWritten(job: Job) =
        if job.Phase = DeadLettering then finish job JobResult.DeadLettered

    /// Writing the dead letter failed: try again after a backoff, holding the record
    /// (and so its partition's commit) meanwhile.
    member _.DeadLetterFailed(job: Job, now: int64, draw: float) =
        if job.Phase = DeadLettering then
            if not (accepts job) then
                finish job Abandoned
            else
                let failing = RetrySchedule.fail job.DeadLetterFailing now false
                job.DeadLetterFailing <- ValueSome failing
                let stuckFor = TimeSpan.FromMilliseconds(float (now - failing.Since))
                match giveUpOnDeadLetters with
                | Some limit when stuckFor >= limit ->
                    effects.Fatal $"dead letters could not be written for {int stuckFor.TotalSeconds} s (record {job})"
                | _ -> effects.DeadLetterBackoff(job, RetrySchedule.backoff schedule failing.Attempts draw None)

    member _.DeadLetterDue(job: Job) =
        if job.Phase = DeadLettering then
            if accepts job then effects.WriteDeadLetter job else finish job Abandoned

    /// The lease was revoked: its waiting work is abandoned at once, its requests on
    /// the wire may still finish (only a success counts). Returns how many are on the wire.
    member _.Revoke(lease: Lease) : int =
        if lease.State = Live then lease.State <- Draining
        abandonWaiting (fun job -> Object.ReferenceEquals(job.Lease, lease))
        lease.Unfinished

    /// The lease is gone (revoke finished, or lost): nothing of it counts any more.
    member this.Release(lease: Lease) =
        this.Revoke lease |> ignore
        lease.State <- Gone

    /// Shutdown gave up waiting: everything not on the wire is abandoned now, and what
    /// is on the wire is abandoned when it ends.
    member _.Stop() =
        stopping <- true
        abandonWaiting (fun _ -> true)

    /// Every job of the lease is finished.
    member _.IsSettled(lease: Lease) = lease.Unfinished = 0
