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

    /// <summary>What the operating flags and <c>--from</c> say about a run.</summary>
    public sealed record Choices(StartPosition Start, bool Reset, bool DryRun, OperatingSettings Operating);

    /// <summary>Validates the operating flags and <c>--from</c>, or one clear message.</summary>
    public static Result<Choices> Read(ParseResult parse, Option<string> from, DateTimeOffset now)
    {
        var start = StartPosition.Parse(parse.GetValue(from)!, now);
        if (!start.IsOk) return Result<Choices>.Fail(start.Error!);
        var reset = parse.GetValue(Reset);
        if (reset && parse.GetResult(from) is null or { Implicit: true })
            return Result<Choices>.Fail("--reset needs an explicit --from to reset to: add --from earliest, latest, a time (2024-05-01T10:00:00Z) or -2h");
        if (reset && start.Value!.Kind == StartKind.Committed)
            return Result<Choices>.Fail("--reset with --from committed contradicts itself: --from committed never moves the group; pick earliest, latest or a time");

        var operating = new OperatingSettings();
        if (parse.GetValue(MetricsPort) is { } port)
        {
            if (port is < 0 or > 65535) return Result<Choices>.Fail($"--metrics-port {port}: use a port from 1 to 65535 (or 0 for any free one)");
            operating = operating with { MetricsPort = port };
        }
        var host = parse.GetValue(MetricsHost)!;
        if (host == "localhost") operating = operating with { MetricsHost = IPAddress.Loopback };
        else if (IPAddress.TryParse(host, out var address)) operating = operating with { MetricsHost = address };
        else return Result<Choices>.Fail($"--metrics-host '{host}': use an IP address to listen on, e.g. 127.0.0.1 (default, this machine only), 0.0.0.0 (all IPv4) or :: (all IPv6)");
        if (parse.GetResult(MetricsHost) is { Implicit: false } && operating.MetricsPort is null)
            return Result<Choices>.Fail("--metrics-host has no effect without --metrics-port: add --metrics-port 9464 (or another port)");
        switch (parse.GetValue(LogFormat)!.ToLowerInvariant())
        {
            case "text": operating = operating with { LogFormat = Operating.LogFormat.Text }; break;
            case "json": operating = operating with { LogFormat = Operating.LogFormat.Json }; break;
            default: return Result<Choices>.Fail($"--log-format '{parse.GetValue(LogFormat)}': use text or json");
        }
        if (parse.GetValue(ProgressInterval) is { } interval)
        {
            if (interval < TimeSpan.FromMilliseconds(100)) return Result<Choices>.Fail($"--progress-interval {interval.TotalMilliseconds} ms: use at least 100ms (e.g. 2s)");
            operating = operating with { ProgressInterval = interval };
        }
        operating = operating with
        {
            StuckAfter = parse.GetValue(StuckAfter) ?? operating.StuckAfter,
            ConnectTimeout = parse.GetValue(ConnectTimeout) ?? operating.ConnectTimeout,
        };
        if (operating.ConnectTimeout <= TimeSpan.Zero) return Result<Choices>.Fail("--connect-timeout must be longer than 0 (e.g. 30s)");
        if (operating.StuckAfter <= TimeSpan.Zero) return Result<Choices>.Fail("--stuck-after must be longer than 0 (e.g. 2m)");
        return Result<Choices>.Ok(new Choices(start.Value!, reset, parse.GetValue(DryRun), operating));
    }
}
