// Where records that can never be delivered go: a JSON-lines file and/or the
// operator's log. An entry is written and flushed before its record counts as
// finished, so a dead letter is never lost between the two.
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Replay.Host.Delivery;

public sealed record DeadLetter(
    [property: JsonPropertyName("topic")] string Topic,
    [property: JsonPropertyName("partition")] int Partition,
    [property: JsonPropertyName("offset")] long Offset,
    [property: JsonPropertyName("id")] string? Id,
    [property: JsonPropertyName("method")] string? Method,
    [property: JsonPropertyName("url")] string? Url,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("last_status")] int? LastStatus,
    [property: JsonPropertyName("attempts")] int Attempts,
    [property: JsonPropertyName("time")] DateTimeOffset Time,
    [property: JsonPropertyName("key")] string? KeyBase64,
    [property: JsonPropertyName("value")] string ValueBase64,
    [property: JsonPropertyName("headers")] IReadOnlyDictionary<string, string?>? Headers)
{
    /// <summary>Which of the run's destinations could not take it (named as in the metrics); null
    /// for a record refused before any destination was tried.</summary>
    [JsonPropertyName("destination")]
    public string? Destination { get; init; }

    /// <summary>Why, as one of a few classes (DeadLetterCause: permanent_status, poison, rule_error, ...),
    /// for filtering; absent in letters written before it existed.</summary>
    [JsonPropertyName("reason_class")]
    public string? ReasonClass { get; init; }

    /// <summary>What the destination answered to the last attempt — status, kept headers, the start
    /// of the body — or what happened instead (timeout, unreachable); null when nothing was sent.</summary>
    [JsonPropertyName("last_answer")]
    public ServerAnswer? LastAnswer { get; init; }

    /// <summary>The record as consumed — key, value and headers byte for byte — for sinks that
    /// keep it whole (the dead-letter topic); null for a letter read back from a file.</summary>
    [JsonIgnore]
    public OriginalRecord? Original { get; init; }
}

/// <summary>A consumed record's key, value and headers exactly as Kafka delivered them.</summary>
public sealed record OriginalRecord(byte[]? Key, ReadOnlyMemory<byte> Value, Confluent.Kafka.Headers? Headers);

[JsonSerializable(typeof(DeadLetter))]
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class DeadLetterJson : JsonSerializerContext;

public interface IDeadLetterSink : IDisposable
{
    /// <summary>Returns only once the entry is durable where it was sent.</summary>
    void Write(DeadLetter letter);
}

/// <summary>Appends dead letters as JSON lines, each on disk (fsync) before Write returns: the
/// record it stands for may be committed right after.</summary>
/// <remarks>
/// The file is opened for every entry, under an exclusive lock, at its end: several members of
/// one group on one host may share the file (their lines never interleave), and an operator may
/// move the file away or truncate it at any time (the next entry starts a new file at the path).
/// Opening costs little next to the fsync every entry needs anyway. A new file is created
/// readable by its owner only (dead letters are production data), and its directory is synced
/// so that the file itself survives a power cut, not only its contents.
/// </remarks>
public sealed partial class DeadLetterFile : IDeadLetterSink
{
    /// <summary>How long an entry waits for another process (a member of the same group) to
    /// finish its own; one entry takes milliseconds, so this means that process is stuck.</summary>
    static readonly TimeSpan LockWait = TimeSpan.FromSeconds(10);
    const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    readonly object _gate = new();

    public string Path { get; }

    /// <summary>Creates the file (and its directory) now, so that a place that cannot be written
    /// is an error at start rather than at the first dead letter.</summary>
    /// <exception cref="IOException">or <see cref="UnauthorizedAccessException"/>: not writable.</exception>
    public DeadLetterFile(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
        var dir = System.IO.Path.GetDirectoryName(Path);
        if (dir is not null)
        {
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(dir);
            else Directory.CreateDirectory(dir, OwnerOnly | UnixFileMode.UserExecute);
        }
        using var _ = Open();
    }

    public void Write(DeadLetter letter)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(letter, DeadLetterJson.Default.DeadLetter);
        var line = new byte[json.Length + 1];
        json.CopyTo(line, 0);
        line[^1] = (byte)'\n';
        lock (_gate)
        {
            using var stream = Open();
            // One write of the whole line, then to disk: a crash leaves the line whole or absent.
            stream.Write(line);
            stream.Flush(flushToDisk: true);
        }
    }

    /// <summary>The file, at its end, locked against other writers (flock); created if missing.</summary>
    FileStream Open()
    {
        var options = new FileStreamOptions
        {
            Mode = FileMode.Append,
            Access = FileAccess.Write,
            // FileShare.None takes an exclusive flock on Unix: the other members of the group on
            // this host wait for it. No buffer: a line goes out in one write.
            Share = FileShare.None,
            BufferSize = 0,
        };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = OwnerOnly;
        var created = !File.Exists(Path);
        var stream = WaitingForLock(Path, () => new FileStream(Path, options));
        if (created) DirectorySync.Sync(System.IO.Path.GetDirectoryName(Path));
        return stream;
    }

    /// <summary>Opens the file with <paramref name="open"/>, waiting while another process holds its
    /// lock (one entry takes milliseconds), for <see cref="LockWait"/> at most.</summary>
    static FileStream WaitingForLock(string path, Func<FileStream> open)
    {
        var deadline = Environment.TickCount64 + (long)LockWait.TotalMilliseconds;
        while (true)
        {
            try
            {
                return open();
            }
            catch (IOException e) when (HeldByAnother(e) && Environment.TickCount64 < deadline)
            {
                Thread.Sleep(2);
            }
            catch (IOException e) when (HeldByAnother(e))
            {
                throw new IOException($"{path} stayed locked by another process for {LockWait.TotalSeconds:0} s", e);
            }
        }
    }

    /// <summary>The lock is held by another open of the file (EWOULDBLOCK from flock; a sharing violation on Windows).</summary>
    static bool HeldByAnother(IOException e) =>
        e.GetType() == typeof(IOException) && e.HResult is 11 /* Linux */ or 35 /* macOS, BSD */ or unchecked((int)0x80070020) /* Windows */;

    public void Dispose() { }
}

/// <summary>With --dead-letter - (or stderr), each dead letter is one warning line on stderr, and kept nowhere.</summary>
public sealed class DeadLetterLog(TextWriter log) : IDeadLetterSink
{
    public void Write(DeadLetter letter)
    {
        lock (log)
            log.WriteLine($"dead letter: {letter.Topic}/{letter.Partition}/{letter.Offset} id={(letter.Id is null ? "-" : global::Replay.Core.Printable.show(letter.Id))}{(letter.Destination is { } d ? $" at {d}" : "")}: {letter.Reason} (printed, not kept: --dead-letter -)");
    }

    public void Dispose() { }
}

public sealed class DeadLetterFanOut(IReadOnlyList<IDeadLetterSink> sinks) : IDeadLetterSink
{
    public void Write(DeadLetter letter) { foreach (var s in sinks) s.Write(letter); }
    public void Dispose() { foreach (var s in sinks) s.Dispose(); }
}
