// Consumer lag per owned partition, read from librdkafka's statistics (emitted every
// statistics.interval.ms on the consume thread). Lag here is what this replay still
// has to finish: the high watermark minus the stored offset (the lowest unfinished
// record), falling back to the committed offset and then to the fetch position while
// nothing has been stored yet (a dry run stores nothing).
using System.Text.Json;
using Confluent.Kafka;

namespace Replay.Host.Operating;

public sealed class ConsumerLag
{
    volatile IReadOnlyDictionary<TopicPartition, long> _current = new Dictionary<TopicPartition, long>();

    /// <summary>The latest known lag of each owned partition whose lag is known.</summary>
    public IReadOnlyDictionary<TopicPartition, long> Current => _current;

    /// <summary>Summed over partitions; null before the first statistics.</summary>
    public long? Total => _current.Count == 0 ? null : _current.Values.Sum();

    /// <summary>Replaces the table from one statistics document; keeps only partitions <paramref name="owned"/> says are ours.</summary>
    public void Update(string statisticsJson, Func<TopicPartition, bool> owned)
    {
        var table = new Dictionary<TopicPartition, long>();
        try
        {
            using var doc = JsonDocument.Parse(statisticsJson);
            if (!doc.RootElement.TryGetProperty("topics", out var topics)) return;
            foreach (var topic in topics.EnumerateObject())
            {
                if (!topic.Value.TryGetProperty("partitions", out var partitions)) continue;
                foreach (var partition in partitions.EnumerateObject())
                {
                    // "-1" is librdkafka's internal unassigned-partition bucket.
                    if (!int.TryParse(partition.Name, out var id) || id < 0) continue;
                    var tp = new TopicPartition(topic.Name, new Partition(id));
                    if (!owned(tp) || Lag(partition.Value) is not { } lag) continue;
                    table[tp] = lag;
                }
            }
        }
        catch (JsonException)
        {
            return;
        }
        _current = table;
    }

    static long? Lag(JsonElement p)
    {
        var high = Read(p, "hi_offset");
        if (high < 0) return null;
        var finished = Math.Max(Read(p, "stored_offset"), Read(p, "committed_offset"));
        var position = finished >= 0 ? finished : Read(p, "app_offset");
        return position >= 0 ? Math.Max(0, high - position) : null;
    }

    static long Read(JsonElement p, string name) =>
        p.TryGetProperty(name, out var v) && v.TryGetInt64(out var n) ? n : -1;
}
