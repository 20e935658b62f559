// `replay demo`: the whole loop on this machine in one command — an embedded
// broker, HTTP submissions through `replay ingest` into it, the sink, and a sampled
// replay with deletes — ending with a summary whose numbers must add up.
using System.CommandLine;
using System.Diagnostics;
using Replay.Core;
using Replay.Host.Cli;
using Replay.Host.Ingest;
using Replay.Host.Kafka;
using Replay.Host.Replay;
using Replay.Host.Sink;

namespace Replay.Host.Commands;

public static class DemoCommand
{
    public static Command Create()
    {
        var count = new Option<int>("--count", "-n") { Description = "HTTP submissions to send", DefaultValueFactory = _ => 5000 };
        var sample = new Option<double>("--sample", "-s") { Description = "Fraction of documents to replay", DefaultValueFactory = _ => 0.25 };
        var compare = new Option<bool>("--compare") { Description = "Show replay compare instead: an old server twice and a changed new one, and what differs" };
        var command = new Command("demo", "The whole pipeline in this process, with a summary whose numbers must add up.");
        HelpText.Describe(command,
            details: """
                HTTP submissions -> ingest -> embedded Kafka -> replay (sampled by document, deletes on) -> sink. Exit 0 when
                the numbers add up, 1 when they do not. Submissions: stores under /1.0/submit/telemetry/{id}/..., 5% replacing
                an earlier document (X-Obsolete-Document), 2% DELETEs.
                """,
            examples: """
                  replay demo
                  replay demo --count 300 --sample 1
                  replay demo --compare
                """);
        Signals.Stops(command, "stopping the demo");
        command.Options.Add(count);
        command.Options.Add(sample);
        command.Options.Add(compare);
        command.SetAction(async (parse, cancel) =>
        {
            if (parse.GetValue(compare)) return await DemoCompare.RunAsync(parse.GetResult(count) is { Implicit: false } ? parse.GetValue(count) : 2000, cancel);
            var rate = Sampling.RateModule.create(parse.GetValue(sample));
            if (rate.IsError) { Console.Error.WriteLine($"replay demo: --sample: {rate.ErrorValue}"); return Cli.ExitCodes.Usage; }
            return await RunAsync(parse.GetValue(count), rate.ResultValue, cancel);
        });
        return command;
    }

    static async Task<int> RunAsync(int count, Sampling.Rate rate, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        const string topic = "telemetry";
        using var cluster = new MockCluster();
        cluster.CreateTopic(topic, 4);
        Console.Out.WriteLine($"broker    embedded Kafka on {cluster.BootstrapServers}, topic '{topic}' with 4 partitions");

        await using var ingest = new IngestServer(new IngestSettings
        {
            Kafka = new Dictionary<string, string> { ["bootstrap.servers"] = cluster.BootstrapServers },
            Topic = topic,
            Namespaces = new HashSet<string> { "telemetry" },
            Port = 0,
        });
        await ingest.StartAsync(cancel);
        Console.Out.WriteLine($"ingest    {ingest.Url}/[1.0/]submit/telemetry/{{id}}/... -> topic '{topic}' (acks=all)");

        var submissions = DemoTraffic.Generate(count, "telemetry", seed: 7);
        var sending = Stopwatch.StartNew();
        var answers = await DemoTraffic.SendAsync(ingest.Url, submissions, concurrency: 32, cancel);
        Console.Out.WriteLine($"submit    {submissions.Count} HTTP submissions, 32 at a time, in {sending.Elapsed.TotalSeconds:F1} s: " +
                              $"{answers.Stored} stored (201), {answers.Deleted} deleted (200), {answers.Failed} failed");
        if (answers.FirstFailure is { } failure) Console.Out.WriteLine($"          first failure: {failure}");

        await using var sink = new SinkServer();
        await sink.StartAsync(cancel);
        // The path each submission was made to, rebuilt from its envelope.
        var dest = Destination.parse($"{sink.Url}/{{api_version}}/submit/{{namespace}}/{{id}}/{{partitions}}").ResultValue;
        Console.Out.WriteLine($"sink      {dest.Text}");

        var route = RouteModule.defaults("defaults", Target.NewPattern(dest), rate, deletes: true, copyKeys: true);
        var router = FSharpRouter.Always(route);
        var kafka = new Dictionary<string, string>
        {
            ["bootstrap.servers"] = cluster.BootstrapServers,
            ["group.id"] = "replay-demo",
            ["auto.offset.reset"] = "earliest",
            // KIP-848 groups get their first assignment at once on the embedded broker.
            ["group.protocol"] = "consumer",
        };
        var settings = Settings.run(topic, kafka) is var run
            ? new RunSettings(run.Topic, run.Kafka, run.Pipeline, run.Budget, run.Delivery, run.Destinations, true, run.MaxRecords, run.DryRun, run.DeadLetterBrake, run.Until, run.Speed)
            : throw new InvalidOperationException();
        var services = new ReplayServices { Router = () => router, Log = TextWriter.Null };
        Console.Out.WriteLine($"replay    sample {Sampling.RateModule.value(rate)} by document id, deletes on, 64 in flight ...");
        var replay = new ReplayConsumer(settings, services);
        var code = await Task.Run(() => replay.Run(cancel), cancel);
        var stats = replay.Stats;
        Console.Out.WriteLine();
        Console.Out.WriteLine($"written       {ingest.Stats.Records} envelopes acknowledged by Kafka ({ingest.Stats.ObsoleteDeletes} obsolete-document deletes)");
        Console.Out.WriteLine($"consumed      {stats.Consumed}");
        Console.Out.WriteLine($"sampled out   {stats.SampledOut}");
        Console.Out.WriteLine($"sent          {stats.Delivered}");
        Console.Out.WriteLine($"dead letters  {stats.DeadLettered}");
        Console.Out.WriteLine($"received      {sink.Total} ({sink.Posts} POST, {sink.Deletes} DELETE)");
        Console.Out.WriteLine($"took          {clock.Elapsed.TotalSeconds:F1} s");
        var submitted = submissions.Select(s => s.Path)
            .Concat(submissions.SelectMany(s => s.Obsolete, (_, old) => $"/submit/telemetry/{old}"))
            .ToHashSet();
        var rebuilt = sink.Log.All(r => submitted.Contains(r.Path));
        var consistent = answers.Failed == 0 && stats.Consumed == ingest.Stats.Records
                         && stats.Delivered == sink.Total && stats.Finished == stats.Consumed && rebuilt;
        Console.Out.WriteLine(consistent
            ? "ok: every submission was stored in Kafka, every record consumed is accounted for, and every request sent was received at the path it was submitted to"
            : "MISMATCH: the counts above do not add up" + (rebuilt ? "" : " (the sink received a path no client submitted to)"));
        return code != 0 ? code : consistent ? 0 : 1;
    }
}
