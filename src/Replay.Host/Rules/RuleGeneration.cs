// One loaded version of a rules file: its router, built by the core over the
// compiled snippets, and the collectible load context the snippets live in. The
// live rules swap whole generations, so every record is routed by exactly one.
using System.Runtime.Loader;
using Replay.Host.Replay;

namespace Replay.Host.Rules;

public sealed class RuleGeneration
{
    public required int Number { get; init; }
    public required FSharpRouter Router { get; init; }
    public required int RuleCount { get; init; }
    /// <summary>How many destinations the run has (by --dest, or this file's `defaults: dest:` list).</summary>
    public required int Destinations { get; init; }
    public required IReadOnlyList<RuleDiagnostic> Warnings { get; init; }
    public required TimeSpan CompileTime { get; init; }
    /// <summary>Where the compiled snippets live; unloaded once the generation is replaced.</summary>
    public required AssemblyLoadContext Context { get; init; }

    /// <summary>Lets the runtime free the generation's code once nothing runs it any more;
    /// a record being routed right now finishes first.</summary>
    public void Unload() => Context.Unload();
}
