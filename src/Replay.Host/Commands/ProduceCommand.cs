using System.CommandLine;
using Confluent.Kafka;
using Replay.Host.Cli;
using Replay.Host.Kafka;

namespace Replay.Host.Commands;

public static class ProduceCommand
{
    public static Command Create()
    {
        var bootstrap = new Option<string>("--bootstrap-servers", "-b") { Description = "HOST:PORT of the broker", Required = true };
        var topic = new Option<string>("--topic", "-t") { Description = "Topic to write", Required = true };
        var count = new Option<int>("--count", "-n") { Description = "How many envelopes", DefaultValueFactory = _ => 1000 };
        var deleteRatio = new Option<double>("--delete-ratio") { Description = "Fraction that delete an earlier document", DefaultValueFactory = _ => 0.02 };
        var payloadBytes = Flags.Size32("--payload-bytes", "Approximate JSON payload size", 1024);
        var ns = new Option<string>("--namespace") { Description = "Bagheera namespace of the envelopes", DefaultValueFactory = _ => "telemetry" };
        var seed = new Option<int>("--seed") { Description = "Seed for reproducible data", DefaultValueFactory = _ => 42 };
        var connectTimeout = Duration.Option("--connect-timeout", $"How long to wait for Kafka to answer; then exit {ExitCodes.KafkaUnreachable}", TimeSpan.FromSeconds(30));
        var command = new Command("produce", "Write sample telemetry-like Bagheera envelopes (keyed by document id) to a topic.");
        HelpText.Describe(command, examples: """
              replay produce -b 127.0.0.1:9092 -t telemetry --count 10000 --delete-ratio 0.02
            """);
        foreach (var o in new Option[] { bootstrap, topic, count, deleteRatio, payloadBytes, ns, seed, connectTimeout }) command.Options.Add(o);
        Signals.Stops(command, "stopping: no more records, waiting briefly for the acknowledgements of those sent");
        command.SetAction((parse, cancel) =>
        {
            var n = parse.GetValue(count);
            var ratio = parse.GetValue(deleteRatio);
            if (n < 0 || ratio is < 0 or > 1)
            {
                Console.Error.WriteLine("replay produce: --count must be >= 0 and --delete-ratio in [0, 1]");
                return Task.FromResult(ExitCodes.Usage);
            }
            var servers = parse.GetValue(bootstrap)!;
            var name = parse.GetValue(topic)!;
            using var diagnostics = new KafkaDiagnostics(Console.Error);
            var reach = Preflight.Reach(new Dictionary<string, string> { ["bootstrap.servers"] = servers }, parse.GetValue(connectTimeout) ?? TimeSpan.FromSeconds(30), diagnostics, cancel);
            if (reach is { } problem)
            {
                if (problem.ExitCode != ExitCodes.Ok) Console.Error.WriteLine($"replay produce: {problem.Problem}");
                return Task.FromResult(problem.ExitCode ?? ExitCodes.Ok);
            }
            var records = SampleData.Generate(n, ratio, parse.GetValue(payloadBytes), parse.GetValue(ns)!, parse.GetValue(seed)).ToList();
            var produced = SampleData.Produce(servers, name, records, diagnostics, cancel);
            var deletes = records.Count(r => r.Operation.IsDelete);
            if (produced.Failure is { } failure)
            {
                Console.Error.WriteLine($"replay produce: {produced.Acknowledged} of {records.Count} envelopes written to {name}; Kafka refused the rest: {failure.Reason}");
                return Task.FromResult(KafkaErrors.ExitCode(failure));
            }
            Console.Out.WriteLine(produced.Stopped
                ? $"stopped: produced {produced.Acknowledged} of {records.Count} envelopes to {name}"
                : $"produced {records.Count} envelopes ({deletes} deletes) to {name}");
            return Task.FromResult(ExitCodes.Ok);
        });
        return command;
    }
}
