// `--from`: where a replay starts reading a partition. Parsed once, against the
// clock of the moment the run starts, so that `-2h` means the same instant for
// every partition and every rebalance of this run.

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

    const string Usage = "use earliest, latest, committed, " + PointInTime.Forms;

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
        var time = PointInTime.Parse("--from", text, now, Usage);
        if (!time.IsOk) return Result<StartPosition>.Fail(time.Error!);
        if (time.Value > now)
            return Result<StartPosition>.Fail($"--from '{text}' is in the future (now is {now.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}); use --from latest to replay only new records");
        return Result<StartPosition>.Ok(At(time.Value));
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

    public override string ToString() => Kind == StartKind.Time ? PointInTime.Format(Time!.Value) : Kind.ToString().ToLowerInvariant();
}
