// Conventions every flag of every command follows, applied once to the whole command tree,
// so that a flag added later gets them too: a value that does not parse is answered with the
// flag's name and what to write (never a .NET type name), sizes take units, and booleans
// accept true/false/yes/no/on/off. The help shows values the way they are written.
using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Runtime.CompilerServices;

namespace Replay.Host.Cli;

public static class Flags
{
    static readonly ConditionalWeakTable<Option, object> Sizes = new();

    /// <summary>Words a boolean flag's value may be written as.</summary>
    public static readonly IReadOnlyDictionary<string, string> BoolWords = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["true"] = "true", ["yes"] = "true", ["y"] = "true", ["on"] = "true", ["1"] = "true",
        ["false"] = "false", ["no"] = "false", ["n"] = "false", ["off"] = "false", ["0"] = "false",
    };

    /// <summary>A byte-size flag (64MiB, 8 MiB, 1048576); help shows its default as 64 MiB.</summary>
    public static Option<long> Size(string name, string description, long fallback, params string[] aliases)
    {
        var option = new Option<long>(name, aliases) { Description = description, HelpName = "size", DefaultValueFactory = _ => fallback };
        option.CustomParser = r => ParseSize(r, name, long.MaxValue) ?? 0;
        Sizes.Add(option, true);
        return option;
    }

    /// <summary>As <see cref="Size(string, string, long, string[])"/>, for sizes that must fit an int (up to 2 GiB).</summary>
    public static Option<int> Size32(string name, string description, int fallback, params string[] aliases)
    {
        var option = new Option<int>(name, aliases) { Description = description, HelpName = "size", DefaultValueFactory = _ => fallback };
        option.CustomParser = r => (int)(ParseSize(r, name, int.MaxValue) ?? 0);
        Sizes.Add(option, true);
        return option;
    }

    public static bool IsSize(Option option) => Sizes.TryGetValue(option, out _);

    static long? ParseSize(ArgumentResult r, string name, long max)
    {
        var token = Token(r);
        if (!ByteSize.TryParse(token, out var bytes))
        {
            r.AddError($"{name} '{token}': {ByteSize.Usage}");
            return null;
        }
        if (bytes > max)
        {
            r.AddError($"{name} '{token}': at most {ByteSize.Format(max + 1)}");
            return null;
        }
        return bytes;
    }

    /// <summary>Gives every option under <paramref name="root"/> the conventions above.</summary>
    public static void Apply(Command root)
    {
        foreach (var option in root.Options) Conform(option);
        foreach (var command in root.Subcommands) Apply(command);
    }

    static void Conform(Option option)
    {
        var name = option.Name;
        switch (option)
        {
            case Option<bool> b:
                // A boolean that defaults to true (--copy-keys, --delete) is turned off with a value; other
                // booleans are switches, though they take true/false too.
                if (b.HasDefaultValue && b.GetDefaultValue() is true && b.HelpName is null) b.HelpName = "true|false";
                break;
            case Option<int> o when o.CustomParser is null:
                o.CustomParser = r => Number(r, name, Int32, "a whole number") ?? 0;
                break;
            case Option<int?> o when o.CustomParser is null:
                o.CustomParser = r => Number(r, name, Int32, "a whole number");
                break;
            case Option<long> o when o.CustomParser is null:
                o.CustomParser = r => Number(r, name, Int64, "a whole number") ?? 0;
                break;
            case Option<long?> o when o.CustomParser is null:
                o.CustomParser = r => Number(r, name, Int64, "a whole number");
                break;
            case Option<double> o when o.CustomParser is null:
                o.CustomParser = r => Number(r, name, Decimal, "a number such as 0.25") ?? 0;
                break;
            case Option<double?> o when o.CustomParser is null:
                o.CustomParser = r => Number(r, name, Decimal, "a number such as 0.25");
                break;
        }
    }

    static int? Int32(string s) => int.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v : null;
    static long? Int64(string s) => long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v : null;

    static double? Decimal(string s) =>
        double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) ? v : null;

    static T? Number<T>(ArgumentResult r, string name, Func<string, T?> parse, string what) where T : struct
    {
        var token = Token(r);
        if (parse(token) is { } value) return value;
        r.AddError($"{name} '{token}': write {what}");
        return null;
    }

    static string Token(ArgumentResult r) => r.Tokens.Count > 0 ? r.Tokens[0].Value : "";

    /// <summary>How help shows an option's default, or null for none.</summary>
    public static string? DefaultText(Option option)
    {
        if (!option.HasDefaultValue) return null;
        return option.GetDefaultValue() switch
        {
            null => null,
            TimeSpan t => Duration.Format(t),
            long n when IsSize(option) => ByteSize.Format(n),
            int n when IsSize(option) => ByteSize.Format(n),
            bool b => b ? "true" : null,
            double d => d.ToString(CultureInfo.InvariantCulture),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            var v => v.ToString(),
        };
    }
}
