// The paths a `body:` rule names fields by: `clientId`, `meta.ip`, `items[*].email`,
// `items[0].id` or `items.0.id`, `["odd.key"]`. Parsed the same way at `rules check`
// (string constants, so a typo fails at its YAML line) and when the rule runs.
using System.Globalization;
using System.Text;

namespace Replay.Host.Rules;

public enum StepKind
{
    /// <summary>An object member (`a`, `["a.b"]`).</summary>
    Name,
    /// <summary>An array element (`[3]`).</summary>
    Index,
    /// <summary>A dotted number (`items.0`): an element of an array, a member of an object, as
    /// `Json("a.0")` reads it.</summary>
    NameOrIndex,
    /// <summary>`[*]` or `.*`: every member or element there is.</summary>
    Any,
}

public readonly record struct PathStep(StepKind Kind, string Name, int Index)
{
    public override string ToString() => Kind switch
    {
        StepKind.Name => Name,
        StepKind.Index => $"[{Index}]",
        StepKind.NameOrIndex => Name,
        _ => "[*]",
    };
}

public sealed class JsonPath
{
    /// <summary>Paths longer than this are refused: no real field sits deeper than a parsed
    /// payload may (64 levels), and a path is written by a person.</summary>
    public const int MaxSteps = 64;

    public string Text { get; }
    public IReadOnlyList<PathStep> Steps { get; }
    public bool HasWildcard { get; }

    JsonPath(string text, List<PathStep> steps)
    {
        Text = text;
        Steps = steps;
        HasWildcard = steps.Exists(s => s.Kind == StepKind.Any);
    }

    /// <summary>The path, or an exception saying what is wrong with it.</summary>
    public static JsonPath Parse(string? text)
    {
        var (path, problem) = TryParse(text);
        return path ?? throw new JsonBodyException(problem!);
    }

    /// <summary>What is wrong with the path, or null when it is one.</summary>
    public static string? Problem(string text) => TryParse(text).Problem;

    /// <summary>The first <paramref name="count"/> steps as text, for messages.</summary>
    public string Prefix(int count)
    {
        var text = new StringBuilder();
        for (var i = 0; i < count; i++)
        {
            var step = Steps[i];
            if (i > 0 && step.Kind is StepKind.Name or StepKind.NameOrIndex) text.Append('.');
            text.Append(step.Kind == StepKind.Name && NeedsBrackets(step.Name) ? $"[\"{step.Name}\"]" : step.ToString());
        }
        return text.ToString();
    }

    static bool NeedsBrackets(string name) => name.AsSpan().IndexOfAny(".[]\"'") >= 0 || name == "*" || IsNumber(name);

    static (JsonPath? Path, string? Problem) TryParse(string? text)
    {
        if (string.IsNullOrEmpty(text)) return (null, "a JSON path is empty; name a field such as \"clientId\" or \"meta.ip\"");
        string Bad(string why) => $"\"{Core.Printable.showUpTo(200, text)}\" is not a JSON path: {why} (write e.g. meta.ip, items[*].email, items[0].id, [\"odd.key\"])";
        var steps = new List<PathStep>();
        var i = 0;
        var expectName = true; // at the start, and after a '.'
        while (i < text.Length)
        {
            if (text[i] == '[')
            {
                var close = text.IndexOf(']', i + 1);
                if (close < 0) return (null, Bad("a '[' is not closed"));
                var inside = text[(i + 1)..close];
                if (inside == "*") steps.Add(new PathStep(StepKind.Any, "", 0));
                else if (IsNumber(inside) && int.TryParse(inside, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
                    steps.Add(new PathStep(StepKind.Index, "", index));
                else if (inside.Length >= 2 && (inside[0] is '"' or '\'') && inside[^1] == inside[0] && inside.IndexOf(inside[0], 1) == inside.Length - 1)
                    steps.Add(new PathStep(StepKind.Name, inside[1..^1], 0));
                else return (null, Bad($"[{inside}] is neither [*], an index such as [0], nor a quoted name such as [\"a.b\"]"));
                i = close + 1;
                expectName = false;
            }
            else if (expectName)
            {
                var end = text.IndexOfAny(['.', '['], i);
                if (end < 0) end = text.Length;
                var name = text[i..end];
                if (name.Length == 0) return (null, Bad("it has an empty name (two dots, or a dot at an end)"));
                if (name.Contains(']')) return (null, Bad("a ']' without its '['"));
                steps.Add(name == "*" ? new PathStep(StepKind.Any, "", 0)
                    : IsNumber(name) ? new PathStep(StepKind.NameOrIndex, name, int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : -1)
                    : new PathStep(StepKind.Name, name, 0));
                i = end;
                expectName = false;
            }
            else if (text[i] == '.')
            {
                i++;
                if (i == text.Length) return (null, Bad("it ends with a dot"));
                if (text[i] == '[') return (null, Bad("a '[' follows a dot; write items[0], not items.[0]"));
                expectName = true;
            }
            else return (null, Bad($"'{text[i]}' cannot follow '{text[..i]}'; separate names with dots"));
            if (steps.Count > MaxSteps) return (null, Bad($"it is more than {MaxSteps} steps deep"));
        }
        return (new JsonPath(text, steps), null);
    }

    static bool IsNumber(string text) => text.Length > 0 && text.All(char.IsAsciiDigit);

    public override string ToString() => Text;
}
