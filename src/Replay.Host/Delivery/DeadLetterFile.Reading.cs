// Reading a dead-letter file back (`replay redrive --file`, tests): a survey of the whole file
// first, then batches, each read with the file open under a shared lock only as long as that
// takes, so the writers appending to it (DeadLetterFile.Write) wait milliseconds at most.
using System.Text.Json;

namespace Replay.Host.Delivery;

public sealed partial class DeadLetterFile
{
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
    /// one entry is waited for, as writers wait for each other.</summary>
    static FileStream OpenToRead(string path) =>
        WaitingForLock(path, () => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0));

    public static IEnumerable<DeadLetter> Read(string path)
    {
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            var letter = JsonSerializer.Deserialize(line, DeadLetterJson.Default.DeadLetter);
            if (letter is not null) yield return letter;
        }
    }
}
