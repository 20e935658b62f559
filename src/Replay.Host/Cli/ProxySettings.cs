using System.Net;

namespace Replay.Host.Cli;

/// <summary>--proxy URL, with credentials in the URL sent as Proxy-Authorization.</summary>
public static class ProxySettings
{
    public static Result<IWebProxy> Create(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp || uri.Host == "")
            return Result<IWebProxy>.Fail($"'{Redact(url)}' is not a proxy URL; write http://[user:pass@]host:port");
        var proxy = new WebProxy(new UriBuilder(uri.Scheme, uri.Host, uri.Port).Uri);
        if (uri.UserInfo is { Length: > 0 } info)
        {
            var parts = info.Split(':', 2);
            proxy.Credentials = new NetworkCredential(Uri.UnescapeDataString(parts[0]), parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : "");
        }
        return Result<IWebProxy>.Ok(proxy);
    }

    /// <summary>The URL with any password replaced, for messages.</summary>
    public static string Redact(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.UserInfo.Contains(':')
            ? url.Replace(uri.UserInfo, uri.UserInfo.Split(':')[0] + ":***")
            : url;
}
