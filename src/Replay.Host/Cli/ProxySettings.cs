using System.Net;
using System.Text.RegularExpressions;

namespace Replay.Host.Cli;

/// <summary>--proxy URL, with credentials in the URL sent as Proxy-Authorization, and --no-proxy
/// hosts that are reached directly.</summary>
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

    /// <summary>--no-proxy: hosts reached directly rather than through <paramref name="proxy"/>:
    /// comma-separated names or addresses, <c>*</c> matching any characters, a leading dot
    /// meaning the domain and everything under it (localhost,*.internal,.example.com,127.*).</summary>
    public static string? Bypass(IWebProxy? proxy, string hosts)
    {
        if (proxy is not WebProxy web)
            return "--no-proxy makes exceptions to --proxy (or -Dhttp.proxyHost), and there is none; with HTTP_PROXY from the environment, set NO_PROXY instead";
        var patterns = new List<string>();
        foreach (var entry in hosts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Regex.IsMatch(entry, @"^[A-Za-z0-9.*\-\[\]:]+$"))
                return $"--no-proxy '{entry}': write host names or addresses separated by commas, * for any characters (localhost,*.internal,127.*)";
            var host = entry.StartsWith('.') ? "*" + entry : entry;
            var pattern = Regex.Escape(host).Replace(@"\*", ".*");
            // WebProxy matches each pattern against scheme://host[:port].
            patterns.Add($"^[a-z]+://{pattern}(:[0-9]+)?$");
            if (entry.StartsWith('.')) patterns.Add($"^[a-z]+://{Regex.Escape(entry[1..])}(:[0-9]+)?$");
        }
        web.BypassList = [.. patterns];
        return null;
    }

    /// <summary>The proxy a request to <paramref name="destination"/> goes through, for messages; null when direct.</summary>
    public static string? Describe(IWebProxy? proxy, Uri destination)
    {
        var effective = proxy ?? HttpClient.DefaultProxy;
        if (effective.IsBypassed(destination)) return null;
        var via = effective.GetProxy(destination);
        return via is null || via == destination ? null : Redact(via.GetLeftPart(UriPartial.Authority));
    }

    /// <summary>The URL with any password replaced, for messages.</summary>
    public static string Redact(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.UserInfo.Contains(':')
            ? url.Replace(uri.UserInfo, uri.UserInfo.Split(':')[0] + ":***")
            : url;
}
