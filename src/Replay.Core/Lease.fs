/// One assignment of a partition to this member, from the moment the group hands
/// it over until it is revoked or lost: which of its records are still open, what
/// may be committed, where this run's part of it ends, and whether its work may
/// still go out.
///
/// Where it ends. --until-end: at the high-water mark the partition had when the run
/// started. --until: at the first record stamped at or after the until-time — where
/// Kafka's offsets-for-times would place that time, as --from's start is placed —
/// so a window is the offsets from the first record at or after --from to the first
/// at or after --until. A partition with no such record yet (a quiet or live topic)
/// ends where it was read to its end, once that was seen at least `untilGraceMs`
/// after the until-time: a record produced before the until-time may take that long
/// to reach Kafka, and one produced later is stamped later. Either way the partition
/// is done once nothing below its end is open, and is committed exactly to its end.
///
/// A revoke is a fence. The lease first drains — queued and backing-off work is
/// abandoned, requests already on the wire may still finish and count — and is then
/// gone: nothing of it is sent again, so a late retry of this member cannot land
/// after what the partition's next owner sends for the same document.
namespace Replay.Core

open System

/// Where a lease stands.
type LeaseState =
    /// Owned: its records are sent, retried and dead-lettered.
    | Live
    /// Revoked, waiting (bounded) for requests already on the wire; nothing new starts.
    | Draining
    /// Revoked or lost: nothing of it goes out any more, nothing of it is committed.
    | Gone

/// What happened to a consumed record at the lease's door.
type Intake =
    /// Replay it.
    | Take
    /// At or past the --until-end mark, or stamped at or after --until: not this run's;
    /// the partition is done.
    | PastEnd

[<Sealed>]
type Lease(topic: string, partition: int, floor: int64) =
    let progress = Checkpoint.create ()

    member _.Topic = topic
    member _.Partition = partition

    /// Changed only under the delivery engine's lock (see Delivery.Engine).
    member val State = Live with get, set

    /// Jobs of this lease handed to the delivery engine and not finished (engine's lock).
    member val Unfinished = 0 with get, set

    // What follows belongs to the consuming thread.

    member _.Progress = progress

    /// The last offset handed to Kafka for commit; -1 before the first.
    member val Stored = -1L with get, set

    /// An offset that may be committed although nothing below it was consumed: where
    /// --from placed the partition, or where --until-end found its end.
    member val Floor = floor with get, set

    /// --until-end: the partition's high-water mark when the run started; records at or
    /// after it are not this run's. ValueNone while not known (or without --until-end).
    member val End: int64 voption = ValueNone with get, set

    member val ReachedEnd = false with get, set

    /// --until: records stamped at or after this (Unix milliseconds) are not this run's.
    /// Int64.MaxValue without --until.
    member val Until = Int64.MaxValue with get, set

    /// --until: where Kafka said the partition was read to its end before the until-time's
    /// grace had passed; cleared when a record comes after it.
    member val CaughtUp: int64 voption = ValueNone with get, set

    /// --speed: the partition waits for a record that is not due yet, on the run's clock
    /// (milliseconds), until this time; Int64.MinValue when it waits for nothing.
    member val PacedUntil = Int64.MinValue with get, set

    /// --speed: the partition's next record is held in the process until `PacedUntil`
    /// (it is due within the pacing lead); the partition stays paused until it is taken.
    member val Holding = false with get, set

    /// Too many records held behind an open one: consuming this partition waits.
    member val SpanFull = false with get, set

    override _.ToString() = $"{topic}[{partition}]"

module Lease =
    /// A lease for a partition just assigned; `floor` is -1 unless --from chose the start.
    let create topic partition floor = Lease(topic, partition, floor)

    /// The partition reached its end at `offset`, the first offset this run does not
    /// replay. Everything below it that this run consumed must still
    /// finish; what it never consumed was before its start. The floor is that offset,
    /// never the mark itself: a group that had already committed past the mark must
    /// not be moved back.
    let reachEnd (offset: int64) (lease: Lease) =
        if not lease.ReachedEnd then
            lease.ReachedEnd <- true
            lease.Floor <- max lease.Floor offset

    /// How long after the --until time a partition read to its end counts as ended:
    /// records produced just before the until-time may take this long to reach Kafka.
    [<Literal>]
    let untilGraceMs = 5_000L

    /// Whether the record at `offset`, stamped `timestampMs`, lies past this run's end of
    /// the partition: at or after the --until-end mark, or stamped at or after --until.
    /// Reaching it ends the partition there.
    let pastEnd (offset: int64) (timestampMs: int64) (lease: Lease) =
        let past =
            (timestampMs >= lease.Until && lease.Until <> Int64.MaxValue)
            || (match lease.End with
                | ValueSome mark -> offset >= mark
                | ValueNone -> false)
        if past then reachEnd offset lease
        past

    /// A record was consumed and is due: replay it, or it lies past the end.
    let intake (offset: int64) (timestampMs: int64) (lease: Lease) : Intake =
        if pastEnd offset timestampMs lease then
            PastEnd
        else
            lease.CaughtUp <- ValueNone
            Checkpoint.start offset lease.Progress
            Take

    /// Kafka reported the partition's end (EOF) at `offset`: with --until-end, the
    /// partition is done when that is at or past its mark.
    let endOfPartition (offset: int64) (lease: Lease) =
        match lease.End with
        | ValueSome mark when offset >= mark -> reachEnd offset lease
        | _ -> ()

    /// The until-time's grace has passed by `wallMs`.
    let private untilPassed (wallMs: int64) (lease: Lease) =
        lease.Until <> Int64.MaxValue && wallMs - untilGraceMs >= lease.Until

    /// Kafka said at `wallMs` (Unix milliseconds) that the partition is read to its end
    /// at `offset` (EOF, or a high-water mark the host asked for). --until-end: done at
    /// or past its mark. --until: done once that was so after the until-time's grace;
    /// before, remembered, for the host to confirm once the grace has passed. A record
    /// that waits for its time (kept, or left in Kafka) is still to come: whatever Kafka
    /// said, the partition is not at its end, and its floor must not pass that record.
    let caughtUp (offset: int64) (wallMs: int64) (lease: Lease) =
        if not lease.Holding && lease.PacedUntil = Int64.MinValue then
            endOfPartition offset lease
            if untilPassed wallMs lease then reachEnd offset lease
            elif lease.Until <> Int64.MaxValue then lease.CaughtUp <- ValueSome offset

    /// --until: the offset the host should confirm is still the partition's end (its
    /// high-water mark now, from the broker) — it was read to its end before the
    /// until-time's grace, and the grace has passed by `wallMs`; then it calls
    /// `caughtUp`, or `movedOn` when records came meanwhile.
    let awaitsConfirmation (wallMs: int64) (lease: Lease) : int64 voption =
        match lease.CaughtUp with
        | ValueSome offset when not lease.ReachedEnd && untilPassed wallMs lease -> ValueSome offset
        | _ -> ValueNone

    /// The partition holds records past where it was read to its end: Kafka will say
    /// so again when it is.
    let movedOn (lease: Lease) = lease.CaughtUp <- ValueNone

    /// The record at `offset` is finished (delivered, skipped, dropped, dead-lettered).
    /// Progress made while draining still counts; once gone, nothing does.
    let finish (offset: int64) (lease: Lease) =
        if lease.State <> Gone then
            Checkpoint.finish offset lease.Progress

    /// The offset to commit now, if it moved: the lowest open offset (or one past the
    /// highest consumed), raised to the floor only when nothing is open — an open record
    /// below the floor must be read again after a crash.
    let storable (lease: Lease) : int64 voption =
        if lease.State = Gone then
            ValueNone
        else
            let committable =
                match Checkpoint.committable lease.Progress with
                | Some position -> position
                | None -> -1L
            let position =
                if Checkpoint.isIdle lease.Progress then max committable lease.Floor else committable
            if position >= 0L && position > lease.Stored then ValueSome position else ValueNone

    /// Kafka accepted `position` for commit.
    let stored (position: int64) (lease: Lease) =
        if position > lease.Stored then lease.Stored <- position

    /// Nothing of this lease is open: its end reached and every record finished.
    let isDone (lease: Lease) =
        lease.ReachedEnd && Checkpoint.isIdle lease.Progress
