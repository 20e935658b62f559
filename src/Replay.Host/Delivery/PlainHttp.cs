// The lean path for http:// destinations reached directly (no proxy): HTTP/1.1
// keep-alive connections, one request at a time each, pooled per host and port; or,
// with --pipeline N, several on each (PipelinedPool).
// Measured on 2 cores against nginx, 32 requests in flight: HttpClient spent 26-29 µs
// of CPU per request and this path 21 µs; in the benchmark the replay's ratio to the
// ceiling went from 0.49 to 0.62 (medians of three) with nothing else changed.
// https:// and proxied destinations go through HttpClient, which brings TLS, client
// certificates and proxy authentication.
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Replay.Host.Security;
using static Replay.Core.Outcome;
using static Replay.Core.Pipeline;

namespace Replay.Host.Delivery;

public sealed class PlainHttp : IDisposable
{
    /// <summary>As HttpClient's pool: a connection idle this long may have been closed by the server.</summary>
    internal static readonly long IdleTimeoutMs = (long)TimeSpan.FromSeconds(30).TotalMilliseconds;
    /// <summary>Connections are renewed after this long, so DNS changes and load balancers are noticed.</summary>
    internal static readonly long LifetimeMs = (long)TimeSpan.FromMinutes(5).TotalMilliseconds;
    static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);

    readonly Dictionary<string, Stack<PlainHttpConnection>> _idle = new(StringComparer.OrdinalIgnoreCase);
    readonly PipelinedPool? _pipelined;
    long _lastSweep = Environment.TickCount64;
    bool _disposed;

    /// <param name="pipeline">Requests a connection may carry before their answers come; 1: one at a time.</param>
    /// <param name="concurrency">Requests out at once, which with <paramref name="pipeline"/> sets how many connections.</param>
    public PlainHttp(int pipeline = 1, int concurrency = 1)
    {
        if (pipeline > 1) _pipelined = new PipelinedPool(pipeline, global::Replay.Core.Pipelining.connections(concurrency, pipeline));
    }

    /// <summary>The lean path, unless requests must go through a caller's handler (a test's, the
    /// dry run's) or through a proxy: one given on the command line, or one from the environment
    /// (http_proxy), which HttpClient applies with its no_proxy exceptions.</summary>
    public static PlainHttp? For(HttpMessageHandler? handler, System.Net.IWebProxy? proxy, int pipeline = 1, int concurrency = 1) =>
        handler is null && proxy is null && HttpClient.DefaultProxy.GetProxy(new Uri("http://replay.invalid/")) is null
            ? new PlainHttp(pipeline, concurrency)
            : null;

    /// <summary>True when <paramref name="url"/> can take the lean path.</summary>
    public static bool Serves(Uri url) => url.Scheme == Uri.UriSchemeHttp;

    /// <summary>One attempt: the answer, or why there was none. Running past
    /// <paramref name="timeout"/> (connecting included) or <paramref name="cancel"/> throws
    /// OperationCanceledException, as HttpClient does.</summary>
    /// <param name="token">Sent as the Authorization header instead of any the route set; null: none added.</param>
    public ValueTask<Attempt> SendAsync(Request request, BearerToken? token, ResponseCapture capture, TimeSpan timeout, CancellationToken cancel) =>
        _pipelined is not null
            ? _pipelined.SendAsync(request, token, capture, timeout, cancel)
            : SendOneAtATimeAsync(request, token, capture, timeout, cancel);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<Attempt> SendOneAtATimeAsync(Request request, BearerToken? token, ResponseCapture capture, TimeSpan timeout, CancellationToken cancel)
    {
        var started = Environment.TickCount64;
        var authority = request.Url.Authority;
        var connection = Rent(authority);
        var reused = connection is not null;
        while (true)
        {
            try
            {
                connection ??= new PlainHttpConnection(await ConnectAsync(request.Url, timeout, cancel).ConfigureAwait(false));
                var left = timeout - TimeSpan.FromMilliseconds(Environment.TickCount64 - started);
                var armed = connection.Arm(left > TimeSpan.Zero ? left : TimeSpan.Zero, cancel);
                PlainResponse response;
                try
                {
                    response = await connection.ExchangeAsync(request, authority, token, capture, armed).ConfigureAwait(false);
                }
                finally
                {
                    connection.Disarm();
                }
                Return(authority, connection);
                return Attempt.NewAnswered(Answers.Of(response));
            }
            catch (Exception e) when (reused && IsStale(e))
            {
                // The server closed the idle connection as the request went out: once more on a new one.
                connection!.Dispose();
                connection = null;
                reused = false;
            }
            catch (Exception e) when (e is SocketException or IOException)
            {
                connection?.Dispose();
                return Attempt.NewUnreachable(e.Message);
            }
            catch
            {
                connection?.Dispose();
                throw;
            }
        }
    }

    static bool IsStale(Exception e) =>
        e is PlainHttpException { NothingReceived: true }
        || e is SocketException { SocketErrorCode: SocketError.ConnectionReset or SocketError.Shutdown or SocketError.ConnectionAborted };

    /// <summary>A socket connected to the URL's host and port (no Nagle delay: a request leaves in one
    /// send), within the request's timeout and at most <see cref="ConnectTimeout"/>; for either kind of
    /// connection to own.</summary>
    internal static async Task<Socket> ConnectAsync(Uri url, TimeSpan requestTimeout, CancellationToken cancel)
    {
        using var connecting = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var connectTimeout = requestTimeout < ConnectTimeout ? requestTimeout : ConnectTimeout;
        connecting.CancelAfter(connectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(url.IdnHost, url.Port, connecting.Token).ConfigureAwait(false);
            return socket;
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested && connectTimeout == ConnectTimeout)
        {
            socket.Dispose();
            throw new SocketException((int)SocketError.TimedOut);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The most recently used idle connection that is still fit to use, or null.</summary>
    PlainHttpConnection? Rent(string authority)
    {
        var now = Environment.TickCount64;
        while (true)
        {
            PlainHttpConnection? connection;
            lock (_idle)
            {
                if (!_idle.TryGetValue(authority, out var idle) || !idle.TryPop(out connection)) return null;
            }
            if (now - connection.IdleSince < IdleTimeoutMs && connection.TryTake()) return connection;
            connection.Dispose();
        }
    }

    void Return(string authority, PlainHttpConnection connection)
    {
        var now = Environment.TickCount64;
        if (!connection.Reusable || now - connection.CreatedAt > LifetimeMs)
        {
            connection.Dispose();
            return;
        }
        connection.IdleSince = now;
        connection.Idle();
        if (!connection.Reusable)
        {
            connection.Dispose();
            return;
        }
        lock (_idle)
        {
            if (_disposed)
            {
                connection.Dispose();
                return;
            }
            if (!_idle.TryGetValue(authority, out var idle)) _idle[authority] = idle = new Stack<PlainHttpConnection>();
            idle.Push(connection);
            if (now - _lastSweep > IdleTimeoutMs) Sweep(now);
        }
    }

    /// <summary>Closes connections nobody took for a while (a route that is no longer used, a
    /// burst that is over), so they do not linger half-closed. Called under the lock.</summary>
    void Sweep(long now)
    {
        _lastSweep = now;
        foreach (var idle in _idle.Values)
        {
            // The stack's bottom holds the longest idle; keep the order of the fresh ones.
            var fresh = idle.Where(c => now - c.IdleSince < IdleTimeoutMs).Reverse().ToList();
            foreach (var stale in idle.Where(c => now - c.IdleSince >= IdleTimeoutMs)) stale.Dispose();
            idle.Clear();
            foreach (var connection in fresh) idle.Push(connection);
        }
    }

    public void Dispose()
    {
        _pipelined?.Dispose();
        lock (_idle)
        {
            _disposed = true;
            foreach (var connection in _idle.Values.SelectMany(c => c)) connection.Dispose();
            _idle.Clear();
        }
    }
}
