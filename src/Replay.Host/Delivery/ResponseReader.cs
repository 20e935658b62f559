// Reads one HTTP/1.1 response at a time from a byte source (a socket, or a test's
// script) through a buffer reused for the connection's life: interim responses, the
// head, then the body as its framing says, keeping what the capture asks for. It
// decides whether the connection may carry another request: not after "close", not
// after a body that ends with the connection, not after a body left unread, and not
// when bytes follow the response, since a server that sent something unrequested
// would otherwise answer the next request with it.
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Replay.Host.Delivery;

/// <summary>Where a <see cref="ResponseReader"/> gets its bytes.</summary>
interface IByteSource
{
    /// <summary>Reads what arrives next into <paramref name="into"/>; 0 at the end of the stream.</summary>
    ValueTask<int> ReceiveAsync(Memory<byte> into, CancellationToken cancel);

    /// <summary>Reads what arrives next, started before the request that asks for it is sent (see
    /// <see cref="ResponseReader.ReadAhead"/>). It has no token: closing the source ends it.</summary>
    ValueTask<int> ReceiveWhileIdleAsync(Memory<byte> into) => ReceiveAsync(into, CancellationToken.None);
}

/// <summary>A response as read: what the answer keeps, and whether the connection may be reused.</summary>
/// <param name="BodyLength">Body bytes received, or the announced length of a body not read to its end; -1 when unknown.</param>
/// <param name="Body">The kept start of the body; null when the answer is kept as a status only.</param>
readonly record struct PlainResponse(
    int Status,
    RetryConditionHeaderValue? RetryAfter,
    long BodyLength,
    List<KeyValuePair<string, string>>? Headers,
    byte[]? Body,
    byte[]? BodyHash,
    bool Reusable);

/// <param name="pipelined">Several requests are out at once, so bytes behind an answer are the next one's.</param>
sealed class ResponseReader(IByteSource source, bool pipelined = false)
{
    const int BufferBytes = 16 * 1024;
    const int MaxHeadBytes = 64 * 1024;
    const int MaxLineBytes = 8 * 1024;
    /// <summary>More interim (1xx) responses than this before the real one is a server looping.</summary>
    const int MaxInterimResponses = 16;
    /// <summary>How much of a body nobody wants is read to keep the connection (as HttpClient's
    /// MaxResponseDrainSize); a longer one is left unread and the connection closed.</summary>
    internal const int DrainBytes = 1 << 20;

    static readonly byte[] HeadEnd = "\r\n\r\n"u8.ToArray();
    static readonly byte[] LineEnd = "\r\n"u8.ToArray();

    byte[] _in = new byte[BufferBytes];
    int _inStart, _inEnd;
    bool _receivedAny;
    BodyCollector _body;

    /// <summary>The read of the next response, started while the connection was idle (see <see cref="ReadAhead"/>).</summary>
    ValueTask<int> _ahead;
    bool _readingAhead;

    /// <summary>Bytes received and not yet part of a response.</summary>
    public bool HasUnread => _inEnd > _inStart;

    /// <summary>Starts reading the next response before its request is sent. The read is the one
    /// the response needs anyway, posted earlier, so the source can watch for bytes nobody asked for
    /// while it is idle (PlainHttpConnection) without a system call per request. Only on a
    /// connection with nothing unread.</summary>
    public void ReadAhead()
    {
        _inStart = _inEnd = 0;
        _readingAhead = true;
        _ahead = source.ReceiveWhileIdleAsync(_in.AsMemory());
    }

    /// <summary>A read started ahead cannot be given the request's token; it ends when the source is closed.</summary>
    public bool IsReadingAhead => _readingAhead;

    /// <summary>Reads the next response, interim ones skipped. Throws PlainHttpException when the
    /// response breaks HTTP/1.1 framing or the stream ends before it is complete.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<PlainResponse> ReadAsync(ResponseCapture capture, CancellationToken cancel)
    {
        _receivedAny = _inEnd > _inStart;
        for (var interim = 0; ; interim++)
        {
            var headEnd = await FindAsync(HeadEnd, MaxHeadBytes, "response head", cancel).ConfigureAwait(false);
            var head = ResponseHeadParser.Parse(_in.AsSpan(_inStart, headEnd), capture);
            _inStart += headEnd + 4;
            // Interim responses (100 Continue, 103 Early Hints) precede the real one.
            if (head.Status is >= 100 and < 200 && head.Status != 101)
            {
                if (interim == MaxInterimResponses)
                    throw new PlainHttpException($"the server sent more than {MaxInterimResponses} interim (1xx) responses and no final one", false);
                continue;
            }
            return await ReadBodyAsync(head, capture, cancel).ConfigureAwait(false);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<PlainResponse> ReadBodyAsync(ResponseHead head, ResponseCapture capture, CancellationToken cancel)
    {
        var full = capture.KeepsAnswer(head.Status);
        var keep = capture.BodyBytesFor(head.Status);
        _body = new BodyCollector(full ? keep : 0, full && capture.HashBeyond, head.ContentLength);
        // What is read beyond the kept bytes when nothing asks for it: the drain allowance.
        var budget = full && capture.HashBeyond ? long.MaxValue : keep + (long)DrainBytes;
        var complete = true;
        var length = -1L;
        try
        {
            switch (head.Framing)
            {
                case BodyFraming.None:
                    length = 0;
                    break;
                case BodyFraming.ContentLength:
                    length = head.ContentLength;
                    // Longer than we would drain: take what is kept and leave the rest unread.
                    complete = head.ContentLength <= budget;
                    await ConsumeAsync(complete ? head.ContentLength : Math.Min(keep, head.ContentLength), cancel).ConfigureAwait(false);
                    break;
                case BodyFraming.Chunked:
                    complete = await ReadChunkedAsync(budget, cancel).ConfigureAwait(false);
                    if (complete) length = _body.Seen;
                    break;
                default:
                    complete = await ReadUntilCloseAsync(budget, cancel).ConfigureAwait(false);
                    if (complete) length = _body.Seen;
                    break;
            }
        }
        catch
        {
            _body.Abandon();
            throw;
        }
        var reusable = head.KeepAlive && complete && head.Status != 101 && (pipelined || !HasUnread);
        if (!full)
        {
            _body.Abandon();
            return new PlainResponse(head.Status, head.RetryAfter, length, null, null, null, reusable);
        }
        if (!complete) _body.Abandon();
        var (body, hash) = _body.Finish();
        return new PlainResponse(head.Status, head.RetryAfter, length, head.Headers ?? [], body, hash, reusable);
    }

    /// <summary>Reads chunks to the last one and its trailers; false when the body ran past
    /// <paramref name="budget"/> bytes and was left unread.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<bool> ReadChunkedAsync(long budget, CancellationToken cancel)
    {
        while (true)
        {
            var lineEnd = await FindAsync(LineEnd, MaxLineBytes, "chunk size line", cancel).ConfigureAwait(false);
            var size = ResponseHeadParser.ParseChunkSize(_in.AsSpan(_inStart, lineEnd));
            _inStart += lineEnd + 2;
            if (size == 0)
            {
                // Trailer fields, if any, end with an empty line; together no longer than a head.
                var trailers = 0;
                while (true)
                {
                    var trailerEnd = await FindAsync(LineEnd, MaxLineBytes, "trailer line", cancel).ConfigureAwait(false);
                    _inStart += trailerEnd + 2;
                    if (trailerEnd == 0) return true;
                    trailers += trailerEnd + 2;
                    if (trailers > MaxHeadBytes)
                        throw new PlainHttpException($"the response's trailers are longer than {MaxHeadBytes / 1024} KB", false);
                }
            }
            if (_body.Seen + size > ResponseHeadParser.MaxBodyBytes)
                throw new PlainHttpException($"the response's chunks add up to more than {ResponseHeadParser.MaxBodyBytes} bytes", false);
            var take = Math.Min(size, Math.Max(0, budget - _body.Seen));
            await ConsumeAsync(take, cancel).ConfigureAwait(false);
            if (take < size) return false;
            // The chunk's data ends with CRLF; anything else means we lost the framing.
            await FillToAsync(2, "chunk", cancel).ConfigureAwait(false);
            if (_in[_inStart] != (byte)'\r' || _in[_inStart + 1] != (byte)'\n')
                throw new PlainHttpException("a chunk of the response is longer than its size said (no CRLF after its data)", false);
            _inStart += 2;
        }
    }

    /// <summary>Reads to the end of the stream; false when it ran past <paramref name="budget"/> bytes first.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<bool> ReadUntilCloseAsync(long budget, CancellationToken cancel)
    {
        while (true)
        {
            if (_inEnd > _inStart)
            {
                var take = (int)Math.Min(_inEnd - _inStart, Math.Max(0, budget - _body.Seen));
                _body.Take(_in.AsSpan(_inStart, take));
                _inStart += take;
                if (_inEnd > _inStart) return false;
                if (_body.Seen >= budget) return false;
            }
            if (await FillAsync(cancel).ConfigureAwait(false) == 0) return true;
        }
    }

    /// <summary>Passes the next <paramref name="count"/> bytes of the body to the collector.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    async ValueTask ConsumeAsync(long count, CancellationToken cancel)
    {
        while (true)
        {
            var buffered = (int)Math.Min(count, _inEnd - _inStart);
            _body.Take(_in.AsSpan(_inStart, buffered));
            _inStart += buffered;
            count -= buffered;
            if (count == 0) return;
            if (await FillAsync(cancel).ConfigureAwait(false) == 0)
                throw new PlainHttpException("the connection closed in the middle of the response body", false);
        }
    }

    /// <summary>Reads until at least <paramref name="count"/> unread bytes are buffered.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    async ValueTask FillToAsync(int count, string what, CancellationToken cancel)
    {
        while (_inEnd - _inStart < count)
            if (await FillAsync(cancel).ConfigureAwait(false) == 0)
                throw new PlainHttpException($"the connection closed in the middle of a {what}", false);
    }

    /// <summary>The offset (from the unread start) of <paramref name="delimiter"/>, reading more as needed.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<int> FindAsync(byte[] delimiter, int limit, string what, CancellationToken cancel)
    {
        var searched = 0;
        while (true)
        {
            var found = _in.AsSpan(_inStart + searched, _inEnd - _inStart - searched).IndexOf(delimiter);
            if (found >= 0 && searched + found <= limit) return searched + found;
            if (_inEnd - _inStart > limit) throw new PlainHttpException($"the {what} is longer than {limit / 1024} KB", false);
            searched = Math.Max(0, _inEnd - _inStart - delimiter.Length + 1);
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
        int read;
        if (_readingAhead)
        {
            // Started on an empty buffer by ReadAhead, so its bytes land where this read's would.
            _readingAhead = false;
            try
            {
                read = await _ahead.ConfigureAwait(false);
                // The server's close can win the race with the close that a time-out or stop made.
                if (read == 0) cancel.ThrowIfCancellationRequested();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException && cancel.IsCancellationRequested)
            {
                // Closed by the request's time-out or the run's stop (PlainHttpConnection.Arm).
                throw new OperationCanceledException(cancel);
            }
        }
        else
            read = await source.ReceiveAsync(_in.AsMemory(_inEnd), cancel).ConfigureAwait(false);
        if (read > 0) _receivedAny = true;
        _inEnd += read;
        return read;
    }
}
