// The librdkafka configuration of a replay: the operator's settings plus the few
// that the no-loss contract depends on, which cannot be overridden.
using Confluent.Kafka;

namespace Replay.Host.Kafka;

public static class ConsumerSettings
{
    /// <summary>The prefetch (queued.max.messages.kbytes) unless the properties file sets it.</summary>
    public const int PrefetchKbytes = 8 * 1024;

    /// <param name="partitionEof">Report each partition's end (--until-end, --until).</param>
    /// <param name="paced">--speed: partitions pause and resume with the schedule.</param>
    public static ConsumerConfig Build(IReadOnlyDictionary<string, string> kafka, bool partitionEof, bool dryRun = false, bool paced = false)
    {
        var config = new ConsumerConfig(kafka.ToDictionary(kv => kv.Key, kv => kv.Value));
        // Offsets move only when a record is finished: we store them, librdkafka commits them.
        config.EnableAutoOffsetStore = false;
        config.EnableAutoCommit = true;
        // librdkafka's default prefetch (64 MB) would dominate the process's memory; 8 MB (about
        // 8,000 records of 1 KB, a tenth of a second at full speed) still keeps a fast destination busy.
        if (!kafka.ContainsKey("queued.max.messages.kbytes")) config.QueuedMaxMessagesKbytes = PrefetchKbytes;
        // The prefetch limit is checked before a fetch, and one fetch may bring up to fetch.max.bytes
        // (50 MB by default) on top: at 128 partitions that overshoot was most of the heap's rival.
        // Not below what one record may be (message.max.bytes), which librdkafka insists on.
        if (!kafka.ContainsKey("fetch.max.bytes") && !kafka.ContainsKey("message.max.bytes")) config.FetchMaxBytes = 8 * 1024 * 1024;
        // With a prefetch queue that small, librdkafka's default 1 s pause after the queue fills
        // starves a fast destination: measured, 0.5 s of every 1.2 s was spent with nothing to send.
        if (!kafka.ContainsKey("fetch.queue.backoff.ms")) config.FetchQueueBackoffMs = 10;
        // librdkafka's 5 s default would replay up to 5 s of delivered records after a crash.
        if (!kafka.ContainsKey("auto.commit.interval.ms")) config.AutoCommitIntervalMs = 1000;
        config.EnablePartitionEof = partitionEof;
        if (paced)
        {
            // A paced partition resumes shortly before its next record is due (Pacing.leadMs), and its
            // first fetch waits for the fetch already outstanding on its broker: librdkafka's 500 ms
            // long poll would eat half the lead.
            if (!kafka.ContainsKey("fetch.wait.max.ms")) config.FetchWaitMaxMs = 100;
            // Pausing a partition for a record that is not due drops what was prefetched of it, to be
            // fetched again on resume: smaller fetches waste less (1 MiB each by default).
            if (!kafka.ContainsKey("max.partition.fetch.bytes")) config.MaxPartitionFetchBytes = 64 * 1024;
        }
        // --dry-run leaves the group's offsets exactly as they were.
        if (dryRun) config.EnableAutoCommit = false;
        // Lag per partition for the metrics and the progress line; cheap at this interval.
        if (!kafka.ContainsKey("statistics.interval.ms")) config.StatisticsIntervalMs = 5000;
        var newProtocol = kafka.TryGetValue("group.protocol", out var protocol) && protocol == "consumer";
        if (!newProtocol && !kafka.ContainsKey("partition.assignment.strategy"))
            // Incremental rebalances: partitions that stay with us keep flowing.
            config.PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky;
        return config;
    }
}
