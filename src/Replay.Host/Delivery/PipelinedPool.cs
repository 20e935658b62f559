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
            Task? wait = null;
            TaskCompletionSource<PipelinedConnection>? opened = null;
            PipelinedConnection? chosen = null;
            List<PipelinedConnection>? retired = null;
            lock (_hosts)
            {
                if (_disposed) throw new PlainHttpException("no new connection: Replay is stopping", false);
                if (!_hosts.TryGetValue(authority, out var host)) _hosts[authority] = host = new Host();
                var usable = Usable(host, ref retired);
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
                if (choice is Pipelining.Choice.Use use) chosen = usable[use.Item];
                else if (choice.IsWaitForOpening) wait = Task.WhenAny(host.Opening);
                else
                {
                    opened = new TaskCompletionSource<PipelinedConnection>(TaskCreationOptions.RunContinuationsAsynchronously);
                    host.Opening.Add(opened.Task);
                }
            }
            if (retired is not null)
                foreach (var connection in retired) connection.Dispose();
            if (chosen is not null) return chosen;
            if (wait is not null)
            {
                await wait.WaitAsync(cancel).ConfigureAwait(false);
                continue;
            }
            return await OpenAsync(url, authority, opened!, timeout, cancel).ConfigureAwait(false);
        }
    }

    async ValueTask<PipelinedConnection> OpenAsync(Uri url, string authority, TaskCompletionSource<PipelinedConnection> opened,
        TimeSpan timeout, CancellationToken cancel)
    {
        try
        {
            var connection = new PipelinedConnection(await PlainHttp.ConnectAsync(url, timeout, cancel).ConfigureAwait(false));
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

    /// <summary>Under the lock: the connections that may take a request. Closed ones are dropped;
    /// idle ones past their idle time or lifetime are dropped into <paramref name="retired"/>, to be
    /// closed after the lock (closing runs their waiters); busy ones past their lifetime, and ones whose
    /// send failed, take no more.</summary>
    static List<PipelinedConnection> Usable(Host host, ref List<PipelinedConnection>? retired)
    {
        var now = Environment.TickCount64;
        var usable = host.Usable;
        usable.Clear();
        for (var i = host.Open.Count - 1; i >= 0; i--)
        {
            var connection = host.Open[i];
            var old = now - connection.CreatedAt > PlainHttp.LifetimeMs;
            if (connection.Closed) host.Open.RemoveAt(i);
            else if (connection.InFlight == 0 && (old || now - connection.IdleSince > PlainHttp.IdleTimeoutMs))
            {
                (retired ??= []).Add(connection);
                host.Open.RemoveAt(i);
            }
            else if (!old && connection.TakesRequests) usable.Add(connection);
        }
        return usable;
    }

    public void Dispose()
    {
        List<PipelinedConnection> open;
        lock (_hosts)
        {
            _disposed = true;
            open = _hosts.Values.SelectMany(h => h.Open).ToList();
            _hosts.Clear();
        }
        // Outside the lock: closing runs the waiters of what was still out.
        foreach (var connection in open) connection.Dispose();
    }
}
