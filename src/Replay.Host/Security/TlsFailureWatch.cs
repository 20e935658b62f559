// A TLS handshake that fails (untrusted or mismatched certificate, refused client
// certificate, no common protocol) is a configuration error, not a passing fault:
// retrying cannot fix it, and dead-lettering would bury the whole topic in dead
// letters for one wrong setting. This handler notices such a failure on any request
// and reports it once, so the replay can stop with a clear message, leaving the
// records it could not send uncommitted for the run after the fix. Under TLS 1.3 a
// server that wants a client certificate refuses only after the client's handshake
// is done, so .NET sees just a closed connection; when that host had asked for a
// certificate we do not have, the failure is reported as what it is.
using System.Security.Authentication;

namespace Replay.Host.Security;

public sealed class TlsFailureWatch(HttpMessageHandler inner, ClientTls? tls, Action<string> fatal) : DelegatingHandler(inner)
{
    int _reported;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancel)
    {
        try
        {
            return await base.SendAsync(request, cancel).ConfigureAwait(false);
        }
        catch (HttpRequestException e) when (HandshakeFailure(request, e) is { } failure)
        {
            if (Interlocked.Exchange(ref _reported, 1) == 0)
            {
                var destination = request.RequestUri is { } uri ? $"{uri.Scheme}://{uri.Authority}" : "the destination";
                fatal($"TLS to {destination} failed ({failure}). "
                    + "This will not pass by retrying: trust the server's CA with --ca-file FILE, present a certificate with "
                    + "--client-cert/--client-key if the server asks for one, or fix the server's certificate; then run again.");
            }
            throw;
        }
    }

    /// <summary>Why the TLS handshake failed, or null when the failure was something else.</summary>
    string? HandshakeFailure(HttpRequestMessage request, Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            if (x is AuthenticationException auth) return auth.Message.TrimEnd('.');
        if (request.RequestUri is { Scheme: "https" } uri
            && e is HttpRequestException { HttpRequestError: HttpRequestError.ResponseEnded }
            && tls?.AskedForMissingCertificate(uri.IdnHost) == true)
            return "the server asked for a client certificate, none is configured, and it closed the connection";
        return null;
    }
}
