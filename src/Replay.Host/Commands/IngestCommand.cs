// `replay ingest`: a Bagheera-compatible submission endpoint that writes envelopes to
// Kafka, so the whole pipeline (clients → Kafka → replay) runs without Bagheera.
using System.CommandLine;
using Replay.Core;
using Replay.Host.Cli;
using Replay.Host.Ingest;
using Replay.Host.Kafka;

namespace Replay.Host.Commands;

public static class IngestCommand
{
    static readonly Option<string?> Bootstrap = new("--bootstrap-servers", "-b") { Description = "HOST:PORT[,...] of Kafka; overrides bootstrap.servers from --properties" };
    static readonly Option<string?> Properties = new("--properties", "-p") { Description = "Java .properties file with librdkafka producer settings (security, ...)" };
    static readonly Option<string?> Topic = new("--topic", "-t") { Description = "Write every namespace to this topic" };
    static readonly Option<bool> TopicPerNamespace = new("--topic-per-namespace") { Description = "Write each namespace to the topic of the same name (as Bagheera did); needs --namespaces" };
    static readonly Option<string?> Namespaces = new("--namespaces") { Description = "Accepted namespaces, comma-separated (others get 404); default with --topic: any" };
    static readonly Option<string> Host = new("--host") { Description = "Address to listen on; widen deliberately, e.g. 0.0.0.0", DefaultValueFactory = _ => "127.0.0.1" };
    static readonly Option<int> Port = new("--port") { Description = "Port to listen on (0 picks a free one)", DefaultValueFactory = _ => 8080 };
    static readonly Option<int> MaxContentLength = Flags.Size32("--max-content-length", "Largest body, after decompression (a compressed body may be at most 1/64 + 1 KiB larger on the wire); larger gets 413", 1 << 20);
    static readonly Option<string?> TrustedProxies = new("--trusted-proxies") { Description = "Addresses/CIDR ranges whose X-Forwarded-For is believed, e.g. 10.0.0.0/8; default: none" };
    static readonly Option<TimeSpan?> KafkaTimeout = Duration.Option("--kafka-timeout", "Longest wait for Kafka's acknowledgement before answering 503", TimeSpan.FromSeconds(5));

    public static Command Create()
    {
        var command = new Command("ingest", "A Bagheera-compatible submission endpoint that writes envelopes to Kafka.");
        HelpText.Describe(command,
            details: """
                Writes BagheeraMessage envelopes (key = document id, acks=all, idempotent). 201 and 200 are answered
                only after Kafka acknowledged the write; 503 when it did not within --kafka-timeout.

                  POST|PUT [/{apiVersion}]/submit/{namespace}[/{id}[/{partition}...]]  -> 201, body: the id
                    X-Obsolete-Document: id1, id2                                      -> also DELETE those ids
                  DELETE   [/{apiVersion}]/submit/{namespace}/{id}[/...]               -> 200
                  GET -> 405; unknown path or namespace -> 404; empty body -> 400; too large -> 413
                """,
            examples: """
                  # with `replay broker --topic telemetry --port 9092` running:
                  replay ingest -b 127.0.0.1:9092 -t telemetry --namespaces telemetry --port 8080
                  curl -X POST --data '{"a":1}' http://127.0.0.1:8080/submit/telemetry/doc-1
                """);
        Signals.Stops(command, "stopping: answering the submissions in flight, then closing the Kafka writer");
        foreach (var option in new Option[] { Bootstrap, Properties, Topic, TopicPerNamespace, Namespaces, Host, Port, MaxContentLength, TrustedProxies, KafkaTimeout })
            command.Options.Add(option);
        command.SetAction(async (parse, cancel) =>
        {
            var settings = Settings(parse);
            if (!settings.IsOk)
            {
                Console.Error.WriteLine($"replay ingest: {settings.Error}");
                return ExitCodes.Usage;
            }
            return await RunAsync(settings.Value!, cancel);
        });
        return command;
    }

    static Result<IngestSettings> Settings(ParseResult parse)
    {
        var kafka = new Dictionary<string, string>();
        if (parse.GetValue(Properties) is { } path)
        {
            var loaded = PropertiesFile.Load(path);
            if (!loaded.IsOk) return Result<IngestSettings>.Fail(loaded.Error!);
            foreach (var (key, value) in loaded.Value!) kafka[key] = value;
        }
        if (parse.GetValue(Bootstrap) is { } servers) kafka["bootstrap.servers"] = servers;

        var topic = parse.GetValue(Topic);
        var perNamespace = parse.GetValue(TopicPerNamespace);
        if (topic is null == !perNamespace)
            return Result<IngestSettings>.Fail("choose where envelopes go: either -t TOPIC (one topic) or --topic-per-namespace (a topic per namespace)");

        var namespaces = parse.GetValue(Namespaces) is { } list
            ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal)
            : null;
        var trusted = ClientAddress.parseTrusted(parse.GetValue(TrustedProxies) ?? "");
        if (trusted.IsError) return Result<IngestSettings>.Fail($"--trusted-proxies: {trusted.ErrorValue}");

        var settings = new IngestSettings
        {
            Kafka = kafka,
            Topic = topic,
            Namespaces = namespaces,
            Host = parse.GetValue(Host)!,
            Port = parse.GetValue(Port),
            MaxContentLength = parse.GetValue(MaxContentLength),
            TrustedProxies = [.. trusted.ResultValue],
            KafkaTimeout = parse.GetValue(KafkaTimeout) ?? TimeSpan.FromSeconds(5),
        };
        return settings.Validate() is { } error ? Result<IngestSettings>.Fail(error) : Result<IngestSettings>.Ok(settings);
    }

    static async Task<int> RunAsync(IngestSettings settings, CancellationToken cancel)
    {
        await using var server = new IngestServer(settings);
        try
        {
            await server.StartAsync(cancel);
        }
        catch (Exception e) when (Listening.IsListenFailure(e))
        {
            Console.Error.WriteLine($"replay ingest: {Listening.Problem("--port or --host", settings.Host, settings.Port, e)}");
            return ExitCodes.Usage;
        }
        var accepted = settings.Namespaces is null ? "any namespace" : "namespaces " + string.Join(", ", settings.Namespaces.Order());
        var target = settings.Topic is { } t ? $"topic '{t}'" : "the topic named after each namespace";
        Console.Out.WriteLine($"ingest listening on {server.Url}: {accepted} -> {target} on {settings.Kafka["bootstrap.servers"]} (acks=all)");
        Console.Out.Flush();

        using var stopOrFatal = CancellationTokenSource.CreateLinkedTokenSource(cancel, server.Fatal);
        var last = "";
        try
        {
            while (true)
            {
                await Task.Delay(TimeSpan.FromSeconds(10), stopOrFatal.Token);
                var now = server.Stats.ToString();
                if (now != last) Console.Out.WriteLine($"ingest: {now}");
                last = now;
            }
        }
        catch (OperationCanceledException) { }
        await server.DisposeAsync();
        Console.Out.WriteLine($"ingest stopped: {server.Stats}");
        return server.Fatal.IsCancellationRequested ? ExitCodes.Failure : ExitCodes.Ok;
    }
}
