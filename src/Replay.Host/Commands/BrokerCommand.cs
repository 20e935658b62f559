using System.CommandLine;
using Replay.Host.Kafka;

namespace Replay.Host.Commands;

public static class BrokerCommand
{
    public static Command Create()
    {
        var topic = new Option<string?>("--topic", "-t") { Description = "Create this topic at start" };
        var partitions = new Option<int>("--partitions") { Description = "Partitions of --topic", DefaultValueFactory = _ => 4 };
        var brokers = new Option<int>("--brokers") { Description = "Brokers in the cluster", DefaultValueFactory = _ => 1 };
        var command = new Command("broker", """
            Run the embedded Kafka-protocol broker (librdkafka's mock cluster) on 127.0.0.1.
            Prints one line, bootstrap.servers=HOST:PORT, once it accepts clients; runs until Ctrl+C.
            It keeps only ~5 MB / ~150k records per partition: for trying things and tests, not storage.

            Example:
              replay broker --topic telemetry --partitions 8
            """);
        command.Options.Add(topic);
        command.Options.Add(partitions);
        command.Options.Add(brokers);
        command.SetAction(async (parse, cancel) =>
        {
            using var cluster = new MockCluster(parse.GetValue(brokers));
            if (parse.GetValue(topic) is { } name)
                cluster.CreateTopic(name, parse.GetValue(partitions));
            Console.Out.WriteLine($"bootstrap.servers={cluster.BootstrapServers}");
            Console.Out.Flush();
            try { await Task.Delay(Timeout.Infinite, cancel); }
            catch (OperationCanceledException) { }
            return 0;
        });
        return command;
    }
}
