// What a sender keeps of the destination's answer beyond its status and Retry-After:
// dead letters and a responses log show what the destination said, a comparison
// compares it. Successes are the hot path, so by default nothing of a 2xx answer is
// kept (no allocation, no copy) and the first 4 KiB of any other answer are.
using System.Text;

namespace Replay.Host.Delivery;

/// <summary>How much of an answer to keep. An answer is kept in full (the headers below, the
/// start of its body, the body's length, and with <see cref="HashBeyond"/> the hash of a body
/// longer than what was kept) when its status class keeps body bytes or when hashing is asked
/// for; otherwise only its status, Retry-After and body length are. Bodies are kept as received:
/// chunked framing is the connection's and is removed, a content coding (gzip) is not decoded.</summary>
public sealed class ResponseCapture
{
    /// <summary>The most body bytes one answer may keep (64 MiB).</summary>
    public const int MaxBodyBytes = 64 << 20;

    /// <summary>Always kept with a full answer: what says what the body is, where it points, when to come back.</summary>
    public static IReadOnlyList<string> StandardHeaders { get; } =
        ["Content-Type", "Content-Encoding", "Content-Length", "Retry-After", "Location"];

    /// <summary>The body bytes people are shown of an answer: in dead letters and the responses log.</summary>
    public const int ExcerptBytes = 4096;

    /// <summary>Nothing of a 2xx answer, 4 KiB of the body of any other, no hash.</summary>
    public static ResponseCapture Default { get; } = new(0, ExcerptBytes, false);

    readonly string[] _spellings;
    readonly byte[][] _names;

    /// <param name="successBodyBytes">Body bytes kept for 2xx answers.</param>
    /// <param name="failureBodyBytes">Body bytes kept for every other answer.</param>
    /// <param name="hashBeyond">Hash (SHA-256) a body longer than what is kept, reading it to its end.</param>
    /// <param name="headers">Header names to keep besides <see cref="StandardHeaders"/> (a comparison chooses some).</param>
    public ResponseCapture(int successBodyBytes, int failureBodyBytes, bool hashBeyond, IEnumerable<string>? headers = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(successBodyBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(failureBodyBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(successBodyBytes, MaxBodyBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(failureBodyBytes, MaxBodyBytes);
        var extra = (headers ?? []).ToArray();
        if (extra.FirstOrDefault(name => name.Length == 0 || !name.All(c => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c))) is { } bad)
            throw new ArgumentException($"'{bad}' is not a header name", nameof(headers));
        SuccessBodyBytes = successBodyBytes;
        FailureBodyBytes = failureBodyBytes;
        HashBeyond = hashBeyond;
        Headers = extra;
        _spellings = StandardHeaders.Concat(extra).Distinct(StringComparer.OrdinalIgnoreCase).ToArray();
        _names = _spellings.Select(Encoding.ASCII.GetBytes).ToArray();
    }

    public int SuccessBodyBytes { get; }
    public int FailureBodyBytes { get; }
    public bool HashBeyond { get; }
    /// <summary>The header names kept besides <see cref="StandardHeaders"/>.</summary>
    public IReadOnlyList<string> Headers { get; }

    /// <summary>This capture, keeping at least <see cref="ExcerptBytes"/> of every answer's body,
    /// successes included: for the exchanges the responses log shows.</summary>
    public ResponseCapture WithExcerpts() =>
        SuccessBodyBytes >= ExcerptBytes && FailureBodyBytes >= ExcerptBytes
            ? this
            : new ResponseCapture(Math.Max(SuccessBodyBytes, ExcerptBytes), Math.Max(FailureBodyBytes, ExcerptBytes), HashBeyond, Headers);

    /// <summary>Body bytes kept for an answer with this status.</summary>
    public int BodyBytesFor(int status) => status is >= 200 and < 300 ? SuccessBodyBytes : FailureBodyBytes;

    /// <summary>True when an answer with this status is kept in full rather than as a status.</summary>
    public bool KeepsAnswer(int status) => HashBeyond || BodyBytesFor(status) > 0;

    /// <summary>The name under which a header is kept with a full answer, or null when it is not
    /// kept. Names are spelled as in <see cref="StandardHeaders"/> and <see cref="Headers"/>, not
    /// as the server cased them, so that both senders (HttpClient re-cases names it knows) and
    /// any two destinations report the same name.</summary>
    public string? KeptName(ReadOnlySpan<byte> name)
    {
        for (var i = 0; i < _names.Length; i++)
            if (Ascii.EqualsIgnoreCase(name, _names[i])) return _spellings[i];
        return null;
    }

    public string? KeptName(string name)
    {
        for (var i = 0; i < _names.Length; i++)
            if (Ascii.EqualsIgnoreCase(name, _names[i])) return _spellings[i];
        return null;
    }
}
