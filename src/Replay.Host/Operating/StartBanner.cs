// The first line of every run: what this replay is about to do, in one line (one JSON
// "start" event): group, topic(s), where it starts, where it sends, through which proxy, how
// much, what an answer means, where dead letters go, and which rules. An operator reading a
// log of many runs sees each run's settings without looking anything up.
using System.Net;
using Replay.Host.Replay;

namespace Replay.Host.Operating;

/// <summary>What the banner says that the settings do not hold as text (they hold it as objects).</summary>
public sealed record BannerFacts(
    IReadOnlyList<string> Destinations,
    string Sample,
    IReadOnlyList<string> DeadLetters,
    string? RulesFile,
    string StatusPolicy);

public static class StartBanner
{
    public static void Write(OperatorLog log, ReplayJob job, BannerFacts? facts)
    {
        var run = job.Run;
        var settings = job.Services;
        var group = run.Kafka.TryGetValue("group.id", out var g) ? g : "-";
        var from = settings.Reset ? $"{settings.Start} (--reset)" : $"{settings.Start} (committed offsets first)";
        var destinations = facts?.Destinations is { Count: > 0 } d ? d : ["as the router decides"];
        var proxy = Proxy(settings.Proxy);
        var deadLetters = run.DryRun ? ["printed (dry run)"] : facts?.DeadLetters is { Count: > 0 } dl ? dl.Select(d => "to " + d).ToList() : ["to the log"];
        var rules = settings.Rules is { } r && facts?.RulesFile is { } file ? $"{file} (generation {r.Generation})" : "none";
        var status = facts?.StatusPolicy ?? global::Replay.Core.StatusPolicy.describe(global::Replay.Core.StatusPolicy.defaults);
        var concurrency = run.Delivery.Concurrency is global::Replay.Core.Concurrency.Adaptive adaptive
            ? $"auto (1 to {adaptive.Item.Max})"
            : run.Delivery.Concurrency.Most.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (run.Delivery.Pipelining > 1)
            concurrency += $" (pipelined, {run.Delivery.Pipelining} a connection on http:// without a proxy)";
        string? until = run.Until.IsValueSome ? PointInTime.Format(DateTimeOffset.FromUnixTimeMilliseconds(run.Until.Value)) : null;
        var speed = global::Replay.Core.Pacing.describe(run.Speed);
        var window = (until is null ? "" : $", until {until}") + (run.Speed.IsMax ? "" : $", speed {speed} (by record timestamps)");
        var responses = run.DryRun || settings.Exchanges is not { } exchanges ? null : $"to {exchanges.Describe()} ({exchanges.DescribeSample()})";
        var text = $"replay: group {group}, topic {run.Topic}, from {from}{window}, to {string.Join(" | ", destinations)}, proxy {proxy}, " +
                   $"sample {facts?.Sample ?? "-"}, concurrency {concurrency}, answers {status}, dead letters {string.Join(" and ", deadLetters)}, rules {rules}" +
                   (responses is null ? "" : $", responses {responses}") +
                   (run.DryRun ? ", DRY RUN (nothing sent or committed)" : "");
        log.Write(Severity.Info, text,
        [
            new("event", "start"),
            new("group", group),
            new("topic", run.Topic),
            new("bootstrap_servers", run.Kafka.TryGetValue("bootstrap.servers", out var b) ? b : null),
            new("from", settings.Start.ToString()),
            new("reset", settings.Reset),
            new("until", until),
            new("speed", speed),
            new("destinations", destinations),
            new("proxy", proxy),
            new("sample", facts?.Sample),
            new("concurrency", concurrency),
            new("status_policy", status),
            new("dead_letters", deadLetters),
            new("responses", responses),
            new("rules", settings.Rules is null ? null : facts?.RulesFile),
            new("rules_generation", settings.Rules?.Generation),
            new("dry_run", run.DryRun),
        ]);
    }

    static string Proxy(IWebProxy? proxy)
    {
        if (proxy is WebProxy { Address: { } address } web)
            return Cli.ProxySettings.Redact(address.GetLeftPart(UriPartial.Authority)) + (web.BypassList.Length > 0 ? " (--no-proxy exceptions)" : "");
        var fromEnvironment = HttpClient.DefaultProxy.GetProxy(new Uri("http://replay.invalid/"));
        return fromEnvironment is null ? "none" : Cli.ProxySettings.Redact(fromEnvironment.GetLeftPart(UriPartial.Authority)) + " (from the environment)";
    }
}
