// `replay demo --compare`: "is the new server the same as the old one?" on this machine
// in one command — an embedded broker filled with telemetry-like envelopes, two copies
// of an "old" server and a "new" one that changed how it counts for some documents, all
// three stamping a random request id and the time into their answers, and a comparison
// that must find exactly the documents that changed and call the rest noise.
using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Replay.Core;
using Replay.Host.Comparison;
using Replay.Host.Delivery;
using Replay.Host.Kafka;
using Replay.Host.Replay;
using Replay.Host.Security;

namespace Replay.Host.Commands;

static class DemoCompare
{
    public static async Task<int> RunAsync(int count, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        const string topic = "telemetry";
        using var cluster = new MockCluster();
        cluster.CreateTopic(topic, 4);
        var records = SampleData.Generate(count, deleteRatio: 0, payloadBytes: 256, ns: "telemetry", seed: 11).ToList();
        SampleData.Produce(cluster.BootstrapServers, topic, records);
        Console.Out.WriteLine($"broker    embedded Kafka on {cluster.BootstrapServers}: {records.Count} envelopes in '{topic}'");

        await using var primary = await DemoServer.StartAsync(changed: false, cancel);
        await using var secondary = await DemoServer.StartAsync(changed: false, cancel);
        await using var candidate = await DemoServer.StartAsync(changed: true, cancel);
        Console.Out.WriteLine($"servers   primary {primary.Url}, secondary {secondary.Url} (the old version, twice), candidate {candidate.Url} (the new one)");

        var report = Path.Combine(Path.GetTempPath(), $"replay-compare-demo-{Environment.ProcessId}");
        var opened = ComparisonReport.Open(new ComparisonOptions { ReportDirectory = report }, new Secrets());
        if (!opened.IsOk) { Console.Error.WriteLine($"replay demo: {opened.Error}"); return Cli.ExitCodes.Failure; }
        using var comparison = new ComparingRun(opened.Value!);
        Target Target(DemoServer server) => Core.Target.NewPattern(Destination.parse($"{server.Url}/submit/{{namespace}}/{{id}}").ResultValue);
        var route = RouteModule.withMirrors(Microsoft.FSharp.Collections.ListModule.OfSeq([Target(candidate), Target(secondary)]),
            RouteModule.defaults("telemetry", Target(primary), Sampling.RateModule.all, deletes: true, copyKeys: true));
        var router = FSharpRouter.Always(route);
        var kafka = new Dictionary<string, string>
        {
            ["bootstrap.servers"] = cluster.BootstrapServers,
            ["group.id"] = "replay-compare-demo",
            ["auto.offset.reset"] = "earliest",
            ["group.protocol"] = "consumer",
        };
        var run = Settings.run(topic, kafka);
        var settings = new RunSettings(run.Topic, run.Kafka, run.Pipeline, run.Budget, run.Delivery,
            Microsoft.FSharp.Collections.ListModule.OfSeq(new[] { new DestinationSlot("primary", false), new DestinationSlot("candidate", false), new DestinationSlot("secondary", false) }),
            true, run.MaxRecords, run.DryRun, run.DeadLetterBrake, run.Until, run.Speed);
        var services = new ReplayServices
        {
            Router = () => router,
            Log = TextWriter.Null,
            Comparison = comparison,
            Capture = new ResponseCapture(64 * 1024, 64 * 1024, hashBeyond: true),
        };
        Console.Out.WriteLine("compare   every record to all three; differences between primary and secondary are noise ...");
        var replay = new ReplayConsumer(settings, services);
        var code = await Task.Run(() => replay.Run(cancel), cancel);
        comparison.Dispose();
        var problem = opened.Value!.Finish();
        var totals = opened.Value!.Totals();
        var expected = records.Count(r => DemoServer.Changes(r.Id));
        Console.Out.WriteLine();
        Console.Out.WriteLine($"compared      {totals.Compared}");
        Console.Out.WriteLine($"equal         {totals.Equal}");
        Console.Out.WriteLine($"noisy         {totals.Noisy}   (only the request id and time differ: the secondary differs there too)");
        Console.Out.WriteLine($"different     {totals.Different}   (the new server counts differently for {expected} documents)");
        Console.Out.WriteLine($"failed        {totals.Failed}");
        Console.Out.WriteLine($"report        {opened.Value!.HtmlPath}");
        Console.Out.WriteLine($"took          {clock.Elapsed.TotalSeconds:F1} s");
        var ok = code == 0 && problem is null && totals.Compared == records.Count && totals.Different == expected && totals.Failed == 0;
        Console.Out.WriteLine(ok
            ? "ok: every record was compared, and exactly the documents the new server changed came out different"
            : "MISMATCH: the comparison did not find what was changed" + (problem is null ? "" : $" ({problem})"));
        return code != 0 ? code : ok ? 0 : 1;
    }

    /// <summary>A stand-in for the server under comparison: it counts a document's sessions, and
    /// the new version (changed) counts one more for documents whose id starts with 0-3.</summary>
    sealed class DemoServer : IAsyncDisposable
    {
        readonly WebApplication _app;
        public string Url { get; private set; } = "";

        DemoServer(WebApplication app) => _app = app;

        public static bool Changes(string id) => id[0] is >= '0' and <= '3';

        public static async Task<DemoServer> StartAsync(bool changed, CancellationToken cancel)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            app.Run(async context =>
            {
                var id = context.Request.Path.Value!.Split('/')[^1];
                var sessions = id.Length + (changed && Changes(id) ? 1 : 0);
                context.Response.StatusCode = 201;
                context.Response.ContentType = "application/json";
                await context.Response.Body.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(new
                {
                    requestId = Guid.NewGuid().ToString(),
                    time = DateTime.UtcNow.ToString("O"),
                    id,
                    sessions,
                }));
            });
            var server = new DemoServer(app);
            await app.StartAsync(cancel);
            server.Url = Cli.ListeningAddress.Of(app);
            return server;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }
}
