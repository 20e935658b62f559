// Live progress: every interval, rates since the last report and the state of the
// run, as a status line rewritten in place on a terminal or as one structured log
// line ("progress k=v ..." or JSON) otherwise. Reads counters only; never touches the
// consume loop.
using System.Globalization;
using Replay.Host.Replay;

namespace Replay.Host.Operating;

public sealed class Progress : IDisposable
{
    readonly ReplayConsumer _consumer;
    readonly OperatorLog _log;
    readonly Timer _timer;
    readonly Lock _gate = new();
    long _lastConsumed, _lastSent, _lastAt = Environment.TickCount64;
    bool _stopped;

    public Progress(ReplayConsumer consumer, OperatorLog log, TimeSpan interval)
    {
        _consumer = consumer;
        _log = log;
        _timer = new Timer(_ => Report(), null, interval, interval);
    }

    /// <summary>On a terminal, a status line every 2 s; in a log, a line every 10 s is plenty.</summary>
    public static TimeSpan DefaultInterval(OperatorLog log) =>
        log.ShowsStatusLine ? TimeSpan.FromSeconds(2) : TimeSpan.FromSeconds(10);

    void Report()
    {
        lock (_gate)
        {
            if (_stopped) return;
            var stats = _consumer.Stats;
            var now = Environment.TickCount64;
            var seconds = Math.Max(0.001, (now - _lastAt) / 1000.0);
            var consumed = stats.Consumed;
            var sent = stats.Delivered;
            var perSecond = (consumed - _lastConsumed) / seconds;
            var sentPerSecond = (sent - _lastSent) / seconds;
            (_lastConsumed, _lastSent, _lastAt) = (consumed, sent, now);
            var lag = _consumer.Observer.Lag.Total;
            var errors = stats.Status4xx + stats.Status5xx + stats.FailedAttempts;
            if (_log.ShowsStatusLine)
            {
                _log.Status(
                    $"{Count(perSecond)} rec/s  {Count(sentPerSecond)} sent/s  lag {(lag is { } l ? Count(l) : "?")}  " +
                    $"in flight {Count(_consumer.Observer.InFlight)} ({Bytes(_consumer.Observer.InFlightBytes)})  errors {Count(errors)}  " +
                    $"dead {Count(stats.DeadLettered)}  | consumed {Count(consumed)}  sent {Count(sent)}  " +
                    $"partitions {_consumer.Observer.AssignedCount}{(_consumer.Observer.PausedCount > 0 ? $" ({_consumer.Observer.PausedCount} paused)" : "")}");
                return;
            }
            _log.Event("progress",
            [
                new("consumed", consumed),
                new("sent", sent),
                new("records_per_s", perSecond),
                new("sent_per_s", sentPerSecond),
                new("lag", lag),
                new("in_flight", (long)_consumer.Observer.InFlight),
                new("in_flight_bytes", _consumer.Observer.InFlightBytes),
                new("errors", errors),
                new("retries", stats.Retries),
                new("dead_letters", stats.DeadLettered),
                new("sampled_out", stats.SampledOut),
                new("skipped", stats.DeletesIgnored + stats.NotJson + stats.SkippedByRule),
                new("assigned", _consumer.Observer.AssignedCount),
                new("paused", _consumer.Observer.PausedCount),
            ]);
        }
    }

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
