// The pipelined connections of the lean path (--pipeline N), per host and port. Which
// connection takes a request, and whether a request whose connection broke goes again,
// is the core's (Pipelining); this opens, retires and closes the connections.
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.FSharp.Core;
using Replay.Core;
using Replay.Host.Security;
using static Replay.Core.Outcome;
using static Replay.Core.Pipeline;

namespace Replay.Host.Delivery;

sealed class PipelinedPool(int depth, int mostConnections) : IDisposable
{
    sealed class Host
    {
        public readonly List<PipelinedConnection> Open = [];
        public readonly List<Task> Opening = [];
        /// <summary>The usable connections and their loads at the last choice, kept to be refilled.</summary>
        public readonly List<PipelinedConnection> Usable = [];
        public int[] Loads = [];
    }

    readonly Dictionary<string, Host> _hosts = new(StringComparer.OrdinalIgnoreCase);
    bool _disposed;

    public int Depth => depth;

    /// <summary>One attempt, as <see cref="PlainHttp.SendAsync"/>.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<Attempt> SendAsync(Request request, BearerToken? token, ResponseCapture capture, TimeSpan timeout, CancellationToken cancel)
    {
        var authority = request.Url.Authority;
        for (var sent = 0; ; sent++)
        {
            // Sent again, a request has the whole time-out anew: it lost its first to the request ahead of it.
            var started = Environment.TickCount64;
            try
            {
                var connection = await ChooseAsync(request.Url, authority, timeout, cancel).ConfigureAwait(false);
                var left = timeout - TimeSpan.FromMilliseconds(Environment.TickCount64 - started);
                var response = await connection.SendAsync(request, authority, token, capture, left > TimeSpan.Zero ? left : TimeSpan.Zero, cancel)
                    .ConfigureAwait(false);
                return Attempt.NewAnswered(Answers.Of(response));
            }
            catch (PlainHttpException e) when (Pipelining.sendAgain(e.NothingReceived, sent) && !cancel.IsCancellationRequested)
            {
            }
            catch (Exception e) when (e is SocketException or IOException)
            {
                return Attempt.NewUnreachable(e.Message);
            }
        }
    }

    /// <summary>The connection the core chooses, opened first when it chooses a new one.</summary>
    async ValueTask<PipelinedConnection> ChooseAsync(Uri url, string authority, TimeSpan timeout, CancellationToken cancel)
    {
        while (true)
        {
            Task wait;
            TaskCompletionSource<PipelinedConnection> opened;
            lock (_hosts)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (!_hosts.TryGetValue(authority, out var host)) _hosts[authority] = host = new Host();
                var usable = Usable(host);
                var handingOut = -1;
                if (host.Loads.Length != usable.Count) host.Loads = new int[usable.Count];
                for (var i = 0; i < usable.Count; i++)
                {
                    host.Loads[i] = usable[i].InFlight;
                    if (usable[i].HandingOutHere) handingOut = i;
                }
                var pool = new Pipelining.Pool(host.Loads,
                    handingOut >= 0 ? FSharpValueOption<int>.NewValueSome(handingOut) : FSharpValueOption<int>.ValueNone, host.Opening.Count);
                var choice = Pipelining.choose(depth, mostConnections, pool);
                if (choice is Pipelining.Choice.Use use) return usable[use.Item];
                if (choice.IsWaitForOpening)
                {
                    wait = Task.WhenAny(host.Opening);
                    opened = null!;
                }
                else
                {
                    opened = new TaskCompletionSource<PipelinedConnection>(TaskCreationOptions.RunContinuationsAsynchronously);
                    host.Opening.Add(opened.Task);
                    wait = null!;
                }
            }
            if (wait is not null)
            {
                await wait.WaitAsync(cancel).ConfigureAwait(false);
                continue;
            }
            return await OpenAsync(url, authority, opened, timeout, cancel).ConfigureAwait(false);
        }
    }

    async ValueTask<PipelinedConnection> OpenAsync(Uri url, string authority, TaskCompletionSource<PipelinedConnection> opened,
        TimeSpan timeout, CancellationToken cancel)
    {
        try
        {
            var connection = await PlainHttp.ConnectAsync(url, timeout, cancel, PipelinedConnection.ConnectAsync).ConfigureAwait(false);
            lock (_hosts)
            {
                if (_disposed || !_hosts.TryGetValue(authority, out var host)) connection.Dispose();
                else
                {
                    host.Opening.Remove(opened.Task);
                    host.Open.Add(connection);
                }
            }
            opened.SetResult(connection);
            return connection;
        }
        catch (Exception e)
        {
            lock (_hosts)
                if (_hosts.TryGetValue(authority, out var host)) host.Opening.Remove(opened.Task);
            opened.SetException(e);
            throw;
        }
    }

    /// <summary>Under the lock: the connections that may take a request. Broken ones are dropped;
    /// idle ones past their idle time or lifetime are closed; busy ones past their lifetime take no more.</summary>
    static List<PipelinedConnection> Usable(Host host)
    {
        var now = Environment.TickCount64;
        var usable = host.Usable;
        usable.Clear();
        for (var i = host.Open.Count - 1; i >= 0; i--)
        {
            var connection = host.Open[i];
            var idle = connection.InFlight == 0;
            var old = now - connection.CreatedAt > PlainHttp.LifetimeMs;
            if (connection.Broken || idle && (old || now - connection.IdleSince > PlainHttp.IdleTimeoutMs))
            {
                connection.Dispose();
                host.Open.RemoveAt(i);
            }
            else if (!old) usable.Add(connection);
        }
        return usable;
    }

    public void Dispose()
    {
        lock (_hosts)
        {
            _disposed = true;
            foreach (var connection in _hosts.Values.SelectMany(h => h.Open)) connection.Dispose();
            _hosts.Clear();
        }
    }
}
