// `replay sink`: a small Bagheera-compatible receiver on 127.0.0.1 that shows a
// replay arriving. POST|PUT /submit/{namespace}/{id} → 201, DELETE → 200.
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Replay.Host.Sink;

public sealed record Received(string Method, string Path, int Bytes, string? ReplayId);

public sealed class SinkServer : IAsyncDisposable
{
    readonly WebApplication _app;
    long _posts, _deletes, _rejected;

    public ConcurrentQueue<Received> Log { get; } = new();
    public long Posts => Interlocked.Read(ref _posts);
    public long Deletes => Interlocked.Read(ref _deletes);
    public long Total => Posts + Deletes;
    public long Rejected => Interlocked.Read(ref _rejected);
    public string Url { get; private set; } = "";

    /// <summary>Called for each accepted request (e.g. to print it).</summary>
    public Action<Received>? OnReceived { get; init; }

    public SinkServer(string host = "127.0.0.1", int port = 0)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Limits.MaxRequestBodySize = 64L << 20);
        builder.WebHost.UseUrls($"http://{host}:{port}");
        _app = builder.Build();
        _app.Run(HandleAsync);
    }

    public async Task StartAsync(CancellationToken cancel = default)
    {
        await _app.StartAsync(cancel);
        Url = Cli.ListeningAddress.Of(_app);
    }

    async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var path = request.Path.Value ?? "";
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var submitAt = Array.IndexOf(segments, "submit");
        if (submitAt < 0 || segments.Length < submitAt + 3)
        {
            Interlocked.Increment(ref _rejected);
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        var bytes = 0;
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(buffer)) > 0) bytes += read;
        var received = new Received(request.Method, request.Path.ToUriComponent(), bytes, request.Headers["X-Replay-Id"].FirstOrDefault());
        switch (request.Method)
        {
            case "POST" or "PUT":
                Interlocked.Increment(ref _posts);
                context.Response.StatusCode = StatusCodes.Status201Created;
                break;
            case "DELETE":
                Interlocked.Increment(ref _deletes);
                context.Response.StatusCode = StatusCodes.Status200OK;
                break;
            default:
                Interlocked.Increment(ref _rejected);
                context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
                return;
        }
        Log.Enqueue(received);
        OnReceived?.Invoke(received);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
