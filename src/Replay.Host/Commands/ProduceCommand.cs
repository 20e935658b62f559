using System.CommandLine;
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
        var payloadBytes = new Option<int>("--payload-bytes") { Description = "Approximate JSON payload size", DefaultValueFactory = _ => 1024 };
        var ns = new Option<string>("--namespace") { Description = "Bagheera namespace of the envelopes", DefaultValueFactory = _ => "telemetry" };
        var seed = new Option<int>("--seed") { Description = "Seed for reproducible data", DefaultValueFactory = _ => 42 };
        var command = new Command("produce", """
            Write sample telemetry-like Bagheera envelopes (keyed by document id) to a topic.

            Example:
              replay produce -b 127.0.0.1:9092 -t telemetry --count 10000 --delete-ratio 0.02
            """);
        foreach (var o in new Option[] { bootstrap, topic, count, deleteRatio, payloadBytes, ns, seed }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            var n = parse.GetValue(count);
            var ratio = parse.GetValue(deleteRatio);
            if (n < 0 || ratio is < 0 or > 1)
            {
                Console.Error.WriteLine("replay produce: --count must be >= 0 and --delete-ratio in [0, 1]");
                return Cli.ExitCodes.Usage;
            }
            var records = SampleData.Generate(n, ratio, parse.GetValue(payloadBytes), parse.GetValue(ns)!, parse.GetValue(seed)).ToList();
            SampleData.Produce(parse.GetValue(bootstrap)!, parse.GetValue(topic)!, records);
            Console.Out.WriteLine($"produced {records.Count} envelopes ({records.Count(r => r.Operation.IsDelete)} deletes) to {parse.GetValue(topic)}");
            return 0;
        });
        return command;
    }
}
