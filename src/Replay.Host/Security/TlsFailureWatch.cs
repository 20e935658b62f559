// A TLS handshake that fails (untrusted or mismatched certificate, refused client
// certificate, no common protocol) is a configuration error, not a passing fault:
// retrying cannot fix it, and dead-lettering would bury the whole topic in dead
// letters for one wrong setting. This handler notices such a failure on any request
// and reports it once, so the replay can stop with a clear message, leaving the
// records it could not send uncommitted for the run after the fix.
using System.Security.Authentication;

namespace Replay.Host.Security;

public sealed class TlsFailureWatch(HttpMessageHandler inner, Action<string> fatal) : DelegatingHandler(inner)
{
    int _reported;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancel)
    {
        try
        {
            return await base.SendAsync(request, cancel).ConfigureAwait(false);
        }
        catch (HttpRequestException e) when (HandshakeFailure(e) is { } failure)
        {
            if (Interlocked.Exchange(ref _reported, 1) == 0)
            {
                var destination = request.RequestUri is { } uri ? $"{uri.Scheme}://{uri.Authority}" : "the destination";
                fatal($"TLS to {destination} failed ({failure.Message.TrimEnd('.')}). "
                    + "This will not pass by retrying: trust the server's CA with --ca-file FILE, present a certificate with "
                    + "--client-cert/--client-key if the server asks for one, or fix the server's certificate; then run again.");
            }
            throw;
        }
    }

    static AuthenticationException? HandshakeFailure(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            if (x is AuthenticationException auth) return auth;
        return null;
    }
}
