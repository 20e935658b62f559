// The flags of `replay run` that say which records a run replays in time and at what pace:
// --until (where each partition ends) and --speed (the records' original spacing, faster, or as
// fast as the destination allows). Their meaning lives in the core (Lease, Pacing).
using System.CommandLine;
using Replay.Core;

namespace Replay.Host.Operating;

public static class WindowOptions
{
    public static readonly Option<string?> Until = new("--until")
    {
        HelpName = "time",
        Description = "Replay only records stamped before this time (ISO-8601, or -DURATION back from now like --from); each partition ends there, then commit and exit 0",
    };

    public static readonly Option<string> Speed = new("--speed")
    {
        HelpName = "factor|max",
        Description = "Pace by the records' timestamps: 1 keeps their original spacing, 10 is ten times faster; max sends as fast as the destination allows",
        DefaultValueFactory = _ => Pacing.describe(Pacing.Speed.Max),
    };

    public static IEnumerable<Option> All => [Until, Speed];

    /// <summary>What --until and --speed say.</summary>
    public sealed record Choices(DateTimeOffset? Until, Pacing.Speed Speed);

    /// <summary>Validates --until (against --from's <paramref name="start"/>) and --speed, or one clear message.</summary>
    public static Result<Choices> Read(ParseResult parse, StartPosition start, DateTimeOffset now)
    {
        DateTimeOffset? until = null;
        if (parse.GetValue(Until) is { } text)
        {
            var parsed = PointInTime.Parse("--until", text, now, "use " + PointInTime.Forms);
            if (!parsed.IsOk) return Result<Choices>.Fail(parsed.Error!);
            until = parsed.Value;
            if (start.Time is { } from && until <= from)
                return Result<Choices>.Fail($"--until {PointInTime.Format(until.Value)} is not after --from {PointInTime.Format(from)}: " +
                    "a window replays the records stamped from --from up to (not including) --until");
        }
        var speedText = parse.GetValue(Speed)!;
        var speed = Pacing.parse(speedText);
        if (speed.IsError) return Result<Choices>.Fail($"--speed '{speedText}': {speed.ErrorValue}");
        return Result<Choices>.Ok(new Choices(until, speed.ResultValue));
    }
}
