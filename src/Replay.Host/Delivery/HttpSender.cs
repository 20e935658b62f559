// Turns a core Request into one HTTP attempt and the attempt's outcome into the
// core's Attempt, so that classification and retry decisions stay in the core.
// With a token source, every attempt carries its bearer token; a 401 gets one
// renewal and one resend within the same attempt, and a token that cannot be had
// makes the attempt unreachable (retried), never an answer that dead-letters.
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using Replay.Core;
using Replay.Host.Security;
using static Replay.Core.Outcome;
using static Replay.Core.Pipeline;

namespace Replay.Host.Delivery;

public sealed class HttpSender : IDisposable
{
    readonly HttpMessageInvoker _client;
    readonly PlainHttp? _plain;
    readonly TimeSpan _requestTimeout;
    readonly ResponseCapture _capture;
    /// <summary>The capture for an exchange the responses log shows: a body excerpt whatever the status.</summary>
    readonly ResponseCapture _excerptCapture;
    readonly ITokenSource? _tokens;

    /// <param name="plain">Takes the http:// requests when given; only for destinations
    /// reached directly, since it knows no proxy.</param>
    /// <param name="capture">What to keep of each answer; <see cref="ResponseCapture.Default"/> when null.</param>
    /// <param name="tokens">Where each attempt's bearer token comes from (not owned: the settings
    /// that made it dispose it); its first token is asked for now.</param>
    public HttpSender(HttpMessageHandler handler, TimeSpan requestTimeout, PlainHttp? plain = null, ResponseCapture? capture = null,
        ITokenSource? tokens = null)
    {
        _client = new HttpMessageInvoker(handler, disposeHandler: true);
        _requestTimeout = requestTimeout;
        _plain = plain;
        _capture = capture ?? ResponseCapture.Default;
        _excerptCapture = _capture.WithExcerpts();
        _tokens = tokens;
        _tokens?.Prefetch();
    }

    /// <summary>The handler every outbound request uses: one pool sized to the
    /// concurrency, no redirects (a replay must not wander), no cookies.</summary>
    public static SocketsHttpHandler CreateHandler(int concurrency, IWebProxy? proxy, Security.ClientTls? tls = null)
    {
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = Math.Max(1, concurrency),
            AllowAutoRedirect = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(10),
        };
        if (proxy is not null)
        {
            handler.Proxy = proxy;
            handler.UseProxy = true;
        }
        tls?.Apply(handler);
        return handler;
    }

    /// <summary>One attempt, bounded by the request timeout (twice, and a token request, when a 401
    /// is answered with a renewed token); <paramref name="cancel"/> abandons it.</summary>
    public ValueTask<Attempt> SendAsync(Request request, CancellationToken cancel) => SendAsync(request, excerpt: false, cancel);

    /// <summary>As <see cref="SendAsync(Request, CancellationToken)"/>; with <paramref name="excerpt"/>,
    /// the answer keeps a body excerpt whatever its status (a 2xx's body is otherwise not read
    /// into memory at the default capture), for the exchanges the responses log shows.</summary>
    public ValueTask<Attempt> SendAsync(Request request, bool excerpt, CancellationToken cancel)
    {
        var capture = excerpt ? _excerptCapture : _capture;
        return _tokens is null ? SendOnceAsync(request, null, capture, cancel) : SendAuthorizedAsync(request, _tokens, capture, cancel);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<Attempt> SendAuthorizedAsync(Request request, ITokenSource tokens, ResponseCapture capture, CancellationToken cancel)
    {
        var current = await tokens.CurrentAsync(cancel).ConfigureAwait(false);
        if (current.Token is not { } token) return Attempt.NewUnreachable(current.Problem!);
        var attempt = await SendOnceAsync(request, token, capture, cancel).ConfigureAwait(false);
        if (Outcome.status(attempt) != 401) return attempt;
        // Refused: the token expired early, was revoked or rotated. Once more with a newer one.
        var renewed = await tokens.RenewAsync(token, cancel).ConfigureAwait(false);
        if (renewed.Token is not { } newer) return Attempt.NewUnreachable(renewed.Problem!);
        return ReferenceEquals(newer, token) ? attempt : await SendOnceAsync(request, newer, capture, cancel).ConfigureAwait(false);
    }

    ValueTask<Attempt> SendOnceAsync(Request request, BearerToken? token, ResponseCapture capture, CancellationToken cancel) =>
        _plain is not null && PlainHttp.Serves(request.Url)
            ? SendPlainAsync(request, token, capture, cancel)
            : SendThroughClientAsync(request, token, capture, cancel);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<Attempt> SendPlainAsync(Request request, BearerToken? token, ResponseCapture capture, CancellationToken cancel)
    {
        try
        {
            return await _plain!.SendAsync(request, token, capture, _requestTimeout, cancel).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            return Attempt.TimedOut;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<Attempt> SendThroughClientAsync(Request request, BearerToken? token, ResponseCapture capture, CancellationToken cancel)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(_requestTimeout);
        try
        {
            using var message = ToMessage(request, token);
            using var response = await _client.SendAsync(message, timeout.Token).ConfigureAwait(false);
            return Attempt.NewAnswered(await ClientAnswer.ReadAsync(response, capture, timeout.Token).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            return Attempt.TimedOut;
        }
        catch (HttpRequestException e)
        {
            return Attempt.NewUnreachable(e.InnerException?.Message ?? e.Message);
        }
        catch (IOException e)
        {
            // The body of a kept answer broke off (HttpIOException), as on the lean path.
            return Attempt.NewUnreachable(e.Message);
        }
    }

    /// <summary>Headers that say where the body ends. That is the sender's to say, on both paths:
    /// a route's own value could make the length disagree with the body, or smuggle a second
    /// request onto a keep-alive connection.</summary>
    internal static bool FramesBody(string name) =>
        name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase);

    /// <summary>The Authorization header, which the sender's token replaces when it has one: a
    /// route copying a production request's credentials must not override the gateway's.</summary>
    internal static bool IsAuthorization(string name) => name.Equals("Authorization", StringComparison.OrdinalIgnoreCase);

    static HttpRequestMessage ToMessage(Request request, BearerToken? token)
    {
        var message = new HttpRequestMessage(ToHttpMethod(request.Method), request.Url);
        if (!request.Method.IsDelete || !request.Body.IsEmpty)
            message.Content = new ReadOnlyMemoryContent(request.Body);
        foreach (var (name, value) in request.Headers)
        {
            if (FramesBody(name) || (token is not null && IsAuthorization(name))) continue;
            if (!message.Headers.TryAddWithoutValidation(name, value))
                message.Content?.Headers.TryAddWithoutValidation(name, value);
        }
        if (token is not null) message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token.Value);
        return message;
    }

    static HttpMethod ToHttpMethod(Method method) =>
        method.IsPost ? HttpMethod.Post : method.IsPut ? HttpMethod.Put : HttpMethod.Delete;

    public void Dispose()
    {
        _client.Dispose();
        _plain?.Dispose();
    }
}
