// The servers Replay starts (sink, ingest, metrics) may be told to listen on port 0;
// this is where the port the system chose is read back.
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Replay.Host.Cli;

public static class ListeningAddress
{
    /// <summary>The first address a started app listens on, e.g. http://127.0.0.1:41234.</summary>
    public static string Of(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
}
