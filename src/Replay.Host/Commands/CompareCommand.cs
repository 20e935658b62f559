// `replay compare`: is the new server the same as the old one on real traffic? Each
// sampled record goes to --primary, --candidate and (optionally) --secondary — to no
// other destination, whatever a rules file says — under every `replay run` flag
// (topic, group, window, sampling, rules, status policy), and their answers are
// compared: JSON by path, noise learnt from the secondary (docs/COMPARING.md).
using System.CommandLine;
using Replay.Core;
using Replay.Host.Cli;
using Replay.Host.Comparison;
using Replay.Host.Delivery;
using Replay.Host.Operating;
using Replay.Host.Replay;
using Replay.Host.Rules;
using Replay.Host.Security;
using static Replay.Host.Commands.RunCommand;

namespace Replay.Host.Commands;

public static class CompareCommand
{
    static readonly Option<string> Primary = new("--primary") { HelpName = "pattern", Description = "The server as it is (the reference), a --dest pattern", Required = true };
    static readonly Option<string> Candidate = new("--candidate") { HelpName = "pattern", Description = "The new server, a --dest pattern", Required = true };
    static readonly Option<string?> Secondary = new("--secondary") { HelpName = "pattern", Description = "A second copy of the old server: where it differs from the primary is noise, not a regression" };
    static readonly Option<double> Tolerance = new("--tolerance") { HelpName = "number", Description = "Numbers at most this far apart are equal", DefaultValueFactory = _ => AnswerComparison.defaults.Tolerance };
    static readonly Option<string[]> Ignore = new("--ignore") { HelpName = "path", Description = "A JSON path known to differ, e.g. $.requestId or $.items[*].time (repeatable)", AllowMultipleArgumentsPerToken = false };
    static readonly Option<string[]> Unordered = new("--unordered") { HelpName = "path", Description = "An array compared as a multiset, e.g. $.tags (repeatable)", AllowMultipleArgumentsPerToken = false };
    static readonly Option<string[]> CompareHeader = new("--compare-header") { HelpName = "name", Description = "A response header to compare (repeatable; default Content-Type)", AllowMultipleArgumentsPerToken = false };
    static readonly Option<long> CompareMaxBytes = Flags.Size("--compare-max-bytes", "Larger bodies are compared by length and SHA-256 only", AnswerComparison.DefaultMaxBodyBytes);
    static readonly Option<string?> Report = new("--report") { HelpName = "dir", Description = "Write differences.jsonl and report.html (self-contained, opens from the file) into this directory" };

    /// <summary>What answers mean when comparing, under the status flags: every status is an answer
    /// to compare, except the ones that ask to come back (408, 429, 503), which are retried.</summary>
    static readonly StatusPolicy.Policy Comparing = StatusPolicy.create(Microsoft.FSharp.Collections.ListModule.OfSeq(new[]
    {
        Tuple.Create(new StatusPolicy.StatusRange(100, 599), StatusPolicy.Meaning.Success),
        Tuple.Create(new StatusPolicy.StatusRange(408, 408), StatusPolicy.Meaning.Retry),
        Tuple.Create(new StatusPolicy.StatusRange(429, 429), StatusPolicy.Meaning.Retry),
        Tuple.Create(new StatusPolicy.StatusRange(503, 503), StatusPolicy.Meaning.Retry),
    })).ResultValue;

    public static Command Create()
    {
        var command = new Command("compare", "Send each record to a primary, a candidate (and a secondary) and report where the candidate answers differently.");
        HelpText.Describe(command,
            details: """
                Every record goes to each server named here and nowhere else; each has its own lanes, retries and budget,
                and a record is committed once all answered. Statuses are answers to compare (408, 429 and 503 are
                retried) unless --ok-on/--retry-on/--drop-on/--fail-on say otherwise; a server that does not answer for
                --max-retry-duration (1m here) fails that record's comparison. With --secondary, a field that differs
                between primary and secondary is noise on its route. See docs/COMPARING.md.
                """,
            examples: """
                  replay compare -t telemetry -gid compare-v2 -p kafka.properties --from -1h --until-end --sample 0.01 \
                    --primary "http://old-1/submit/telemetry/%k" --secondary "http://old-2/submit/telemetry/%k" \
                    --candidate "http://new/submit/telemetry/%k" --ignore '$.requestId' --report compare-out
                """);
        Signals.Stops(command, "stopping: finishing in-flight requests, comparing what came back, then committing", "undelivered records stay uncommitted");
        foreach (var option in RunCommand.Source().Concat([Primary, Candidate, Secondary, Tolerance, Ignore, Unordered, CompareHeader, CompareMaxBytes, Report])
                     .Concat(RunCommand.AllButSourceAndDestinations()))
            command.Options.Add(option);
        command.SetAction((parse, cancel) => Task.FromResult(RunExecution.Execute(parse, cancel, "replay compare", Build, Facts)));
        return command;
    }

    /// <summary>The job of a comparison: replay run's settings with the three servers as its only
    /// destinations, answers kept whole (up to --compare-max-bytes, hashed beyond), and the report.</summary>
    public static Result<ReplayJob> Build(ParseResult parse, Secrets secrets)
    {
        var options = new ComparisonOptions
        {
            Tolerance = parse.GetValue(Tolerance),
            Ignore = parse.GetValue(Ignore) ?? [],
            Unordered = parse.GetValue(Unordered) ?? [],
            Headers = parse.GetValue(CompareHeader) is { Length: > 0 } headers ? headers : [.. AnswerComparison.defaults.Headers],
            MaxBodyBytes = parse.GetValue(CompareMaxBytes),
            ReportDirectory = parse.GetValue(Report),
        };
        if (options.MaxBodyBytes is < 1 or > ResponseCapture.MaxBodyBytes)
            return Result<ReplayJob>.Fail($"--compare-max-bytes {options.MaxBodyBytes}: between 1 and {ResponseCapture.MaxBodyBytes / (1 << 20)} MiB");
        var servers = new List<(string Flag, string Text, string Name)>
        {
            ("--primary", parse.GetValue(Primary)!, "primary"),
            ("--candidate", parse.GetValue(Candidate)!, "candidate"),
        };
        if (parse.GetValue(Secondary) is { } secondary) servers.Add(("--secondary", secondary, "secondary"));
        var built = RunCommand.Build(parse, secrets, new FixedDestinations(servers, Comparing));
        if (!built.IsOk) return built;
        // A dry run sends nothing, so no answer comes back to compare: it shows what each server
        // would be sent, and a report of it would call every record equal.
        if (built.Value!.Run.DryRun)
            return options.ReportDirectory is null
                ? built
                : Refuse(built.Value!, "--report with --dry-run: a dry run sends nothing, so there are no answers to compare; drop one of them");
        var report = ComparisonReport.Open(options, secrets);
        if (!report.IsOk) return Refuse(built.Value!, report.Error!);
        var bodyBytes = (int)options.MaxBodyBytes;
        return Result<ReplayJob>.Ok(built.Value! with
        {
            // A server that does not answer fails the comparison of that record after a minute
            // (unless --max-retry-duration says otherwise), rather than holding the run.
            Run = Settings.withDefaultRetryLimit(TimeSpan.FromMinutes(1), built.Value!.Run),
            Services = built.Value!.Services with
            {
                Comparison = new ComparingRun(report.Value!),
                Capture = new ResponseCapture(bodyBytes, bodyBytes, hashBeyond: true, options.Headers),
            },
        });
    }

    static Result<ReplayJob> Refuse(ReplayJob built, string reason)
    {
        built.Services.DeadLetters.Dispose();
        built.Services.Exchanges?.Dispose();
        built.Services.Rules?.Dispose();
        built.Services.Tokens?.Dispose();
        return Result<ReplayJob>.Fail(reason);
    }

    static BannerFacts Facts(ParseResult parse, ReplayJob job) =>
        RunExecution.Facts(parse, job) with
        {
            Destinations = [$"primary {parse.GetValue(Primary)}", $"candidate {parse.GetValue(Candidate)}",
                .. parse.GetValue(Secondary) is { } s ? [$"secondary {s}"] : Array.Empty<string>()],
        };
}
