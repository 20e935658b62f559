using System.Globalization;

namespace Replay.Host.Cli;

/// <summary>Sizes on the command line: 1048576, 512KiB, 64MiB, 1GiB (powers of 1024) or
/// 500KB, 64MB (powers of 1000); case and a space before the unit do not matter.</summary>
public static class ByteSize
{
    static readonly (string Suffix, long Factor)[] Units =
    [
        ("KiB", 1L << 10), ("MiB", 1L << 20), ("GiB", 1L << 30), ("TiB", 1L << 40),
        ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
        ("B", 1),
    ];

    public const string Usage = "write bytes, or a size with a unit: 512KiB, 64MiB, 1GiB (or KB, MB, GB for powers of 1000)";

    public static bool TryParse(string text, out long bytes)
    {
        bytes = 0;
        text = text.Trim();
        var factor = 1L;
        foreach (var (suffix, f) in Units)
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                factor = f;
                text = text[..^suffix.Length].TrimEnd();
                break;
            }
        }
        if (!decimal.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n)) return false;
        var total = n * factor;
        if (total > long.MaxValue || total != decimal.Truncate(total)) return false;
        bytes = (long)total;
        return true;
    }

    /// <summary>64 MiB, 8 MiB, 1 KiB, 1000 B: the largest binary unit that divides the size exactly.</summary>
    public static string Format(long bytes)
    {
        foreach (var (suffix, factor) in new[] { ("TiB", 1L << 40), ("GiB", 1L << 30), ("MiB", 1L << 20), ("KiB", 1L << 10) })
            if (bytes != 0 && bytes % factor == 0) return $"{bytes / factor} {suffix}";
        return $"{bytes} B";
    }
}
