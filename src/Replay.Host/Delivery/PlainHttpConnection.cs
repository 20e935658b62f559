// One keep-alive HTTP/1.1 connection over plain TCP, used one request at a time: the
// request head and a small body leave in one send, the response head is parsed from a
// reused buffer and its body is skipped (a replay only needs the status and
// Retry-After). This is the lean path for http:// destinations; see PlainHttp.
using System.Buffers.Text;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Replay.Core;
using static Replay.Core.Pipeline;

namespace Replay.Host.Delivery;

/// <summary>The response broke HTTP/1.1 framing, or the connection ended before it was complete.</summary>
sealed class PlainHttpException(string message, bool nothingReceived) : IOException(message)
{
    /// <summary>True when not one byte of the response arrived: on a reused connection that
    /// usually means the server had closed it while idle, and the request can go on a new one.</summary>
    public bool NothingReceived { get; } = nothingReceived;
}

/// <summary>The parts of a response that a replay acts on.</summary>
readonly record struct PlainResponse(int Status, RetryConditionHeaderValue? RetryAfter);

sealed class PlainHttpConnection : IDisposable
{
    const int BufferBytes = 16 * 1024;
    const int MaxHeadBytes = 64 * 1024;
    const int MaxLineBytes = 8 * 1024;
    /// <summary>Bodies up to this size are copied behind the head and sent with it in one call.</summary>
    const int CoalesceBodyBytes = 64 * 1024;

    static readonly byte[] HeadEnd = "\r\n\r\n"u8.ToArray();
    static readonly byte[] LineEnd = "\r\n"u8.ToArray();

    readonly Socket _socket;
    byte[] _out = new byte[BufferBytes];
    byte[] _in = new byte[BufferBytes];
    int _inStart, _inEnd;
    bool _receivedAny;

    PlainHttpConnection(Socket socket) => _socket = socket;

    CancellationTokenSource? _timeout;
    CancellationTokenRegistration _cancelled;

    public long CreatedAt { get; } = Environment.TickCount64;
    public long IdleSince { get; set; }
    /// <summary>False once the server said it will close, or the framing left the connection unusable.</summary>
    public bool Reusable { get; private set; } = true;

    public static async Task<PlainHttpConnection> ConnectAsync(string host, int port, CancellationToken cancel)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, cancel).ConfigureAwait(false);
            return new PlainHttpConnection(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends one request and reads its whole response. Transport failures throw
    /// (SocketException, PlainHttpException, OperationCanceledException); the connection
    /// must not be used again after any of them.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<PlainResponse> ExchangeAsync(Request request, string authority, CancellationToken cancel)
    {
        _receivedAny = false;
        var body = request.Body;
        var withLength = !request.Method.IsDelete || !body.IsEmpty;
        var headLength = WriteHead(request, authority, withLength ? body.Length : -1);
        try
        {
            if (body.Length <= CoalesceBodyBytes)
            {
                if (headLength + body.Length > _out.Length) Array.Resize(ref _out, headLength + body.Length);
                body.Span.CopyTo(_out.AsSpan(headLength));
                await _socket.SendAsync(_out.AsMemory(0, headLength + body.Length), SocketFlags.None, cancel).ConfigureAwait(false);
            }
            else
            {
                await _socket.SendAsync(_out.AsMemory(0, headLength), SocketFlags.None, cancel).ConfigureAwait(false);
                await _socket.SendAsync(body, SocketFlags.None, cancel).ConfigureAwait(false);
            }
        }
        catch (SocketException) when (!cancel.IsCancellationRequested)
        {
            // A server may answer before it has read the whole body (413 for a body too large)
            // and close: that answer, if it came, is the outcome, not the broken send.
            Reusable = false;
            try
            {
                return await ReadResponseAsync(cancel).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or IOException)
            {
            }
            throw;
        }
        return await ReadResponseAsync(cancel).ConfigureAwait(false);
    }

    int WriteHead(Request request, string authority, int contentLength)
    {
        var method = MethodModule.name(request.Method);
        var target = request.Url.PathAndQuery;
        string? host = null;
        var size = method.Length + target.Length + authority.Length + 64;
        foreach (var (name, value) in request.Headers)
        {
            size += name.Length + value.Length + 4;
            if (name.Equals("Host", StringComparison.OrdinalIgnoreCase)) host = value;
        }
        if (size > _out.Length) _out = new byte[Math.Max(size, 2 * _out.Length)];
        var span = _out.AsSpan();
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
            // Host was written above; the body's framing is the sender's.
            if (name.Equals("Host", StringComparison.OrdinalIgnoreCase) || HttpSender.FramesBody(name)) continue;
            n += Encoding.ASCII.GetBytes(name, span[n..]);
            n += Copy(": "u8, span[n..]);
            n += Encoding.ASCII.GetBytes(value, span[n..]);
            n += Copy("\r\n"u8, span[n..]);
        }
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

    static int Copy(ReadOnlySpan<byte> bytes, Span<byte> to)
    {
        bytes.CopyTo(to);
        return bytes.Length;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<PlainResponse> ReadResponseAsync(CancellationToken cancel)
    {
        while (true)
        {
            var headEnd = await FindAsync(HeadEnd, MaxHeadBytes, "response head", cancel).ConfigureAwait(false);
            var head = ParseHead(_in.AsSpan(_inStart, headEnd));
            _inStart += headEnd + 4;
            // Interim responses (100 Continue, 103 Early Hints) precede the real one.
            if (head.Status is >= 100 and < 200 && head.Status != 101) continue;
            if (!head.KeepAlive || head.Status == 101) Reusable = false;
            if (head.Status is 204 or 304 or 101) { }
            else if (head.Chunked) await SkipChunkedAsync(cancel).ConfigureAwait(false);
            else if (head.ContentLength >= 0) await SkipAsync(head.ContentLength, cancel).ConfigureAwait(false);
            else
            {
                // No length: the body ends when the server closes the connection.
                Reusable = false;
                while (await FillAsync(cancel).ConfigureAwait(false) > 0) _inStart = _inEnd;
            }
            return new PlainResponse(head.Status, head.RetryAfter);
        }
    }

    readonly record struct Head(int Status, bool KeepAlive, bool Chunked, long ContentLength, RetryConditionHeaderValue? RetryAfter);

    static Head ParseHead(ReadOnlySpan<byte> head)
    {
        var lineEnd = head.IndexOf("\r\n"u8);
        var statusLine = lineEnd < 0 ? head : head[..lineEnd];
        // "HTTP/1.1 201 Created": the version, a space, three digits, then an optional reason.
        if (statusLine.Length < 12 || !statusLine.StartsWith("HTTP/1."u8) || statusLine[8] != (byte)' '
            || (statusLine.Length > 12 && statusLine[12] != (byte)' ')
            || !Utf8Parser.TryParse(statusLine.Slice(9, 3), out int status, out var used) || used != 3 || status < 100)
            throw new PlainHttpException($"not an HTTP/1.x status line: '{Printable.show(Encoding.Latin1.GetString(statusLine[..Math.Min(60, statusLine.Length)]))}'", false);
        var keepAlive = statusLine[7] != (byte)'0';
        var chunked = false;
        long contentLength = -1;
        RetryConditionHeaderValue? retryAfter = null;
        var rest = lineEnd < 0 ? ReadOnlySpan<byte>.Empty : head[(lineEnd + 2)..];
        while (!rest.IsEmpty)
        {
            var end = rest.IndexOf("\r\n"u8);
            var line = end < 0 ? rest : rest[..end];
            rest = end < 0 ? ReadOnlySpan<byte>.Empty : rest[(end + 2)..];
            var colon = line.IndexOf((byte)':');
            if (colon <= 0) throw new PlainHttpException("a response header line has no name", false);
            var name = line[..colon];
            var value = line[(colon + 1)..].Trim(" \t"u8);
            if (Ascii.EqualsIgnoreCase(name, "Content-Length"u8))
            {
                if (!Utf8Parser.TryParse(value, out long length, out var taken) || taken != value.Length || length < 0
                    || (contentLength >= 0 && contentLength != length))
                    throw new PlainHttpException("the response's Content-Length is not one number", false);
                contentLength = length;
            }
            else if (Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8))
            {
                // Only the last coding frames the body; chunked must be last when present.
                var codings = value;
                var lastComma = codings.LastIndexOf((byte)',');
                chunked = Ascii.EqualsIgnoreCase(codings[(lastComma + 1)..].Trim(" \t"u8), "chunked"u8);
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
        }
        if (!chunked && contentLength < 0 && status is not (204 or 304) and >= 200)
            keepAlive = false;
        return new Head(status, keepAlive, chunked, chunked ? -1 : contentLength, retryAfter);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    async ValueTask SkipChunkedAsync(CancellationToken cancel)
    {
        while (true)
        {
            var lineEnd = await FindAsync(LineEnd, MaxLineBytes, "chunk size line", cancel).ConfigureAwait(false);
            var line = _in.AsSpan(_inStart, lineEnd);
            var extension = line.IndexOf((byte)';');
            var digits = (extension < 0 ? line : line[..extension]).Trim(" \t"u8);
            if (!Utf8Parser.TryParse(digits, out long size, out var used, 'x') || used != digits.Length || size < 0)
                throw new PlainHttpException("a chunk size in the response is not a hexadecimal number", false);
            _inStart += lineEnd + 2;
            if (size == 0)
            {
                // Trailer fields, if any, end with an empty line.
                while (true)
                {
                    var trailerEnd = await FindAsync(LineEnd, MaxLineBytes, "trailer line", cancel).ConfigureAwait(false);
                    _inStart += trailerEnd + 2;
                    if (trailerEnd == 0) return;
                }
            }
            await SkipAsync(size + 2, cancel).ConfigureAwait(false);
        }
    }

    /// <summary>Discards the next <paramref name="count"/> bytes of the response.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    async ValueTask SkipAsync(long count, CancellationToken cancel)
    {
        while (true)
        {
            var buffered = Math.Min(count, _inEnd - _inStart);
            _inStart += (int)buffered;
            count -= buffered;
            if (count == 0) return;
            if (await FillAsync(cancel).ConfigureAwait(false) == 0)
                throw new PlainHttpException("the connection closed in the middle of the response body", false);
        }
    }

    /// <summary>The offset (from the unread start) of <paramref name="delimiter"/>, reading more as needed.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<int> FindAsync(byte[] delimiter, int limit, string what, CancellationToken cancel)
    {
        var searched = 0;
        while (true)
        {
            var found = _in.AsSpan(_inStart + searched, _inEnd - _inStart - searched).IndexOf(delimiter);
            if (found >= 0) return searched + found;
            searched = Math.Max(0, _inEnd - _inStart - delimiter.Length + 1);
            if (_inEnd - _inStart >= limit) throw new PlainHttpException($"the {what} is longer than {limit / 1024} KB", false);
            if (await FillAsync(cancel).ConfigureAwait(false) == 0)
                throw new PlainHttpException(
                    _receivedAny ? $"the connection closed in the middle of the {what}" : "the connection closed before a response",
                    !_receivedAny);
        }
    }

    /// <summary>Reads whatever arrives next behind the unread bytes; 0 at the end of the stream.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<int> FillAsync(CancellationToken cancel)
    {
        if (_inStart == _inEnd) _inStart = _inEnd = 0;
        if (_inEnd == _in.Length)
        {
            var unread = _inEnd - _inStart;
            if (_inStart > 0) Buffer.BlockCopy(_in, _inStart, _in, 0, unread);
            else Array.Resize(ref _in, 2 * _in.Length);
            _inStart = 0;
            _inEnd = unread;
        }
        var read = await _socket.ReceiveAsync(_in.AsMemory(_inEnd), SocketFlags.None, cancel).ConfigureAwait(false);
        if (read > 0) _receivedAny = true;
        _inEnd += read;
        return read;
    }

    /// <summary>The token for the next exchange: it fires after <paramref name="timeout"/> or with
    /// <paramref name="cancel"/>. One source per connection, reset between requests, rather than a
    /// linked source and a timer per request.</summary>
    public CancellationToken Arm(TimeSpan timeout, CancellationToken cancel)
    {
        if (_timeout is null || !_timeout.TryReset())
        {
            _timeout?.Dispose();
            _timeout = new CancellationTokenSource();
        }
        _timeout.CancelAfter(timeout);
        if (cancel.CanBeCanceled)
            _cancelled = cancel.UnsafeRegister(static source => ((CancellationTokenSource)source!).Cancel(), _timeout);
        return _timeout.Token;
    }

    public void Disarm()
    {
        _cancelled.Dispose();
        _cancelled = default;
    }

    public void Dispose()
    {
        _socket.Dispose();
        _cancelled.Dispose();
        _timeout?.Dispose();
    }
}
