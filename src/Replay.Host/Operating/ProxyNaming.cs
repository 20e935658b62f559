// A request that fails on its way through a proxy says so: "through proxy http://p:3128:
// Connection refused" instead of an address the operator has to recognise as the proxy's.
// Wraps the HTTP handler only when a proxy is in effect (--proxy, -Dhttp.proxyHost or
// HTTP_PROXY), where the lean direct path is not used anyway.
using System.Net;
using Replay.Host.Cli;

namespace Replay.Host.Operating;

public sealed class ProxyNaming(HttpMessageHandler inner, IWebProxy? proxy) : DelegatingHandler(inner)
{
    /// <summary>True when requests may go through a proxy: one configured, or one from the environment.</summary>
    public static bool Applies(IWebProxy? proxy) =>
        proxy is not null || HttpClient.DefaultProxy.GetProxy(new Uri("http://replay.invalid/")) is not null;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancel)
    {
        try
        {
            return await base.SendAsync(request, cancel).ConfigureAwait(false);
        }
        catch (HttpRequestException e) when (request.RequestUri is { } uri && ProxySettings.Describe(proxy, uri) is { } via
                                              && !(e.InnerException?.Message ?? e.Message).Contains("proxy", StringComparison.OrdinalIgnoreCase))
        {
            // The original chain stays underneath, so a TLS failure is still recognised as one.
            var named = $"through proxy {via}: {e.InnerException?.Message ?? e.Message}";
            throw new HttpRequestException(e.HttpRequestError, named, new IOException(named, e.InnerException ?? e), e.StatusCode);
        }
    }
}
