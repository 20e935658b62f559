// `replay demo`: the whole loop on this machine in one command — an embedded
// broker, sample envelopes, the sink, and a sampled replay with deletes — ending
// with a summary whose numbers must add up.
using System.CommandLine;
using System.Diagnostics;
using Replay.Core;
using Replay.Host.Kafka;
using Replay.Host.Replay;
using Replay.Host.Sink;

namespace Replay.Host.Commands;

public static class DemoCommand
{
    public static Command Create()
    {
        var count = new Option<int>("--count", "-n") { Description = "Envelopes to produce", DefaultValueFactory = _ => 5000 };
        var sample = new Option<double>("--sample", "-s") { Description = "Fraction of documents to replay", DefaultValueFactory = _ => 0.25 };
        var command = new Command("demo", """
            Run the embedded default end to end: start a broker and a sink in this process, produce
            sample envelopes (2% deletes), replay them sampled with deletes on, and print a summary.

            Example:
              replay demo --count 5000 --sample 0.25
            """);
        command.Options.Add(count);
        command.Options.Add(sample);
        command.SetAction(async (parse, cancel) =>
        {
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

        var records = SampleData.Generate(count, 0.02, 512, "telemetry", seed: 7).ToList();
        SampleData.Produce(cluster.BootstrapServers, topic, records);
        var deletes = records.Count(r => r.Operation.IsDelete);
        Console.Out.WriteLine($"produce   {records.Count} envelopes ({deletes} deletes)");

        await using var sink = new SinkServer();
        await sink.StartAsync(cancel);
        Console.Out.WriteLine($"sink      {sink.Url}/submit/telemetry/{{id}}");

        var dest = Destination.parse($"{sink.Url}/submit/telemetry/%k").ResultValue;
        var route = RouteModule.defaults("defaults", Target.NewPattern(dest), rate, deletes: true, copyKeys: true);
        var router = FSharpRouter.Always(route);
        var settings = new ReplaySettings
        {
            Kafka = new Dictionary<string, string>
            {
                ["bootstrap.servers"] = cluster.BootstrapServers,
                ["group.id"] = "replay-demo",
                ["auto.offset.reset"] = "earliest",
                // KIP-848 groups get their first assignment at once on the embedded broker.
                ["group.protocol"] = "consumer",
            },
            Topic = topic,
            Pipeline = new Pipeline.Settings(Pipeline.Format.Bagheera, Sampling.Mode.ByDocument, false, Destination.Escaping.Segment, 8 << 20),
            Router = () => router,
            UntilEnd = true,
            Log = TextWriter.Null,
        };
        Console.Out.WriteLine($"replay    sample {Sampling.RateModule.value(rate)} by document id, deletes on, 64 in flight ...");
        var replay = new ReplayConsumer(settings);
        var code = await Task.Run(() => replay.Run(cancel), cancel);
        var stats = replay.Stats;
        Console.Out.WriteLine();
        Console.Out.WriteLine($"consumed      {stats.Consumed}");
        Console.Out.WriteLine($"sampled out   {stats.SampledOut}");
        Console.Out.WriteLine($"sent          {stats.Delivered}");
        Console.Out.WriteLine($"dead letters  {stats.DeadLettered}");
        Console.Out.WriteLine($"received      {sink.Total} ({sink.Posts} POST, {sink.Deletes} DELETE)");
        Console.Out.WriteLine($"took          {clock.Elapsed.TotalSeconds:F1} s");
        var consistent = stats.Consumed == records.Count && stats.Delivered == sink.Total && stats.Finished == stats.Consumed;
        Console.Out.WriteLine(consistent ? "ok: every record consumed is accounted for, and every request sent was received"
                                         : "MISMATCH: the counts above do not add up");
        return code != 0 ? code : consistent ? 0 : 1;
    }
}
