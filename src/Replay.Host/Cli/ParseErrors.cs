// What a bad command line is told: System.CommandLine's parse errors, rephrased where an
// operator needs more — the flag or command nearest to a typo, the words a boolean flag takes,
// the commands there are — one line each.
using System.CommandLine;
using System.Text.RegularExpressions;

namespace Replay.Host.Cli;

public static partial class ParseErrors
{
    [GeneratedRegex(@"^Unrecognized command or argument '(?<token>.*)'\.?$", RegexOptions.Singleline)]
    private static partial Regex Unrecognized();
    [GeneratedRegex(@"^Option '(?<flag>.*)' is required\.?$")]
    private static partial Regex Required();

    public static List<string> Describe(ParseResult parse, IReadOnlyList<string> args)
    {
        var command = parse.CommandResult.Command;
        var lines = new List<string>();
        var unrecognized = false;
        string? previous = null;
        foreach (var error in parse.Errors)
        {
            if (Unrecognized().Match(error.Message) is { Success: true } m)
            {
                unrecognized = true;
                var token = m.Groups["token"].Value;
                // The value of a flag that was itself unknown says nothing new.
                var at = IndexOf(args, token);
                var afterUnknown = previous is not null && at > 0 && args[at - 1] == previous && previous.StartsWith('-');
                if (!afterUnknown) lines.Add(Unknown(command, token, args));
                previous = token;
            }
            else if (error.Message.StartsWith("Required command was not provided", StringComparison.Ordinal))
                continue;
            else if (Required().Match(error.Message) is { Success: true } r)
                lines.Add($"{r.Groups["flag"].Value} is required");
            else lines.Add(error.Message.TrimEnd('.'));
        }
        if (!unrecognized && parse.Errors.Any(e => e.Message.StartsWith("Required command", StringComparison.Ordinal)))
            lines.Add($"which command? {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}");
        return lines.Distinct().ToList();
    }

    static string Unknown(Command command, string token, IReadOnlyList<string> args)
    {
        if (token.StartsWith('-'))
        {
            var flags = Options(command).SelectMany(o => o.Aliases.Append(o.Name)).Where(n => n.StartsWith('-')).ToList();
            var typed = token.Split('=')[0];
            var nearest = Suggest.Nearest(typed, flags);
            var starting = flags.Where(f => f.StartsWith("--") && f.StartsWith(typed, StringComparison.Ordinal)).Order().ToList();
            return nearest is not null ? $"unknown flag '{token}'; did you mean {nearest}?"
                : starting.Count > 1 && typed.Length > 3 ? $"unknown flag '{token}'; did you mean {string.Join(" or ", starting.Take(4))}?"
                : $"unknown flag '{token}' ('--help' lists the flags)";
        }
        var at = IndexOf(args, token);
        if (at > 0 && Options(command).FirstOrDefault(o => o.Name == args[at - 1] || o.Aliases.Contains(args[at - 1])) is Option<bool> flag)
            return $"{flag.Name} '{token}': write true or false (yes/no and on/off work too)";
        if (command.Subcommands.Count > 0)
        {
            var nearest = Suggest.Nearest(token, command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name));
            return nearest is null
                ? $"unknown command '{token}'; the commands are {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}"
                : $"unknown command '{token}'; did you mean {nearest}?";
        }
        return $"unexpected '{token}': every value follows the flag it belongs to (e.g. --dest URL)";
    }

    static int IndexOf(IReadOnlyList<string> args, string token)
    {
        for (var i = 0; i < args.Count; i++)
            if (args[i] == token) return i;
        return -1;
    }

    static IEnumerable<Option> Options(Command command)
    {
        foreach (var o in command.Options) yield return o;
        for (var parent = command.Parents.OfType<Command>().FirstOrDefault(); parent is not null; parent = parent.Parents.OfType<Command>().FirstOrDefault())
            foreach (var o in parent.Options.Where(o => o.Recursive)) yield return o;
    }
}
