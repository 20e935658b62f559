// `replay rules bench`: what a rules file costs. It routes a mix of made-up records
// (most reach the defaults, so every rule's predicate runs) through the compiled
// router and through the whole per-record decision, then reloads the file many
// times and prints the process's memory after each hundred reloads: flat memory
// shows that replaced generations are unloaded. A benchmark to read, not a test.
using System.Diagnostics;
using System.Runtime.Loader;
using Microsoft.FSharp.Core;
using Replay.Core;
using Envelope = Replay.Core.Envelope.Envelope;

namespace Replay.Host.Rules;

public static class RulesBench
{
    public static int Run(string path, RuleBase flags, int records, int reloads, TextWriter output)
    {
        var started = LiveRules.Start(path, flags, TextWriter.Null, watch: false);
        if (!started.IsOk)
        {
            output.WriteLine($"{path}: {started.Error}");
            return Cli.ExitCodes.Failure;
        }
        using var live = started.Value!;
        var samples = Samples(1024).Select(s => s.ToRecord()).ToArray();
        var envelopes = samples.Select(r => global::Replay.Core.Envelope.decode(r.Value).ResultValue).ToArray();
        output.WriteLine($"{path}: {live.Current.RuleCount} rules, compiled in {live.Current.CompileTime.TotalMilliseconds:0} ms (first compile of the process)");

        var router = live.Router().Route;
        Route(router, samples, envelopes, Math.Min(records, 200_000)); // warm-up: let tiered JIT settle
        var (perRecord, bytes, counts) = Route(router, samples, envelopes, records);
        output.WriteLine($"routing:  {perRecord * 1000:0} ns per record ({perRecord:0.000} µs; {bytes:0} bytes allocated per record; "
            + $"{records:N0} records: {counts.Defaults:P0} reached the defaults after all rules, {counts.Ruled:P0} chosen by a rule, {counts.Skipped:P0} skipped by a rule)");

        var settings = new Pipeline.Settings(Pipeline.Format.Bagheera, Sampling.Mode.ByDocument, false, Destination.Escaping.Segment, 8 << 20);
        var entropy = new Pipeline.Entropy(FuncConvert.FromFunc(() => "00000000-0000-4000-8000-000000000000"), FuncConvert.FromFunc(() => 0.5));
        var decisions = Math.Max(1, records / 4);
        Decide(settings, router, entropy, samples, decisions);
        var perDecision = Decide(settings, router, entropy, samples, decisions);
        output.WriteLine($"decision: {perDecision * 1000:0} ns per record (decode + route + sample + request, {decisions:N0} records)");

        if (reloads <= 0) return Cli.ExitCodes.Ok;
        output.WriteLine($"memory across {reloads} reloads (after a full collection):");
        output.WriteLine("  reloads   managed heap   working set   rule load contexts alive   ms per reload");
        Report(output, 0, 0);
        var clock = Stopwatch.StartNew();
        var since = 0;
        for (var i = 1; i <= reloads; i++)
        {
            if (!live.Reload())
            {
                output.WriteLine($"reload {i} failed: {string.Join("; ", live.LastErrors)}");
                return Cli.ExitCodes.Failure;
            }
            if (i % 100 == 0 || i == reloads || i == 1)
            {
                Report(output, i, clock.Elapsed.TotalMilliseconds / (i - since));
                since = i;
                clock.Restart();
            }
        }
        return Cli.ExitCodes.Ok;
    }

    static void Report(TextWriter output, int reloads, double msPerReload)
    {
        for (var i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        var heap = GC.GetTotalMemory(forceFullCollection: true);
        using var process = Process.GetCurrentProcess();
        var contexts = AssemblyLoadContext.All.Count(c => c.IsCollectible);
        output.WriteLine($"  {reloads,7}   {heap / 1048576.0,9:0.0} MB   {process.WorkingSet64 / 1048576.0,8:0.0} MB   {contexts,24}   {(reloads == 0 ? "" : msPerReload.ToString("0"))}");
    }

    sealed record Counts(double Defaults, double Ruled, double Skipped);

    static (double MicrosPerRecord, double BytesPerRecord, Counts Counts) Route(
        FSharpFunc<Record, FSharpFunc<Envelope, Choice>> router, Record[] records, Envelope[] envelopes, int count)
    {
        var mask = records.Length - 1;
        long defaults = 0, skipped = 0;
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            var choice = FSharpFunc<Record, Envelope>.InvokeFast(router, records[i & mask], envelopes[i & mask]);
            if (choice is Choice.Use { Item.Name: global::Replay.Core.Rules.DefaultsName }) defaults++;
            else if (choice.IsSkipByRule) skipped++;
        }
        clock.Stop();
        var bytes = (GC.GetAllocatedBytesForCurrentThread() - allocated) / (double)count;
        return (clock.Elapsed.TotalMicroseconds / count, bytes,
            new Counts(defaults / (double)count, (count - defaults - skipped) / (double)count, skipped / (double)count));
    }

    static double Decide(Pipeline.Settings settings, FSharpFunc<Record, FSharpFunc<Envelope, Choice>> router, Pipeline.Entropy entropy, Record[] records, int count)
    {
        var mask = records.Length - 1;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++) Pipeline.decide(settings, router, entropy, records[i & mask]);
        return clock.Elapsed.TotalMicroseconds / count;
    }

    /// <summary>A telemetry-like mix: mostly release-channel pings that no rule claims,
    /// plus nightly/aurora/beta pings, test, metrics, crash and sync documents.</summary>
    static IEnumerable<SampleRecord> Samples(int count)
    {
        var random = new Random(7);
        string[] channels = ["release", "release", "release", "release", "beta", "nightly", "aurora", "esr"];
        string[] namespaces = ["telemetry", "telemetry", "telemetry", "telemetry", "telemetry", "metrics", "crash", "sync", "telemetry-test", "fxa"];
        for (var i = 0; i < count; i++)
        {
            var record = new SampleRecord
            {
                Namespace = namespaces[random.Next(namespaces.Length)],
                Id = Guid.NewGuid().ToString(),
                Offset = i,
                Payload = $$"""{"build":"{{random.Next(1000)}}","os":"Linux","sessions":{{random.Next(50)}},"padding":"{{new string('x', random.Next(100, 300))}}"}""",
                Delete = random.Next(50) == 0,
                ApiVersion = random.Next(20) == 0 ? "0" : "1",
            };
            record.Headers.Add(("channel", channels[random.Next(channels.Length)]));
            record.Headers.Add(("producer", "bagheera"));
            if (random.Next(10) == 0) record.Partitions.Add(random.Next(2) == 0 ? "de" : "us");
            yield return record;
        }
    }
}
