using Microsoft.FSharp.Core;
using Replay.Core;
using Envelope = Replay.Core.Envelope.Envelope;

namespace Replay.Host.Replay;

/// <summary>The core's Router (an F# curried function) under a C# name.</summary>
public sealed class FSharpRouter(FSharpFunc<Record, FSharpFunc<Envelope, Choice>> route)
{
    public FSharpFunc<Record, FSharpFunc<Envelope, Choice>> Route { get; } = route;

    public static FSharpRouter Always(Route route)
    {
        var choice = Choice.NewUse(route);
        return new(FuncConvert.FromFunc<Record, Envelope, Choice>((_, _) => choice));
    }
}
