// A moment named on the command line (--from, --until): an ISO-8601 time, or a duration back
// from the moment the run starts. Only ISO-8601 shapes: a culture's "5/1/2024" would be read
// differently on another machine.
using System.Globalization;
using System.Xml;
using Replay.Host.Cli;

namespace Replay.Host.Operating;

public static class PointInTime
{
    /// <summary>The forms, for messages: what to write.</summary>
    public const string Forms = "an ISO-8601 time (2024-05-01T10:00:00Z; no offset means UTC) or a duration back from now (-2h, -30m, -1d, -PT90M)";

    /// <summary>Reads <paramref name="text"/> as a time, or as a duration back from <paramref name="now"/>;
    /// a failure names <paramref name="flag"/> and ends with <paramref name="usage"/>.</summary>
    public static Result<DateTimeOffset> Parse(string flag, string text, DateTimeOffset now, string usage)
    {
        var trimmed = text.Trim();
        if (trimmed.StartsWith('-'))
        {
            if (!TryParseDuration(trimmed[1..], out var back) || back <= TimeSpan.Zero)
                return Result<DateTimeOffset>.Fail($"{flag} '{text}': '{trimmed[1..]}' is not a duration; {usage}");
            return Result<DateTimeOffset>.Ok(now - back);
        }
        if (trimmed.Length < 10 || !char.IsAsciiDigit(trimmed[0]) || trimmed[4] != '-'
            || !DateTimeOffset.TryParse(trimmed, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time))
            return Result<DateTimeOffset>.Fail($"{flag} '{text}': {usage}");
        return Result<DateTimeOffset>.Ok(time);
    }

    /// <summary>Written back the way it is shown: UTC, to the millisecond.</summary>
    public static string Format(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);

    /// <summary>Our own duration style (2h, 30m, 1d) or ISO-8601's (PT2H, P1D).</summary>
    static bool TryParseDuration(string text, out TimeSpan value)
    {
        if (text.StartsWith('P') || text.StartsWith('p'))
        {
            try
            {
                value = XmlConvert.ToTimeSpan(text.ToUpperInvariant());
                return true;
            }
            catch (FormatException)
            {
                value = default;
                return false;
            }
        }
        return Duration.TryParse(text, out value);
    }
}
