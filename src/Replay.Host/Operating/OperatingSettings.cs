// How a run is watched: the metrics and health endpoint, the log format and the
// progress report. None of it changes what is replayed.
using System.Net;

namespace Replay.Host.Operating;

public enum LogFormat { Text, Json }

public sealed record OperatingSettings
{
    /// <summary>--metrics-port: serve /metrics, /healthz and /readyz; null: no endpoint. 0 picks a free port.</summary>
    public int? MetricsPort { get; init; }
    /// <summary>--metrics-host: loopback by default, so metrics are not exposed beyond this machine by accident.</summary>
    public IPAddress MetricsHost { get; init; } = IPAddress.Loopback;
    public LogFormat LogFormat { get; init; } = LogFormat.Text;
    /// <summary>--progress-interval; null: every 2 s on a terminal, every 10 s in a log.</summary>
    public TimeSpan? ProgressInterval { get; init; }
    /// <summary>--stuck-after: /readyz fails when records are in flight and none finished for this long.</summary>
    public TimeSpan StuckAfter { get; init; } = TimeSpan.FromMinutes(2);
    /// <summary>--connect-timeout: how long start-up waits for Kafka to answer before exiting 69.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);
}
