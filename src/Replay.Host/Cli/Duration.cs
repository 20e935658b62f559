using System.Globalization;

namespace Replay.Host.Cli;

/// <summary>Durations on the command line: 500ms, 30s, 5m, 2h, 1d; a bare number is seconds.</summary>
public static class Duration
{
    public static bool TryParse(string text, out TimeSpan value)
    {
        value = default;
        text = text.Trim();
        var units = new (string Suffix, double Seconds)[] { ("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400) };
        foreach (var (suffix, seconds) in units)
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)
                && double.TryParse(text[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= 0)
            {
                value = TimeSpan.FromSeconds(n * seconds);
                return true;
            }
        }
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var plain) && plain >= 0)
        {
            value = TimeSpan.FromSeconds(plain);
            return true;
        }
        return false;
    }

    public static System.CommandLine.Option<TimeSpan?> Option(string name, string description, TimeSpan? fallback = null)
    {
        var option = new System.CommandLine.Option<TimeSpan?>(name)
        {
            Description = description,
            CustomParser = result =>
            {
                var token = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                if (TryParse(token, out var ts)) return ts;
                result.AddError($"{name}: '{token}' is not a duration; write e.g. 500ms, 30s, 5m or 2h");
                return null;
            },
        };
        if (fallback is { } f) option.DefaultValueFactory = _ => f;
        return option;
    }
}
