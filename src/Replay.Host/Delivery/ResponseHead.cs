// Parsing what an HTTP/1.1 server sends before and between body bytes: the status
// line and headers, and chunk-size lines. Every number read from the wire is bounded
// here, before any arithmetic sees it, and every violation of the framing is a
// PlainHttpException that says what came back. Synchronous and allocation-free for
// the common answer, so that the lean path stays lean and the tests can drive each
// rule from a table.
using System.Net.Http.Headers;
using System.Text;
using Replay.Core;

namespace Replay.Host.Delivery;

/// <summary>How the body of a response is delimited.</summary>
enum BodyFraming
{
    /// <summary>No body: 1xx, 204, 304 (and 101, after which the connection is not HTTP any more).</summary>
    None,
    ContentLength,
    Chunked,
    /// <summary>The body ends when the server closes the connection.</summary>
    UntilClose,
}

/// <summary>The parts of a response head that framing and the answer need.</summary>
/// <param name="ContentLength">The body's length with <see cref="BodyFraming.ContentLength"/>; -1 otherwise.</param>
/// <param name="Headers">The headers the capture keeps for this status, as received; null when none are kept.</param>
readonly record struct ResponseHead(
    int Status,
    bool KeepAlive,
    BodyFraming Framing,
    long ContentLength,
    RetryConditionHeaderValue? RetryAfter,
    List<KeyValuePair<string, string>>? Headers);

static class ResponseHeadParser
{
    /// <summary>No length read from the wire is believed above this (1 TiB): it bounds every
    /// sum and offset computed from one, far below where a long could overflow.</summary>
    public const long MaxBodyBytes = 1L << 40;

    /// <summary>Parses a response head: the bytes before the blank line that ends it (the
    /// "\r\n\r\n" excluded). <paramref name="capture"/> says which headers to keep.</summary>
    public static ResponseHead Parse(ReadOnlySpan<byte> head, ResponseCapture capture)
    {
        var lineEnd = head.IndexOf("\r\n"u8);
        var statusLine = lineEnd < 0 ? head : head[..lineEnd];
        var status = ParseStatusLine(statusLine);
        var keepAlive = statusLine[7] != (byte)'0';
        var keep = capture.KeepsAnswer(status);
        List<KeyValuePair<string, string>>? kept = null;
        long contentLength = -1;
        var transferEncoding = false;
        var chunked = false;
        var previousFrames = false;
        var previousKept = false;
        RetryConditionHeaderValue? retryAfter = null;

        var rest = lineEnd < 0 ? ReadOnlySpan<byte>.Empty : head[(lineEnd + 2)..];
        while (!rest.IsEmpty)
        {
            var end = rest.IndexOf("\r\n"u8);
            var line = end < 0 ? rest : rest[..end];
            rest = end < 0 ? ReadOnlySpan<byte>.Empty : rest[(end + 2)..];
            if (line.IsEmpty) throw Violation("the response head has an empty line inside it");
            if (line[0] is (byte)' ' or (byte)'\t')
            {
                // A folded line (obsolete) continues the previous header. Harmless for most,
                // but a folded framing header could make us and the server disagree on the body.
                if (previousFrames) throw Violation("a response header that frames the body (Content-Length, Transfer-Encoding) is folded over two lines");
                if (previousKept && kept is not null)
                {
                    var last = kept[^1];
                    kept[^1] = new(last.Key, last.Value + " " + Encoding.Latin1.GetString(line.Trim(" \t"u8)));
                }
                continue;
            }
            var colon = line.IndexOf((byte)':');
            if (colon <= 0) throw Violation($"a response header line has no name: '{Shown(line)}'");
            var name = line[..colon];
            if (!IsToken(name)) throw Violation($"a response header name is not a token: '{Shown(name)}'");
            var value = line[(colon + 1)..].Trim(" \t"u8);
            previousFrames = false;
            previousKept = false;
            if (Ascii.EqualsIgnoreCase(name, "Content-Length"u8))
            {
                previousFrames = true;
                contentLength = ParseContentLength(value, contentLength);
            }
            else if (Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8))
            {
                previousFrames = true;
                transferEncoding = true;
                // Only the last coding frames the body; with several headers, the last header's.
                var lastComma = value.LastIndexOf((byte)',');
                var last = value[(lastComma + 1)..].Trim(" \t"u8);
                if (last.IsEmpty) throw Violation($"the response's Transfer-Encoding '{Shown(value)}' names no coding last");
                chunked = Ascii.EqualsIgnoreCase(last, "chunked"u8);
            }
            else if (Ascii.EqualsIgnoreCase(name, "Connection"u8))
            {
                // Most servers send "Connection: keep-alive" on every response: read it in place.
                foreach (var range in value.Split((byte)','))
                {
                    var token = value[range].Trim(" \t"u8);
                    if (Ascii.EqualsIgnoreCase(token, "close"u8)) keepAlive = false;
                    else if (Ascii.EqualsIgnoreCase(token, "keep-alive"u8)) keepAlive = true;
                }
            }
            else if (Ascii.EqualsIgnoreCase(name, "Retry-After"u8)
                     && RetryConditionHeaderValue.TryParse(Encoding.Latin1.GetString(value), out var parsed))
                retryAfter = parsed;
            if (keep && capture.KeptName(name) is { } keptName)
            {
                (kept ??= []).Add(new(keptName, Encoding.Latin1.GetString(value)));
                previousKept = true;
            }
        }

        BodyFraming framing;
        if (status is < 200 or 204 or 304) framing = BodyFraming.None;
        else if (transferEncoding)
        {
            framing = chunked ? BodyFraming.Chunked : BodyFraming.UntilClose;
            // Both headers at once is how responses are smuggled: the coding wins (RFC 9112
            // 6.3), and the connection is not trusted with another request.
            if (contentLength >= 0 || !chunked) keepAlive = false;
        }
        else if (contentLength >= 0) framing = BodyFraming.ContentLength;
        else
        {
            framing = BodyFraming.UntilClose;
            keepAlive = false;
        }
        return new ResponseHead(status, keepAlive, framing, framing == BodyFraming.ContentLength ? contentLength : -1, retryAfter, kept);
    }

    /// <summary>"HTTP/1.1 201 Created": the version, a space, three digits, then an optional reason.</summary>
    static int ParseStatusLine(ReadOnlySpan<byte> line)
    {
        if (line.Length < 12 || !line.StartsWith("HTTP/1."u8) || !char.IsAsciiDigit((char)line[7]) || line[8] != (byte)' '
            || (line.Length > 12 && line[12] != (byte)' ')
            || !char.IsAsciiDigit((char)line[9]) || !char.IsAsciiDigit((char)line[10]) || !char.IsAsciiDigit((char)line[11])
            || line[9] == (byte)'0')
            throw Violation($"not an HTTP/1.x status line: '{Shown(line)}'");
        return (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    }

    /// <summary>A Content-Length value: digits only, or a list of equal ones ("42, 42", which RFC
    /// 9110 lets a recipient accept), agreeing with any earlier Content-Length (-1: none).</summary>
    static long ParseContentLength(ReadOnlySpan<byte> value, long earlier)
    {
        var length = earlier;
        foreach (var range in value.Split((byte)','))
        {
            var item = value[range].Trim(" \t"u8);
            if (!TryParseDecimal(item, out var parsed))
                throw Violation($"the response's Content-Length '{Shown(value)}' is not a number of bytes");
            if (parsed > MaxBodyBytes)
                throw Violation($"the response's Content-Length {Shown(item)} is over the limit of {MaxBodyBytes} bytes");
            if (length >= 0 && length != parsed)
                throw Violation($"the response has two different Content-Lengths ({length} and {parsed})");
            length = parsed;
        }
        return length;
    }

    /// <summary>1*DIGIT, read without overflow: more digits than a length can have fail.</summary>
    static bool TryParseDecimal(ReadOnlySpan<byte> digits, out long value)
    {
        value = 0;
        if (digits.IsEmpty) return false;
        foreach (var b in digits)
        {
            if (!char.IsAsciiDigit((char)b)) return false;
            // Beyond the limit already: no more multiplying, which could overflow.
            if (value <= MaxBodyBytes) value = value * 10 + (b - '0');
        }
        return true;
    }

    /// <summary>The size of the chunk announced by a chunk-size line (the CRLF excluded):
    /// hexadecimal digits, optional spaces, then optional extensions after ';'. A size above
    /// <see cref="MaxBodyBytes"/>, a sign, a 0x prefix or anything else is a violation.</summary>
    public static long ParseChunkSize(ReadOnlySpan<byte> line)
    {
        long size = 0;
        var digits = 0;
        while (digits < line.Length && char.IsAsciiHexDigit((char)line[digits]))
        {
            if (size > MaxBodyBytes)
                throw Violation($"the response's chunk size '{Shown(line)}' is over the limit of {MaxBodyBytes} bytes");
            size = size * 16 + HexValue(line[digits]);
            digits++;
        }
        if (size > MaxBodyBytes)
            throw Violation($"the response's chunk size '{Shown(line)}' is over the limit of {MaxBodyBytes} bytes");
        var after = line[digits..].TrimStart(" \t"u8);
        if (digits == 0 || !(after.IsEmpty || after[0] == (byte)';'))
            throw Violation($"a chunk size in the response is not a hexadecimal number: '{Shown(line)}'");
        return size;
    }

    static int HexValue(byte b) => b <= '9' ? b - '0' : (b | 0x20) - 'a' + 10;

    /// <summary>RFC 9110's token: what a header name may be made of.</summary>
    static bool IsToken(ReadOnlySpan<byte> name)
    {
        foreach (var b in name)
            if (!(char.IsAsciiLetterOrDigit((char)b) || "!#$%&'*+-.^_`|~"u8.Contains(b))) return false;
        return true;
    }

    static PlainHttpException Violation(string message) => new(message, nothingReceived: false);

    /// <summary>Up to 60 bytes of what came back, printable, for a message.</summary>
    internal static string Shown(ReadOnlySpan<byte> bytes) =>
        Printable.show(Encoding.Latin1.GetString(bytes[..Math.Min(60, bytes.Length)]));
}
