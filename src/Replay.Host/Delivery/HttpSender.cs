// Turns a core Request into one HTTP attempt and the attempt's outcome into the
// core's Attempt, so that classification and retry decisions stay in the core.
using System.Net;
using System.Runtime.CompilerServices;
using Replay.Core;
using static Replay.Core.Outcome;
using static Replay.Core.Pipeline;

namespace Replay.Host.Delivery;

public sealed class HttpSender : IDisposable
{
    readonly HttpMessageInvoker _client;
    readonly PlainHttp? _plain;
    readonly TimeSpan _requestTimeout;
    readonly ResponseCapture _capture;

    /// <param name="plain">Takes the http:// requests when given; only for destinations
    /// reached directly, since it knows no proxy.</param>
    /// <param name="capture">What to keep of each answer; <see cref="ResponseCapture.Default"/> when null.</param>
    public HttpSender(HttpMessageHandler handler, TimeSpan requestTimeout, PlainHttp? plain = null, ResponseCapture? capture = null)
    {
        _client = new HttpMessageInvoker(handler, disposeHandler: true);
        _requestTimeout = requestTimeout;
        _plain = plain;
        _capture = capture ?? ResponseCapture.Default;
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

    /// <summary>One attempt, bounded by the request timeout; <paramref name="cancel"/> abandons it.</summary>
    public ValueTask<Attempt> SendAsync(Request request, CancellationToken cancel) =>
        _plain is not null && PlainHttp.Serves(request.Url) ? SendPlainAsync(request, cancel) : SendThroughClientAsync(request, cancel);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<Attempt> SendPlainAsync(Request request, CancellationToken cancel)
    {
        try
        {
            return await _plain!.SendAsync(request, _capture, _requestTimeout, cancel).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            return Attempt.TimedOut;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<Attempt> SendThroughClientAsync(Request request, CancellationToken cancel)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(_requestTimeout);
        try
        {
            using var message = ToMessage(request);
            using var response = await _client.SendAsync(message, timeout.Token).ConfigureAwait(false);
            return Attempt.NewAnswered(await ClientAnswer.ReadAsync(response, _capture, timeout.Token).ConfigureAwait(false));
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

    static HttpRequestMessage ToMessage(Request request)
    {
        var message = new HttpRequestMessage(ToHttpMethod(request.Method), request.Url);
        if (!request.Method.IsDelete || !request.Body.IsEmpty)
            message.Content = new ReadOnlyMemoryContent(request.Body);
        foreach (var (name, value) in request.Headers)
        {
            if (FramesBody(name)) continue;
            if (!message.Headers.TryAddWithoutValidation(name, value))
                message.Content?.Headers.TryAddWithoutValidation(name, value);
        }
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
