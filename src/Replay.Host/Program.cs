// replay: a Kafka replay consumer, the successor of Bagheera's KafkaReplayConsumer.
using System.CommandLine;
using System.Runtime.InteropServices;
using Replay.Host.Cli;
using Replay.Host.Commands;

// Replay pumps requests: running each socket completion on the thread that polled it, rather
// than waking a thread-pool thread for it, saves a thread switch per request (measured on 2
// cores: 22-26k -> 30-35k records/s). .NET reads this once, at the first socket; an operator's
// own setting wins. Nothing here blocks on a socket from such a continuation.
const string InlineCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
if (Environment.GetEnvironmentVariable(InlineCompletions) is null)
    Environment.SetEnvironmentVariable(InlineCompletions, "1");

var root = new RootCommand("""
    Replay production submissions from Kafka to a second HTTP server: sampled, routed by rules,
    in order per document, without taking or losing anything from production.

    Start here:
      replay demo                      # broker, data, replay and sink in one process
      replay run --help                # the main job, with Bagheera's flags
    """);
foreach (var command in Commands.All())
    root.Subcommands.Add(command);

var parse = root.Parse(BagheeraArgs.Normalize(args));
if (parse.Errors.Count > 0)
{
    foreach (var error in parse.Errors)
        Console.Error.WriteLine($"replay: {error.Message}");
    var path = new List<string>();
    for (var c = parse.CommandResult; c is not null; c = c.Parent as System.CommandLine.Parsing.CommandResult)
        path.Insert(0, c.Command is RootCommand ? "replay" : c.Command.Name);
    var usage = string.Join(' ', path);
    Console.Error.WriteLine($"Usage: {usage} {(path.Count > 1 ? "[options]" : "<command> [options]")}   ('{usage} --help' lists them, with examples)");
    return ExitCodes.Usage;
}

// The first Ctrl+C/SIGTERM drains and commits; a second one stops at once and
// leaves undelivered records uncommitted, to be read again next time.
using var stop = new CancellationTokenSource();
void OnSignal(PosixSignalContext context)
{
    context.Cancel = true;
    if (stop.IsCancellationRequested)
    {
        Console.Error.WriteLine("replay: second signal, exiting now; undelivered records stay uncommitted");
        Environment.Exit(ExitCodes.Interrupted);
    }
    Console.Error.WriteLine("replay: stopping: finishing in-flight requests, then committing (signal again to stop at once)");
    stop.Cancel();
}
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

return await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, stop.Token);
