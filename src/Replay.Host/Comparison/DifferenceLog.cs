// differences.jsonl: one line for each record whose candidate answered otherwise
// than the primary (or whose answers could not be compared), written as the run
// goes so that `tail -f` and jq work on it mid-run. Everything in it came from
// servers or records, so it is redacted like dead letters (known secrets masked,
// Authorization-like header values hidden) and bodies are cut to an excerpt. A
// write that fails (a full disk) ends the file, not the run: the tally goes on
// counting and the problem is reported.
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Replay.Core;
using Replay.Host.Security;
using static Replay.Core.Outcome;

namespace Replay.Host.Comparison;

public sealed record DifferenceLine(
    [property: JsonPropertyName("replay_id")] string ReplayId,
    [property: JsonPropertyName("route")] string Route,
    [property: JsonPropertyName("request")] string Request,
    /// <summary>different, noisy or failed.</summary>
    [property: JsonPropertyName("verdict")] string Verdict,
    [property: JsonPropertyName("reason")] string? Reason,
    [property: JsonPropertyName("differences")] IReadOnlyList<DifferenceAt>? Differences,
    [property: JsonPropertyName("truncated")] bool? Truncated,
    [property: JsonPropertyName("primary")] AnswerExcerpt? Primary,
    [property: JsonPropertyName("secondary")] AnswerExcerpt? Secondary,
    [property: JsonPropertyName("candidate")] AnswerExcerpt? Candidate,
    [property: JsonPropertyName("time")] DateTimeOffset Time);

public sealed record DifferenceAt(
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("field")] string Field,
    [property: JsonPropertyName("change")] string Change,
    /// <summary>Primary and secondary differed at this field on this route, as far as known when written.</summary>
    [property: JsonPropertyName("noise")] bool Noise,
    [property: JsonPropertyName("primary")] string Primary,
    [property: JsonPropertyName("candidate")] string Candidate);

public sealed record AnswerExcerpt(
    [property: JsonPropertyName("status")] int Status,
    [property: JsonPropertyName("headers")] IReadOnlyDictionary<string, string?> Headers,
    /// <summary>The start of the body as UTF-8 text (invalid bytes shown as U+FFFD).</summary>
    [property: JsonPropertyName("body")] string Body,
    [property: JsonPropertyName("body_length")] long? BodyLength,
    [property: JsonPropertyName("body_sha256")] string? BodySha256);

[JsonSerializable(typeof(DifferenceLine))]
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class DifferenceJson : JsonSerializerContext;

/// <summary>Appends <see cref="DifferenceLine"/>s to a file, one JSON object a line, flushed per line.</summary>
public sealed class DifferenceLog : IDisposable
{
    readonly string _path;
    readonly Lock _gate = new();
    FileStream? _stream;

    /// <summary>Why the file stopped (a failed write), or null while it is fine.</summary>
    public string? Problem { get; private set; }

    DifferenceLog(string path, FileStream stream) => (_path, _stream) = (path, stream);

    /// <summary>Creates (or empties) the file; a file that cannot be opened is an error now, not later.</summary>
    public static Result<DifferenceLog> Create(string path)
    {
        try
        {
            return Result<DifferenceLog>.Ok(new DifferenceLog(path, new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read)));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Result<DifferenceLog>.Fail($"cannot write '{path}': {e.Message}");
        }
    }

    public void Write(DifferenceLine line)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(line, DifferenceJson.Default.DifferenceLine);
        lock (_gate)
        {
            if (_stream is null) return;
            try
            {
                _stream.Write(bytes);
                _stream.WriteByte((byte)'\n');
                _stream.Flush();
            }
            catch (IOException e)
            {
                Problem = $"writing '{_path}' failed, so it ends here (differences are still counted and reported): {e.Message}";
                Close();
            }
        }
    }

    void Close()
    {
        var stream = _stream;
        _stream = null;
        try { stream?.Dispose(); }
        catch (IOException) { /* the buffered bytes that failed once fail again; the problem is already known */ }
    }

    public void Dispose()
    {
        lock (_gate) Close();
    }

    /// <summary>An answer as differences.jsonl shows it: headers redacted, the body cut to
    /// <paramref name="excerptBytes"/> and known secrets masked in it.</summary>
    public static AnswerExcerpt Excerpt(Answer answer, int excerptBytes, Secrets secrets)
    {
        var headers = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in answer.Headers)
        {
            var key = Difference.wellFormed(name);
            var shown = SensitiveHeaders.Shown(name, Difference.wellFormed(value), secrets);
            headers[key] = headers.TryGetValue(key, out var earlier) ? $"{earlier}, {shown}" : shown;
        }
        var kept = answer.Body.AsSpan(0, Math.Min(answer.Body.Length, excerptBytes));
        return new AnswerExcerpt(
            answer.Status,
            headers,
            secrets.Redact(Encoding.UTF8.GetString(kept)),
            answer.BodyLength >= 0 ? answer.BodyLength : null,
            answer.BodyHash.Length > 0 ? Convert.ToHexStringLower(answer.BodyHash) : null);
    }
}
