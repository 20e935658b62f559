// Live progress: every interval, rates since the last report and the state of the run, as a
// status line rewritten in place on a terminal (fitted to its width, the least important
// figures dropped first) or as one structured log line ("progress k=v ..." or JSON)
// otherwise. With --until-end it shows how far the run is and when it should end; with
// --speed, how far behind its schedule it runs. While the member owns no partitions it says
// why it waits. Reads counters only; never touches the
// consume loop.
using System.Globalization;
using Replay.Host.Cli;
using Replay.Host.Replay;

namespace Replay.Host.Operating;

/// <summary>What the progress report knows about the run besides its counters.</summary>
/// <param name="RecordsAhead">--until-end: records between the start and the end marks, when known.</param>
/// <param name="WaitingHint">Why a member may own no partitions for a while, said once it has waited <see cref="Progress.WaitBeforeExplaining"/>.</param>
/// <param name="Extra">More to say on each report (replay compare's counts).</param>
public sealed record ProgressContext(long? RecordsAhead = null, bool DryRun = false, string? WaitingHint = null, Func<string>? Extra = null);

public sealed class Progress : IDisposable
{
    /// <summary>A classic group's first rebalance takes ~3 s; longer without partitions deserves a word.</summary>
    public static readonly TimeSpan WaitBeforeExplaining = TimeSpan.FromSeconds(5);

    readonly ReplayConsumer _consumer;
    readonly OperatorLog _log;
    readonly TimeSpan _interval;
    readonly ProgressContext _context;
    readonly Timer _timer;
    readonly Lock _gate = new();
    (long At, long Done)? _paceFrom;
    long _lastConsumed, _lastSent, _lastAt = Environment.TickCount64, _lastReport = Environment.TickCount64;
    long _waitingSince = Environment.TickCount64;
    bool _explained;
    bool _stopped;

    public Progress(ReplayConsumer consumer, OperatorLog log, TimeSpan interval, ProgressContext? context = null)
    {
        _consumer = consumer;
        _log = log;
        _interval = interval;
        _context = context ?? new ProgressContext();
        var tick = interval < TimeSpan.FromSeconds(1) ? interval : TimeSpan.FromSeconds(1);
        _timer = new Timer(_ => Tick(), null, tick, tick);
    }

    /// <summary>On a terminal, a status line every 2 s; in a log, a line every 10 s is plenty.</summary>
    public static TimeSpan DefaultInterval(OperatorLog log) =>
        log.ShowsStatusLine ? TimeSpan.FromSeconds(2) : TimeSpan.FromSeconds(10);

    void Tick()
    {
        lock (_gate)
        {
            if (_stopped) return;
            var now = Environment.TickCount64;
            ExplainWaiting(now);
            if (now - _lastReport < _interval.TotalMilliseconds - 50) return;
            _lastReport = now;
            Report(now);
        }
    }

    /// <summary>Says once per wait why there is nothing to do: no partitions assigned yet.</summary>
    void ExplainWaiting(long now)
    {
        if (!_consumer.Observer.IsRunning || _consumer.Observer.AssignedCount > 0)
        {
            _waitingSince = now;
            _explained = false;
            return;
        }
        if (_explained || now - _waitingSince < WaitBeforeExplaining.TotalMilliseconds) return;
        _explained = true;
        var waited = (now - _waitingSince) / 1000;
        _log.Write(Severity.Info, $"waiting for the group to assign partitions ({waited} s so far){(_context.WaitingHint is { } hint ? "; " + hint : "")}",
            [new("event", "waiting"), new("waited_s", waited)]);
    }

    void Report(long now)
    {
        var stats = _consumer.Stats;
        var seconds = Math.Max(0.001, (now - _lastAt) / 1000.0);
        var consumed = stats.Consumed;
        var sent = stats.Delivered;
        var perSecond = (consumed - _lastConsumed) / seconds;
        var sentPerSecond = (sent - _lastSent) / seconds;
        (_lastConsumed, _lastSent, _lastAt) = (consumed, sent, now);
        var lag = _consumer.Observer.Lag.Total;
        var errors = stats.Status4xx + stats.Status5xx + stats.FailedAttempts;
        var skipped = stats.SampledOut + stats.DeletesIgnored + stats.NotJson + stats.SkippedByRule;
        var sentWord = _context.DryRun ? "printed" : "sent";
        var (percent, eta) = Ahead(stats.Finished, now);
        if (_log.ShowsStatusLine)
        {
            var waiting = _consumer.Observer.AssignedCount == 0 && _consumer.Observer.IsRunning;
            var parts = new List<(int Keep, string Text)>();
            if (waiting) parts.Add((0, $"waiting for partitions ({(now - _waitingSince) / 1000} s)"));
            if (percent is { } p) parts.Add((0, $"{p:0}%{(eta is { } e ? " ETA " + Clock(e) : "")}"));
            if (_consumer.Observer.BehindSchedule is { } behind) parts.Add((1, $"behind {Seconds(behind)}"));
            parts.Add((1, $"{Count(perSecond)} rec/s"));
            parts.Add((2, $"{sentWord} {Count(sent)}"));
            parts.Add((3, $"lag {(lag is { } l ? Count(l) : "?")}"));
            parts.Add((4, $"errors {Count(errors)}"));
            parts.Add((5, $"dead {Count(stats.DeadLettered)}"));
            parts.Add((6, $"in flight {Count(_consumer.Observer.InFlight)} ({Bytes(_consumer.Observer.InFlightBytes)})"));
            // Under --concurrency auto, how many requests the destination is trusted with now.
            if (_consumer.Observer.AdaptsConcurrency) parts.Add((6, $"limit {_consumer.Observer.WireLimit}"));
            parts.Add((7, $"{Count(sentPerSecond)} {sentWord}/s"));
            parts.Add((8, $"skipped {Count(skipped)}"));
            parts.Add((9, $"consumed {Count(consumed)}"));
            if (_context.Extra is { } extra) parts.Add((1, extra()));
            parts.Add((10, $"partitions {_consumer.Observer.AssignedCount}{(_consumer.Observer.PausedCount > 0 ? $" ({_consumer.Observer.PausedCount} paused)" : "")}"));
            _log.Status(Fit(parts, Terminal.Width() ?? 80));
            return;
        }
        var fields = new List<KeyValuePair<string, object?>>
        {
            new("consumed", consumed),
            new(sentWord, sent),
            new("skipped", skipped),
            new("dead_letters", stats.DeadLettered),
            new("records_per_s", perSecond),
            new($"{sentWord}_per_s", sentPerSecond),
            new("lag", lag),
            new("in_flight", (long)_consumer.Observer.InFlight),
            new("in_flight_bytes", _consumer.Observer.InFlightBytes),
            new("concurrency_limit", (long)_consumer.Observer.WireLimit),
            new("errors", errors),
            new("retries", stats.Retries),
            new("sampled_out", stats.SampledOut),
            new("assigned", _consumer.Observer.AssignedCount),
            new("paused", _consumer.Observer.PausedCount),
        };
        if (_context.Extra is { } more) fields.Add(new("compare", more()));
        if (_consumer.Observer.BehindSchedule is { } late) fields.Add(new("behind_schedule_s", Math.Round(late.TotalSeconds, 3)));
        if (percent is { } pc)
        {
            fields.Add(new("percent", pc));
            fields.Add(new("eta_s", eta?.TotalSeconds));
        }
        _log.Event("progress", fields);
    }

    /// <summary>--until-end: how much of the records ahead at the start are finished, and when the rest should be.</summary>
    (double? Percent, TimeSpan? Eta) Ahead(long finished, long now)
    {
        if (_context.RecordsAhead is not { } total) return (null, null);
        if (total <= 0) return (100, TimeSpan.Zero);
        var done = Math.Min(finished, total);
        // The pace since records started to finish: the wait for partitions is not part of it.
        if (_paceFrom is null)
        {
            if (done > 0) _paceFrom = (now, done);
            return (100.0 * done / total, null);
        }
        var (since, doneThen) = _paceFrom.Value;
        var perSecond = (done - doneThen) / Math.Max(0.001, (now - since) / 1000.0);
        TimeSpan? eta = perSecond > 0 ? TimeSpan.FromSeconds(Math.Min((total - done) / perSecond, TimeSpan.FromDays(365).TotalSeconds)) : null;
        return (100.0 * done / total, eta);
    }

    /// <summary>The parts in their order, leaving out the least important until the line fits
    /// <paramref name="width"/> (one column spare: writing the last column makes some terminals wrap).</summary>
    public static string Fit(IReadOnlyList<(int Keep, string Text)> parts, int width)
    {
        var kept = parts.ToList();
        string Line() => string.Join("  ", kept.Select(p => p.Text));
        while (Line().Length > width - 1 && kept.Count > 1)
            kept.Remove(kept.MaxBy(p => p.Keep));
        var line = Line();
        return line.Length > width - 1 ? line[..Math.Max(0, width - 1)] : line;
    }

    static string Clock(TimeSpan t) => t.TotalHours >= 1
        ? $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}"
        : $"{t.Minutes}:{t.Seconds:00}";

    /// <summary>Short lags in tenths of a second (on schedule is "0.0 s"), long ones as a clock.</summary>
    static string Seconds(TimeSpan t) =>
        t.TotalSeconds < 60 ? t.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s" : Clock(t);

    static string Count(double n) => n switch
    {
        >= 10_000_000 => (n / 1_000_000).ToString("F0", CultureInfo.InvariantCulture) + "M",
        >= 1_000_000 => (n / 1_000_000).ToString("F1", CultureInfo.InvariantCulture) + "M",
        >= 10_000 => (n / 1_000).ToString("F0", CultureInfo.InvariantCulture) + "k",
        >= 1_000 => (n / 1_000).ToString("F1", CultureInfo.InvariantCulture) + "k",
        _ => n.ToString("F0", CultureInfo.InvariantCulture),
    };

    static string Bytes(long n) => n switch
    {
        >= 1 << 30 => (n / (double)(1 << 30)).ToString("F1", CultureInfo.InvariantCulture) + " GB",
        >= 1 << 20 => (n / (double)(1 << 20)).ToString("F1", CultureInfo.InvariantCulture) + " MB",
        >= 1 << 10 => (n / (double)(1 << 10)).ToString("F0", CultureInfo.InvariantCulture) + " kB",
        _ => n + " B",
    };

    public void Dispose()
    {
        lock (_gate) _stopped = true;
        _timer.Dispose();
        _log.EndStatus();
    }
}
