// Credentials towards a destination behind a gateway: the sender asks a token source
// for the bearer token of each attempt, and for a fresh one once when the destination
// answers 401. A source that cannot give a token says why; the attempt is then
// unreachable (retried with backoff like a destination that is down), never a dead
// letter. Tokens are secrets: they are never printed, only the mask.
using System.Text;

namespace Replay.Host.Security;

/// <summary>A bearer token, checked to be fit for a header. Its text never appears in
/// <see cref="ToString"/>.</summary>
public sealed class BearerToken
{
    /// <summary>Longer than this is not a token a server would take in a header (16 KiB).</summary>
    public const int MaxLength = 16 * 1024;

    BearerToken(string value)
    {
        Value = value;
        HeaderValue = "Bearer " + value;
        HeaderLine = Encoding.ASCII.GetBytes($"Authorization: Bearer {value}\r\n");
    }

    /// <summary>The token itself.</summary>
    public string Value { get; }
    /// <summary>"Bearer TOKEN", the Authorization header's value.</summary>
    public string HeaderValue { get; }
    /// <summary>The whole header line, encoded once for the lean path.</summary>
    internal byte[] HeaderLine { get; }

    /// <summary>A token whose text can only ever be the mask: what a dry run shows.</summary>
    public static BearerToken Placeholder { get; } = new(Secrets.Mask);

    /// <summary>The token, or why <paramref name="text"/> cannot be one: empty, too long, or with a
    /// character a header cannot carry (a space, a control character, CR/LF, non-ASCII).</summary>
    public static Result<BearerToken> From(string? text)
    {
        if (string.IsNullOrEmpty(text)) return Result<BearerToken>.Fail("it is empty");
        if (text.Length > MaxLength) return Result<BearerToken>.Fail($"it is longer than {MaxLength / 1024} KiB");
        foreach (var c in text)
            if (c is < '!' or > '~')
                return Result<BearerToken>.Fail($"it holds a character a header cannot carry ({(c < ' ' || c > '~' ? $"U+{(int)c:X4}" : "a space")})");
        return Result<BearerToken>.Ok(new BearerToken(text));
    }

    public override string ToString() => "Bearer " + Secrets.Mask;
}

/// <summary>A token, or why there is none. Never both.</summary>
public readonly record struct TokenResult(BearerToken? Token, string? Problem)
{
    public static TokenResult Ok(BearerToken token) => new(token, null);
    public static TokenResult Failed(string problem) => new(null, problem);
}

/// <summary>Where a sender gets the bearer token of an attempt.</summary>
public interface ITokenSource : IDisposable
{
    /// <summary>Starts getting a token, so that the first request need not wait for it.</summary>
    void Prefetch();

    /// <summary>The token to send now, or why there is none. Cheap and synchronous while the
    /// token in hand is good.</summary>
    ValueTask<TokenResult> CurrentAsync(CancellationToken cancel);

    /// <summary>After the destination refused <paramref name="rejected"/> with 401: a newer token
    /// (one another attempt already got, or a new one), the same one when there is nothing newer
    /// to offer, or why there is none.</summary>
    ValueTask<TokenResult> RenewAsync(BearerToken rejected, CancellationToken cancel);
}

/// <summary>Always the same token: a dry run's placeholder, or a test's.</summary>
public sealed class FixedToken(BearerToken token) : ITokenSource
{
    public void Prefetch() { }
    public ValueTask<TokenResult> CurrentAsync(CancellationToken cancel) => new(TokenResult.Ok(token));
    public ValueTask<TokenResult> RenewAsync(BearerToken rejected, CancellationToken cancel) => new(TokenResult.Ok(token));
    public void Dispose() { }
}
