/// Which offset of a partition may be committed. A record is open from the moment
/// it is consumed until it is finished (delivered, skipped, sampled out or
/// dead-lettered). The commit position is the lowest open offset, or one past the
/// highest consumed when none is open: committing anything higher would lose the
/// unfinished records below it if the process died. Kafka offsets may have gaps
/// (compaction, transaction markers), which is why open offsets are tracked rather
/// than finished ones.
module Replay.Core.Checkpoint

/// The progress of one partition. Mutable, and owned by the thread that consumes the
/// partition: it changes twice per record, and a persistent set allocated about 900
/// bytes each time. Offsets consumed and not yet dropped sit in a ring, oldest first;
/// a finished one is marked, and dropped once everything before it is finished too.
[<Sealed>]
type Partition() =
    let mutable offsets: int64[] = Array.zeroCreate 64
    let mutable finished: bool[] = Array.zeroCreate 64
    let mutable head = 0
    let mutable length = 0
    let mutable openCount = 0
    /// One past the highest offset consumed; -1 before the first record.
    let mutable next = -1L

    /// Capacity is a power of two, so a position wraps with a mask.
    let at index = (head + index) &&& (offsets.Length - 1)

    let grow () =
        let size = offsets.Length
        let moved = Array.init (2 * size) (fun i -> if i < length then offsets[(head + i) &&& (size - 1)] else 0L)
        let marks = Array.init (2 * size) (fun i -> i < length && finished[(head + i) &&& (size - 1)])
        offsets <- moved
        finished <- marks
        head <- 0

    /// Where `offset` sits in the ring (offsets there are increasing), or -1.
    let find offset =
        let mutable low = 0
        let mutable high = length - 1
        let mutable found = -1
        while found < 0 && low <= high do
            let middle = (low + high) >>> 1
            let value = offsets[at middle]
            if value = offset then found <- middle
            elif value < offset then low <- middle + 1
            else high <- middle - 1
        found

    /// A record was consumed and is now in progress. Kafka delivers a partition in
    /// order, so an offset not above the last one is a repeat and already counted.
    member _.Start(offset: int64) =
        if offset >= next then
            if length = offsets.Length then grow ()
            offsets[at length] <- offset
            finished[at length] <- false
            length <- length + 1
            openCount <- openCount + 1
            next <- offset + 1L

    /// The record at `offset` is finished, in whatever order completions arrive.
    member _.Finish(offset: int64) =
        let index = find offset
        if index >= 0 && not finished[at index] then
            finished[at index] <- true
            openCount <- openCount - 1
            while length > 0 && finished[head] do
                finished[head] <- false
                head <- (head + 1) &&& (offsets.Length - 1)
                length <- length - 1

    /// The offset to commit (Kafka's "next offset to read"), if any record was consumed.
    member _.Committable =
        if length > 0 then Some offsets[head]
        elif next >= 0L then Some next
        else None

    member _.OpenCount = openCount

    /// Offsets held in the ring: from the oldest open one to the newest consumed. A
    /// record that stays open keeps everything consumed after it here, so this is
    /// what a partition's bookkeeping costs; backpressure bounds it.
    member _.Span = length

/// A partition with nothing consumed yet.
let create () = Partition()

let start (offset: int64) (partition: Partition) = partition.Start offset

let finish (offset: int64) (partition: Partition) = partition.Finish offset

let committable (partition: Partition) : int64 option = partition.Committable

let isIdle (partition: Partition) = partition.OpenCount = 0

let openCount (partition: Partition) = partition.OpenCount

let span (partition: Partition) = partition.Span
