// Where this run's dead letters go, from --dead-letter, --dead-letter-topic and --state-dir.
// No dead letter is lost by default: without either flag they go to the group's file in the
// state directory. Printing them and keeping nothing takes an explicit --dead-letter - (or
// stderr). Resolved once, so that the sinks and the start banner say the same thing.
using Replay.Host.Security;

namespace Replay.Host.Delivery;

public sealed record DeadLetterChoice
{
    /// <summary>--dead-letter values that ask for the log instead of a file.</summary>
    public static readonly IReadOnlyList<string> LogWords = ["-", "stderr"];

    /// <summary>The JSON-lines file, when there is one.</summary>
    public string? File { get; init; }
    /// <summary>True when <see cref="File"/> is the group's default, not named by --dead-letter.</summary>
    public bool IsDefaultFile { get; init; }
    public string? Topic { get; init; }
    /// <summary>Printed on the log and kept nowhere (--dead-letter -).</summary>
    public bool ToLog { get; init; }

    /// <param name="file">--dead-letter: a path, '-' / 'stderr', or null.</param>
    /// <param name="group">The consumer group; null when the run has none (redrive of a file).</param>
    /// <param name="useDefault">Whether a run without flags keeps its dead letters in the default
    /// file (not a dry run, which writes nothing; not a redrive of a file, which still holds them).</param>
    public static Result<DeadLetterChoice> Resolve(string? file, string? topic, string? stateDir, string? group, bool useDefault,
        Func<string, string?> environment)
    {
        if (file is not null && file.Trim().Length == 0)
            return Result<DeadLetterChoice>.Fail("--dead-letter is empty: name a file, or '-' to print dead letters instead of keeping them");
        if (topic is not null && topic.Trim().Length == 0)
            return Result<DeadLetterChoice>.Fail("--dead-letter-topic is empty: name a topic");
        var toLog = file is not null && LogWords.Contains(file, StringComparer.OrdinalIgnoreCase);
        if (toLog && topic is not null)
            return Result<DeadLetterChoice>.Fail($"--dead-letter {file} prints dead letters instead of keeping them, but --dead-letter-topic {topic} keeps them: drop one");
        if (toLog) return Result<DeadLetterChoice>.Ok(new DeadLetterChoice { ToLog = true });
        if (file is not null || topic is not null)
            return Result<DeadLetterChoice>.Ok(new DeadLetterChoice { File = file is null ? null : Path.GetFullPath(file), Topic = topic });
        if (!useDefault || group is null)
            return Result<DeadLetterChoice>.Ok(new DeadLetterChoice { ToLog = true });
        var state = StateDirectory.Resolve(stateDir, environment);
        if (!state.IsOk) return Result<DeadLetterChoice>.Fail(state.Error!);
        return Result<DeadLetterChoice>.Ok(new DeadLetterChoice
        {
            File = StateDirectory.DeadLetterFile(state.Value.Path, group),
            IsDefaultFile = true,
        });
    }

    /// <summary>Opens the sinks, redacting secrets before anything is written; a file that cannot be
    /// created or written is a message (exit 2), never a silent fallback to the log.</summary>
    public Result<IDeadLetterSink> Open(IReadOnlyDictionary<string, string> kafka, Secrets secrets, TextWriter log)
    {
        var sinks = new List<IDeadLetterSink>();
        if (File is { } path)
        {
            try { sinks.Add(new DeadLetterFile(path)); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
            {
                var how = IsDefaultFile
                    ? "pass --state-dir DIR that this user can write (or --dead-letter FILE)"
                    : "pass --dead-letter FILE in a directory this user can write";
                return Result<IDeadLetterSink>.Fail($"cannot write the dead-letter file {path}: {e.Message}; {how}");
            }
        }
        if (Topic is { } topic) sinks.Add(new DeadLetterTopic(kafka, topic));
        IDeadLetterSink sink = sinks.Count switch
        {
            0 => new DeadLetterLog(log),
            1 => sinks[0],
            _ => new DeadLetterFanOut(sinks),
        };
        return Result<IDeadLetterSink>.Ok(new RedactingDeadLetters(sink, secrets));
    }

    /// <summary>Where they go, for the start banner ("file PATH", "topic T"); empty: the log.</summary>
    public IReadOnlyList<string> Describe()
    {
        var places = new List<string>();
        if (File is { } file) places.Add(IsDefaultFile ? $"file {file} (the group's default; --dead-letter - prints them instead)" : $"file {file}");
        if (Topic is { } topic) places.Add($"topic {topic}");
        return places;
    }
}
