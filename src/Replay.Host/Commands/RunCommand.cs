// `replay run`: the main job, with Bagheera's KafkaReplayConsumer flags (same names,
// same value style, same defaults) plus what a modern replay needs.
using System.CommandLine;
using System.Net;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Replay.Core;
using Replay.Host.Cli;
using Replay.Host.Delivery;
using Replay.Host.Kafka;
using Replay.Host.Operating;
using Replay.Host.Replay;
using Replay.Host.Rules;
using Replay.Host.Security;

namespace Replay.Host.Commands;

public static class RunCommand
{
    internal static readonly Option<string> Topic = new("--topic", "-t") { HelpName = "topic", Description = "Topic to replay; a regex when it starts with '^'", Required = true };
    internal static readonly Option<string?> GroupId = new("--groupid", "-gid") { HelpName = "group", Description = "Consumer group of this replay (use its own, never production's)" };
    internal static readonly Option<string?> Properties = new("--properties", "-p") { HelpName = "file", Description = "Java .properties file with librdkafka settings (bootstrap.servers, security, ...)" };
    internal static readonly Option<string?> Bootstrap = new("--bootstrap-servers", "-b") { HelpName = "host:port,...", Description = "HOST:PORT[,...]; overrides bootstrap.servers from the properties file" };
    internal static readonly Option<string[]> Dest = new("--dest", "-d") { HelpName = "pattern", Description = "Destination pattern; %k (or {id}) is the document id, e.g. http://host/submit/telemetry/%k (required unless --rules sets defaults.dest). Give it again to send every record to each (mirroring)", AllowMultipleArgumentsPerToken = false };
    internal static readonly Option<string[]> DestBestEffort = new("--dest-best-effort") { HelpName = "pattern", Description = "A further destination every record is also sent to, which never holds a commit: after its retries a copy is dropped, and while its budget is full it is skipped", AllowMultipleArgumentsPerToken = false };
    internal static readonly Option<bool> CopyKeys = new("--copy-keys") { Description = "Send the document id (true) or a fresh UUID (false); DELETEs always use the id", DefaultValueFactory = _ => true };
    internal static readonly Option<double> Sample = new("--sample", "-s") { HelpName = "rate", Description = "Fraction of documents to replay, in [0, 1]", DefaultValueFactory = _ => 1.0 };
    internal static readonly Option<string> SampleMode = new("--sample-mode") { HelpName = "document|random", Description = "document (deterministic by id, default) or random (Bagheera's coin flip)", DefaultValueFactory = _ => "document" };
    internal static readonly Option<bool> Delete = new("--delete", "-D") { Description = "Replay DELETEs (true, Bagheera's default) or ignore them", DefaultValueFactory = _ => true };
    internal static readonly Option<bool> ValidateJson = new("--validatejson", "-vj") { Description = "Skip (and count) payloads that are not JSON" };
    internal static readonly Option<string?> Proxy = new("--proxy") { HelpName = "url", Description = "HTTP proxy for outbound requests (http://[user:pass@]host:port); default: HTTP_PROXY/HTTPS_PROXY/NO_PROXY" };
    internal static readonly Option<string?> NoProxy = new("--no-proxy") { HelpName = "hosts", Description = "Hosts reached directly rather than through --proxy: comma-separated, * for any characters (localhost,*.internal,127.*); -Dhttp.nonProxyHosts sets it" };
    internal static readonly Option<string?> CaFile = new("--ca-file") { HelpName = "file", Description = "PEM file of the CA(s) to trust for https destinations, instead of the system's roots" };
    internal static readonly Option<string?> ClientCert = new("--client-cert") { HelpName = "file", Description = "PEM client certificate for mutual TLS (intermediates may follow it; the key too)" };
    internal static readonly Option<string?> ClientKey = new("--client-key") { HelpName = "file", Description = "PEM private key of --client-cert (unencrypted: protect the file)" };
    internal static readonly Option<bool> InsecureSkipVerify = new("--insecure-skip-verify") { Description = "Do not verify destination certificates (tests only: anyone on the path can read and change the replay)" };
    internal static readonly Option<string> Format = new("--format") { HelpName = "bagheera|raw", Description = "bagheera (protobuf envelopes) or raw (key = id, value = payload)", DefaultValueFactory = _ => "bagheera" };
    internal static readonly Option<bool> RawKeys = new("--raw-keys") { Description = "Insert ids verbatim into the URL as Bagheera did (default: escaped as one path segment)" };
    internal static readonly Option<string?> DeadLetterFile = new("--dead-letter") { HelpName = "file|-", Description = "Append records that cannot be delivered to this JSON-lines file; '-' prints them and keeps nothing. Default: the group's file in --state-dir" };
    internal static readonly Option<string?> StateDir = new("--state-dir") { HelpName = "dir", Description = "Where the group's dead-letter file is kept by default: $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/replay, else ~/.local/state/replay" };
    internal static readonly Option<string> From = new("--from") { HelpName = "position", Description = "Where partitions without a committed offset start: earliest, latest, committed (resume only), an ISO-8601 time or -DURATION (-2h); committed offsets win unless --reset", DefaultValueFactory = _ => "latest" };
    internal static readonly Option<bool> UntilEnd = new("--until-end") { Description = "Stop after the records present at start, then commit and exit 0" };
    internal static readonly Option<long?> MaxRecords = new("--max-records") { HelpName = "n", Description = "Stop after N records, then commit and exit 0" };
    internal static readonly Option<long> MaxInFlightBytes = Flags.Size("--max-in-flight-bytes", "Payload bytes in flight before consuming stops (and, after a second full, pauses)", Backpressure.defaults.MaxInFlightBytes);
    internal static readonly Option<int> MaxInFlightRecords = new("--max-in-flight-records") { HelpName = "n", Description = "Records in flight before consuming stops (and, after a second full, pauses)", DefaultValueFactory = _ => Backpressure.defaults.MaxInFlightRecords };
    internal static readonly Option<int> MaxPayloadBytes = Flags.Size32("--max-payload-bytes", "Larger records are dead-lettered, not sent", Settings.pipeline.MaxPayloadBytes);
    internal static readonly Option<TimeSpan?> RequestTimeout = Duration.Option("--request-timeout", "Time one HTTP attempt may take", Settings.delivery.RequestTimeout);
    internal static readonly Option<TimeSpan?> MaxRetryDuration = Duration.Option("--max-retry-duration", "Give up (dead-letter) after retrying a record this long, outage or not; default: retry until delivered");
    internal static readonly Option<TimeSpan?> MaxBackoff = Duration.Option("--max-backoff", "Longest wait between two attempts of a record, a server's Retry-After included", RetrySchedule.defaults.MaxBackoff);
    internal static readonly Option<TimeSpan?> PoisonAfter = Duration.Option("--poison-after", "Dead-letter a record that keeps failing this long while the destination accepts others (an outage never counts)", RetrySchedule.defaults.PoisonAfter);
    internal static readonly Option<double?> MaxDeadLetterRatio = new("--max-dead-letter-ratio") { HelpName = "ratio", Description = "Pause consuming when more than this share of the last 1,000 records became dead letters (0.5: half); a probe resumes after 1m (doubling), or at once on new rules" };
    internal static readonly Option<string?> DeadLetterTopic = new("--dead-letter-topic") { HelpName = "topic", Description = "Write records that cannot be delivered to this Kafka topic (original key, value and headers kept)" };
    internal static readonly Option<double?> MaxRate = new("--max-rate") { HelpName = "per-second", Description = "At most N requests per second to the destination (retries included)" };
    internal static readonly Option<string?> RulesFile = new("--rules") { HelpName = "file", Description = "YAML rules file (C# snippets) refining the flags per record; reloaded when it changes. See rules/README.md" };
    internal static readonly Option<TimeSpan?> ShutdownTimeout = Duration.Option("--shutdown-timeout", "On Ctrl+C/SIGTERM (and on a revoke), wait this long for in-flight requests", Settings.delivery.ShutdownTimeout);

    public static Command Create()
    {
        var command = new Command("run", "Replay a topic to an HTTP destination (the main job; Bagheera's flags work).");
        HelpText.Describe(command,
            details: """
                Committed offsets win over --from unless --reset. Ctrl+C/SIGTERM drains in-flight requests and commits
                (exit 0); a second signal exits at once (130). Exit codes: 0 done, 1 failure, 2 bad flags or settings,
                3 destination TLS, 69 Kafka unreachable (--connect-timeout), 130 interrupted.
                """,
            examples: """
                  replay run -t telemetry -gid replay-proto -p kafka.properties --copy-keys true \
                    --dest "http://proto.example/submit/telemetry/%k" --sample 0.01 --delete false
                  replay run -b 127.0.0.1:9092 -t telemetry -gid demo --from earliest --until-end \
                    --dest "http://127.0.0.1:8080/submit/telemetry/%k" --dead-letter dead.jsonl
                  # Bagheera's own command line, JVM properties and all:
                  replay -Dhttp.proxyHost=proxy -Dhttp.proxyPort=3128 com.mozilla.bagheera.consumer.KafkaReplayConsumer \
                    -t telemetry -gid replay-proto -p kafka.properties --dest "http://proto.example/submit/telemetry/%k"
                  # the last two hours again, even if this group already went past them
                  replay run -p kafka.properties -t telemetry -gid replay-proto --from -2h --reset --until-end --dest ...
                  # the hour from 10:00 to 11:00 (UTC) again, ten times as fast as it happened; exits 0 at its end
                  replay run -p kafka.properties -t telemetry -gid replay-window --from 2026-11-30T10:00Z --until 2026-11-30T11:00Z \
                    --speed 10 --dest ...
                  # see what would be sent, without sending or committing anything
                  replay run -p kafka.properties -t telemetry -gid replay-proto --from earliest --max-records 20 --dry-run --dest ...
                  # a fragile prototype: as many requests at once as it takes without slowing down (at most 64)
                  replay run -p kafka.properties -t telemetry -gid replay-proto --concurrency auto --dest ...
                  # Prometheus metrics and health on :9464 (all interfaces), JSON logs for the log shipper
                  replay run -p kafka.properties -t telemetry -gid replay-proto --metrics-port 9464 --metrics-host 0.0.0.0 \
                    --log-format json --dest ...
                """);
        Signals.Stops(command, "stopping: finishing in-flight requests, then committing", "undelivered records stay uncommitted");
        foreach (var option in Source().Concat([Dest, DestBestEffort]).Concat(AllButSourceAndDestinations()))
            command.Options.Add(option);
        command.SetAction((parse, cancel) => Task.FromResult(RunExecution.Execute(parse, cancel)));
        return command;
    }

    /// <summary>Where the records come from: the topic, the group and the cluster.</summary>
    internal static Option[] Source() => [Topic, GroupId, Properties, Bootstrap];

    /// <summary>Every other flag of `replay run`, the ones `replay compare` takes too (it names its
    /// own destinations): one list, so a flag added to run cannot be missing from compare.</summary>
    internal static IEnumerable<Option> AllButSourceAndDestinations() =>
        new Option[]
        {
            CopyKeys, Sample, SampleMode, Delete, ConcurrencyOptions.NumThreads, ConcurrencyOptions.Concurrency, ConcurrencyOptions.MaxConcurrency, ConcurrencyOptions.Pipeline,
            ValidateJson, Proxy, NoProxy, CaFile, ClientCert, ClientKey, InsecureSkipVerify, Format, RawKeys, DeadLetterFile, DeadLetterTopic,
            StateDir, MaxDeadLetterRatio, MaxRate, From, UntilEnd, MaxRecords, MaxInFlightBytes, MaxInFlightRecords, MaxPayloadBytes,
            RequestTimeout, MaxRetryDuration, MaxBackoff, PoisonAfter, ShutdownTimeout, RulesFile,
        }.Concat(OperatingOptions.All).Concat(WindowOptions.All).Concat(RouteOptions.All).Concat(ResponsesOptions.All).Concat(DestinationAuthOptions.All);

    public static void WarnIfInsecure(ReplayServices services, string command)
    {
        if (services.Tls is { SkipVerify: true })
            Console.Error.WriteLine($"{command}: WARNING: --insecure-skip-verify: destination certificates are NOT verified; "
                + "anyone between here and the destination can read and change every replayed request. Use --ca-file instead.");
    }

    /// <summary>Turns flags and the properties file into validated settings, or one clear message.</summary>
    public static Result<ReplayJob> Build(ParseResult parse) => Build(parse, new Secrets());

    /// <summary>As <see cref="Build(ParseResult)"/>, remembering every secret met (properties,
    /// proxy and destination credentials) in <paramref name="secrets"/>; messages come back redacted.</summary>
    public static Result<ReplayJob> Build(ParseResult parse, Secrets secrets)
    {
        var built = BuildSettings(parse, secrets);
        return built.IsOk ? built : Result<ReplayJob>.Fail(secrets.Redact(built.Error!));
    }

    /// <summary>As <see cref="Build(ParseResult, Secrets)"/>, for a command whose destinations are its own
    /// (compare's --primary, --candidate, --secondary) rather than --dest.</summary>
    public static Result<ReplayJob> Build(ParseResult parse, Secrets secrets, FixedDestinations destinations)
    {
        var built = BuildSettings(parse, secrets, destinations);
        return built.IsOk ? built : Result<ReplayJob>.Fail(secrets.Redact(built.Error!));
    }

    static Result<ReplayJob> BuildSettings(ParseResult parse, Secrets secrets, FixedDestinations? fixedDestinations = null)
    {
        var kafka = KafkaSettings(parse, secrets);
        if (!kafka.IsOk) return Result<ReplayJob>.Fail(kafka.Error!);
        var now = DateTimeOffset.UtcNow;
        var operating = OperatingOptions.Read(parse, From, now);
        if (!operating.IsOk) return Result<ReplayJob>.Fail(operating.Error!);
        var o = operating.Value!;
        var window = WindowOptions.Read(parse, o.Start, now);
        if (!window.IsOk) return Result<ReplayJob>.Fail(window.Error!);
        var maxRecords = parse.GetValue(MaxRecords);
        if (maxRecords is < 1) return Result<ReplayJob>.Fail($"--max-records {maxRecords}: must be at least 1");
        var built = DeliverySettings(parse, kafka.Value!, parse.GetValue(Topic)!, secrets, untilEnd: parse.GetValue(UntilEnd),
            maxRecords: maxRecords ?? 0, dryRun: o.DryRun, start: o.Start, reset: o.Reset, operating: o.Operating, fixedDestinations: fixedDestinations,
            maxDeadLetterRatio: parse.GetValue(MaxDeadLetterRatio), until: window.Value!.Until, speed: window.Value!.Speed);
        if (built.IsOk && parse.GetValue(NoProxy) is { } noProxy && ProxySettings.Bypass(built.Value!.Services.Proxy, noProxy) is { } bypassProblem)
        {
            built.Value!.Services.DeadLetters.Dispose();
            return Result<ReplayJob>.Fail(bypassProblem);
        }
        if (!built.IsOk) return built;
        var responses = ResponsesOptions.Read(parse, kafka.Value!, secrets, Console.Error);
        if (!responses.IsOk)
        {
            built.Value!.Services.DeadLetters.Dispose();
            built.Value!.Services.Rules?.Dispose();
            return Result<ReplayJob>.Fail(responses.Error!);
        }
        return Result<ReplayJob>.Ok(built.Value! with { Services = built.Value!.Services with { Exchanges = responses.Value } });
    }

    /// <summary>librdkafka settings from -p, --bootstrap-servers, -gid and --from.</summary>
    public static Result<Dictionary<string, string>> KafkaSettings(ParseResult parse, Secrets secrets)
    {
        var kafka = new Dictionary<string, string>(StringComparer.Ordinal);
        if (parse.GetValue(Properties) is { } path)
        {
            var loaded = PropertiesFile.Load(path);
            if (!loaded.IsOk) return Result<Dictionary<string, string>>.Fail(loaded.Error!);
            foreach (var (k, v) in loaded.Value!)
            {
                kafka[k] = v;
                if (PropertiesFile.IsSecret(k)) secrets.Add(v);
            }
        }
        if (parse.GetValue(Bootstrap) is { } servers) kafka["bootstrap.servers"] = servers;
        if (!kafka.ContainsKey("bootstrap.servers"))
            return Result<Dictionary<string, string>>.Fail("no Kafka to read from: pass --bootstrap-servers HOST:PORT or -p FILE with bootstrap.servers=HOST:PORT");
        if (parse.GetValue(GroupId) is { } group) kafka["group.id"] = group;
        if (!kafka.ContainsKey("group.id"))
            return Result<Dictionary<string, string>>.Fail("no consumer group: pass -gid NAME (a group of its own, so production loses nothing)");
        var from = StartPosition.Parse(parse.GetValue(From)!, DateTimeOffset.UtcNow);
        if (!from.IsOk) return Result<Dictionary<string, string>>.Fail(from.Error!);
        if (!kafka.ContainsKey("auto.offset.reset") || parse.GetResult(From) is { Implicit: false })
            kafka["auto.offset.reset"] = from.Value!.AutoOffsetReset;
        return Result<Dictionary<string, string>>.Ok(kafka);
    }

    /// <summary>Everything about what is sent and how: destination, sampling, HTTP, retries, dead letters;
    /// with what the caller read of the rest, the whole validated job.</summary>
    public static Result<ReplayJob> DeliverySettings(ParseResult parse, IReadOnlyDictionary<string, string> kafka, string topic, Secrets secrets,
        bool untilEnd = false, long maxRecords = 0, bool dryRun = false, StartPosition? start = null, bool reset = false,
        OperatingSettings? operating = null, FixedDestinations? fixedDestinations = null, double? maxDeadLetterRatio = null,
        DateTimeOffset? until = null, Pacing.Speed? speed = null)
    {
        secrets.AddProxyEnvironment();
        var required = new List<Destination.Pattern>();
        var bestEffort = new List<Destination.Pattern>();
        var given = fixedDestinations is { } fixd
            ? fixd.Given.Select(g => (g.Flag, Texts: (string[])[g.Text], Into: required)).ToArray()
            : [("--dest", parse.GetValue(Dest) ?? [], required), ("--dest-best-effort", parse.GetValue(DestBestEffort) ?? [], bestEffort)];
        foreach (var (flag, texts, into) in given)
            foreach (var dest in texts)
            {
                secrets.AddUrlCredentials(dest);
                var parsed = Destination.parse(dest);
                if (parsed.IsError) return Result<ReplayJob>.Fail($"{flag}: " + parsed.ErrorValue);
                var problem = CheckDestination(parsed.ResultValue);
                if (problem is not null) return Result<ReplayJob>.Fail($"{flag}: " + problem);
                into.Add(parsed.ResultValue);
            }
        if (required.Count == 0 && parse.GetValue(RulesFile) is null)
            return Result<ReplayJob>.Fail(bestEffort.Count > 0
                ? "--dest-best-effort needs a --dest too: a best-effort destination never decides whether a record is done"
                : "no destination: pass --dest \"http://host/submit/telemetry/%k\" (or --rules FILE with defaults.dest)");
        if (required.Count == 0 && bestEffort.Count > 0)
            return Result<ReplayJob>.Fail("--dest-best-effort with --rules needs the run's destinations on the command line: give them with --dest (in the order of the file's dest: lists)");
        var destination = required.FirstOrDefault();
        var mirrors = required.Skip(1).Concat(bestEffort).ToList();

        var rate = Sampling.RateModule.create(parse.GetValue(Sample));
        if (rate.IsError) return Result<ReplayJob>.Fail("--sample: " + rate.ErrorValue);
        var mode = Sampling.parseMode(parse.GetValue(SampleMode)!);
        if (mode.IsError) return Result<ReplayJob>.Fail("--sample-mode: " + mode.ErrorValue);
        var format = Pipeline.parseFormat(parse.GetValue(Format)!);
        if (format.IsError) return Result<ReplayJob>.Fail("--format: " + format.ErrorValue);

        IWebProxy? proxy = null;
        if (parse.GetValue(Proxy) is { } proxyUrl)
        {
            secrets.AddUrlCredentials(proxyUrl);
            var built = ProxySettings.Create(proxyUrl);
            if (!built.IsOk) return Result<ReplayJob>.Fail("--proxy: " + built.Error);
            proxy = built.Value;
        }

        var tls = ClientTls.Load(parse.GetValue(CaFile), parse.GetValue(ClientCert), parse.GetValue(ClientKey), parse.GetValue(InsecureSkipVerify));
        if (!tls.IsOk) return Result<ReplayJob>.Fail(tls.Error!);
        var tokens = DestinationAuthOptions.Load(parse, secrets, proxy, parse.GetValue(RequestTimeout) ?? Settings.delivery.RequestTimeout);
        if (!tokens.IsOk) return Result<ReplayJob>.Fail(tokens.Error!);

        // Checked before the rules start (a thread of their own); the file is opened once they have.
        var deadLetterChoice = ChooseDeadLetters(parse, kafka, dryRun);
        if (!deadLetterChoice.IsOk) return Result<ReplayJob>.Fail(deadLetterChoice.Error!);
        // With --rules the flags are the base the file's defaults and rules refine, and
        // each record is routed by the generation in force when it is consumed.
        var flagsBase = new RuleBase(destination, rate.ResultValue, parse.GetValue(Delete), parse.GetValue(CopyKeys))
        {
            Mirrors = mirrors,
            Destinations = required.Count + bestEffort.Count,
        };
        var routeBase = RouteOptions.Apply(parse, flagsBase, secrets, Console.Error);
        if (!routeBase.IsOk) return Result<ReplayJob>.Fail(routeBase.Error!);
        if (fixedDestinations is not null)
            routeBase = Result<RuleBase>.Ok(routeBase.Value! with
            {
                StatusPolicy = StatusPolicy.layer(routeBase.Value!.StatusPolicy, fixedDestinations.PolicyUnderFlags),
                FixedDestinations = true,
            });
        LiveRules? rules = null;
        Func<FSharpRouter> router;
        if (parse.GetValue(RulesFile) is { } rulesPath)
        {
            var started = LiveRules.Start(rulesPath, routeBase.Value!, Console.Error);
            if (!started.IsOk) return Result<ReplayJob>.Fail($"--rules {rulesPath}: {started.Error}");
            rules = started.Value!;
            router = rules.Router;
        }
        else
        {
            var always = FSharpRouter.Always(routeBase.Value!.Route());
            router = () => always;
        }
        var rulesDestinations = rules?.Destinations ?? 1;
        var concurrency = ConcurrencyOptions.Read(parse);
        if (!concurrency.IsOk)
        {
            rules?.Dispose();
            return Result<ReplayJob>.Fail(concurrency.Error!);
        }
        var maxRetry = parse.GetValue(MaxRetryDuration);
        var run = new RunSettings(
            topic,
            kafka,
            new Pipeline.Settings(format.ResultValue, mode.ResultValue, parse.GetValue(ValidateJson),
                parse.GetValue(RawKeys) ? Destination.Escaping.Verbatim : Destination.Escaping.Segment,
                parse.GetValue(MaxPayloadBytes)),
            new Backpressure.Budget(parse.GetValue(MaxInFlightRecords), parse.GetValue(MaxInFlightBytes),
                Backpressure.defaults.PauseAfterFullMs, Backpressure.defaults.MaxSpanPerPartition),
            new DeliverySettings(
                concurrency.Value!,
                parse.GetValue(RequestTimeout) ?? Settings.delivery.RequestTimeout,
                new RetrySchedule.Settings(RetrySchedule.defaults.BaseDelay,
                    parse.GetValue(MaxBackoff) ?? RetrySchedule.defaults.MaxBackoff,
                    maxRetry is { } limit ? FSharpOption<TimeSpan>.Some(limit) : null,
                    parse.GetValue(PoisonAfter) ?? RetrySchedule.defaults.PoisonAfter),
                parse.GetValue(MaxRate) is { } maxRate ? FSharpOption<double>.Some(maxRate) : null,
                parse.GetValue(ShutdownTimeout) ?? Settings.delivery.ShutdownTimeout,
                parse.GetValue(ConcurrencyOptions.Pipeline)),
            fixedDestinations is { } named
                ? ListModule.OfSeq(named.Given.Select(g => new DestinationSlot(g.Name, false)))
                : Slots(required, bestEffort, rulesDestinations),
            untilEnd,
            maxRecords,
            dryRun,
            maxDeadLetterRatio is { } ratio ? FSharpOption<DeadLetterBrake.Settings>.Some(DeadLetterBrake.settings(ratio)) : null,
            until is { } end ? FSharpValueOption<long>.NewValueSome(end.ToUnixTimeMilliseconds()) : FSharpValueOption<long>.ValueNone,
            speed ?? Pacing.Speed.Max);
        if (Settings.problem(run) is { } invalid)
        {
            rules?.Dispose();
            return Result<ReplayJob>.Fail(invalid.Value);
        }

        var opened = deadLetterChoice.Value!.Open(kafka, secrets, Console.Error);
        if (!opened.IsOk)
        {
            rules?.Dispose();
            return Result<ReplayJob>.Fail(opened.Error!);
        }
        var deadLetters = opened.Value!;

        var services = new ReplayServices
        {
            Router = router,
            Rules = rules,
            Start = start ?? StartPosition.Latest,
            Reset = reset,
            Proxy = proxy,
            Tls = tls.Value,
            DeadLetters = deadLetters,
            Tokens = tokens.Value,
        };
        return Result<ReplayJob>.Ok(new ReplayJob(run, services, operating ?? new OperatingSettings()));
    }

    /// <summary>A command's own destinations (compare's --primary, --candidate, --secondary): given by
    /// name, all required, never changed by a rules file; and what answers mean under the flags.</summary>
    public sealed record FixedDestinations(IReadOnlyList<(string Flag, string Text, string Name)> Given, StatusPolicy.Policy PolicyUnderFlags);

    /// <summary>The run's destinations, named by host so that metrics and dead letters say which;
    /// with --rules and no --dest, as many as the file's `defaults: dest:` lists.</summary>
    static FSharpList<DestinationSlot> Slots(List<Destination.Pattern> required, List<Destination.Pattern> bestEffort, int rulesDestinations)
    {
        if (required.Count == 0)
            return ListModule.OfSeq(Enumerable.Range(1, rulesDestinations).Select(i => new DestinationSlot(rulesDestinations == 1 ? "destination" : $"destination-{i}", false)));
        var slots = required.Select(p => (Pattern: p, BestEffort: false)).Concat(bestEffort.Select(p => (Pattern: p, BestEffort: true))).ToList();
        var names = slots.Select(slot => SlotName(slot.Pattern)).ToList();
        // Two destinations on one host are told apart by their place.
        return ListModule.OfSeq(slots.Select((slot, i) =>
            new DestinationSlot(names.Count(n => n == names[i]) > 1 ? $"{names[i]}#{i + 1}" : names[i], slot.BestEffort)));
    }

    static string SlotName(Destination.Pattern pattern)
    {
        var sample = Destination.expand(Destination.Escaping.Segment,
            new Destination.Values("x", "x", "x", 0, 0, "1", FSharpList<string>.Empty), pattern);
        return Uri.TryCreate(sample, UriKind.Absolute, out var uri) ? uri.Authority : pattern.Text;
    }

    /// <summary>Where dead letters go (DeadLetterChoice): the flags, else the group's file in the state
    /// directory; a dry run writes none, and a redrive of a file (no group) prints what fails again.</summary>
    public static Result<DeadLetterChoice> ChooseDeadLetters(ParseResult parse, IReadOnlyDictionary<string, string> kafka, bool dryRun) =>
        DeadLetterChoice.Resolve(parse.GetValue(DeadLetterFile), parse.GetValue(DeadLetterTopic), parse.GetValue(StateDir),
            kafka.TryGetValue("group.id", out var group) ? group : null, useDefault: !dryRun, StateDirectory.Environment);

    /// <summary>A pattern must make an absolute http(s) URL, and record data must not pick the host.</summary>
    public static string? CheckDestination(Destination.Pattern pattern)
    {
        // Before the host check: "127.0.0.1:8080/submit/%k" reads as scheme "127.0.0.1" to a URL parser.
        if (!System.Text.RegularExpressions.Regex.IsMatch(pattern.Text, "^[A-Za-z][A-Za-z0-9+.-]*://"))
            return $"'{pattern.Text}' has no scheme: write http://{pattern.Text} (or https://...)";
        if (Destination.placesValueInAuthority(pattern))
            return $"'{pattern.Text}' puts a record value in the scheme or host; record data may only fill the path or query";
        var sample = Destination.expand(Destination.Escaping.Segment,
            new Destination.Values("sample-id", "namespace", "topic", 0, 0, "1", Microsoft.FSharp.Collections.FSharpList<string>.Empty), pattern);
        var url = Pipeline.parseUrl(sample);
        return url.IsError ? $"'{pattern.Text}' does not make a usable URL ({url.ErrorValue}); write e.g. http://host:port/submit/telemetry/%k" : null;
    }
}
