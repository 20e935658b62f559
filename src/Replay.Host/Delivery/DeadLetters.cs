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
public sealed class DeadLetterFile : IDeadLetterSink
{
    readonly FileStream _stream;
    readonly object _gate = new();

    public DeadLetterFile(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        _stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
    }

    public void Write(DeadLetter letter)
    {
        var line = JsonSerializer.SerializeToUtf8Bytes(letter, DeadLetterJson.Default.DeadLetter);
        lock (_gate)
        {
            _stream.Write(line);
            _stream.WriteByte((byte)'\n');
            _stream.Flush(flushToDisk: true);
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

    public void Dispose() => _stream.Dispose();
}

/// <summary>Without --dead-letter, each dead letter is one warning line on stderr.</summary>
public sealed class DeadLetterLog(TextWriter log) : IDeadLetterSink
{
    public void Write(DeadLetter letter)
    {
        lock (log)
            log.WriteLine($"dead letter: {letter.Topic}/{letter.Partition}/{letter.Offset} id={(letter.Id is null ? "-" : global::Replay.Core.Printable.show(letter.Id))}: {letter.Reason} (keep them with --dead-letter FILE)");
    }

    public void Dispose() { }
}

public sealed class DeadLetterFanOut(IReadOnlyList<IDeadLetterSink> sinks) : IDeadLetterSink
{
    public void Write(DeadLetter letter) { foreach (var s in sinks) s.Write(letter); }
    public void Dispose() { foreach (var s in sinks) s.Dispose(); }
}
