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
public sealed class DeadLetterFile : IDeadLetterSink
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
        var deadline = Environment.TickCount64 + (long)LockWait.TotalMilliseconds;
        while (true)
        {
            try
            {
                var stream = new FileStream(Path, options);
                if (created) DirectorySync.Sync(System.IO.Path.GetDirectoryName(Path));
                return stream;
            }
            catch (IOException e) when (HeldByAnother(e) && Environment.TickCount64 < deadline)
            {
                Thread.Sleep(2);
            }
            catch (IOException e) when (HeldByAnother(e))
            {
                throw new IOException($"{Path} stayed locked by another process for {LockWait.TotalSeconds:0} s", e);
            }
        }
    }

    /// <summary>The lock is held by another open of the file (EWOULDBLOCK from flock; a sharing violation on Windows).</summary>
    static bool HeldByAnother(IOException e) =>
        e.GetType() == typeof(IOException) && e.HResult is 11 /* Linux */ or 35 /* macOS, BSD */ or unchecked((int)0x80070020) /* Windows */;

    /// <summary>How much of the file one open reads: the writers appending to it wait for the
    /// shared lock at most as long as that takes (tens of milliseconds).</summary>
    const long SliceBytes = 16L << 20;
    /// <summary>A line longer than this is not a dead letter Replay wrote (payloads are at most 2 GiB
    /// by --max-payload-bytes, 8 MiB by default, and a line holds one in base64).</summary>
    const int MaxLineBytes = 1 << 30;

    /// <summary>Checks every line of the file up to its present end, in slices, keeping none: how many
    /// dead letters it holds and the byte where they end. A redrive reads no further, so dead letters
    /// appended meanwhile (its own, into the same file) are not sent again. Throws FormatException
    /// naming the line when one is not a dead letter that can be sent (its value missing or not
    /// base64 included), so that nothing is sent from a file that would stop half-way.</summary>
    public static (int Letters, long End) Survey(string path)
    {
        var letters = 0;
        var line = 0;
        long end = 0;
        while (true)
        {
            var from = end;
            try
            {
                foreach (var (letter, next) in Lines(path, from, long.MaxValue, SliceBytes))
                {
                    line++;
                    end = next;
                    if (letter is null) continue;
                    if (!Sendable(letter)) throw new FormatException($"line {line} is not a dead letter Replay can send (its value, or its key, is missing or not base64)");
                    letters++;
                }
            }
            catch (JsonException e)
            {
                throw new FormatException($"line {line + 1} is not a dead letter ({e.Message})", e);
            }
            if (end == from) return (letters, end);
        }
    }

    static bool Sendable(DeadLetter letter) =>
        letter.ValueBase64 is { } value && IsBase64(value) && (letter.KeyBase64 is null || IsBase64(letter.KeyBase64));

    static bool IsBase64(string text)
    {
        var bytes = text.Length / 4 * 3 + 3;
        var rented = System.Buffers.ArrayPool<byte>.Shared.Rent(bytes);
        try { return Convert.TryFromBase64String(text, rented, out _); }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(rented); }
    }

    /// <summary>The dead letters from byte <paramref name="from"/> on, short of <paramref name="end"/>:
    /// at most <paramref name="most"/>, and no more once <paramref name="bytes"/> of lines were read;
    /// and the byte where the next batch starts. The file is open (under a shared lock) only while a
    /// batch is read, so the writers appending dead letters to it wait milliseconds, not the whole redrive.</summary>
    public static (List<DeadLetter> Letters, long Next) ReadBatch(string path, long from, long end, int most, long bytes)
    {
        var batch = new List<DeadLetter>();
        var next = from;
        foreach (var (letter, after) in Lines(path, from, end, bytes))
        {
            if (letter is not null) batch.Add(letter);
            next = after;
            if (batch.Count >= most) break;
        }
        return (batch, next);
    }

    /// <summary>Each line from byte <paramref name="from"/> short of <paramref name="end"/>, parsed
    /// (null for a blank one), with the byte after it, until <paramref name="slice"/> bytes were read.
    /// A last line without its newline counts (an editor may have dropped it); a byte-order mark at
    /// the start is skipped.</summary>
    static IEnumerable<(DeadLetter? Letter, long Next)> Lines(string path, long from, long end, long slice)
    {
        using var stream = OpenToRead(path);
        stream.Seek(from, SeekOrigin.Begin);
        var buffer = new byte[64 * 1024];
        int start = 0, filled = 0;
        var position = from;
        var atEnd = false;
        while (position < end && position - from < slice)
        {
            var newline = buffer.AsSpan(start, filled - start).IndexOf((byte)'\n');
            if (newline < 0 && !atEnd)
            {
                if (start > 0)
                {
                    Buffer.BlockCopy(buffer, start, buffer, 0, filled - start);
                    filled -= start;
                    start = 0;
                }
                if (filled == buffer.Length)
                {
                    if (buffer.Length >= MaxLineBytes) throw new FormatException($"a line past byte {position} is longer than {MaxLineBytes >> 20} MiB");
                    Array.Resize(ref buffer, 2 * buffer.Length);
                }
                var read = stream.Read(buffer, filled, (int)Math.Min(buffer.Length - filled, end - position - filled + start));
                if (read == 0) atEnd = true;
                filled += read;
                continue;
            }
            // The last line, with no newline after it, ends where the file does.
            var length = newline >= 0 ? newline : filled - start;
            if (length == 0 && newline < 0) yield break;
            var line = Parse(buffer, start, length, position == 0);
            position += newline >= 0 ? length + 1 : length;
            start += newline >= 0 ? length + 1 : length;
            yield return (line, position);
        }
    }

    static DeadLetter? Parse(byte[] buffer, int start, int length, bool first)
    {
        var line = buffer.AsSpan(start, length);
        if (first && line.StartsWith("\uFEFF"u8)) line = line[3..];
        return line.Trim(" \t\r"u8).IsEmpty ? null : JsonSerializer.Deserialize(line, DeadLetterJson.Default.DeadLetter);
    }

    /// <summary>The file for reading, under a shared lock: a writer holding its exclusive lock for
    /// one entry (milliseconds) is waited for, as writers wait for each other.</summary>
    static FileStream OpenToRead(string path)
    {
        var deadline = Environment.TickCount64 + (long)LockWait.TotalMilliseconds;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
            }
            catch (IOException e) when (HeldByAnother(e) && Environment.TickCount64 < deadline)
            {
                Thread.Sleep(2);
            }
        }
    }

    public static IEnumerable<DeadLetter> Read(string path)
    {
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            var letter = JsonSerializer.Deserialize(line, DeadLetterJson.Default.DeadLetter);
            if (letter is not null) yield return letter;
        }
    }

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
