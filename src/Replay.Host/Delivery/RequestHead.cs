// Writes an HTTP/1.1 request head into a byte buffer, for both lean-path connections
// (one request at a time, and pipelined). The body's framing and the credentials are the
// sender's, never a route's header.
using System.Text;
using Replay.Core;
using Replay.Host.Security;
using static Replay.Core.Pipeline;

namespace Replay.Host.Delivery;

static class RequestHead
{
    /// <summary>Writes the head of <paramref name="request"/> at <paramref name="offset"/>, growing
    /// <paramref name="buffer"/> when it is short (keeping the bytes before the offset); returns the
    /// head's length. <paramref name="contentLength"/> -1: no Content-Length header.</summary>
    public static int Write(ref byte[] buffer, int offset, Request request, string authority, BearerToken? token, int contentLength)
    {
        var method = MethodModule.name(request.Method);
        var target = request.Url.PathAndQuery;
        string? host = null;
        var size = method.Length + target.Length + authority.Length + (token?.HeaderLine.Length ?? 0) + 64;
        foreach (var (name, value) in request.Headers)
        {
            size += name.Length + value.Length + 4;
            if (name.Equals("Host", StringComparison.OrdinalIgnoreCase)) host = value;
        }
        if (offset + size > buffer.Length) Array.Resize(ref buffer, Math.Max(offset + size, 2 * buffer.Length));
        var span = buffer.AsSpan(offset);
        var n = 0;
        n += Encoding.ASCII.GetBytes(method, span[n..]);
        span[n++] = (byte)' ';
        n += Encoding.ASCII.GetBytes(target, span[n..]);
        n += Copy(" HTTP/1.1\r\nHost: "u8, span[n..]);
        // A route's own Host header replaces the URL's, as HttpClient does.
        n += Encoding.ASCII.GetBytes(host ?? authority, span[n..]);
        n += Copy("\r\n"u8, span[n..]);
        foreach (var (name, value) in request.Headers)
        {
            // Host was written above; the body's framing is the sender's, and so are the credentials when it has some.
            if (name.Equals("Host", StringComparison.OrdinalIgnoreCase) || HttpSender.FramesBody(name)
                || (token is not null && HttpSender.IsAuthorization(name))) continue;
            n += Encoding.ASCII.GetBytes(name, span[n..]);
            n += Copy(": "u8, span[n..]);
            n += Encoding.ASCII.GetBytes(value, span[n..]);
            n += Copy("\r\n"u8, span[n..]);
        }
        if (token is not null) n += Copy(token.HeaderLine, span[n..]);
        if (contentLength >= 0)
        {
            n += Copy("Content-Length: "u8, span[n..]);
            contentLength.TryFormat(span[n..], out var digits);
            n += digits;
            n += Copy("\r\n"u8, span[n..]);
        }
        n += Copy("\r\n"u8, span[n..]);
        return n;
    }

    /// <summary>The Content-Length to write: none for a DELETE without a body, as HttpClient sends it.</summary>
    public static int ContentLength(Request request) =>
        !request.Method.IsDelete || !request.Body.IsEmpty ? request.Body.Length : -1;

    static int Copy(ReadOnlySpan<byte> bytes, Span<byte> to)
    {
        bytes.CopyTo(to);
        return bytes.Length;
    }
}
