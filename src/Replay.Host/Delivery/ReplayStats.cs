// Counters for one replay, bumped with Interlocked on the hot path and read by the
// summary, the progress line and the metrics endpoint. Never a log line per record.
using System.Collections.Concurrent;
using Replay.Core;
using static Replay.Core.Outcome;

namespace Replay.Host.Delivery;

public sealed class ReplayStats
{
    long _consumed, _delivered, _sampledOut, _deletesIgnored, _notJson, _skippedByRule, _deadLettered,
        _decodeErrors, _retries, _status2xx, _status4xx, _status5xx, _failedAttempts, _bytesConsumed, _dropped, _deadLetterWriteFailures;
    readonly ConcurrentDictionary<(string Route, int Status), long> _droppedBy = new();
    readonly long[] _deadLetteredBy = new long[DeadLetterCauseModule.all.Length];

    public long Consumed => Volatile.Read(ref _consumed);
    public long Delivered => Volatile.Read(ref _delivered);
    public long SampledOut => Volatile.Read(ref _sampledOut);
    public long DeletesIgnored => Volatile.Read(ref _deletesIgnored);
    public long NotJson => Volatile.Read(ref _notJson);
    public long SkippedByRule => Volatile.Read(ref _skippedByRule);
    public long DeadLettered => Volatile.Read(ref _deadLettered);
    /// <summary>Records the status policy ended without delivery (--drop-on, `on-status: {404: drop}`).</summary>
    public long Dropped => Volatile.Read(ref _dropped);
    /// <summary><see cref="Dropped"/> by route and status.</summary>
    public IReadOnlyDictionary<(string Route, int Status), long> DroppedBy => _droppedBy;
    /// <summary>Attempts to write a dead letter that failed (the record waits and is tried again).</summary>
    public long DeadLetterWriteFailures => Volatile.Read(ref _deadLetterWriteFailures);
    public long DecodeErrors => Volatile.Read(ref _decodeErrors);
    public long Retries => Volatile.Read(ref _retries);
    public long Status2xx => Volatile.Read(ref _status2xx);
    public long Status4xx => Volatile.Read(ref _status4xx);
    public long Status5xx => Volatile.Read(ref _status5xx);
    public long FailedAttempts => Volatile.Read(ref _failedAttempts);
    public long BytesConsumed => Volatile.Read(ref _bytesConsumed);
    public LatencyHistogram Latency { get; } = new();

    readonly List<DestinationStats> _destinations = [];

    /// <summary>What each destination of the run did with its copies, in the run's order.</summary>
    public IReadOnlyList<DestinationStats> Destinations { get { lock (_destinations) return _destinations.ToArray(); } }

    /// <summary>The counters of one more destination (several with --dest given more than once, or compare).</summary>
    public DestinationStats AddDestination(string name, bool bestEffort)
    {
        var destination = new DestinationStats(name, bestEffort);
        lock (_destinations) _destinations.Add(destination);
        return destination;
    }

    /// <summary>Every consumed record ends in exactly one of these.</summary>
    public long Finished => Delivered + SampledOut + DeletesIgnored + NotJson + SkippedByRule + DeadLettered + Dropped;

    public void Consume(int bytes) { Interlocked.Increment(ref _consumed); Interlocked.Add(ref _bytesConsumed, bytes); }
    public void Deliver() => Interlocked.Increment(ref _delivered);

    /// <summary>A record ended (Consuming.finished): counted once, whatever its copies did.</summary>
    public void Ended(Consuming.RecordEnd end)
    {
        switch (end.Conclusion)
        {
            case Conclusion.Delivered: Deliver(); break;
            case Conclusion.Dropped: Drop(end.Route, end.DroppedStatus); break;
            case Conclusion.DeadLettered: DeadLetter(end.Cause); break;
        }
    }

    public void DeadLetter(DeadLetterCause cause)
    {
        Interlocked.Increment(ref _deadLettered);
        Interlocked.Increment(ref _deadLetteredBy[DeadLetterCauseModule.index(cause)]);
    }

    /// <summary>Dead letters of one class (<see cref="DeadLetterCause"/>).</summary>
    public long DeadLetteredBy(DeadLetterCause cause) => Volatile.Read(ref _deadLetteredBy[DeadLetterCauseModule.index(cause)]);
    public void DeadLetterWriteFailed() => Interlocked.Increment(ref _deadLetterWriteFailures);

    public void DecodeError() => Interlocked.Increment(ref _decodeErrors);
    public void Retry() => Interlocked.Increment(ref _retries);

    /// <summary>A record finished without delivery because its route's status policy drops
    /// <paramref name="status"/> (Outcome.Verdict.Dropped): counted, never dead-lettered.</summary>
    public void Drop(string route, int status)
    {
        Interlocked.Increment(ref _dropped);
        _droppedBy.AddOrUpdate((route, status), 1, static (_, n) => n + 1);
    }

    public void Skip(Pipeline.SkipKind kind, string? rule)
    {
        switch (kind)
        {
            case Pipeline.SkipKind.SampledOut: Interlocked.Increment(ref _sampledOut); break;
            case Pipeline.SkipKind.DeleteIgnored: Interlocked.Increment(ref _deletesIgnored); break;
            case Pipeline.SkipKind.ByRule: Interlocked.Increment(ref _skippedByRule); break;
            case Pipeline.SkipKind.NotJson: Interlocked.Increment(ref _notJson); break;
        }
        if (rule is not null) SkippedByRuleObserved?.Invoke(rule);
    }

    /// <summary>Lets the metrics layer count skips per rule without this class knowing it.</summary>
    public event Action<string>? SkippedByRuleObserved;
    /// <summary>Every HTTP attempt with how long it took, for the request metrics.</summary>
    public event Action<AttemptSeen>? AttemptObserved;

    /// <summary>One HTTP attempt, for the metrics: where it went, for which route, what came back, how long it took.</summary>
    public readonly record struct AttemptSeen(string Destination, string Route, Method Method, Attempt Attempt, TimeSpan Elapsed);

    public void Answered(string destination, Pipeline.Request request, Attempt attempt, TimeSpan elapsed = default)
    {
        var status = Outcome.status(attempt);
        if (status == 0) Interlocked.Increment(ref _failedAttempts);
        else if (status < 300) Interlocked.Increment(ref _status2xx);
        else if (status < 500) Interlocked.Increment(ref _status4xx);
        else Interlocked.Increment(ref _status5xx);
        AttemptObserved?.Invoke(new AttemptSeen(destination, request.Route, request.Method, attempt, elapsed));
    }

    /// <summary>What the process spent: for the run summary and the benchmark.</summary>
    public string ProcessSummary()
    {
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        var perRecord = Consumed == 0 ? 0 : GC.GetTotalAllocatedBytes() / Consumed;
        return $"process: peak RSS {self.PeakWorkingSet64 / (1024 * 1024)} MB, CPU {self.TotalProcessorTime.TotalSeconds:F2} s, " +
               $"allocated {GC.GetTotalAllocatedBytes() / (1024 * 1024)} MB ({perRecord} B/record), " +
               $"GCs {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)} (paused {GC.GetTotalPauseDuration().TotalSeconds:F2} s), " +
               $"latency p50 {Latency.Quantile(0.5).TotalMilliseconds:F2} ms p99 {Latency.Quantile(0.99).TotalMilliseconds:F2} ms";
    }

    /// <summary>The closing account, in the words of the progress line and the metrics: sent, dropped, skipped, dead letters.</summary>
    /// <param name="sentAs">What "sent" is called, e.g. "would send" for a dry run.</param>
    public string Summary(string? sentAs = null) =>
        $"consumed {Consumed}, {sentAs ?? "sent"} {Delivered}, skipped {SampledOut + DeletesIgnored + NotJson + SkippedByRule} " +
        $"(sampled out {SampledOut}, deletes ignored {DeletesIgnored}, not JSON {NotJson}, by rule {SkippedByRule}), " +
        $"dead letters {DeadLettered} (undecodable {DecodeErrors}), retries {Retries}" +
        (Dropped == 0 ? "" : $", dropped {Dropped} (" + string.Join(", ", _droppedBy.OrderBy(kv => kv.Key.Route, StringComparer.Ordinal).ThenBy(kv => kv.Key.Status)
            .Select(kv => $"{kv.Key.Status} by '{kv.Key.Route}': {kv.Value}")) + ")");
}
