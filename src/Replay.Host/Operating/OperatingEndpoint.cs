// The HTTP endpoint operators and Prometheus talk to, on --metrics-host:--metrics-port:
// GET /metrics (Prometheus text format, written by prometheus-net), GET /healthz
// (the process is alive) and GET /readyz (owns partitions and is not stuck).
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Replay.Host.Operating;

public sealed class OperatingEndpoint : IAsyncDisposable
{
    readonly WebApplication _app;

    /// <summary>The base URL actually listened on (the real port when 0 was asked for).</summary>
    public Uri Url { get; }

    OperatingEndpoint(WebApplication app, Uri url)
    {
        _app = app;
        Url = url;
    }

    public static async Task<OperatingEndpoint> StartAsync(IPAddress host, int port, CollectorRegistry registry, Func<string?> readiness)
    {
        // No args and the program's own folder as content root: an appsettings.json or ASPNETCORE_*
        // settings lying around where the operator starts replay must not reconfigure this endpoint.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(host, port));
        var app = builder.Build();
        app.MapMetrics("/metrics", registry);
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/readyz", () => readiness() is { } problem
            ? Results.Text($"not ready: {problem}\n", statusCode: StatusCodes.Status503ServiceUnavailable)
            : Results.Text("ready\n"));
        app.MapGet("/", () => Results.Text("replay: GET /metrics (Prometheus), /healthz (alive), /readyz (assigned and not stuck)\n"));
        await app.StartAsync();
        var address = Cli.ListeningAddress.Of(app);
        return new OperatingEndpoint(app, new Uri(address));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
