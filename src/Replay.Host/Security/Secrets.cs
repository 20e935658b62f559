// The secrets one run knows about: values of secret keys in the properties file
// (sasl.password, ssl.key.password, ...), proxy credentials, a password in the
// destination's URL. Whatever the program prints or writes for people to read
// (stdout, stderr, dead-letter reasons and URLs) passes through Redact first, so a
// secret stays hidden even when a library puts it into a message of its own.
using System.Text;

namespace Replay.Host.Security;

public sealed class Secrets
{
    /// <summary>What a secret is replaced with.</summary>
    public const string Mask = "[redacted]";

    readonly object _gate = new();
    // Longest first, so a secret that contains another is masked whole.
    string[] _values = [];

    /// <summary>Remembers a secret. A multi-line secret (a PEM key) is remembered line by
    /// line too, because output is redacted one line at a time.</summary>
    public void Add(string? value)
    {
        if (string.IsNullOrEmpty(value)) return;
        var parts = value.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Prepend(value);
        lock (_gate)
            _values = _values.Concat(parts.Where(p => p.Length > 0)).Distinct(StringComparer.Ordinal)
                .OrderByDescending(p => p.Length).ToArray();
    }

    /// <summary>Remembers the credentials a URL carries, in the forms they may be printed
    /// (escaped, unescaped, and for user-info as a Basic credential): the password of its
    /// user-info (user:password@), and the values of query parameters named like secrets
    /// (api_key, token, password, ...). The text is taken apart by hand rather than by
    /// <see cref="Uri"/>, because a destination pattern with placeholders is not a URL yet.</summary>
    public void AddUrlCredentials(string url)
    {
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        if (scheme < 0) return;
        var authorityStart = scheme + 3;
        var authorityEnd = url.IndexOfAny(['/', '?', '#'], authorityStart);
        var authority = authorityEnd < 0 ? url[authorityStart..] : url[authorityStart..authorityEnd];
        var at = authority.LastIndexOf('@');
        if (at > 0 && authority[..at].Split(':', 2) is [var rawUser, { Length: > 0 } rawPassword])
        {
            var user = Uri.UnescapeDataString(rawUser);
            var password = Uri.UnescapeDataString(rawPassword);
            Add(rawPassword);
            Add(password);
            Add(Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));
        }
        var queryStart = url.IndexOf('?');
        if (queryStart < 0) return;
        var queryEnd = url.IndexOf('#', queryStart);
        var query = queryEnd < 0 ? url[(queryStart + 1)..] : url[(queryStart + 1)..queryEnd];
        foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            if (pair.Split('=', 2) is not [var name, { Length: > 0 } value]) continue;
            // A placeholder (token={id}, key=%k) is filled from the record: data, not a secret.
            if (value.Contains("%k", StringComparison.Ordinal) || (value.Contains('{') && value.Contains('}'))) continue;
            var decodedName = Uri.UnescapeDataString(name);
            if (!SensitiveHeaders.IsSensitive(decodedName) && !decodedName.Contains("key", StringComparison.OrdinalIgnoreCase)) continue;
            Add(value);
            Add(Uri.UnescapeDataString(value));
        }
    }

    /// <summary>Remembers the credentials of the proxies .NET takes from the environment
    /// when no --proxy is given (the scheme may be left out there).</summary>
    public void AddProxyEnvironment()
    {
        foreach (var name in new[] { "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy" })
            if (Environment.GetEnvironmentVariable(name) is { Length: > 0 } url)
                AddUrlCredentials(url.Contains("://", StringComparison.Ordinal) ? url : "http://" + url);
    }

    public int Count => Volatile.Read(ref _values).Length;

    /// <summary>The text with every known secret replaced by <see cref="Mask"/>.</summary>
    public string Redact(string text)
    {
        var values = Volatile.Read(ref _values);
        if (values.Length == 0 || text.Length == 0) return text;
        foreach (var secret in values)
            if (text.Contains(secret, StringComparison.Ordinal))
                text = text.Replace(secret, Mask, StringComparison.Ordinal);
        return text;
    }
}
