// The bridge between a run whose destinations are a primary, a candidate and an
// optional secondary, and the comparison report: once all copies of a record are
// finished (the consuming thread sees that), their last answers are handed to one
// comparing thread, so that JSON diffs never slow the Kafka loop. The hand-over is
// bounded: when the comparison falls behind, the consuming thread waits for it
// rather than holding answers without end.
using System.Collections.Concurrent;
using Replay.Core;
using Replay.Host.Delivery;
using static Replay.Core.Outcome;

namespace Replay.Host.Comparison;

public sealed class ComparingRun : IDisposable
{
    /// <summary>Where each server is among the run's destinations.</summary>
    public const int Primary = 0, Candidate = 1, Secondary = 2;

    readonly ComparisonReport _report;
    readonly BlockingCollection<Job?[]> _pending = new(boundedCapacity: 256);
    readonly Thread _worker;

    public ComparingRun(ComparisonReport report)
    {
        _report = report;
        _worker = new Thread(Compare) { IsBackground = true, Name = "compare" };
        _worker.Start();
    }

    public ComparisonReport Report => _report;

    /// <summary>A record's copies, by destination, once every one of them is finished.</summary>
    public void Finished(Job?[] copies)
    {
        if (Volatile.Read(ref _disposed) == 1) return; // the run is over
        _pending.Add(copies);
    }

    void Compare()
    {
        foreach (var copies in _pending.GetConsumingEnumerable())
        {
            try { Observe(copies); }
            catch (Exception e) { _report.Failed("?", "?", "?", $"internal error comparing: {e.Message}"); }
        }
    }

    void Observe(Job?[] copies)
    {
        if (copies[Primary] is not { } primary) return;
        var source = (RecordRef)primary.Source;
        var request = primary.Request;
        var replayId = $"{source.Topic}/{source.Partition}/{source.Offset}";
        var requestLine = $"{MethodModule.name(request.Method)} {request.Url.PathAndQuery}";
        var route = request.Route;
        if ((Problem(copies[Primary], "primary") ?? Problem(copies[Candidate], "candidate")) is { } problem)
        {
            _report.Failed(route, replayId, requestLine, problem);
            return;
        }
        var secondary = copies.Length > Secondary && copies[Secondary]?.LastAttempt is { IsValueSome: true } s && Outcome.tryAnswer(s.Value, out var a)
            ? a
            : null;
        _report.Observe(route, replayId, requestLine, AnswerOf(copies[Primary]!), secondary, AnswerOf(copies[Candidate]!));
    }

    /// <summary>Why a server's answer cannot be compared: it never came (unreachable, timed out, abandoned).</summary>
    static string? Problem(Job? copy, string role) =>
        copy?.LastAttempt is { IsValueSome: true } last
            ? Outcome.status(last.Value) != 0 ? null : $"the {role} did not answer ({describe(last.Value)})"
            : $"the {role} was never asked";

    static Answer AnswerOf(Job copy) => Outcome.tryAnswer(copy.LastAttempt.Value, out var answer) ? answer : throw new InvalidOperationException("no answer");

    /// <summary>Waits for the records handed over so far to be compared (once; later calls return at once).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _pending.CompleteAdding();
        _worker.Join();
    }

    int _disposed;
}
