// The first offset at or after a time, per partition: Kafka's offsets-for-times,
// checked. A broker answers "no such offset" both when no record is that recent and
// when it cannot look up times at all (librdkafka's embedded mock broker, which
// `replay broker` and `replay demo` run, is one). Reading the partition's last record
// tells the two apart; in the second case a binary search over record timestamps
// stands in for the broker's time index. Kafka's answer is used as is whenever it
// names an offset, so against a real cluster this costs one lookup, plus one record
// read for a partition with nothing that recent.
using Confluent.Kafka;

namespace Replay.Host.Operating;

public sealed class OffsetsForTime(IReadOnlyDictionary<string, string> kafka, TextWriter log)
{
    static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    /// <summary>Start offsets for <paramref name="partitions"/>: a concrete offset each, the high
    /// watermark where no record is at or after <paramref name="time"/>.</summary>
    public Dictionary<TopicPartition, long> Find(IConsumer<byte[]?, byte[]?> consumer, IReadOnlyList<TopicPartition> partitions, DateTimeOffset time)
    {
        var timestamp = new Timestamp(time);
        var answers = consumer.OffsetsForTimes(partitions.Select(p => new TopicPartitionTimestamp(p, timestamp)), Timeout);
        var result = new Dictionary<TopicPartition, long>();
        IConsumer<Ignore, Ignore>? reader = null;
        try
        {
            foreach (var answer in answers)
            {
                if (answer.Offset.Value >= 0)
                {
                    result[answer.TopicPartition] = answer.Offset.Value;
                    continue;
                }
                reader ??= CreateReader();
                result[answer.TopicPartition] = Search(consumer, reader, answer.TopicPartition, timestamp.UnixTimestampMs);
            }
        }
        finally
        {
            reader?.Close();
            reader?.Dispose();
        }
        return result;
    }

    /// <summary>The smallest offset x in [low, high] such that the first record at or after x
    /// has a timestamp at or after <paramref name="ms"/>; high when there is none.</summary>
    long Search(IConsumer<byte[]?, byte[]?> consumer, IConsumer<Ignore, Ignore> reader, TopicPartition partition, long ms)
    {
        var marks = consumer.QueryWatermarkOffsets(partition, Timeout);
        long low = marks.Low.Value, high = marks.High.Value;
        if (high <= low) return high;
        var last = TimestampAt(reader, partition, high - 1);
        if (last is null)
        {
            log.WriteLine($"--from: could not read {partition.Topic}[{partition.Partition.Value}] to find where {DateTimeOffset.FromUnixTimeMilliseconds(ms):O} starts; starting at its oldest record so nothing is missed");
            return low;
        }
        // The broker's "none" was right: nothing is that recent.
        if (last < ms) return high;
        var (lo, hi) = (low, high - 1);
        while (lo < hi)
        {
            var mid = lo + (hi - lo) / 2;
            var at = TimestampAt(reader, partition, mid);
            if (at is null) return lo;
            if (at >= ms) hi = mid;
            else lo = mid + 1;
        }
        return lo;
    }

    /// <summary>The timestamp of the first record at or after <paramref name="offset"/>.</summary>
    static long? TimestampAt(IConsumer<Ignore, Ignore> reader, TopicPartition partition, long offset)
    {
        reader.Assign(new TopicPartitionOffset(partition, offset));
        var deadline = DateTime.UtcNow + Timeout;
        while (DateTime.UtcNow < deadline)
        {
            var record = reader.Consume(TimeSpan.FromMilliseconds(200));
            if (record is null) continue;
            if (record.IsPartitionEOF) return null;
            return record.Message.Timestamp.UnixTimestampMs;
        }
        return null;
    }

    /// <summary>A consumer outside the group that only reads timestamps: it never commits and never joins.</summary>
    IConsumer<Ignore, Ignore> CreateReader()
    {
        var settings = kafka
            .Where(kv => !kv.Key.StartsWith("group.", StringComparison.Ordinal) && kv.Key != "partition.assignment.strategy")
            .ToDictionary(kv => kv.Key, kv => kv.Value);
        var config = new ConsumerConfig(settings)
        {
            GroupId = "replay-time-lookup",
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            EnablePartitionEof = true,
            // One record per read is all a timestamp needs.
            FetchMaxBytes = 1 << 20,
        };
        return new ConsumerBuilder<Ignore, Ignore>(config).SetLogHandler((_, _) => { }).Build();
    }
}
