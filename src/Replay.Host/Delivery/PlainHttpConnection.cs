// One keep-alive HTTP/1.1 connection over plain TCP, used one request at a time: the
// request head and a small body leave in one send, and the response is read by a
// ResponseReader from a buffer reused for the connection's life. This is the lean
// path for http:// destinations; see PlainHttp.
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Replay.Core;
using Replay.Host.Security;
using static Replay.Core.Pipeline;

namespace Replay.Host.Delivery;

/// <summary>The response broke HTTP/1.1 framing, or the connection ended before it was complete.</summary>
sealed class PlainHttpException(string message, bool nothingReceived) : IOException(message)
{
    /// <summary>True when not one byte of the response arrived: on a reused connection that
    /// usually means the server had closed it while idle, and the request can go on a new one.</summary>
    public bool NothingReceived { get; } = nothingReceived;
}

sealed class PlainHttpConnection : IDisposable, IByteSource
{
    const int BufferBytes = 16 * 1024;
    /// <summary>Bodies up to this size are copied behind the head and sent with it in one call.</summary>
    const int CoalesceBodyBytes = 64 * 1024;

    readonly Socket _socket;
    readonly ResponseReader _reader;
    byte[] _out = new byte[BufferBytes];

    /// <param name="socket">Connected (PlainHttp.ConnectAsync); owned from now on.</param>
    internal PlainHttpConnection(Socket socket)
    {
        _socket = socket;
        _reader = new ResponseReader(this);
    }

    CancellationTokenSource? _timeout;
    CancellationTokenRegistration _cancelled;
    CancellationTokenRegistration _closeOnCancel;

    public long CreatedAt { get; } = Environment.TickCount64;
    public long IdleSince { get; set; }
    /// <summary>False once the server said it will close, or the framing left the connection unusable.</summary>
    public bool Reusable { get; private set; } = true;

    /// <summary>Sends one request and reads its whole response. Transport failures throw
    /// (SocketException, PlainHttpException, OperationCanceledException); the connection
    /// must not be used again after any of them.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<PlainResponse> ExchangeAsync(Request request, string authority, BearerToken? token, ResponseCapture capture,
        CancellationToken cancel)
    {
        var body = request.Body;
        var headLength = RequestHead.Write(ref _out, 0, request, authority, token, RequestHead.ContentLength(request));
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
                return await ReadResponseAsync(capture, cancel).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or IOException)
            {
            }
            throw;
        }
        return await ReadResponseAsync(capture, cancel).ConfigureAwait(false);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<PlainResponse> ReadResponseAsync(ResponseCapture capture, CancellationToken cancel)
    {
        var response = await _reader.ReadAsync(capture, cancel).ConfigureAwait(false);
        if (!response.Reusable) Reusable = false;
        return response;
    }

    /// <summary>Goes idle: the read of the next response starts now (ResponseReader.ReadAhead).
    /// If it ends at once (bytes already waiting, a closed socket), Reusable is false on return.</summary>
    public void Idle() => _reader.ReadAhead();

    /// <summary>Takes an idle connection for the next request: true when nothing arrived while it
    /// was idle. Bytes that arrive between requests were never asked for (a second answer to the
    /// last request, sent late) and would answer the next one; an end of stream means the server
    /// closed it. Either way the read started at <see cref="Idle"/> has already closed the connection,
    /// and it must not carry another request. Costs no system call (a poll per request cost 9% of the rate).
    /// "Arrived" means the read's completion has run: bytes that reached the kernel a moment before,
    /// while the completion waits for a thread, are taken for the next request's answer (as bytes that
    /// came just after a poll were); the real answer then follows it and closes the connection.</summary>
    public bool TryTake() => Reusable && Interlocked.CompareExchange(ref _watch, Busy, Watching) == Watching;

    const int Busy = 0, Watching = 1, Heard = 2;
    /// <summary>Busy while a request owns the connection; Watching while idle; Heard once the idle
    /// read ended first. Whichever of TryTake and the read moves it from Watching wins.</summary>
    int _watch;

    ValueTask<int> IByteSource.ReceiveAsync(Memory<byte> into, CancellationToken cancel) =>
        _socket.ReceiveAsync(into, SocketFlags.None, cancel);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<int> IByteSource.ReceiveWhileIdleAsync(Memory<byte> into)
    {
        Volatile.Write(ref _watch, Watching);
        int read;
        try
        {
            read = await _socket.ReceiveAsync(into, SocketFlags.None, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // While idle, whatever ended the read leaves the connection unfit for another request;
            // once a request owns it, the failure is that request's.
            if (!HeardWhileIdle()) throw;
            return 0;
        }
        HeardWhileIdle();
        return read;
    }

    /// <summary>Called when the idle read ends: if no request took the connection first, the server
    /// spoke out of turn or closed it, and the connection is closed at once.</summary>
    bool HeardWhileIdle()
    {
        if (Interlocked.CompareExchange(ref _watch, Heard, Watching) != Watching) return false;
        Reusable = false;
        _socket.Dispose();
        return true;
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
        // The read started while idle has no token: a time-out or a stop ends it by closing the connection.
        if (_reader.IsReadingAhead)
            _closeOnCancel = _timeout.Token.UnsafeRegister(static socket => ((Socket)socket!).Dispose(), _socket);
        return _timeout.Token;
    }

    public void Disarm()
    {
        _cancelled.Dispose();
        _cancelled = default;
        _closeOnCancel.Dispose();
        _closeOnCancel = default;
    }

    public void Dispose()
    {
        _socket.Dispose();
        _cancelled.Dispose();
        _timeout?.Dispose();
    }
}
