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

    /// <summary>The shortest start of a secret masked at the end of a text cut from a longer one.</summary>
    const int MinCutPrefix = 4;

    readonly object _gate = new();
    // Longest first, so a secret that contains another is masked whole.
    string[] _values = [];
    // The same secrets' UTF-8 bytes, one char a byte (Latin-1), for redacting bytes as text.
    string[] _byteForms = [];

    /// <summary>Remembers a secret. A multi-line secret (a PEM key) is remembered line by
    /// line too, because output is redacted one line at a time.</summary>
    public void Add(string? value)
    {
        if (string.IsNullOrEmpty(value)) return;
        var parts = value.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Prepend(value);
        lock (_gate)
        {
            _values = _values.Concat(parts.Where(p => p.Length > 0)).Distinct(StringComparer.Ordinal)
                .OrderByDescending(p => p.Length).ToArray();
            _byteForms = _values.Select(v => Encoding.Latin1.GetString(Encoding.UTF8.GetBytes(v))).Distinct(StringComparer.Ordinal)
                .OrderByDescending(p => p.Length).ToArray();
        }
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
    public string Redact(string text) => Masked(text, Volatile.Read(ref _values), cut: false);

    /// <summary>As <see cref="Redact(string)"/>, for a text cut from a longer one (an answer's body
    /// excerpt): with <paramref name="cut"/>, a secret whose start ends the text (4 characters or
    /// more of it) is masked too, since the rest of it was cut off where redaction could see it.</summary>
    public string Redact(string text, bool cut) => Masked(text, Volatile.Read(ref _values), cut);

    /// <summary>Bytes (a body that is not text) with the UTF-8 form of every known secret replaced
    /// by <see cref="Mask"/>; <paramref name="cut"/> as for text.</summary>
    public byte[] Redact(ReadOnlySpan<byte> bytes, bool cut)
    {
        var forms = Volatile.Read(ref _byteForms);
        if (forms.Length == 0) return bytes.ToArray();
        return Encoding.Latin1.GetBytes(Masked(Encoding.Latin1.GetString(bytes), forms, cut));
    }

    static string Masked(string text, string[] values, bool cut)
    {
        if (values.Length == 0 || text.Length == 0) return text;
        foreach (var secret in values)
            if (text.Contains(secret, StringComparison.Ordinal))
                text = text.Replace(secret, Mask, StringComparison.Ordinal);
        return cut ? MaskedTail(text, values) : text;
    }

    /// <summary>The text with a trailing start of a secret masked (the longest that matches).</summary>
    static string MaskedTail(string text, string[] values)
    {
        foreach (var secret in values)
            for (var length = Math.Min(secret.Length - 1, text.Length); length >= MinCutPrefix; length--)
                if (text.AsSpan(text.Length - length).SequenceEqual(secret.AsSpan(0, length)))
                    return string.Concat(text.AsSpan(0, text.Length - length), Mask);
        return text;
    }
}
