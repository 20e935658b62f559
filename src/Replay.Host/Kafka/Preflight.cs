// What `replay run` checks before its consumer joins the group, so that the operator hears
// about it at once and in words, never from inside a rebalance handler: that Kafka answers
// within --connect-timeout (else exit 69: a restart may help), that the topic exists (else exit
// 2 with the nearest name and the topics there are; a ^regex that matches nothing yet waits),
// and what the group's committed offsets mean for --from. With --until-end it also counts
// the records the run has ahead of it, for the progress line's percentage.
using System.Text.RegularExpressions;
using Confluent.Kafka;
using Replay.Host.Cli;
using Replay.Host.Operating;

namespace Replay.Host.Kafka;

public sealed record PreflightRequest(
    IReadOnlyDictionary<string, string> Kafka,
    string Topic,
    StartPosition Start,
    bool FromGiven,
    bool Reset,
    bool UntilEnd,
    TimeSpan ConnectTimeout);

/// <summary>The verdict: go on (<see cref="ExitCode"/> null), or stop with an exit code and why.</summary>
public sealed record PreflightResult(int? ExitCode, string? Problem, long? RecordsAhead)
{
    public static PreflightResult Stop(int code, string problem) => new(code, problem, null);
}

public static class Preflight
{
    static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(10);
    /// <summary>How often a ^regex that matches no topic yet is tried again.</summary>
    static readonly TimeSpan TopicPoll = TimeSpan.FromSeconds(2);
    const int TopicsShown = 20;

    public static PreflightResult Check(PreflightRequest request, TextWriter log, CancellationToken stop)
    {
        using var diagnostics = new KafkaDiagnostics(log);
        // Outside the group and read-only: it joins nothing and commits nothing.
        var config = new ConsumerConfig(request.Kafka.ToDictionary(kv => kv.Key, kv => kv.Value)) { EnableAutoCommit = false };
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(config).WithDiagnostics(diagnostics).Build();
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();

        var metadata = Reach(admin, request.Kafka["bootstrap.servers"], request.ConnectTimeout, diagnostics, stop);
        if (metadata.Result is { } unreachable) return unreachable;

        var topics = metadata.Value!.Topics.Where(t => t.Error.Code == ErrorCode.NoError).ToList();
        var names = topics.Select(t => t.Topic).Where(t => !t.StartsWith("__", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        List<TopicMetadata> chosen;
        if (request.Topic.StartsWith('^'))
        {
            Regex pattern;
            try { pattern = new Regex(request.Topic, RegexOptions.None, TimeSpan.FromSeconds(1)); }
            catch (ArgumentException e) { return PreflightResult.Stop(ExitCodes.Usage, $"--topic '{request.Topic}' is not a regular expression: {e.Message}"); }
            chosen = topics.Where(t => pattern.IsMatch(t.Topic)).ToList();
            if (chosen.Count == 0)
            {
                // Subscribing now would end the run (librdkafka reports "topic not available"); waiting here
                // costs a metadata request every few seconds, and a signal ends it at once.
                log.WriteLine($"warning: no topic matches {request.Topic} yet; waiting for one to be created (topics now: {List(names)})");
                while (chosen.Count == 0)
                {
                    if (stop.WaitHandle.WaitOne(TopicPoll)) return PreflightResult.Stop(ExitCodes.Ok, "stopped while waiting for a topic");
                    try { chosen = admin.GetMetadata(QueryTimeout).Topics.Where(t => t.Error.Code == ErrorCode.NoError && pattern.IsMatch(t.Topic)).ToList(); }
                    catch (KafkaException) { /* not answering for now: try again */ }
                }
                log.WriteLine($"{string.Join(", ", chosen.Select(t => t.Topic).Order(StringComparer.Ordinal))} now {(chosen.Count == 1 ? "matches" : "match")} {request.Topic}; starting");
            }
        }
        else
        {
            chosen = topics.Where(t => t.Topic == request.Topic).ToList();
            if (chosen.Count == 0)
            {
                var nearest = Suggest.Nearest(request.Topic, names);
                return PreflightResult.Stop(ExitCodes.Usage,
                    $"topic '{request.Topic}' does not exist on {request.Kafka["bootstrap.servers"]}" +
                    (nearest is null ? "" : $"; did you mean {nearest}?") + $" (topics there: {List(names)})");
            }
        }

        var partitions = chosen.SelectMany(t => t.Partitions.Select(p => new TopicPartition(t.Topic, new Partition(p.PartitionId))))
            .OrderBy(p => p.Topic, StringComparer.Ordinal).ThenBy(p => p.Partition.Value).ToList();
        if (partitions.Count == 0) return new PreflightResult(null, null, null);
        Dictionary<TopicPartition, long> committed;
        try
        {
            committed = consumer.Committed(partitions, QueryTimeout).ToDictionary(c => c.TopicPartition, c => c.Offset.Value);
        }
        catch (KafkaException e)
        {
            // Not knowing the commits changes nothing the consumer does; only what is said here.
            log.WriteLine($"kafka: could not read the group's committed offsets ({e.Error.Reason}); the consumer will resume from them if there are any");
            return new PreflightResult(null, null, null);
        }
        var problem = Explain(request, partitions, committed, log);
        if (problem is not null) return problem;
        return new PreflightResult(null, null, request.UntilEnd ? Ahead(request, consumer, partitions, committed, log) : null);
    }

    sealed record Reached(Metadata? Value, PreflightResult? Result);

    /// <summary>Null once Kafka answers within <paramref name="timeout"/>; otherwise why not, with the exit code.</summary>
    public static PreflightResult? Reach(IReadOnlyDictionary<string, string> kafka, TimeSpan timeout, KafkaDiagnostics diagnostics, CancellationToken stop)
    {
        using var admin = new AdminClientBuilder(kafka.ToDictionary(kv => kv.Key, kv => kv.Value)).WithDiagnostics(diagnostics).Build();
        return Reach(admin, kafka["bootstrap.servers"], timeout, diagnostics, stop).Result;
    }

    /// <summary>Cluster metadata, asked in one-second slices so that a signal is heard at once.</summary>
    static Reached Reach(IAdminClient admin, string servers, TimeSpan timeout, KafkaDiagnostics diagnostics, CancellationToken stop)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (stop.IsCancellationRequested) return new(null, PreflightResult.Stop(ExitCodes.Ok, "stopped before Kafka answered"));
            try
            {
                var slice = TimeSpan.FromMilliseconds(Math.Clamp((deadline - DateTime.UtcNow).TotalMilliseconds, 1, 1000));
                var metadata = admin.GetMetadata(slice);
                if (metadata.Brokers.Count > 0) return new(metadata, null);
            }
            catch (KafkaException e) when (KafkaErrors.IsUnreachable(e.Error.Code))
            {
                // Not yet: librdkafka keeps connecting in the background, and says why through the diagnostics.
            }
            if (DateTime.UtcNow >= deadline) break;
        }
        var why = diagnostics.LastProblem ?? "no answer";
        if (diagnostics.RefusedCredentials)
            return new(null, PreflightResult.Stop(ExitCodes.Usage,
                $"Kafka at {servers} refused the connection: {why}; check security.protocol, ssl.* and sasl.* in the properties file"));
        return new(null, PreflightResult.Stop(ExitCodes.KafkaUnreachable,
            $"cannot reach Kafka at {servers} within {Duration.Format(timeout)} (--connect-timeout): {why}; " +
            $"exiting with {ExitCodes.KafkaUnreachable} so that a supervisor retries later"));
    }

    /// <summary>Says where the run will start, and why --from may not apply.</summary>
    static PreflightResult? Explain(PreflightRequest request, List<TopicPartition> partitions, Dictionary<TopicPartition, long> committed, TextWriter log)
    {
        var withCommit = partitions.Where(p => committed.GetValueOrDefault(p, -1) >= 0).ToList();
        var without = partitions.Where(p => committed.GetValueOrDefault(p, -1) < 0).ToList();
        if (request.Start.Kind == StartKind.Committed && !request.Reset && without.Count > 0)
            return PreflightResult.Stop(ExitCodes.Usage,
                $"--from committed: {Names(without)} {(without.Count == 1 ? "has" : "have")} no committed offset for this group; " +
                "start them with --from earliest, latest or a time");
        if (withCommit.Count == 0) return null;
        if (request.Reset)
            log.WriteLine($"--reset: {withCommit.Count} of {partitions.Count} partitions have committed offsets; they start at --from {request.Start} instead (each one is named as it is assigned)");
        else if (request.FromGiven && request.Start.Kind != StartKind.Committed)
            log.WriteLine($"warning: resuming the group's committed offsets on {withCommit.Count} of {partitions.Count} partitions ({Names(withCommit)}); " +
                $"--from {request.Start} is ignored for them, add --reset to start there" +
                (without.Count > 0 ? $"; {without.Count} without a commit start at --from {request.Start}" : ""));
        else
            log.WriteLine($"resuming the group's committed offsets on {withCommit.Count} of {partitions.Count} partitions" +
                (without.Count > 0 ? $"; {without.Count} without a commit start at --from {request.Start}" : ""));
        return null;
    }

    /// <summary>--until-end: the records between where each partition starts and its end now.</summary>
    static long? Ahead(PreflightRequest request, IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> partitions,
        Dictionary<TopicPartition, long> committed, TextWriter log)
    {
        try
        {
            var marks = partitions.ToDictionary(p => p, p => consumer.QueryWatermarkOffsets(p, QueryTimeout));
            var fromTime = request.Start.Kind == StartKind.Time
                ? new OffsetsForTime(request.Kafka, log).Find(consumer, partitions, request.Start.Time!.Value)
                : null;
            long total = 0;
            foreach (var p in partitions)
            {
                var (low, high) = (marks[p].Low.Value, marks[p].High.Value);
                var commit = committed.GetValueOrDefault(p, -1);
                var start = commit >= 0 && !request.Reset ? commit : request.Start.Kind switch
                {
                    StartKind.Latest => high,
                    StartKind.Time => fromTime!.GetValueOrDefault(p, low),
                    _ => low,
                };
                total += Math.Max(0, high - Math.Max(start, low));
            }
            return total;
        }
        catch (KafkaException)
        {
            return null;
        }
    }

    static string Names(IEnumerable<TopicPartition> partitions)
    {
        var all = partitions.Select(p => $"{p.Topic}[{p.Partition.Value}]").ToList();
        return all.Count <= 8 ? string.Join(", ", all) : string.Join(", ", all.Take(8)) + $" and {all.Count - 8} more";
    }

    static string List(IReadOnlyList<string> names) =>
        names.Count == 0 ? "none"
        : names.Count <= TopicsShown ? string.Join(", ", names)
        : string.Join(", ", names.Take(TopicsShown)) + $" and {names.Count - TopicsShown} more";
}
