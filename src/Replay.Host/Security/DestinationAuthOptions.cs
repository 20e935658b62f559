// The flags that give a destination behind a gateway its credentials, for `replay run`
// and `replay redrive`: a bearer token from a file, or OAuth2 client credentials.
// Validated once, before anything runs; every message names the flag at fault. The
// client secret and every token are remembered as secrets, so they are masked wherever
// the program prints or writes.
using System.CommandLine;
using System.Net;
using System.Text;

namespace Replay.Host.Security;

public static class DestinationAuthOptions
{
    public static readonly Option<string?> BearerFile = new("--auth-bearer-file") { Description = "Send 'Authorization: Bearer TOKEN' with the token this file holds; re-read when it changes and on a 401" };
    public static readonly Option<string?> TokenUrl = new("--oauth2-token-url") { Description = "OAuth2 token endpoint (client credentials); its token is sent as 'Authorization: Bearer', renewed before it expires and on a 401" };
    public static readonly Option<string?> ClientId = new("--oauth2-client-id") { Description = "OAuth2 client id (with --oauth2-token-url)" };
    public static readonly Option<string?> ClientSecretFile = new("--oauth2-client-secret-file") { Description = "File holding the OAuth2 client secret (with --oauth2-token-url; readable by this user only)" };
    public static readonly Option<string?> Scope = new("--oauth2-scope") { Description = "Scope(s) to ask the token endpoint for, space-separated (with --oauth2-token-url)" };

    public static IEnumerable<Option> All => [BearerFile, TokenUrl, ClientId, ClientSecretFile, Scope];

    /// <summary>The token source the flags describe (null: none), or one clear message. No request
    /// is made here: an OAuth2 token is first fetched when a sender starts.</summary>
    /// <param name="timeout">How long one token request may take (the request timeout).</param>
    /// <param name="warn">Where a source reports trouble it works around; standard error by default.</param>
    public static Result<ITokenSource?> Load(ParseResult parse, Secrets secrets, IWebProxy? proxy, TimeSpan timeout, Action<string>? warn = null)
    {
        warn ??= message => Console.Error.WriteLine($"replay: {message}");
        var bearerFile = parse.GetValue(BearerFile);
        var oauth2 = new (Option<string?> Flag, string? Value)[]
            { (TokenUrl, parse.GetValue(TokenUrl)), (ClientId, parse.GetValue(ClientId)), (ClientSecretFile, parse.GetValue(ClientSecretFile)), (Scope, parse.GetValue(Scope)) };
        var given = oauth2.Where(o => o.Value is not null).ToList();
        if (bearerFile is not null && given.Count > 0)
            return Fail($"--auth-bearer-file and {given[0].Flag.Name} both give the destination credentials: use one or the other");
        if (bearerFile is not null)
        {
            var opened = Security.BearerFile.Open(bearerFile, secrets, warn);
            return opened.IsOk ? Result<ITokenSource?>.Ok(opened.Value) : Fail(opened.Error!);
        }
        if (given.Count == 0) return Result<ITokenSource?>.Ok(null);

        var url = parse.GetValue(TokenUrl);
        if (url is null)
            return Fail($"{given[0].Flag.Name} needs --oauth2-token-url URL, the token endpoint that issues the tokens");
        secrets.AddUrlCredentials(url);
        if (!Uri.TryCreate(url, UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https"))
            return Fail($"--oauth2-token-url '{url}' is not an absolute http(s) URL, e.g. https://idp.example/oauth2/token");
        if (endpoint.Scheme == "http" && !endpoint.IsLoopback)
            return Fail($"--oauth2-token-url '{url}' would send the client secret unencrypted: use https:// (http:// only to 127.0.0.1 or localhost)");
        if (parse.GetValue(ClientId) is not { Length: > 0 } clientId)
            return Fail("--oauth2-token-url needs --oauth2-client-id ID, the client the token endpoint knows this replay as");
        if (parse.GetValue(ClientSecretFile) is not { } secretFile)
            return Fail("--oauth2-token-url needs --oauth2-client-secret-file FILE, a file holding the client secret");
        var secret = ReadSecret(secretFile);
        if (!secret.IsOk) return Fail(secret.Error!);
        RememberClientSecret(secrets, clientId, secret.Value!);
        var scope = parse.GetValue(Scope) is { } scopes && !string.IsNullOrWhiteSpace(scopes) ? scopes.Trim() : null;
        return Result<ITokenSource?>.Ok(new OAuth2Tokens(endpoint, clientId, secret.Value!, scope, timeout, secrets, warn, proxy));
    }

    static Result<string> ReadSecret(string path)
    {
        if (!File.Exists(path)) return Result<string>.Fail($"--oauth2-client-secret-file '{path}' does not exist");
        string text;
        try
        {
            text = File.ReadAllText(path).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Result<string>.Fail($"--oauth2-client-secret-file '{path}' cannot be read: {e.Message}");
        }
        return text.Length == 0
            ? Result<string>.Fail($"--oauth2-client-secret-file '{path}' is empty: put the client secret in it")
            : Result<string>.Ok(text);
    }

    /// <summary>The secret in every form it can be printed in: as is, URL-encoded, and inside the
    /// Basic credential sent to the token endpoint (its parts form-encoded, RFC 6749 2.3.1).</summary>
    static void RememberClientSecret(Secrets secrets, string clientId, string secret)
    {
        secrets.Add(secret);
        secrets.Add(Uri.EscapeDataString(secret));
        secrets.Add(WebUtility.UrlEncode(secret));
        secrets.Add(Convert.ToBase64String(Encoding.UTF8.GetBytes($"{clientId}:{secret}")));
        secrets.Add(Convert.ToBase64String(Encoding.UTF8.GetBytes($"{WebUtility.UrlEncode(clientId)}:{WebUtility.UrlEncode(secret)}")));
        secrets.Add(Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Uri.EscapeDataString(clientId)}:{Uri.EscapeDataString(secret)}")));
    }

    static Result<ITokenSource?> Fail(string message) => Result<ITokenSource?>.Fail(message);
}
