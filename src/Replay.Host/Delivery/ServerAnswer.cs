// What a destination answered to one attempt, as people are shown it in dead letters
// and the responses log: the status, the headers the capture keeps (Content-Type,
// Retry-After, ...), the start of the body — as text when it is UTF-8, else base64 —
// with its whole length and whether it was cut; or, when no answer came, what happened
// instead. Everything in it came from a server, which may echo what it was sent, so it
// is shown only after Redacted: known secrets masked in header values and the body, and
// Authorization-like headers hidden.
using System.Text;
using System.Text.Json.Serialization;
using System.Text.Unicode;
using Replay.Core;
using Replay.Host.Security;
using static Replay.Core.Outcome;

namespace Replay.Host.Delivery;

public sealed record ServerAnswer
{
    /// <summary>The longest header value shown; a longer one is cut, with "…".</summary>
    public const int MaxHeaderChars = 1024;

    /// <summary><c>answered</c>, <c>timeout</c> or <c>unreachable</c>.</summary>
    [JsonPropertyName("outcome")] public required string Outcome { get; init; }
    [JsonPropertyName("status")] public int? Status { get; init; }
    /// <summary>Why no answer came (refused, reset, a response that broke HTTP), when one did not.</summary>
    [JsonPropertyName("error")] public string? Error { get; init; }
    /// <summary>The headers kept, one value per name (repeats joined with ", ").</summary>
    [JsonPropertyName("headers")] public IReadOnlyDictionary<string, string?>? Headers { get; init; }
    /// <summary>The start of the body, when it is UTF-8 text.</summary>
    [JsonPropertyName("body")] public string? Body { get; init; }
    /// <summary>The start of the body in base64, when it is not UTF-8 (binary, compressed).</summary>
    [JsonPropertyName("body_base64")] public string? BodyBase64 { get; init; }
    /// <summary>The whole body's length in bytes, when known.</summary>
    [JsonPropertyName("body_length")] public long? BodyLength { get; init; }
    /// <summary>True when the body shown is only the start of the body.</summary>
    [JsonPropertyName("body_truncated")] public bool? BodyTruncated { get; init; }

    /// <summary>The attempt as shown, its body cut to <paramref name="excerptBytes"/>; not redacted yet.</summary>
    public static ServerAnswer Of(Attempt attempt, int excerptBytes = ResponseCapture.ExcerptBytes)
    {
        if (attempt is not Attempt.Answered { Item: var answer })
            return new ServerAnswer { Outcome = ExchangeSample.outcome(attempt), Error = ExchangeSample.error(attempt) };
        var headers = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in answer.Headers)
        {
            var shown = value.Length > MaxHeaderChars ? value[..MaxHeaderChars] + "…" : value;
            headers[name] = headers.TryGetValue(name, out var earlier) ? $"{earlier}, {shown}" : shown;
        }
        var body = answer.Body.AsSpan(0, Math.Min(answer.Body.Length, excerptBytes));
        var length = answer.BodyLength >= 0 ? answer.BodyLength : (long?)null;
        // Cut when less is shown than was kept, or than the server sent.
        var truncated = body.Length < answer.Body.Length || (length is { } whole && whole > body.Length);
        return WithBody(new ServerAnswer
        {
            Outcome = ExchangeSample.outcome(attempt),
            Status = answer.Status,
            Headers = headers.Count == 0 ? null : headers,
            BodyLength = length,
            BodyTruncated = truncated,
        }, body, truncated);
    }

    /// <summary>The body bytes shown (decoded from base64 when it is not text).</summary>
    public byte[] BodyBytes() =>
        BodyBase64 is { } base64 ? Convert.FromBase64String(base64) : Body is { } text ? Encoding.UTF8.GetBytes(text) : [];

    /// <summary>The answer with known secrets masked in the error, header values and body (a
    /// secret's start that ends a cut body too), and Authorization-like header values hidden.</summary>
    public ServerAnswer Redacted(Secrets secrets)
    {
        var cut = BodyTruncated == true;
        return this with
        {
            Error = Error is null ? null : secrets.Redact(Error),
            Headers = Headers?.ToDictionary(h => h.Key, h => SensitiveHeaders.Shown(h.Key, h.Value, secrets), StringComparer.OrdinalIgnoreCase),
            Body = Body is null ? null : secrets.Redact(Body, cut),
            BodyBase64 = BodyBase64 is null ? null : Convert.ToBase64String(secrets.Redact(Convert.FromBase64String(BodyBase64), cut)),
        };
    }

    /// <summary>The answer with at most <paramref name="bytes"/> of its body (to bound a Kafka header).</summary>
    public ServerAnswer Cut(int bytes)
    {
        var body = BodyBytes();
        return body.Length <= bytes ? this : WithBody(this with { BodyTruncated = true }, body.AsSpan(0, bytes), truncated: true);
    }

    /// <summary>Sets the body as text when it is UTF-8 (a character cut in two at the end of a cut
    /// body is left out), otherwise as base64.</summary>
    static ServerAnswer WithBody(ServerAnswer answer, ReadOnlySpan<byte> body, bool truncated)
    {
        if (body.IsEmpty) return answer with { Body = null, BodyBase64 = null };
        var text = truncated ? WholeCharacters(body) : body;
        return Utf8.IsValid(text)
            ? answer with { Body = Encoding.UTF8.GetString(text), BodyBase64 = null }
            : answer with { Body = null, BodyBase64 = Convert.ToBase64String(body) };
    }

    /// <summary>The bytes without an incomplete UTF-8 sequence at their end (at most 3 bytes).</summary>
    static ReadOnlySpan<byte> WholeCharacters(ReadOnlySpan<byte> body)
    {
        for (var back = 1; back <= Math.Min(3, body.Length); back++)
        {
            var b = body[^back];
            if ((b & 0xC0) != 0x80)
            {
                // The lead byte of the last sequence: is the sequence complete?
                var needed = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
                return needed > back ? body[..^back] : body;
            }
        }
        return body;
    }
}
