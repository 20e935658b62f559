// OAuth2 client credentials (RFC 6749 4.4) towards a destination's gateway, through
// Duende.IdentityModel: the token is fetched when the sender starts, used until a
// fifth of its lifetime (at most a minute) is left, then renewed in the background
// while it is still good, and renewed at once when the destination answers 401. One
// fetch at a time serves every attempt that waits. A token endpoint that fails
// (down, 5xx, HTML, no token, refused credentials) makes the attempts that have no
// good token unreachable, naming the endpoint, so they are retried with backoff; a
// failed fetch is not repeated within a second, whoever asks.
using System.Net;
using Duende.IdentityModel.Client;

namespace Replay.Host.Security;

public sealed class OAuth2Tokens : ITokenSource
{
    static readonly TimeSpan RetryFloor = TimeSpan.FromSeconds(1);
    static readonly TimeSpan MaxRefreshMargin = TimeSpan.FromMinutes(1);

    readonly Uri _endpoint;
    readonly string _clientId;
    readonly string _clientSecret;
    readonly string? _scope;
    readonly TimeSpan _timeout;
    readonly Secrets _secrets;
    readonly Action<string> _warn;
    readonly TimeProvider _clock;
    readonly HttpMessageInvoker _http;
    readonly object _gate = new();

    sealed record Issued(BearerToken Token, DateTimeOffset RefreshAt, DateTimeOffset ExpiresAt);

    Issued? _issued;
    Task<TokenResult>? _fetch;
    DateTimeOffset _failedAt = DateTimeOffset.MinValue;
    TokenResult _failure;
    bool _warned;

    /// <param name="timeout">How long one token request may take.</param>
    /// <param name="proxy">The proxy of the destination requests, if any (else the environment's).</param>
    /// <param name="warn">Told when a renewal fails while the token in hand is still good.</param>
    /// <param name="handler">The HTTP handler for the token endpoint (tests); a new one by default.</param>
    public OAuth2Tokens(Uri endpoint, string clientId, string clientSecret, string? scope, TimeSpan timeout, Secrets secrets,
        Action<string> warn, IWebProxy? proxy = null, TimeProvider? clock = null, HttpMessageHandler? handler = null)
    {
        _endpoint = endpoint;
        _clientId = clientId;
        _clientSecret = clientSecret;
        _scope = scope;
        _timeout = timeout;
        _secrets = secrets;
        _warn = warn;
        _clock = clock ?? TimeProvider.System;
        _http = new HttpMessageInvoker(handler ?? CreateHandler(proxy), disposeHandler: true);
    }

    static SocketsHttpHandler CreateHandler(IWebProxy? proxy)
    {
        var handler = new SocketsHttpHandler
        {
            // A token endpoint that redirects is misconfigured; following it would carry the secret along.
            AllowAutoRedirect = false,
            UseCookies = false,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            // Tokens are fetched rarely: no connection is kept waiting for the next one.
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(5),
        };
        if (proxy is not null) handler.Proxy = proxy;
        return handler;
    }

    /// <summary>How the endpoint is named in messages: without user-info or query.</summary>
    string Endpoint => $"the token endpoint {_endpoint.Scheme}://{_endpoint.Authority}{_endpoint.AbsolutePath}";

    public void Prefetch()
    {
        lock (_gate)
            if (_issued is null) StartFetch(_clock.GetUtcNow());
    }

    /// <summary>Completes when no fetch is in progress (tests: a background renewal has been
    /// recorded, success or failure, before the test moves its clock or the endpoint on).</summary>
    internal Task Settled
    {
        get
        {
            lock (_gate) return _fetch ?? Task.CompletedTask;
        }
    }

    public ValueTask<TokenResult> CurrentAsync(CancellationToken cancel)
    {
        var issued = Volatile.Read(ref _issued);
        return issued is not null && _clock.GetUtcNow() < issued.RefreshAt
            ? new(TokenResult.Ok(issued.Token))
            : GetAsync(null, cancel);
    }

    public ValueTask<TokenResult> RenewAsync(BearerToken rejected, CancellationToken cancel) => GetAsync(rejected, cancel);

    async ValueTask<TokenResult> GetAsync(BearerToken? rejected, CancellationToken cancel)
    {
        Task<TokenResult>? fetch;
        lock (_gate)
        {
            var now = _clock.GetUtcNow();
            if (_issued is { } issued)
            {
                // Another attempt renewed it meanwhile, or it is not due yet.
                if (rejected is null ? now < issued.RefreshAt : !ReferenceEquals(issued.Token, rejected))
                    return TokenResult.Ok(issued.Token);
                if (rejected is null && now < issued.ExpiresAt)
                {
                    // Due, but still good: renew in the background and use it meanwhile.
                    StartFetch(now);
                    return TokenResult.Ok(issued.Token);
                }
            }
            fetch = StartFetch(now);
            if (fetch is null) return _failure;
        }
        return await fetch.WaitAsync(cancel).ConfigureAwait(false);
    }

    /// <summary>Under the lock: the fetch in progress, a new one, or null when the last one
    /// failed less than <see cref="RetryFloor"/> ago.</summary>
    Task<TokenResult>? StartFetch(DateTimeOffset now)
    {
        if (_fetch is { IsCompleted: false }) return _fetch;
        if (now - _failedAt < RetryFloor) return null;
        return _fetch = Task.Run(FetchAsync);
    }

    async Task<TokenResult> FetchAsync()
    {
        var asked = _clock.GetUtcNow();
        TokenResult result;
        try
        {
            result = await RequestAsync(asked).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Whatever went wrong, the attempts waiting get a reason rather than an exception.
            result = TokenResult.Failed($"{Endpoint}: {e.Message}");
        }
        lock (_gate)
        {
            if (result.Token is not null)
            {
                _failedAt = DateTimeOffset.MinValue;
                _warned = false;
                return result;
            }
            _failedAt = _clock.GetUtcNow();
            _failure = result;
            // Once per outage: attempts that cannot get a token are reported by the engine anyway.
            if (!_warned && _issued is { } issued && _failedAt < issued.ExpiresAt)
            {
                _warned = true;
                _warn($"renewing the destination's token failed ({result.Problem}); the current one is used until it expires");
            }
        }
        return result;
    }

    async Task<TokenResult> RequestAsync(DateTimeOffset asked)
    {
        using var timeout = new CancellationTokenSource(_timeout);
        using var request = new ClientCredentialsTokenRequest
        {
            Address = _endpoint.AbsoluteUri,
            ClientId = _clientId,
            ClientSecret = _clientSecret,
            Scope = _scope,
            // HTTP Basic: what every authorization server must accept (RFC 6749 2.3.1).
            ClientCredentialStyle = ClientCredentialStyle.AuthorizationHeader,
        };
        TokenResponse response;
        try
        {
            response = await _http.RequestClientCredentialsTokenAsync(request, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return TokenResult.Failed($"{Endpoint} did not answer within {_timeout.TotalSeconds:0.###} s");
        }
        using (response)
        {
            if (response.IsError) return TokenResult.Failed(Describe(response));
            var token = BearerToken.From(response.AccessToken);
            if (!token.IsOk)
                return TokenResult.Failed(response.AccessToken is null
                    ? $"{Endpoint} answered {(int)response.HttpStatusCode} without an access_token"
                    : $"{Endpoint} issued an access token that cannot be sent: {token.Error}");
            if (response.TokenType is { Length: > 0 } type && !type.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
                return TokenResult.Failed($"{Endpoint} issued a '{type}' token, not a Bearer token");
            _secrets.Add(token.Value!.Value);
            var (refreshAt, expiresAt) = Lifetime(asked, response.ExpiresIn);
            lock (_gate) Volatile.Write(ref _issued, new Issued(token.Value, refreshAt, expiresAt));
            return TokenResult.Ok(token.Value);
        }
    }

    /// <summary>When to renew and when the token stops being good, counted from when it was asked
    /// for. Without a lifetime (expires_in absent or not positive), only a 401 renews it.</summary>
    static (DateTimeOffset RefreshAt, DateTimeOffset ExpiresAt) Lifetime(DateTimeOffset asked, int expiresIn)
    {
        if (expiresIn <= 0) return (DateTimeOffset.MaxValue, DateTimeOffset.MaxValue);
        var lifetime = TimeSpan.FromSeconds(expiresIn);
        var margin = lifetime / 5 < MaxRefreshMargin ? lifetime / 5 : MaxRefreshMargin;
        return (asked + lifetime - margin, asked + lifetime);
    }

    string Describe(TokenResponse response)
    {
        var status = response.HttpResponse is { } http ? $"{(int)http.StatusCode} {http.ReasonPhrase}".TrimEnd() : null;
        // An OAuth2 error answer (invalid_client, invalid_scope, ...) says what to fix, whatever its status.
        if (Field(response, "error") is { Length: > 0 } error)
            return $"{Endpoint} refused the request ({status}): {error}"
                + (Field(response, "error_description") is { Length: > 0 } description ? $" ({description})" : "");
        return response.ErrorType switch
        {
            ResponseErrorType.Http or ResponseErrorType.Protocol => $"{Endpoint} answered {status}",
            _ when response.HttpResponse is { } answered =>
                $"{Endpoint} answered {status} with {answered.Content.Headers.ContentType?.MediaType ?? "no content type"}, not a JSON token response",
            _ => $"{Endpoint} is unreachable: {Innermost(response.Exception)?.Message ?? response.Error}",
        };
    }

    static string? Field(TokenResponse response, string name)
    {
        try
        {
            return response.Json is null ? null : response.TryGet(name);
        }
        catch (Exception e) when (e is InvalidOperationException or System.Text.Json.JsonException)
        {
            return null;
        }
    }

    static Exception? Innermost(Exception? e)
    {
        while (e?.InnerException is not null) e = e.InnerException;
        return e;
    }

    public void Dispose() => _http.Dispose();
}
