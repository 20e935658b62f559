// `replay run`: the main job, with Bagheera's KafkaReplayConsumer flags (same names,
// same value style, same defaults) plus what a modern replay needs.
using System.CommandLine;
using System.Net;
using Replay.Core;
using Replay.Host.Cli;
using Replay.Host.Delivery;
using Replay.Host.Kafka;
using Replay.Host.Replay;
using Replay.Host.Rules;

namespace Replay.Host.Commands;

public static class RunCommand
{
    static readonly Option<string> Topic = new("--topic", "-t") { Description = "Topic to replay; a regex when it starts with '^'", Required = true };
    static readonly Option<string?> GroupId = new("--groupid", "-gid") { Description = "Consumer group of this replay (use its own, never production's)" };
    static readonly Option<string?> Properties = new("--properties", "-p") { Description = "Java .properties file with librdkafka settings (bootstrap.servers, security, ...)" };
    static readonly Option<string?> Bootstrap = new("--bootstrap-servers", "-b") { Description = "HOST:PORT[,...]; overrides bootstrap.servers from the properties file" };
    static readonly Option<string?> Dest = new("--dest", "-d") { Description = "Destination pattern; %k (or {id}) is the document id, e.g. http://host/submit/telemetry/%k (required unless --rules sets defaults.dest)" };
    static readonly Option<bool> CopyKeys = new("--copy-keys") { Description = "Send the document id (true) or a fresh UUID (false); DELETEs always use the id", DefaultValueFactory = _ => true };
    static readonly Option<double> Sample = new("--sample", "-s") { Description = "Fraction of documents to replay, in [0, 1]", DefaultValueFactory = _ => 1.0 };
    static readonly Option<string> SampleMode = new("--sample-mode") { Description = "document (deterministic by id, default) or random (Bagheera's coin flip)", DefaultValueFactory = _ => "document" };
    static readonly Option<bool> Delete = new("--delete", "-D") { Description = "Replay DELETEs (true, Bagheera's default) or ignore them", DefaultValueFactory = _ => true };
    static readonly Option<int?> NumThreads = new("--numthreads", "-nt") { Description = "Bagheera's thread count; sets --concurrency" };
    static readonly Option<int> Concurrency = new("--concurrency", "-c") { Description = "Requests in flight at once (order is kept per document id)", DefaultValueFactory = _ => 64 };
    static readonly Option<bool> ValidateJson = new("--validatejson", "-vj") { Description = "Skip (and count) payloads that are not JSON" };
    static readonly Option<string?> Proxy = new("--proxy") { Description = "HTTP proxy for outbound requests (http://[user:pass@]host:port); default: HTTP_PROXY/HTTPS_PROXY/NO_PROXY" };
    static readonly Option<string> Format = new("--format") { Description = "bagheera (protobuf envelopes) or raw (key = id, value = payload)", DefaultValueFactory = _ => "bagheera" };
    static readonly Option<bool> RawKeys = new("--raw-keys") { Description = "Insert ids verbatim into the URL as Bagheera did (default: escaped as one path segment)" };
    static readonly Option<string?> DeadLetterFile = new("--dead-letter") { Description = "Append records that cannot be delivered to this JSON-lines file" };
    static readonly Option<string> From = new("--from") { Description = "Where a new group starts: earliest or latest (committed offsets win)", DefaultValueFactory = _ => "latest" };
    static readonly Option<bool> UntilEnd = new("--until-end") { Description = "Stop after the records present at start, then commit and exit 0" };
    static readonly Option<long?> MaxRecords = new("--max-records") { Description = "Stop after N records, then commit and exit 0" };
    static readonly Option<long> MaxInFlightBytes = new("--max-in-flight-bytes") { Description = "Payload bytes in flight before consuming pauses", DefaultValueFactory = _ => 64L << 20 };
    static readonly Option<int> MaxInFlightRecords = new("--max-in-flight-records") { Description = "Records in flight before consuming pauses", DefaultValueFactory = _ => 10_000 };
    static readonly Option<int> MaxPayloadBytes = new("--max-payload-bytes") { Description = "Larger records are dead-lettered, not sent", DefaultValueFactory = _ => 8 << 20 };
    static readonly Option<TimeSpan?> RequestTimeout = Duration.Option("--request-timeout", "Time one HTTP attempt may take", TimeSpan.FromSeconds(30));
    static readonly Option<TimeSpan?> MaxRetryDuration = Duration.Option("--max-retry-duration", "Give up (dead-letter) after retrying this long; default: retry until delivered");
    static readonly Option<string?> RulesFile = new("--rules") { Description = "YAML rules file (C# snippets) refining the flags per record; reloaded when it changes. See rules/README.md" };
    static readonly Option<TimeSpan?> ShutdownTimeout = Duration.Option("--shutdown-timeout", "On Ctrl+C/SIGTERM, wait this long for in-flight requests", TimeSpan.FromSeconds(30));

    public static Command Create()
    {
        var command = new Command("run", """
            Replay a topic to an HTTP destination (the main job).

            Examples:
              replay run -t telemetry -gid replay-proto -p kafka.properties --copy-keys true \
                --dest "http://proto.example/submit/telemetry/%k" --sample 0.01 --delete false
              replay run -b 127.0.0.1:9092 -t telemetry -gid demo --from earliest --until-end \
                --dest "http://127.0.0.1:8080/submit/telemetry/%k" --dead-letter dead.jsonl
            """);
        foreach (var option in new Option[] { Topic, GroupId, Properties, Bootstrap, Dest, CopyKeys, Sample, SampleMode, Delete,
                     NumThreads, Concurrency, ValidateJson, Proxy, Format, RawKeys, DeadLetterFile, From, UntilEnd, MaxRecords,
                     MaxInFlightBytes, MaxInFlightRecords, MaxPayloadBytes, RequestTimeout, MaxRetryDuration, ShutdownTimeout, RulesFile })
            command.Options.Add(option);
        command.SetAction((parse, cancel) => Task.FromResult(Execute(parse, cancel)));
        return command;
    }

    static int Execute(ParseResult parse, CancellationToken cancel)
    {
        var settings = Build(parse);
        if (!settings.IsOk)
        {
            Console.Error.WriteLine($"replay run: {settings.Error}");
            return ExitCodes.Usage;
        }
        var consumer = new ReplayConsumer(settings.Value!);
        try
        {
            var code = consumer.Run(cancel);
            Console.Error.WriteLine($"replay: {consumer.Stats.Summary()}");
            if (settings.Value!.Rules is { } rules) Console.Error.WriteLine($"replay: {rules.Summary()}");
            return code;
        }
        catch (Confluent.Kafka.KafkaException e)
        {
            Console.Error.WriteLine($"replay run: Kafka refused the settings: {e.Error.Reason}");
            return ExitCodes.Usage;
        }
        finally
        {
            settings.Value!.DeadLetters.Dispose();
            settings.Value!.Rules?.Dispose();
        }
    }

    /// <summary>Turns flags and the properties file into validated settings, or one clear message.</summary>
    public static Result<ReplaySettings> Build(ParseResult parse)
    {
        var kafka = new Dictionary<string, string>(StringComparer.Ordinal);
        if (parse.GetValue(Properties) is { } path)
        {
            var loaded = PropertiesFile.Load(path);
            if (!loaded.IsOk) return Result<ReplaySettings>.Fail(loaded.Error!);
            foreach (var (k, v) in loaded.Value!) kafka[k] = v;
        }
        if (parse.GetValue(Bootstrap) is { } servers) kafka["bootstrap.servers"] = servers;
        if (!kafka.ContainsKey("bootstrap.servers"))
            return Result<ReplaySettings>.Fail("no Kafka to read from: pass --bootstrap-servers HOST:PORT or -p FILE with bootstrap.servers=HOST:PORT");
        if (parse.GetValue(GroupId) is { } group) kafka["group.id"] = group;
        if (!kafka.ContainsKey("group.id"))
            return Result<ReplaySettings>.Fail("no consumer group: pass -gid NAME (a group of its own, so production loses nothing)");
        var from = parse.GetValue(From)!;
        if (from is not ("earliest" or "latest"))
            return Result<ReplaySettings>.Fail($"--from '{from}': use earliest or latest");
        if (!kafka.ContainsKey("auto.offset.reset") || parse.GetResult(From) is { Implicit: false })
            kafka["auto.offset.reset"] = from;

        Destination.Pattern? destination = null;
        if (parse.GetValue(Dest) is { } dest)
        {
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

        IWebProxy? proxy = null;
        if (parse.GetValue(Proxy) is { } proxyUrl)
        {
            var built = ProxySettings.Create(proxyUrl);
            if (!built.IsOk) return Result<ReplaySettings>.Fail("--proxy: " + built.Error);
            proxy = built.Value;
        }

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
        IDeadLetterSink deadLetters = parse.GetValue(DeadLetterFile) is { } dlPath
            ? new DeadLetterFile(dlPath)
            : new DeadLetterLog(Console.Error);

        return Result<ReplaySettings>.Ok(new ReplaySettings
        {
            Kafka = kafka,
            Topic = parse.GetValue(Topic)!,
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
            ShutdownTimeout = parse.GetValue(ShutdownTimeout) ?? TimeSpan.FromSeconds(30),
            UntilEnd = parse.GetValue(UntilEnd),
            MaxRecords = parse.GetValue(MaxRecords),
            Proxy = proxy,
            DeadLetters = deadLetters,
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
