/// One assignment of a partition to this member, from the moment the group hands
/// it over until it is revoked or lost: which of its records are still open, what
/// may be committed, and whether its work may still go out.
///
/// A revoke is a fence. The lease first drains — queued and backing-off work is
/// abandoned, requests already on the wire may still finish and count — and is then
/// gone: nothing of it is sent again, so a late retry of this member cannot land
/// after what the partition's next owner sends for the same document.
namespace Replay.Core

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
    /// At or past the --until-end mark: not this run's; the partition is done.
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

    /// Too many records held behind an open one: consuming this partition waits.
    member val SpanFull = false with get, set

    override _.ToString() = $"{topic}[{partition}]"

module Lease =
    /// A lease for a partition just assigned; `floor` is -1 unless --from chose the start.
    let create topic partition floor = Lease(topic, partition, floor)

    /// The partition reached its --until-end mark at `offset`, the first offset this
    /// run does not replay. Everything below it that this run consumed must still
    /// finish; what it never consumed was before its start. The floor is that offset,
    /// never the mark itself: a group that had already committed past the mark must
    /// not be moved back.
    let reachEnd (offset: int64) (lease: Lease) =
        if not lease.ReachedEnd then
            lease.ReachedEnd <- true
            lease.Floor <- max lease.Floor offset

    /// A record was consumed: replay it, or it lies past the end.
    let intake (offset: int64) (lease: Lease) : Intake =
        match lease.End with
        | ValueSome mark when offset >= mark ->
            reachEnd offset lease
            PastEnd
        | _ ->
            Checkpoint.start offset lease.Progress
            Take

    /// Kafka reported the partition's end (EOF) at `offset`.
    let endOfPartition (offset: int64) (lease: Lease) =
        match lease.End with
        | ValueSome mark when offset >= mark -> reachEnd offset lease
        | _ -> ()

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
