// `--from`: where a replay starts reading a partition. Parsed once, against the
// clock of the moment the run starts, so that `-2h` means the same instant for
// every partition and every rebalance of this run.
using System.Globalization;
using System.Xml;
using Replay.Host.Cli;

namespace Replay.Host.Operating;

public enum StartKind
{
    /// <summary>The oldest record still on the topic.</summary>
    Earliest,
    /// <summary>Only records written after the partition is assigned.</summary>
    Latest,
    /// <summary>Only where the group left off; a partition without a commit is an error.</summary>
    Committed,
    /// <summary>The first record whose Kafka timestamp is at or after <see cref="StartPosition.Time"/>.</summary>
    Time,
}

/// <summary>A parsed <c>--from</c>. Committed offsets win over it unless <c>--reset</c> is given.</summary>
public sealed record StartPosition(StartKind Kind, DateTimeOffset? Time = null)
{
    public static readonly StartPosition Earliest = new(StartKind.Earliest);
    public static readonly StartPosition Latest = new(StartKind.Latest);
    public static readonly StartPosition Committed = new(StartKind.Committed);

    public static StartPosition At(DateTimeOffset time) => new(StartKind.Time, time);

    const string Usage = "use earliest, latest, committed, an ISO-8601 time (2024-05-01T10:00:00Z) or a duration back from now (-2h, -30m, -1d, -PT90M)";

    /// <summary>Parses the text of <c>--from</c>; relative durations count back from <paramref name="now"/>.</summary>
    public static Result<StartPosition> Parse(string text, DateTimeOffset now)
    {
        var trimmed = text.Trim();
        switch (trimmed.ToLowerInvariant())
        {
            case "earliest": return Result<StartPosition>.Ok(Earliest);
            case "latest": return Result<StartPosition>.Ok(Latest);
            case "committed": return Result<StartPosition>.Ok(Committed);
        }
        if (trimmed.StartsWith('-'))
        {
            if (!TryParseDuration(trimmed[1..], out var back) || back <= TimeSpan.Zero)
                return Result<StartPosition>.Fail($"--from '{text}': '{trimmed[1..]}' is not a duration; {Usage}");
            return Result<StartPosition>.Ok(At(now - back));
        }
        // Only ISO-8601 shapes: a culture's "5/1/2024" would be read differently on another machine.
        if (trimmed.Length < 10 || !char.IsAsciiDigit(trimmed[0]) || trimmed[4] != '-'
            || !DateTimeOffset.TryParse(trimmed, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time))
            return Result<StartPosition>.Fail($"--from '{text}': {Usage}");
        if (time > now)
            return Result<StartPosition>.Fail($"--from '{text}' is in the future (now is {now.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}); use --from latest to replay only new records");
        return Result<StartPosition>.Ok(At(time));
    }

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

    /// <summary>The librdkafka <c>auto.offset.reset</c> that matches this position, for partitions
    /// librdkafka positions by itself (and for a committed offset that has expired).</summary>
    public string AutoOffsetReset => Kind switch
    {
        StartKind.Latest => "latest",
        // librdkafka reports ERR__AUTO_OFFSET_RESET instead of guessing: the run stops with a clear message.
        StartKind.Committed => "error",
        // A time start resolves its own offsets; an expired commit falls back to the oldest record, losing nothing.
        _ => "earliest",
    };

    public override string ToString() => Kind == StartKind.Time
        ? Time!.Value.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture)
        : Kind.ToString().ToLowerInvariant();
}
