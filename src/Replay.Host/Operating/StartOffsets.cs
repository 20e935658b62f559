// Where each newly assigned partition starts, decided in the partitions-assigned
// handler (whose answer Confluent.Kafka hands to assign / incremental assign, for the
// classic eager, cooperative and KIP-848 consumer protocols alike). A committed offset
// wins, so a restarted or scaled-out replay resumes where the group left off; --from
// applies to partitions without one. --reset makes --from win once per partition for
// this run: the group's commits as they were when the run started are overridden,
// while progress made during the run (by this member or one started with it) is not.
using Confluent.Kafka;

namespace Replay.Host.Operating;

public sealed class StartOffsets(StartPosition start, bool reset, IReadOnlyDictionary<string, string> kafka, TextWriter log)
{
    static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    readonly OffsetsForTime _times = new(kafka, log);
    /// <summary>--reset: the group's committed offsets when this run started (named topics only).</summary>
    Dictionary<TopicPartition, long>? _before;
    /// <summary>Partitions this run has positioned once; --reset applies only the first time.</summary>
    readonly HashSet<TopicPartition> _resetDone = [];

    /// <summary>True when librdkafka's own positioning (committed, else auto.offset.reset) is all that is needed.</summary>
    public bool IsPassive => !reset && start.Kind is not StartKind.Time;

    /// <summary>--reset: remembers the group's commits before this run moves any of them.</summary>
    public void RememberCommitted(IConsumer<byte[]?, byte[]?> consumer, IEnumerable<TopicPartition> partitions)
    {
        if (!reset) return;
        _before = consumer.Committed(partitions, Timeout).ToDictionary(c => c.TopicPartition, c => c.Offset.Value);
    }

    /// <summary>The start of each partition: a concrete offset where --from decides, Offset.Unset where
    /// librdkafka should resume from the committed offset.</summary>
    public List<TopicPartitionOffset> Decide(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> partitions)
    {
        if (IsPassive || partitions.Count == 0)
            return partitions.Select(p => new TopicPartitionOffset(p, Offset.Unset)).ToList();

        var committed = consumer.Committed(partitions, Timeout).ToDictionary(c => c.TopicPartition, c => c.Offset.Value);
        var chosen = partitions.Where(p => !Resumes(p, committed.GetValueOrDefault(p, Offset.Unset.Value))).ToList();
        var offsets = Resolve(consumer, chosen);

        var result = new List<TopicPartitionOffset>();
        var overridden = new List<string>();
        foreach (var p in partitions)
        {
            var had = committed.GetValueOrDefault(p, Offset.Unset.Value);
            if (offsets.TryGetValue(p, out var offset))
            {
                result.Add(new TopicPartitionOffset(p, offset));
                if (had >= 0) overridden.Add($"{Name(p)} {had} -> {offset}");
            }
            else
                result.Add(new TopicPartitionOffset(p, Offset.Unset));
        }
        if (overridden.Count > 0)
            log.WriteLine($"warning: --reset: starting at --from {start} instead of the group's committed offsets ({string.Join(", ", overridden)}); " +
                "records before the new start are not replayed, records after it may be replayed again");
        // Partitions that resume from a commit although --from was given are announced before the
        // run starts (Kafka.Preflight), for every kind of --from, not here in the rebalance handler.
        return result;
    }

    /// <summary>True when the partition should resume from its committed offset.</summary>
    bool Resumes(TopicPartition p, long committedNow)
    {
        var firstTime = _resetDone.Add(p);
        if (committedNow < 0) return false;
        if (!reset || !firstTime) return true;
        // Someone in this run already moved it: that is progress to keep, not a commit to override.
        return _before is not null && _before.TryGetValue(p, out var before) && before != committedNow;
    }

    Dictionary<TopicPartition, long> Resolve(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> partitions)
    {
        if (partitions.Count == 0) return [];
        if (start.Kind == StartKind.Time)
        {
            // Said before it happens: on a broker without a time index this reads records and takes a while.
            log.WriteLine($"--from {start}: finding the first record at or after that time in {Names(partitions)}");
            return _times.Find(consumer, partitions, start.Time!.Value);
        }
        // Concrete offsets rather than Beginning/End, so that the start can be stored and committed at once.
        return partitions.ToDictionary(p => p, p =>
        {
            var marks = consumer.QueryWatermarkOffsets(p, Timeout);
            return start.Kind == StartKind.Latest ? marks.High.Value : marks.Low.Value;
        });
    }

    static string Name(TopicPartition p) => $"{p.Topic}[{p.Partition.Value}]";

    static string Names(IReadOnlyCollection<TopicPartition> partitions) =>
        partitions.Count <= 4 ? string.Join(", ", partitions.Select(Name)) : $"{partitions.Count} partitions";
}
