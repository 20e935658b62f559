using System.Globalization;

namespace Replay.Host.Cli;

/// <summary>Durations on the command line: 500ms, 30s, 5m, 2h, 1d; a bare number is seconds; hh:mm:ss too.</summary>
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
        // hh:mm:ss, as .NET prints a TimeSpan (and as older help showed defaults).
        return text.Contains(':') && TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out value) && value >= TimeSpan.Zero;
    }

    /// <summary>The way a duration is written on the command line: 500ms, 30s, 5m, 2h, 1d, 90s.</summary>
    public static string Format(TimeSpan value)
    {
        if (value == TimeSpan.Zero) return "0s";
        foreach (var (suffix, unit) in new[] { ("d", TimeSpan.FromDays(1)), ("h", TimeSpan.FromHours(1)), ("m", TimeSpan.FromMinutes(1)), ("s", TimeSpan.FromSeconds(1)) })
            if (value.Ticks % unit.Ticks == 0) return $"{value.Ticks / unit.Ticks}{suffix}";
        return $"{value.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture)}ms";
    }

    public static System.CommandLine.Option<TimeSpan?> Option(string name, string description, TimeSpan? fallback = null)
    {
        var option = new System.CommandLine.Option<TimeSpan?>(name)
        {
            Description = description,
            HelpName = "duration",
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
