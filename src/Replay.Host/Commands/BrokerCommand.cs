using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using Replay.Host.Cli;
using Replay.Host.Kafka;

namespace Replay.Host.Commands;

public static class BrokerCommand
{
    public static Command Create()
    {
        var topic = new Option<string?>("--topic", "-t") { Description = "Create this topic at start" };
        var partitions = new Option<int>("--partitions") { Description = "Partitions of --topic", DefaultValueFactory = _ => 4 };
        var brokers = new Option<int>("--brokers") { Description = "Brokers in the cluster", DefaultValueFactory = _ => 1 };
        var port = new Option<int?>("--port") { Description = "Listen on 127.0.0.1:PORT (brokers after the first on the ports after it), so the address stays the same across restarts; default: a free port" };
        var command = new Command("broker", "Run the embedded Kafka-protocol broker on 127.0.0.1 (for trying things and tests).");
        HelpText.Describe(command,
            details: """
                librdkafka's mock cluster. Prints one line, bootstrap.servers=HOST:PORT, once it accepts clients;
                runs until Ctrl+C. It keeps only ~5 MB / ~150k records per partition: a stage, not a store.
                """,
            examples: """
                  replay broker --topic telemetry --partitions 8
                  replay broker --topic telemetry --port 9092     # always bootstrap.servers=127.0.0.1:9092
                """);
        command.Options.Add(topic);
        command.Options.Add(partitions);
        command.Options.Add(brokers);
        command.Options.Add(port);
        command.SetAction(async (parse, cancel) =>
        {
            var count = parse.GetValue(brokers);
            if (count is < 1 or > 16) return Fail($"--brokers {count}: use 1 to 16");
            if (parse.GetValue(partitions) is < 1 or > 10_000) return Fail($"--partitions {parse.GetValue(partitions)}: use 1 to 10000");
            if (parse.GetValue(port) is { } p && (p < 1 || p + count - 1 > 65535)) return Fail($"--port {p}: use a port from 1 to {65536 - count}");

            using var cluster = new MockCluster(count);
            var forwarders = new List<PortForwarder>();
            try
            {
                var servers = cluster.BootstrapServers;
                if (parse.GetValue(port) is { } first)
                {
                    var listening = servers.Split(',').Select(IPEndPoint.Parse).ToList();
                    for (var i = 0; i < listening.Count; i++)
                    {
                        try { forwarders.Add(new PortForwarder(first + i, listening[i])); }
                        catch (SocketException e)
                        {
                            return Fail($"cannot listen on 127.0.0.1:{first + i}: {e.Message}; choose another --port, or leave it out for a free one");
                        }
                        cluster.Advertise(i + 1, "127.0.0.1", first + i);
                    }
                    servers = string.Join(',', forwarders.Select(f => $"127.0.0.1:{f.Port}"));
                }
                if (parse.GetValue(topic) is { } name)
                    cluster.CreateTopic(name, parse.GetValue(partitions));
                Console.Out.WriteLine($"bootstrap.servers={servers}");
                Console.Out.Flush();
                try { await Task.Delay(Timeout.Infinite, cancel); }
                catch (OperationCanceledException) { }
                return ExitCodes.Ok;
            }
            finally
            {
                foreach (var f in forwarders) await f.DisposeAsync();
            }
        });
        Signals.Stops(command, "stopping the broker; its topics and records go with it");
        return command;

        static int Fail(string message)
        {
            Console.Error.WriteLine($"replay broker: {message}");
            return ExitCodes.Usage;
        }
    }
}
