// Header names whose values are credentials. Dead letters keep a record's Kafka
// headers so the record can be inspected and replayed by hand; the values of these
// are masked there, and anything that prints request headers (rules' dry runs,
// debugging output) masks them the same way.
namespace Replay.Host.Security;

public static class SensitiveHeaders
{
    static readonly HashSet<string> Exact = new(StringComparer.OrdinalIgnoreCase)
    {
        "Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
    };

    static readonly string[] Fragments =
        ["token", "secret", "password", "passwd", "api-key", "apikey", "api_key", "credential", "session", "signature"];

    /// <summary>True for Authorization-like names: Authorization, Proxy-Authorization, cookies,
    /// and names that mention a token, secret, password, API key, credential, session or signature.</summary>
    public static bool IsSensitive(string name) =>
        Exact.Contains(name) || Fragments.Any(f => name.Contains(f, StringComparison.OrdinalIgnoreCase));

    /// <summary>The value to show for a header: masked when the name is sensitive,
    /// otherwise the value with any known secret masked.</summary>
    public static string? Shown(string name, string? value, Secrets secrets) =>
        value is null ? null : IsSensitive(name) ? Secrets.Mask : secrets.Redact(value);
}
