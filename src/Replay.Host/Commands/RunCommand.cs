// `replay run`: the main job, with Bagheera's KafkaReplayConsumer flags (same names,
// same value style, same defaults) plus what a modern replay needs.
using System.CommandLine;
using System.Net;
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
    internal static readonly Option<string> Topic = new("--topic", "-t") { Description = "Topic to replay; a regex when it starts with '^'", Required = true };
    internal static readonly Option<string?> GroupId = new("--groupid", "-gid") { Description = "Consumer group of this replay (use its own, never production's)" };
    internal static readonly Option<string?> Properties = new("--properties", "-p") { Description = "Java .properties file with librdkafka settings (bootstrap.servers, security, ...)" };
    internal static readonly Option<string?> Bootstrap = new("--bootstrap-servers", "-b") { Description = "HOST:PORT[,...]; overrides bootstrap.servers from the properties file" };
    internal static readonly Option<string?> Dest = new("--dest", "-d") { Description = "Destination pattern; %k (or {id}) is the document id, e.g. http://host/submit/telemetry/%k (required unless --rules sets defaults.dest)" };
    internal static readonly Option<bool> CopyKeys = new("--copy-keys") { Description = "Send the document id (true) or a fresh UUID (false); DELETEs always use the id", DefaultValueFactory = _ => true };
    internal static readonly Option<double> Sample = new("--sample", "-s") { Description = "Fraction of documents to replay, in [0, 1]", DefaultValueFactory = _ => 1.0 };
    internal static readonly Option<string> SampleMode = new("--sample-mode") { Description = "document (deterministic by id, default) or random (Bagheera's coin flip)", DefaultValueFactory = _ => "document" };
    internal static readonly Option<bool> Delete = new("--delete", "-D") { Description = "Replay DELETEs (true, Bagheera's default) or ignore them", DefaultValueFactory = _ => true };
    internal static readonly Option<int?> NumThreads = new("--numthreads", "-nt") { Description = "Bagheera's thread count; sets --concurrency" };
    internal static readonly Option<int> Concurrency = new("--concurrency", "-c") { Description = "Requests in flight at once (order is kept per document id)", DefaultValueFactory = _ => 64 };
    internal static readonly Option<bool> ValidateJson = new("--validatejson", "-vj") { Description = "Skip (and count) payloads that are not JSON" };
    internal static readonly Option<string?> Proxy = new("--proxy") { Description = "HTTP proxy for outbound requests (http://[user:pass@]host:port); default: HTTP_PROXY/HTTPS_PROXY/NO_PROXY" };
    internal static readonly Option<string?> CaFile = new("--ca-file") { Description = "PEM file of the CA(s) to trust for https destinations, instead of the system's roots" };
    internal static readonly Option<string?> ClientCert = new("--client-cert") { Description = "PEM client certificate for mutual TLS (intermediates may follow it; the key too)" };
    internal static readonly Option<string?> ClientKey = new("--client-key") { Description = "PEM private key of --client-cert (unencrypted: protect the file)" };
    internal static readonly Option<bool> InsecureSkipVerify = new("--insecure-skip-verify") { Description = "Do not verify destination certificates (tests only: anyone on the path can read and change the replay)" };
    internal static readonly Option<string> Format = new("--format") { Description = "bagheera (protobuf envelopes) or raw (key = id, value = payload)", DefaultValueFactory = _ => "bagheera" };
    internal static readonly Option<bool> RawKeys = new("--raw-keys") { Description = "Insert ids verbatim into the URL as Bagheera did (default: escaped as one path segment)" };
    internal static readonly Option<string?> DeadLetterFile = new("--dead-letter") { Description = "Append records that cannot be delivered to this JSON-lines file" };
    internal static readonly Option<string> From = new("--from") { Description = "Where partitions without a committed offset start: earliest, latest, committed (resume only), an ISO-8601 time or -DURATION (-2h); committed offsets win unless --reset", DefaultValueFactory = _ => "latest" };
    internal static readonly Option<bool> UntilEnd = new("--until-end") { Description = "Stop after the records present at start, then commit and exit 0" };
    internal static readonly Option<long?> MaxRecords = new("--max-records") { Description = "Stop after N records, then commit and exit 0" };
    internal static readonly Option<long> MaxInFlightBytes = new("--max-in-flight-bytes") { Description = "Payload bytes in flight before consuming stops (and, after a second full, pauses)", DefaultValueFactory = _ => 64L << 20 };
    internal static readonly Option<int> MaxInFlightRecords = new("--max-in-flight-records") { Description = "Records in flight before consuming stops (and, after a second full, pauses)", DefaultValueFactory = _ => 512 };
    internal static readonly Option<int> MaxPayloadBytes = new("--max-payload-bytes") { Description = "Larger records are dead-lettered, not sent", DefaultValueFactory = _ => 8 << 20 };
    internal static readonly Option<TimeSpan?> RequestTimeout = Duration.Option("--request-timeout", "Time one HTTP attempt may take", TimeSpan.FromSeconds(30));
    internal static readonly Option<TimeSpan?> MaxRetryDuration = Duration.Option("--max-retry-duration", "Give up (dead-letter) after retrying this long; default: retry until delivered");
    internal static readonly Option<string?> DeadLetterTopic = new("--dead-letter-topic") { Description = "Write records that cannot be delivered to this Kafka topic (original key, value and headers kept)" };
    internal static readonly Option<double?> MaxRate = new("--max-rate") { Description = "At most N requests per second to the destination (retries included)" };
    internal static readonly Option<string?> RulesFile = new("--rules") { Description = "YAML rules file (C# snippets) refining the flags per record; reloaded when it changes. See rules/README.md" };
    internal static readonly Option<TimeSpan?> ShutdownTimeout = Duration.Option("--shutdown-timeout", "On Ctrl+C/SIGTERM, wait this long for in-flight requests", TimeSpan.FromSeconds(30));

    public static Command Create()
    {
        var command = new Command("run", """
            Replay a topic to an HTTP destination (the main job).

            Examples:
              replay run -t telemetry -gid replay-proto -p kafka.properties --copy-keys true \
                --dest "http://proto.example/submit/telemetry/%k" --sample 0.01 --delete false
              replay run -b 127.0.0.1:9092 -t telemetry -gid demo --from earliest --until-end \
                --dest "http://127.0.0.1:8080/submit/telemetry/%k" --dead-letter dead.jsonl

            Operating it:
              # the last two hours again, even if this group already went past them
              replay run -p kafka.properties -t telemetry -gid replay-proto --from -2h --reset --until-end --dest ...
              # see what would be sent, without sending or committing anything
              replay run -p kafka.properties -t telemetry -gid replay-proto --from earliest --max-records 20 --dry-run --dest ...
              # Prometheus metrics and health on :9464 (all interfaces), JSON logs for the log shipper
              replay run -p kafka.properties -t telemetry -gid replay-proto --metrics-port 9464 --metrics-host 0.0.0.0 \
                --log-format json --dest ...
            """);
        foreach (var option in new Option[] { Topic, GroupId, Properties, Bootstrap, Dest, CopyKeys, Sample, SampleMode, Delete,
                     NumThreads, Concurrency, ValidateJson, Proxy, CaFile, ClientCert, ClientKey, InsecureSkipVerify, Format, RawKeys, DeadLetterFile, DeadLetterTopic, MaxRate, From, UntilEnd, MaxRecords,
                     MaxInFlightBytes, MaxInFlightRecords, MaxPayloadBytes, RequestTimeout, MaxRetryDuration, ShutdownTimeout, RulesFile })
            command.Options.Add(option);
        foreach (var option in OperatingOptions.All)
            command.Options.Add(option);
        foreach (var option in DestinationAuthOptions.All) command.Options.Add(option);
        command.SetAction((parse, cancel) => Task.FromResult(Execute(parse, cancel)));
        return command;
    }

    static int Execute(ParseResult parse, CancellationToken cancel)
    {
        // Everything this command prints goes through the redactor, so a secret met
        // while reading the settings stays hidden whoever prints it later (librdkafka included).
        var secrets = new Secrets();
        Console.SetOut(new RedactingWriter(Console.Out, secrets));
        Console.SetError(new RedactingWriter(Console.Error, secrets));
        var settings = Build(parse, secrets);
        if (!settings.IsOk)
        {
            Console.Error.WriteLine($"replay run: {settings.Error}");
            return ExitCodes.Usage;
        }
        WarnIfInsecure(settings.Value!, "replay run");
        try
        {
            OperatedRun run;
            try { run = OperatedRun.StartAsync(settings.Value!, Console.Error, Console.Out, terminal: !Console.IsErrorRedirected, captureConsoleError: true).GetAwaiter().GetResult(); }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
            {
                Console.Error.WriteLine($"replay run: --metrics-port/--metrics-host: cannot listen ({e.Message}); pick a free port, or 0 for any");
                return ExitCodes.Usage;
            }
            try
            {
                var code = run.Run(cancel);
                if (settings.Value!.Rules is { } rules) Console.Error.WriteLine($"replay: {rules.Summary()}");
                return code;
            }
            finally { run.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        catch (Confluent.Kafka.KafkaException e)
        {
            Console.Error.WriteLine($"replay run: Kafka refused the settings: {e.Error.Reason}");
            return ExitCodes.Usage;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException && e.Source == "Confluent.Kafka")
        {
            // librdkafka rejected a key or value of the properties file (unknown key, invalid
            // value, unreadable certificate or key): its reason, not a stack trace.
            Console.Error.WriteLine($"replay run: Kafka refused the settings: {e.Message}");
            return ExitCodes.Usage;
        }
        finally
        {
            settings.Value!.DeadLetters.Dispose();
            settings.Value!.Rules?.Dispose();
            settings.Value!.Tokens?.Dispose();
        }
    }

    public static void WarnIfInsecure(ReplaySettings settings, string command)
    {
        if (settings.Tls is { SkipVerify: true })
            Console.Error.WriteLine($"{command}: WARNING: --insecure-skip-verify: destination certificates are NOT verified; "
                + "anyone between here and the destination can read and change every replayed request. Use --ca-file instead.");
    }

    /// <summary>Turns flags and the properties file into validated settings, or one clear message.</summary>
    public static Result<ReplaySettings> Build(ParseResult parse) => Build(parse, new Secrets());

    /// <summary>As <see cref="Build(ParseResult)"/>, remembering every secret met (properties,
    /// proxy and destination credentials) in <paramref name="secrets"/>; messages come back redacted.</summary>
    public static Result<ReplaySettings> Build(ParseResult parse, Secrets secrets)
    {
        var built = BuildSettings(parse, secrets);
        return built.IsOk ? built : Result<ReplaySettings>.Fail(secrets.Redact(built.Error!));
    }

    static Result<ReplaySettings> BuildSettings(ParseResult parse, Secrets secrets)
    {
        var kafka = KafkaSettings(parse, secrets);
        if (!kafka.IsOk) return Result<ReplaySettings>.Fail(kafka.Error!);
        var settings = DeliverySettings(parse, kafka.Value!, parse.GetValue(Topic)!, secrets);
        if (!settings.IsOk) return settings;
        var s = settings.Value!;
        s.UntilEnd = parse.GetValue(UntilEnd);
        s.MaxRecords = parse.GetValue(MaxRecords);
        if (OperatingOptions.Apply(parse, From, s, DateTimeOffset.UtcNow) is { } problem)
        {
            s.DeadLetters.Dispose();
            return Result<ReplaySettings>.Fail(problem);
        }
        return settings;
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

    /// <summary>Everything about what is sent and how: destination, sampling, HTTP, retries, dead letters.</summary>
    public static Result<ReplaySettings> DeliverySettings(ParseResult parse, IReadOnlyDictionary<string, string> kafka, string topic, Secrets secrets)
    {
        secrets.AddProxyEnvironment();
        Destination.Pattern? destination = null;
        if (parse.GetValue(Dest) is { } dest)
        {
            secrets.AddUrlCredentials(dest);
            var parsed = Destination.parse(dest);
            if (parsed.IsError) return Result<ReplaySettings>.Fail("--dest: " + parsed.ErrorValue);
            var problem = CheckDestination(parsed.ResultValue);
            if (problem is not null) return Result<ReplaySettings>.Fail("--dest: " + problem);
            destination = parsed.ResultValue;
        }
        else if (parse.GetValue(RulesFile) is null)
            return Result<ReplaySettings>.Fail("no destination: pass --dest \"http://host/submit/telemetry/%k\" (or --rules FILE with defaults.dest)");

        var rate = Sampling.RateModule.create(parse.GetValue(Sample));
        if (rate.IsError) return Result<ReplaySettings>.Fail("--sample: " + rate.ErrorValue);
        var mode = Sampling.parseMode(parse.GetValue(SampleMode)!);
        if (mode.IsError) return Result<ReplaySettings>.Fail("--sample-mode: " + mode.ErrorValue);
        var format = Pipeline.parseFormat(parse.GetValue(Format)!);
        if (format.IsError) return Result<ReplaySettings>.Fail("--format: " + format.ErrorValue);

        var concurrency = parse.GetValue(NumThreads) ?? parse.GetValue(Concurrency);
        if (concurrency < 1) return Result<ReplaySettings>.Fail($"--concurrency {concurrency}: must be at least 1");
        if (parse.GetValue(MaxRate) is { } maxRate && !(maxRate > 0))
            return Result<ReplaySettings>.Fail($"--max-rate {maxRate}: must be a positive number of requests per second");

        IWebProxy? proxy = null;
        if (parse.GetValue(Proxy) is { } proxyUrl)
        {
            secrets.AddUrlCredentials(proxyUrl);
            var built = ProxySettings.Create(proxyUrl);
            if (!built.IsOk) return Result<ReplaySettings>.Fail("--proxy: " + built.Error);
            proxy = built.Value;
        }

        var tls = ClientTls.Load(parse.GetValue(CaFile), parse.GetValue(ClientCert), parse.GetValue(ClientKey), parse.GetValue(InsecureSkipVerify));
        if (!tls.IsOk) return Result<ReplaySettings>.Fail(tls.Error!);
        var tokens = DestinationAuthOptions.Load(parse, secrets, proxy, parse.GetValue(RequestTimeout) ?? TimeSpan.FromSeconds(30));
        if (!tokens.IsOk) return Result<ReplaySettings>.Fail(tokens.Error!);

        // With --rules the flags are the base the file's defaults and rules refine, and
        // each record is routed by the generation in force when it is consumed.
        LiveRules? rules = null;
        Func<FSharpRouter> router;
        if (parse.GetValue(RulesFile) is { } rulesPath)
        {
            var started = LiveRules.Start(rulesPath,
                new RuleBase(destination, rate.ResultValue, parse.GetValue(Delete), parse.GetValue(CopyKeys)), Console.Error);
            if (!started.IsOk) return Result<ReplaySettings>.Fail($"--rules {rulesPath}: {started.Error}");
            rules = started.Value!;
            router = rules.Router;
        }
        else
        {
            var always = FSharpRouter.Always(RouteModule.defaults("defaults", Target.NewPattern(destination!), rate.ResultValue,
                parse.GetValue(Delete), parse.GetValue(CopyKeys)));
            router = () => always;
        }
        var sinks = new List<IDeadLetterSink>();
        if (parse.GetValue(DeadLetterFile) is { } dlPath) sinks.Add(new DeadLetterFile(dlPath));
        if (parse.GetValue(DeadLetterTopic) is { } dlTopic) sinks.Add(new DeadLetterTopic(kafka, dlTopic));
        IDeadLetterSink deadLetters = new RedactingDeadLetters(sinks.Count switch
        {
            0 => new DeadLetterLog(Console.Error),
            1 => sinks[0],
            _ => new DeadLetterFanOut(sinks),
        }, secrets);

        return Result<ReplaySettings>.Ok(new ReplaySettings
        {
            Kafka = kafka,
            Topic = topic,
            Pipeline = new Pipeline.Settings(format.ResultValue, mode.ResultValue, parse.GetValue(ValidateJson),
                parse.GetValue(RawKeys) ? Destination.Escaping.Verbatim : Destination.Escaping.Segment,
                parse.GetValue(MaxPayloadBytes)),
            Router = router,
            Rules = rules,
            Concurrency = concurrency,
            MaxInFlightBytes = parse.GetValue(MaxInFlightBytes),
            MaxInFlightRecords = parse.GetValue(MaxInFlightRecords),
            RequestTimeout = parse.GetValue(RequestTimeout) ?? TimeSpan.FromSeconds(30),
            MaxRetryDuration = parse.GetValue(MaxRetryDuration),
            MaxRate = parse.GetValue(MaxRate),
            ShutdownTimeout = parse.GetValue(ShutdownTimeout) ?? TimeSpan.FromSeconds(30),
            Proxy = proxy,
            Tls = tls.Value,
            DeadLetters = deadLetters,
            Tokens = tokens.Value,
        });
    }

    /// <summary>A pattern must make an absolute http(s) URL, and record data must not pick the host.</summary>
    public static string? CheckDestination(Destination.Pattern pattern)
    {
        if (Destination.placesValueInAuthority(pattern))
            return $"'{pattern.Text}' puts a record value in the scheme or host; record data may only fill the path or query";
        var sample = Destination.expand(Destination.Escaping.Segment,
            new Destination.Values("sample-id", "namespace", "topic", 0, 0, "1", Microsoft.FSharp.Collections.FSharpList<string>.Empty), pattern);
        var url = Pipeline.parseUrl(sample);
        return url.IsError ? $"'{pattern.Text}' does not make a usable URL ({url.ErrorValue}); write e.g. http://host:port/submit/telemetry/%k" : null;
    }
}
