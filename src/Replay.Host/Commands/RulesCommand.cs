// `replay rules check|test|bench`: work on a rules file without touching Kafka.
// `check` compiles it and prints every diagnostic (exit 1 on errors, so CI can gate
// a change); `test` routes made-up records through the full per-record decision and
// prints each outcome, a dry run; `bench` measures routing cost and memory across
// reloads.
using System.CommandLine;
using Microsoft.FSharp.Core;
using Replay.Core;
using Replay.Host.Cli;
using Replay.Host.Rules;

namespace Replay.Host.Commands;

public static class RulesCommand
{
    public static Command Create()
    {
        var command = new Command("rules", "Check, dry-run and measure a rules file (YAML with C# snippets; see rules/README.md).");
        HelpText.Describe(command, examples: """
              replay rules check rules/mozilla-telemetry.yaml
              replay rules test rules/mozilla-telemetry.yaml --namespace telemetry --id abc --header channel=nightly
              replay rules test rules/mozilla-telemetry.yaml --records samples.jsonl
              replay rules bench rules/bench-ten-rules.yaml
            """);
        command.Subcommands.Add(Check());
        command.Subcommands.Add(Test());
        command.Subcommands.Add(Bench());
        return command;
    }

    static Argument<string> FileArgument() => new("FILE") { Description = "The rules file (YAML)" };

    static Option<string?> DestOption() =>
        new("--dest", "-d") { Description = "The --dest that `replay run` would get (the base that the file's defaults refine)" };

    /// <summary>The base the flags of `replay run` would give, from --dest and --sample, and from
    /// the route flags (answers, --drop-ip, --scrub-key-file) where the command takes them.</summary>
    static Result<RuleBase> Base(string? dest, double sample, ParseResult? parse = null)
    {
        var rate = Sampling.RateModule.create(sample);
        if (rate.IsError) return Result<RuleBase>.Fail("--sample: " + rate.ErrorValue);
        var flags = RuleBase.Flags with { Sample = rate.ResultValue };
        if (dest is not null)
        {
            var pattern = Destination.parse(dest);
            if (pattern.IsError) return Result<RuleBase>.Fail("--dest: " + pattern.ErrorValue);
            if (RunCommand.CheckDestination(pattern.ResultValue) is { } problem) return Result<RuleBase>.Fail("--dest: " + problem);
            flags = flags with { Dest = pattern.ResultValue };
        }
        return parse is null ? Result<RuleBase>.Ok(flags) : RouteOptions.Apply(parse, flags, new Security.Secrets(), Console.Error);
    }

    static Command Check()
    {
        var file = FileArgument();
        var dest = DestOption();
        var command = new Command("check", "Compile a rules file and print every error and warning with its YAML line; exit 1 on errors, 0 when clean.");
        command.Arguments.Add(file);
        command.Options.Add(dest);
        foreach (var option in RouteOptions.All) command.Options.Add(option);
        command.SetAction(parse =>
        {
            var path = parse.GetValue(file)!;
            var flags = Base(parse.GetValue(dest), 1.0, parse);
            if (!flags.IsOk)
            {
                Console.Error.WriteLine($"replay rules check: {flags.Error}");
                return ExitCodes.Usage;
            }
            var (generation, diagnostics) = RulesLoader.Load(path, flags.Value!, 1);
            foreach (var diagnostic in diagnostics) Console.Out.WriteLine(diagnostic);
            var errors = diagnostics.Count(d => d.IsError);
            var warnings = diagnostics.Count - errors;
            if (generation is null)
            {
                Console.Out.WriteLine($"{path}: {errors} error{(errors == 1 ? "" : "s")}, {warnings} warning{(warnings == 1 ? "" : "s")}");
                return ExitCodes.Failure;
            }
            generation.Unload();
            Console.Out.WriteLine($"{path}: OK, {generation.RuleCount} rule{(generation.RuleCount == 1 ? "" : "s")}, {warnings} warning{(warnings == 1 ? "" : "s")}");
            return ExitCodes.Ok;
        });
        return command;
    }

    static Command Test()
    {
        var file = FileArgument();
        var dest = DestOption();
        var sample = new Option<double>("--sample", "-s") { Description = "The --sample that `replay run` would get", DefaultValueFactory = _ => 1.0 };
        var sampleMode = new Option<string>("--sample-mode") { Description = "document (default) or random", DefaultValueFactory = _ => "document" };
        var records = new Option<string?>("--records") { Description = "JSON-lines file of records: " + SampleRecords.Format };
        var ns = new Option<string>("--namespace") { Description = "Namespace of the record", DefaultValueFactory = _ => "telemetry" };
        var id = new Option<string>("--id") { Description = "Document id of the record", DefaultValueFactory = _ => "sample-id" };
        var header = new Option<string[]>("--header", "-H") { Description = "A Kafka header NAME=VALUE (repeatable)", AllowMultipleArgumentsPerToken = false };
        var payload = new Option<string>("--payload") { Description = "The document body", DefaultValueFactory = _ => "{}" };
        var payloadSize = new Option<int?>("--payload-size") { Description = "Pad the body to this many bytes" };
        var topic = new Option<string>("--topic", "-t") { Description = "Kafka topic", DefaultValueFactory = _ => "telemetry" };
        var partition = new Option<int>("--partition") { Description = "Kafka partition" };
        var offset = new Option<long>("--offset") { Description = "Kafka offset" };
        var apiVersion = new Option<string>("--api-version") { Description = "Envelope api_version", DefaultValueFactory = _ => "1" };
        var bagheeraPartition = new Option<string[]>("--bagheera-partition") { Description = "An envelope partition value (repeatable)" };
        var delete = new Option<bool>("--delete") { Description = "The record is a Bagheera DELETE" };
        var command = new Command("test", """
            Route sample records through a rules file and print each decision (a dry run: nothing is sent).
            Records come from --records FILE, or one record is made from the other options.
            """);
        command.Arguments.Add(file);
        foreach (var o in new Option[] { dest, sample, sampleMode, records, ns, id, header, payload, payloadSize, topic, partition, offset, apiVersion, bagheeraPartition, delete }
                     .Concat(RouteOptions.All))
            command.Options.Add(o);
        command.SetAction(parse =>
        {
            var path = parse.GetValue(file)!;
            var flags = Base(parse.GetValue(dest), parse.GetValue(sample), parse);
            var mode = Sampling.parseMode(parse.GetValue(sampleMode)!);
            if (!flags.IsOk || mode.IsError)
            {
                Console.Error.WriteLine($"replay rules test: {flags.Error ?? "--sample-mode: " + mode.ErrorValue}");
                return ExitCodes.Usage;
            }
            List<SampleRecord> samples;
            if (parse.GetValue(records) is { } recordsPath)
            {
                var read = SampleRecords.Read(recordsPath);
                if (!read.IsOk)
                {
                    Console.Error.WriteLine($"replay rules test: {read.Error}");
                    return ExitCodes.Usage;
                }
                samples = read.Value!;
            }
            else
            {
                var one = new SampleRecord
                {
                    Namespace = parse.GetValue(ns)!, Id = parse.GetValue(id)!, Payload = parse.GetValue(payload)!, Topic = parse.GetValue(topic)!,
                    Partition = parse.GetValue(partition), Offset = parse.GetValue(offset), ApiVersion = parse.GetValue(apiVersion)!, Delete = parse.GetValue(delete),
                };
                foreach (var h in parse.GetValue(header) ?? [])
                {
                    var equals = h.IndexOf('=');
                    if (equals <= 0)
                    {
                        Console.Error.WriteLine($"replay rules test: --header '{h}': write NAME=VALUE");
                        return ExitCodes.Usage;
                    }
                    one.Headers.Add((h[..equals], h[(equals + 1)..]));
                }
                one.Partitions.AddRange(parse.GetValue(bagheeraPartition) ?? []);
                if (parse.GetValue(payloadSize) is { } size) one.Payload = SampleRecords.Padded(one.Payload, size);
                samples = [one];
            }

            var (generation, diagnostics) = RulesLoader.Load(path, flags.Value!, 1);
            foreach (var diagnostic in diagnostics) Console.Error.WriteLine(diagnostic);
            if (generation is null) return ExitCodes.Failure;
            var settings = new Pipeline.Settings(Pipeline.Format.Bagheera, mode.ResultValue, false, Destination.Escaping.Segment, 8 << 20);
            var keys = 0;
            var random = new Random(1);
            // Deterministic stand-ins, so two dry runs of the same input print the same.
            var entropy = new Pipeline.Entropy(
                FuncConvert.FromFunc(() => $"00000000-0000-4000-8000-{++keys:D12}"),
                FuncConvert.FromFunc(() => random.NextDouble()));
            for (var i = 0; i < samples.Count; i++)
                Console.Out.WriteLine(DryRun.Describe(i + 1, samples[i],
                    Pipeline.decide(settings, generation.Router.Route, entropy, samples[i].ToRecord())));
            generation.Unload();
            return ExitCodes.Ok;
        });
        return command;
    }

    static Command Bench()
    {
        var file = FileArgument();
        var dest = DestOption();
        var records = new Option<int>("--records") { Description = "Records to route for the timing", DefaultValueFactory = _ => 1_000_000 };
        var reloads = new Option<int>("--reloads") { Description = "Reloads for the memory measurement", DefaultValueFactory = _ => 500 };
        var command = new Command("bench", "Measure the routing cost per record and the process memory across reloads (a benchmark, not a test).");
        command.Arguments.Add(file);
        foreach (var o in new Option[] { dest, records, reloads }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            var flags = Base(parse.GetValue(dest), 1.0);
            if (!flags.IsOk)
            {
                Console.Error.WriteLine($"replay rules bench: {flags.Error}");
                return ExitCodes.Usage;
            }
            return RulesBench.Run(parse.GetValue(file)!, flags.Value!, parse.GetValue(records), parse.GetValue(reloads), Console.Out);
        });
        return command;
    }
}
