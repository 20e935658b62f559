// The flags of `replay run` that steer and watch a run rather than decide what is
// replayed: --reset, --dry-run, the metrics endpoint, the log format and progress.
// --from itself stays with the Kafka flags (RunCommand.From); its meaning lives in
// StartPosition.
using System.CommandLine;
using System.Net;
using Replay.Host.Cli;
using Replay.Host.Replay;

namespace Replay.Host.Operating;

public static class OperatingOptions
{
    public static readonly Option<bool> Reset = new("--reset") { Description = "Start at --from even where the group has committed offsets (once per partition; prints a warning)" };
    public static readonly Option<bool> DryRun = new("--dry-run") { Description = "Print each request (method, URL, headers, body size) instead of sending it; commit nothing" };
    public static readonly Option<int?> MetricsPort = new("--metrics-port") { HelpName = "port", Description = "Serve Prometheus /metrics, /healthz and /readyz on this port (0 picks a free one)" };
    public static readonly Option<string> MetricsHost = new("--metrics-host") { HelpName = "address", Description = "Address the metrics port listens on; 0.0.0.0 or :: to let other machines scrape", DefaultValueFactory = _ => "127.0.0.1" };
    public static readonly Option<string> LogFormat = new("--log-format") { HelpName = "text|json", Description = "text, or json (one object per line, for log shippers)", DefaultValueFactory = _ => "text" };
    public static readonly Option<TimeSpan?> ProgressInterval = Duration.Option("--progress-interval", "How often progress is reported (default: 2s on a terminal, 10s in a log)");
    public static readonly Option<TimeSpan?> StuckAfter = Duration.Option("--stuck-after", "/readyz fails when records are in flight and none finished for this long", TimeSpan.FromMinutes(2));

    public static readonly Option<TimeSpan?> ConnectTimeout = Duration.Option("--connect-timeout", $"How long start-up waits for Kafka to answer; then exit {ExitCodes.KafkaUnreachable} (a supervisor retries)", TimeSpan.FromSeconds(30));

    public static IEnumerable<Option> All => [Reset, DryRun, MetricsPort, MetricsHost, LogFormat, ProgressInterval, StuckAfter, ConnectTimeout];

    /// <summary>Validates the operating flags and <c>--from</c> into <paramref name="settings"/>, or one clear message.</summary>
    public static string? Apply(ParseResult parse, Option<string> from, ReplaySettings settings, DateTimeOffset now)
    {
        var start = StartPosition.Parse(parse.GetValue(from)!, now);
        if (!start.IsOk) return start.Error;
        settings.Start = start.Value!;
        settings.Reset = parse.GetValue(Reset);
        if (settings.Reset && parse.GetResult(from) is null or { Implicit: true })
            return "--reset needs an explicit --from to reset to: add --from earliest, latest, a time (2024-05-01T10:00:00Z) or -2h";
        if (settings.Reset && settings.Start.Kind == StartKind.Committed)
            return "--reset with --from committed contradicts itself: --from committed never moves the group; pick earliest, latest or a time";
        settings.DryRun = parse.GetValue(DryRun);

        var operating = settings.Operating;
        if (parse.GetValue(MetricsPort) is { } port)
        {
            if (port is < 0 or > 65535) return $"--metrics-port {port}: use a port from 1 to 65535 (or 0 for any free one)";
            operating.MetricsPort = port;
        }
        var host = parse.GetValue(MetricsHost)!;
        if (host == "localhost") operating.MetricsHost = IPAddress.Loopback;
        else if (IPAddress.TryParse(host, out var address)) operating.MetricsHost = address;
        else return $"--metrics-host '{host}': use an IP address to listen on, e.g. 127.0.0.1 (default, this machine only), 0.0.0.0 (all IPv4) or :: (all IPv6)";
        if (parse.GetResult(MetricsHost) is { Implicit: false } && operating.MetricsPort is null)
            return "--metrics-host has no effect without --metrics-port: add --metrics-port 9464 (or another port)";
        switch (parse.GetValue(LogFormat)!.ToLowerInvariant())
        {
            case "text": operating.LogFormat = Operating.LogFormat.Text; break;
            case "json": operating.LogFormat = Operating.LogFormat.Json; break;
            default: return $"--log-format '{parse.GetValue(LogFormat)}': use text or json";
        }
        if (parse.GetValue(ProgressInterval) is { } interval)
        {
            if (interval < TimeSpan.FromMilliseconds(100)) return $"--progress-interval {interval.TotalMilliseconds} ms: use at least 100ms (e.g. 2s)";
            operating.ProgressInterval = interval;
        }
        operating.StuckAfter = parse.GetValue(StuckAfter) ?? operating.StuckAfter;
        operating.ConnectTimeout = parse.GetValue(ConnectTimeout) ?? operating.ConnectTimeout;
        if (operating.ConnectTimeout <= TimeSpan.Zero) return "--connect-timeout must be longer than 0 (e.g. 30s)";
        if (operating.StuckAfter <= TimeSpan.Zero) return "--stuck-after must be longer than 0 (e.g. 2m)";
        return null;
    }
}
