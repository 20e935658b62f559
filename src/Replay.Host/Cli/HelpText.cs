// `--help`, rendered here rather than by System.CommandLine (whose help builder is not
// public in 2.0): the top level lists one line per command; a command's help adds its details
// and examples; defaults show as they are written (30s, 64 MiB, true), never as .NET values;
// lines fit the terminal.
using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Runtime.CompilerServices;
using System.Text;

namespace Replay.Host.Cli;

public static class HelpText
{
    sealed record Extra(string? Details, string? Examples);
    static readonly ConditionalWeakTable<Command, Extra> Extras = new();

    /// <summary>Text only this command's help shows, below its one-line description.</summary>
    public static T Describe<T>(T command, string? details = null, string? examples = null) where T : Command
    {
        Extras.AddOrUpdate(command, new Extra(details?.TrimEnd(), examples?.TrimEnd()));
        return command;
    }

    /// <summary>Makes every --help under <paramref name="root"/> print <see cref="Render"/>.</summary>
    public static void Install(RootCommand root)
    {
        foreach (var help in root.Options.OfType<HelpOption>())
            help.Action = new HelpAction();
    }

    public sealed class HelpAction : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parse)
        {
            var output = parse.InvocationConfiguration.Output;
            output.Write(Render(parse.CommandResult.Command, Width(output)));
            output.Flush();
            return ExitCodes.Ok;
        }
    }

    static int Width(TextWriter output)
    {
        if (output == Console.Out && !Console.IsOutputRedirected)
            return Math.Clamp(Terminal.Width() ?? 100, 40, 160);
        return 100;
    }

    public static string Render(Command command, int width = 100)
    {
        var text = new StringBuilder();
        var path = Path(command);
        var description = command.Description ?? "";
        text.AppendLine(description.Trim());
        if (Extras.TryGetValue(command, out var extra) && extra.Details is { Length: > 0 } details)
            text.AppendLine().AppendLine(details);
        text.AppendLine().AppendLine("Usage:");
        var arguments = string.Concat(command.Arguments.Where(a => !a.Hidden).Select(a => $" <{a.HelpName ?? a.Name}>"));
        text.AppendLine(command.Subcommands.Count > 0
            ? $"  {path}{arguments} <command> [options]"
            : $"  {path}{arguments} [options]");

        if (command.Subcommands.Count > 0)
        {
            text.AppendLine().AppendLine("Commands:");
            var visible = command.Subcommands.Where(c => !c.Hidden).ToList();
            var column = visible.Max(c => c.Name.Length) + 4;
            foreach (var sub in visible)
                Row(text, "  " + sub.Name, FirstLine(sub.Description), column, width);
        }

        var options = AllOptions(command).Where(o => !o.Hidden).ToList();
        if (options.Count > 0)
        {
            text.AppendLine().AppendLine("Options:");
            var rows = options.Select(o => (Left: "  " + Signature(o), Right: Explain(o))).ToList();
            var column = Math.Min(rows.Max(r => r.Left.Length) + 2, Math.Clamp(width * 2 / 5, 24, 40));
            foreach (var (left, right) in rows) Row(text, left, right, column, width);
        }

        if (extra?.Examples is { Length: > 0 } examples)
            text.AppendLine().AppendLine("Examples:").AppendLine(examples);
        if (command.Subcommands.Count > 0)
            text.AppendLine().AppendLine($"'{path} <command> --help' shows a command's flags and examples.");
        return text.ToString();
    }

    static string Path(Command command)
    {
        var names = new List<string>();
        for (Symbol? s = command; s is Command c; s = c.Parents.FirstOrDefault())
            names.Insert(0, c is RootCommand ? "replay" : c.Name);
        return string.Join(' ', names);
    }

    static IEnumerable<Option> AllOptions(Command command)
    {
        var own = command.Options.ToList();
        var inherited = new List<Option>();
        for (var parent = command.Parents.OfType<Command>().FirstOrDefault(); parent is not null; parent = parent.Parents.OfType<Command>().FirstOrDefault())
            inherited.AddRange(parent.Options.Where(o => o.Recursive && !own.Contains(o)));
        return own.Concat(inherited).Where(o => o is not VersionOption || command is RootCommand);
    }

    static string Signature(Option option)
    {
        var names = option.Aliases.Append(option.Name).Where(n => n.StartsWith('-')).Distinct().OrderBy(n => n.StartsWith("--") ? 1 : 0).ThenBy(n => n.Length);
        var value = option switch
        {
            _ when option.HelpName is { } h => $" <{h}>",
            Option<bool> => "",
            _ when option.Arity.MaximumNumberOfValues == 0 => "",
            _ => $" <{option.Name.TrimStart('-')}>",
        };
        return string.Join(", ", names) + value + (option.Required ? " (required)" : "");
    }

    static string Explain(Option option)
    {
        var text = option.Description ?? "";
        return Flags.DefaultText(option) is { } d ? $"{text} [default: {d}]" : text;
    }

    static string FirstLine(string? text) => (text ?? "").Trim().Split('\n')[0].Trim();

    /// <summary>A two-column row; the right column is wrapped at word boundaries to fit.</summary>
    static void Row(StringBuilder text, string left, string right, int column, int width)
    {
        var room = Math.Max(20, width - column);
        var lines = Wrap(right, room);
        var first = true;
        if (left.Length + 2 > column)
        {
            text.AppendLine(left);
            first = false;
        }
        foreach (var line in lines.DefaultIfEmpty(""))
        {
            text.Append((first ? left : "").PadRight(column)).AppendLine(line);
            first = false;
        }
    }

    static List<string> Wrap(string text, int width)
    {
        var lines = new List<string>();
        var line = new StringBuilder();
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                lines.Add(line.ToString());
                line.Clear();
            }
            if (line.Length > 0) line.Append(' ');
            line.Append(word);
        }
        if (line.Length > 0) lines.Add(line.ToString());
        return lines;
    }
}
