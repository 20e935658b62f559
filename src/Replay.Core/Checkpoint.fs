/// Which offset of a partition may be committed. A record is open from the moment
/// it is consumed until it is finished (delivered, skipped, sampled out or
/// dead-lettered). The commit position is the lowest open offset, or one past the
/// highest consumed when none is open: committing anything higher would lose the
/// unfinished records below it if the process died. Kafka offsets may have gaps
/// (compaction, transaction markers), which is why open offsets are tracked rather
/// than finished ones.
module Replay.Core.Checkpoint

/// The progress of one partition.
type Partition =
    { Open: Set<int64>
      /// One past the highest offset consumed; None before the first record.
      Consumed: int64 option }

let empty = { Open = Set.empty; Consumed = None }

/// A record was consumed and is now in progress. Offsets arrive in increasing order.
let start (offset: int64) (partition: Partition) =
    { Open = partition.Open.Add offset
      Consumed = Some(offset + 1L) }

/// The record at `offset` is finished, in whatever order completions arrive.
let finish (offset: int64) (partition: Partition) =
    { partition with Open = partition.Open.Remove offset }

/// The offset to commit (Kafka's "next offset to read"), if any record was consumed.
let committable (partition: Partition) : int64 option =
    if partition.Open.IsEmpty then partition.Consumed
    else Some partition.Open.MinimumElement

let isIdle (partition: Partition) = partition.Open.IsEmpty

let openCount (partition: Partition) = partition.Open.Count
