// From argv to an exit code, the same way for every command: Bagheera's shapes rewritten,
// flags parsed with messages an operator can act on (exit 2), --help rendered by HelpText,
// one stop token fed by Ctrl+C/SIGTERM, and no stack trace whatever escapes.
using System.CommandLine;

namespace Replay.Host.Cli;

public static class CommandLine
{
    public static async Task<int> RunAsync(RootCommand root, string[] args)
    {
        Flags.Apply(root);
        HelpText.Install(root);
        var commands = root.Subcommands.Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        var boolFlags = BoolFlags(root).ToHashSet(StringComparer.Ordinal);
        var normalized = BagheeraArgs.Normalize(args, commands, boolFlags.Contains);
        // No POSIX bundling: "-Dhttp.nonProxyHosts" must never read as -D -h ... (--delete and --help).
        var parse = root.Parse(normalized.Args, new ParserConfiguration { EnablePosixBundling = false });
        var command = parse.CommandResult.Command;
        var name = Name(command);
        var helping = parse.Action is HelpText.HelpAction;
        if (parse.Errors.Count > 0 && !helping)
        {
            foreach (var line in ParseErrors.Describe(parse, normalized.Args))
                Console.Error.WriteLine($"{name}: {line}");
            Console.Error.WriteLine($"Usage: {name} {(command.Subcommands.Count > 0 ? "<command> [options]" : "[options]")}   ('{name} --help' lists them, with examples)");
            return ExitCodes.Usage;
        }
        foreach (var note in normalized.Notes)
        {
            if (command.Name == "run" && !helping) StartupNotes.Add(note);
            else Console.Error.WriteLine($"{name}: {note}");
        }

        using var stop = new CancellationTokenSource();
        using var signals = Signals.Handle(command, name, stop);
        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false }, stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // A signal during start-up, before the command could stop in order: nothing was begun.
            return ExitCodes.Ok;
        }
        catch (Exception e)
        {
            var (message, code) = Failures.Describe(e);
            Console.Error.WriteLine($"{name}: {message}");
            return code;
        }
    }

    static string Name(Command command)
    {
        var names = new List<string>();
        for (Symbol? s = command; s is Command c; s = c.Parents.FirstOrDefault())
            names.Insert(0, c is RootCommand ? "replay" : c.Name);
        return string.Join(' ', names);
    }

    static IEnumerable<string> BoolFlags(Command command) =>
        command.Options.OfType<Option<bool>>().SelectMany(o => o.Aliases.Append(o.Name))
            .Concat(command.Subcommands.SelectMany(BoolFlags));
}
