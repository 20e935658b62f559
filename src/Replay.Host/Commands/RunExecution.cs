// `replay run` carried out: the log every line goes through (redacted, in --log-format from the
// first line on), the settings, the operated run with its banner and pre-flight, and what each
// kind of failure means as an exit code. The flags themselves are RunCommand's.
using System.CommandLine;
using Replay.Host.Cli;
using Replay.Host.Operating;
using Replay.Host.Replay;
using Replay.Host.Security;
using static Replay.Host.Commands.RunCommand;

namespace Replay.Host.Commands;

public static class RunExecution
{
    public static int Execute(ParseResult parse, CancellationToken cancel) =>
        Execute(parse, cancel, "replay run", (p, secrets) => Build(p, secrets), Facts);

    /// <summary>A run as <paramref name="name"/> carries it out: its job from <paramref name="build"/>
    /// (replay run's flags, or compare's), what its banner says from <paramref name="facts"/>.</summary>
    public static int Execute(ParseResult parse, CancellationToken cancel, string name, Func<ParseResult, Secrets, Result<ReplayJob>> build,
        Func<ParseResult, ReplayJob, BannerFacts> facts)
    {
        // Everything this command prints goes through the redactor, so a secret met while reading
        // the settings stays hidden whoever prints it later (librdkafka included), and through the
        // operator log from the first line on, so that --log-format json holds for every line.
        var secrets = new Secrets();
        var format = string.Equals(parse.GetValue(OperatingOptions.LogFormat), "json", StringComparison.OrdinalIgnoreCase) ? LogFormat.Json : LogFormat.Text;
        var (stdout, stderr) = (Console.Out, Console.Error);
        var log = new OperatorLog(new RedactingWriter(stderr, secrets), new RedactingWriter(stdout, secrets), format, terminal: !Console.IsErrorRedirected);
        Console.SetOut(new RedactingWriter(stdout, secrets));
        Console.SetError(log);
        try
        {
            return Execute(parse, secrets, log, cancel, name, build, facts);
        }
        finally
        {
            Console.SetOut(stdout);
            Console.SetError(stderr);
        }
    }

    static int Execute(ParseResult parse, Secrets secrets, OperatorLog log, CancellationToken cancel, string name,
        Func<ParseResult, Secrets, Result<ReplayJob>> build, Func<ParseResult, ReplayJob, BannerFacts> facts)
    {
        var settings = build(parse, secrets);
        if (!settings.IsOk)
        {
            // What the command line's JVM options came to is worth knowing most when the settings fail.
            foreach (var note in StartupNotes.Drain()) log.Write(Severity.Warn, $"{name}: {note}");
            log.Write(Severity.Error, $"{name}: {settings.Error}", [new("exit_code", ExitCodes.Usage)]);
            return ExitCodes.Usage;
        }
        var job = settings.Value!;
        WarnIfInsecure(job.Services, name);
        try
        {
            OperatedRun run;
            try { run = OperatedRun.StartAsync(job, log).GetAwaiter().GetResult(); }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
            {
                log.Write(Severity.Error, $"{name}: --metrics-port/--metrics-host: cannot listen ({e.Message}); pick a free port, or 0 for any");
                return ExitCodes.Usage;
            }
            run.Facts = facts(parse, job);
            run.FromGiven = parse.GetResult(From) is { Implicit: false };
            try
            {
                var code = run.Run(cancel);
                if (job.Services.Rules is { } rules) log.Message($"replay: {rules.Summary()}");
                return code;
            }
            finally { run.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        catch (Confluent.Kafka.KafkaException e) when (KafkaErrors.IsUnreachable(e.Error.Code))
        {
            log.Write(Severity.Error, $"{name}: cannot reach Kafka: {e.Error.Reason}", [new("exit_code", ExitCodes.KafkaUnreachable)]);
            return ExitCodes.KafkaUnreachable;
        }
        catch (Confluent.Kafka.KafkaException e)
        {
            log.Write(Severity.Error, $"{name}: Kafka refused the settings: {e.Error.Reason}", [new("exit_code", ExitCodes.Usage)]);
            return ExitCodes.Usage;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException && e.Source == "Confluent.Kafka")
        {
            // librdkafka rejected a key or value of the properties file (unknown key, invalid
            // value, unreadable certificate or key): its reason, not a stack trace.
            log.Write(Severity.Error, $"{name}: Kafka refused the settings: {e.Message}", [new("exit_code", ExitCodes.Usage)]);
            return ExitCodes.Usage;
        }
        finally
        {
            job.Services.Comparison?.Dispose();
            job.Services.Comparison?.Report.Dispose();
            job.Services.Exchanges?.Dispose();
            job.Services.DeadLetters.Dispose();
            job.Services.Rules?.Dispose();
            job.Services.Tokens?.Dispose();
        }
    }

    /// <summary>What the start banner says that the settings hold only as objects.</summary>
    internal static BannerFacts Facts(ParseResult parse, ReplayJob job)
    {
        var destinations = new List<string>();
        destinations.AddRange(parse.GetValue(Dest) ?? []);
        destinations.AddRange((parse.GetValue(DestBestEffort) ?? []).Select(d => d + " (best effort)"));
        if (parse.GetValue(RulesFile) is { } rules) destinations.Add(destinations.Count == 0 ? $"as {rules} routes" : $"or where {rules} routes");
        var deadLetters = ChooseDeadLetters(parse, job.Run.Kafka, job.Run.DryRun) is { IsOk: true } chosen ? chosen.Value!.Describe() : [];
        var sample = $"{parse.GetValue(Sample).ToString(System.Globalization.CultureInfo.InvariantCulture)} by {(parse.GetValue(SampleMode) == "random" ? "coin flip" : "document")}";
        return new BannerFacts(destinations, sample, deadLetters, parse.GetValue(RulesFile), Rules.RouteOptions.Describe(parse));
    }
}
