// One keep-alive HTTP/1.1 connection carrying several requests before their answers come
// (pipelining, --pipeline N). Requests are appended to an out buffer; the answers are read
// in order by one reader, which hands each to its request's waiter on the reader's own thread.
// The waiters go on to begin their next requests while it does, so the requests begun after
// one receive leave together in one send: that, and one receive for several answers, is what
// pipelining saves in system calls and wake-ups per request.
// What a failure means for the requests behind it is the core's (Pipelining.sendAgain): the
// connection is closed and they are sent again on another.
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Replay.Host.Security;
using static Replay.Core.Pipeline;

namespace Replay.Host.Delivery;

sealed class PipelinedConnection : IByteSource, IDisposable
{
    const int BufferBytes = 16 * 1024;
    /// <summary>An out buffer grown past this by large bodies is not kept once sent, so a burst of
    /// 8 MB payloads does not leave every connection holding megabytes.</summary>
    const int KeptBufferBytes = 256 * 1024;

    /// <summary>The connection whose answers this thread is handing out, if any: a request begun
    /// now joins it, to leave in the same send.</summary>
    [ThreadStatic] static PipelinedConnection? t_handingOut;

    readonly Socket _socket;
    readonly ResponseReader _reader;
    readonly object _lock = new();
    /// <summary>Requests written (or about to be), oldest first: the order their answers come in.</summary>
    readonly Queue<PipelinedExchange> _waiting = new();
    readonly Timer _timer;
    byte[] _out = new byte[BufferBytes];
    byte[]? _spare = new byte[BufferBytes];
    int _outLength;
    bool _sending, _reading, _handingOut, _answeredAny;
    /// <summary>A send failed: nothing more goes out, and the reader ends it (see SendLoopAsync).</summary>
    volatile bool _sendFailed;
    /// <summary>Set once: why the connection can carry nothing more.</summary>
    volatile Exception? _broken;
    int _inFlight;
    /// <summary>Requests written so far, and how many of them were handed to a send: an exchange
    /// numbered below <see cref="_sentThrough"/> is on the wire (or was).</summary>
    long _written, _sentThrough;

    /// <param name="socket">Connected (PlainHttp.ConnectAsync); owned from now on.</param>
    internal PipelinedConnection(Socket socket)
    {
        _socket = socket;
        _reader = new ResponseReader(this, pipelined: true);
        _timer = new Timer(static c => ((PipelinedConnection)c!).OnTimer(), this, Timeout.Infinite, Timeout.Infinite);
    }

    public long CreatedAt { get; } = Environment.TickCount64;
    /// <summary>When its last answer was handed out; while requests are out, meaningless.</summary>
    public long IdleSince { get; private set; } = Environment.TickCount64;
    /// <summary>Requests out and not yet answered.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);
    /// <summary>Closed: it holds no request any more.</summary>
    public bool Closed => _broken is not null;
    /// <summary>Open and still sending: a failed send leaves it to its reader (or time-out) to close.</summary>
    public bool TakesRequests => _broken is null && !_sendFailed;
    /// <summary>True on the thread handing out this connection's answers.</summary>
    public bool HandingOutHere => ReferenceEquals(t_handingOut, this);

    /// <summary>Writes one request behind the others and returns its answer when it comes. Fails
    /// with OperationCanceledException after <paramref name="timeout"/> or with <paramref name="cancel"/>,
    /// and with PlainHttpException { NothingReceived: true } when the connection broke before its
    /// answer began (it may be sent again on another).</summary>
    public ValueTask<PlainResponse> SendAsync(Request request, string authority, BearerToken? token, ResponseCapture capture,
        TimeSpan timeout, CancellationToken cancel)
    {
        if (cancel.IsCancellationRequested) return ValueTask.FromCanceled<PlainResponse>(cancel);
        var exchange = new PipelinedExchange(this, capture, Environment.TickCount64 + (long)timeout.TotalMilliseconds);
        bool send, read;
        lock (_lock)
        {
            if (_broken is not null || _sendFailed)
            {
                exchange.Fail(new PlainHttpException("the connection was closed", true));
                return new ValueTask<PlainResponse>(exchange, exchange.Version);
            }
            exchange.Number = _written++;
            var body = request.Body;
            var head = RequestHead.Write(ref _out, _outLength, request, authority, token, RequestHead.ContentLength(request));
            if (_outLength + head + body.Length > _out.Length) Array.Resize(ref _out, _outLength + head + body.Length);
            body.Span.CopyTo(_out.AsSpan(_outLength + head));
            _outLength += head + body.Length;
            _waiting.Enqueue(exchange);
            _inFlight++;
            if (_waiting.Count == 1) ArmTimer(exchange.Deadline);
            read = !_reading;
            _reading = true;
            // While answers are handed out, the requests they lead to gather and leave together afterwards.
            send = !_sending && !_handingOut;
            if (send) _sending = true;
        }
        // Abandoned before it went out, it breaks the connection rather than go later (see Abandoned);
        // abandoned after, its answer is read and dropped.
        if (cancel.CanBeCanceled) exchange.Watch(cancel);
        if (send) _ = SendLoopAsync();
        if (read) _ = ReadLoopAsync();
        return new ValueTask<PlainResponse>(exchange, exchange.Version);
    }

    /// <summary>Sends what was written, and what is written meanwhile, until nothing is left.</summary>
    async Task SendLoopAsync()
    {
        try
        {
            while (true)
            {
                byte[] buffer;
                int length;
                lock (_lock)
                {
                    if (_outLength == 0 || _broken is not null || _sendFailed)
                    {
                        _sending = false;
                        return;
                    }
                    buffer = _out;
                    length = _outLength;
                    _sentThrough = _written;
                    _out = _spare!;
                    _spare = null;
                    _outLength = 0;
                }
                await _socket.SendAsync(buffer.AsMemory(0, length), SocketFlags.None).ConfigureAwait(false);
                lock (_lock) _spare = buffer.Length > KeptBufferBytes ? new byte[BufferBytes] : buffer;
            }
        }
        catch (Exception)
        {
            // A server may answer before it has read the whole body (413 for a body too large) and
            // close: that answer, if it comes, is the outcome, not the broken send. The reader reads
            // it, or finds the connection ended (or times out), and closes it then.
            lock (_lock)
            {
                _sending = false;
                _sendFailed = true;
            }
            try
            {
                _socket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception)
            {
            }
        }
    }

    /// <summary>Reads answers while requests are out, handing each to its waiter; when none is
    /// left it starts the read that watches the idle connection, and ends.</summary>
    async Task ReadLoopAsync()
    {
        while (true)
        {
            PipelinedExchange head;
            PipelinedExchange[]? failed;
            Exception? failure = null;
            lock (_lock)
            {
                if (_broken is not null) return;
                head = _waiting.Peek();
                // Bytes are here and the oldest request has not gone out yet: they answer nothing we sent.
                failed = _reader.HasUnread && head.Number >= _sentThrough ? BreakUnderLock(failure = Stray()) : null;
            }
            if (failed is not null)
            {
                Close(failed, failure!);
                return;
            }
            PlainResponse response;
            try
            {
                response = await _reader.ReadAsync(head.Capture, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // Nothing came on a connection that never answered: the server refuses this request,
                // not one that closed while idle (it is not sent again).
                if (e is PlainHttpException { NothingReceived: true } && !_answeredAny) e = new PlainHttpException(e.Message, false);
                Break(e);
                return;
            }
            lock (_lock)
            {
                if (_broken is not null) return;
                _waiting.Dequeue();
                _inFlight--;
                _handingOut = true;
                _answeredAny = true;
                // The server will close after this answer: the ones behind it will not come.
                failed = response.Reusable ? null : BreakUnderLock(failure = ClosedAfterAnswer());
            }
            if (failed is not null) Close(failed, failure!);
            var outer = t_handingOut;
            t_handingOut = this;
            try
            {
                head.Answer(response);
            }
            finally
            {
                t_handingOut = outer;
            }
            bool send, more;
            lock (_lock)
            {
                _handingOut = false;
                if (_broken is not null) return;
                // More answers already here: the requests they lead to go out with these.
                send = !_sending && _outLength > 0 && !_reader.HasUnread;
                if (send) _sending = true;
                more = _waiting.Count > 0;
                if (!more)
                {
                    IdleSince = Environment.TickCount64;
                    _reading = false;
                    // Bytes behind the last answer were never asked for.
                    failed = _reader.HasUnread ? BreakUnderLock(failure = Stray()) : null;
                    if (failed is null) _reader.ReadAhead();
                }
            }
            if (failed is not null) Close(failed, failure!);
            if (send) _ = SendLoopAsync();
            if (!more) return;
        }
    }

    // New exceptions each time: one exception object thrown on several threads at once would share its stack trace.
    static PlainHttpException Stray() => new("the server sent bytes nobody asked for", true);
    static PlainHttpException ClosedAfterAnswer() => new("the server closed the connection after an earlier answer", true);

    ValueTask<int> IByteSource.ReceiveAsync(Memory<byte> into, CancellationToken cancel) =>
        _socket.ReceiveAsync(into, SocketFlags.None, cancel);

    /// <summary>The read started while no request was out: if it ends before one is, the server
    /// spoke out of turn or closed the connection, and the connection is closed.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<int> IByteSource.ReceiveWhileIdleAsync(Memory<byte> into)
    {
        int read;
        try
        {
            read = await _socket.ReceiveAsync(into, SocketFlags.None, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            if (!BreakIfIdle(() => new PlainHttpException($"the idle connection failed: {e.Message}", true))) throw;
            return 0;
        }
        return BreakIfIdle(() => read == 0 ? new PlainHttpException("the server closed the idle connection", true) : Stray()) ? 0 : read;
    }

    /// <summary>Closes the connection if no request is out, deciding under the lock so that a request
    /// being written now either comes first (and the bytes are its answer) or finds it closed.</summary>
    bool BreakIfIdle(Func<Exception> failure)
    {
        PipelinedExchange[]? failed;
        Exception reason;
        lock (_lock)
        {
            if (_waiting.Count > 0 || _broken is not null) return _broken is not null && _waiting.Count == 0;
            reason = failure();
            failed = BreakUnderLock(reason);
        }
        Close(failed!, reason);
        return true;
    }

    void ArmTimer(long deadline) => _timer.Change(Math.Max(0, deadline - Environment.TickCount64), Timeout.Infinite);

    /// <summary>The oldest request's time is up: nothing behind it can be answered first, so the
    /// connection is closed. Fired early (for a request answered since), it waits for the next.</summary>
    void OnTimer()
    {
        PipelinedExchange[]? failed;
        Exception failure;
        lock (_lock)
        {
            if (_broken is not null || _waiting.Count == 0) return;
            var deadline = _waiting.Peek().Deadline;
            if (deadline > Environment.TickCount64)
            {
                ArmTimer(deadline);
                return;
            }
            failure = TimedOut();
            failed = BreakUnderLock(failure);
        }
        Close(failed!, failure);
    }

    static OperationCanceledException TimedOut() => new("the request timed out");

    /// <summary>Its caller gave the request up. Not yet gone out, it must not go later (after a revoke,
    /// the partition's next owner may already have sent newer versions): the connection is closed.</summary>
    /// <summary>Decided on the canceller's thread, so that nothing is sent after it; the waiters then
    /// run elsewhere (<paramref name="then"/> on the thread pool): a cancel comes from the consuming
    /// thread (a revoke, a stop), which must not run the engine's continuations.</summary>
    internal void Abandoned(PipelinedExchange exchange, Action then)
    {
        PipelinedExchange[]? failed = null;
        Exception? failure = null;
        lock (_lock)
        {
            if (_broken is null && exchange.Number >= _sentThrough) failed = BreakUnderLock(failure = AbandonedBeforeSent());
        }
        ThreadPool.UnsafeQueueUserWorkItem(static state =>
        {
            if (state.failed is not null) state.connection.Close(state.failed, state.failure!);
            state.then();
        }, (connection: this, failed, failure, then), preferLocal: false);
    }

    static PlainHttpException AbandonedBeforeSent() => new("a request on the connection was abandoned before it went out", true);

    /// <summary>Closes the connection: the oldest request out fails with <paramref name="failure"/>,
    /// the ones behind it as never answered.</summary>
    void Break(Exception failure)
    {
        PipelinedExchange[]? failed;
        lock (_lock) failed = BreakUnderLock(failure);
        if (failed is not null) Close(failed, failure);
    }

    /// <summary>Under the lock: marks the connection broken and takes the requests out (null when it
    /// already was); <see cref="Close"/> must follow outside the lock.</summary>
    PipelinedExchange[]? BreakUnderLock(Exception failure)
    {
        if (_broken is not null) return null;
        _broken = failure;
        var failed = _waiting.ToArray();
        _waiting.Clear();
        _inFlight = 0;
        return failed;
    }

    /// <summary>Closes the socket and fails the requests that were out: their waiters run on this thread.</summary>
    void Close(PipelinedExchange[] failed, Exception failure)
    {
        _socket.Dispose();
        _timer.Dispose();
        for (var i = 0; i < failed.Length; i++)
            failed[i].Fail(i == 0 ? failure : new PlainHttpException($"an earlier request on the connection failed ({failure.Message})", true));
    }

    public void Dispose() => Break(new PlainHttpException("the connection was closed: Replay is stopping", false));
}
