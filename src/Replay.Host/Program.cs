// replay: a Kafka replay consumer, the successor of Bagheera's KafkaReplayConsumer.
using System.CommandLine;
using Replay.Host.Cli;
using Replay.Host.Commands;

// Replay pumps requests: running each socket completion on the thread that polled it, rather
// than waking a thread-pool thread for it, saves a thread switch per request (measured on 2
// cores: 22-26k -> 30-35k records/s). .NET reads this once, at the first socket; an operator's
// own setting wins. Nothing here blocks on a socket from such a continuation.
const string InlineCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
if (Environment.GetEnvironmentVariable(InlineCompletions) is null)
    Environment.SetEnvironmentVariable(InlineCompletions, "1");

var root = new RootCommand("Replay production submissions from Kafka to a second HTTP server: sampled, routed by rules, in order per document, without taking or losing anything from production.");
HelpText.Describe(root, details: """
    Start here:
      replay demo                      # broker, data, replay and sink in one process
      replay run --help                # the main job, with Bagheera's flags
    """);
foreach (var command in Commands.All())
    root.Subcommands.Add(command);

return await CommandLine.RunAsync(root, args);
