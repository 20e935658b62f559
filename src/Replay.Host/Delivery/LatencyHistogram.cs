// Request latencies in log-spaced buckets (about 4% wide), counted with one
// Interlocked increment per request: cheap enough for the hot path, precise enough
// for the p50/p99 in the run summary and the benchmark.
namespace Replay.Host.Delivery;

public sealed class LatencyHistogram
{
    // Bucket i holds latencies up to Floor * Growth^i microseconds.
    const double FloorMicros = 10;
    const double Growth = 1.04;
    readonly long[] _buckets = new long[400];

    public void Record(TimeSpan latency)
    {
        var micros = Math.Max(FloorMicros, latency.TotalMicroseconds);
        var index = (int)Math.Ceiling(Math.Log(micros / FloorMicros, Growth));
        Interlocked.Increment(ref _buckets[Math.Clamp(index, 0, _buckets.Length - 1)]);
    }

    /// <summary>The latency below which a fraction <paramref name="q"/> of requests fell (upper bucket bound).</summary>
    public TimeSpan Quantile(double q)
    {
        var counts = new long[_buckets.Length];
        for (var i = 0; i < counts.Length; i++) counts[i] = Interlocked.Read(ref _buckets[i]);
        var total = counts.Sum();
        if (total == 0) return TimeSpan.Zero;
        var target = (long)Math.Ceiling(q * total);
        long seen = 0;
        for (var i = 0; i < counts.Length; i++)
        {
            seen += counts[i];
            if (seen >= target) return TimeSpan.FromMicroseconds(FloorMicros * Math.Pow(Growth, i));
        }
        return TimeSpan.FromMicroseconds(FloorMicros * Math.Pow(Growth, counts.Length - 1));
    }
}
