// What Ctrl+C and SIGTERM mean, the same for every command: the first stops the command in
// order (what "in order" means is the command's to say), the second exits at once with 130.
using System.CommandLine;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Replay.Host.Cli;

public static class Signals
{
    sealed record Meaning(string Stopping, string? LeftBehind);
    static readonly ConditionalWeakTable<Command, Meaning> Meanings = new();

    /// <summary>Says what a first signal does for <paramref name="command"/> ("finishing in-flight
    /// requests, then committing") and what a second one leaves behind.</summary>
    public static T Stops<T>(T command, string stopping, string? leftBehind = null) where T : Command
    {
        Meanings.AddOrUpdate(command, new Meaning(stopping, leftBehind));
        return command;
    }

    /// <summary>Cancels <paramref name="stop"/> on the first SIGINT/SIGTERM, exits 130 on the second.</summary>
    public static IDisposable Handle(Command command, string name, CancellationTokenSource stop)
    {
        var meaning = Meanings.TryGetValue(command, out var m) ? m : new Meaning("stopping", null);
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            if (stop.IsCancellationRequested)
            {
                Console.Error.WriteLine($"{name}: second signal, exiting now{(meaning.LeftBehind is { } left ? "; " + left : "")}");
                Console.Error.Flush();
                Environment.Exit(ExitCodes.Interrupted);
            }
            Console.Error.WriteLine($"{name}: {meaning.Stopping} (signal again to stop at once)");
            stop.Cancel();
        }
        return new Registrations(
            PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal),
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal));
    }

    sealed class Registrations(params IDisposable[] all) : IDisposable
    {
        public void Dispose() { foreach (var r in all) r.Dispose(); }
    }
}
