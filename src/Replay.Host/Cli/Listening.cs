using System.Net.Sockets;

namespace Replay.Host.Cli;

/// <summary>The one message for a server that cannot listen (port taken, address not ours), for every command.</summary>
public static class Listening
{
    public static bool IsListenFailure(Exception e) =>
        e is IOException or SocketException && (e is SocketException || e.InnerException is SocketException || e.Message.Contains("bind", StringComparison.OrdinalIgnoreCase));

    public static string Problem(string flag, string host, int port, Exception e)
    {
        SocketError? why = null;
        for (Exception? x = e; x is not null && why is null; x = x.InnerException)
            if (x is SocketException s) why = s.SocketErrorCode;
        // Kestrel wraps it in its own AddressInUseException, without the socket's code.
        if (why is null && e.ToString().Contains("address already in use", StringComparison.OrdinalIgnoreCase)) why = SocketError.AddressAlreadyInUse;
        var reason = why switch
        {
            SocketError.AddressAlreadyInUse => "the address is already in use",
            SocketError.AddressNotAvailable => "that address is not one of this machine's",
            SocketError.AccessDenied => "permission denied (ports below 1024 need privileges)",
            _ => e.Message.TrimEnd('.'),
        };
        return $"cannot listen on {host}:{port}: {reason}; choose another {flag} (0 picks a free one)";
    }
}
