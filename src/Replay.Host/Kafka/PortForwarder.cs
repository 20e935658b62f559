// A fixed address for the embedded broker (`replay broker --port P`). librdkafka's mock
// cluster listens on a port the system picks; this listens on the port asked for and relays
// each connection to it, and the broker advertises the fixed address, so that every client
// (bootstrap and metadata alike) comes through here and a restart keeps the same address.
using System.Net;
using System.Net.Sockets;

namespace Replay.Host.Kafka;

public sealed class PortForwarder : IAsyncDisposable
{
    readonly TcpListener _listener;
    readonly IPEndPoint _target;
    readonly CancellationTokenSource _stop = new();
    readonly Task _accepting;

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Listens on 127.0.0.1:<paramref name="port"/> at once; throws SocketException when it is taken.</summary>
    public PortForwarder(int port, IPEndPoint target)
    {
        _target = target;
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { return; }
            _ = RelayAsync(client);
        }
    }

    async Task RelayAsync(TcpClient client)
    {
        using (client)
        using (var upstream = new TcpClient())
        {
            try
            {
                client.NoDelay = upstream.NoDelay = true;
                await upstream.ConnectAsync(_target, _stop.Token);
                var a = client.GetStream();
                var b = upstream.GetStream();
                // When either side closes, both go: Kafka clients reconnect on their own.
                await Task.WhenAny(a.CopyToAsync(b, _stop.Token), b.CopyToAsync(a, _stop.Token));
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // A connection that breaks is the client's to retry; the broker itself is unaffected.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accepting;
    }
}
