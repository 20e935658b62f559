// A rules generation as the live rules run it: its router wrapped to count the records
// its rules route and fail on (RulesProbation's counts), the generation it replaced for
// as long as it is on probation, and the rules whose first failure was already logged.
// Per record this costs an interlocked increment, and a judgement only while on probation.
using System.Collections.Concurrent;
using Microsoft.FSharp.Core;
using Replay.Core;
using Replay.Host.Replay;
using Envelope = Replay.Core.Envelope.Envelope;

namespace Replay.Host.Rules;

sealed class ActiveGeneration
{
    long _routed, _failed;

    public RuleGeneration Generation { get; }
    public FSharpRouter Router { get; }
    /// <summary>When it came into force (Environment.TickCount64).</summary>
    public long Since { get; } = Environment.TickCount64;
    /// <summary>The generation to go back to while this one is on probation; null once it
    /// passed, and for the first generation of a run.</summary>
    public volatile ActiveGeneration? Fallback;
    /// <summary>Rules whose first failure in this generation was already logged.</summary>
    public ConcurrentDictionary<string, bool> Reported { get; } = new(StringComparer.Ordinal);

    public RulesProbation.Counts Counts => new(Interlocked.Read(ref _routed), Interlocked.Read(ref _failed));

    /// <param name="failed">Told of each record a rule failed on (the rule, why, the record).</param>
    /// <param name="routed">Told after each record while this generation is on probation.</param>
    public ActiveGeneration(RuleGeneration generation, ActiveGeneration? fallback,
        Action<ActiveGeneration, string, string, Record> failed, Action<ActiveGeneration> routed)
    {
        Generation = generation;
        Fallback = fallback;
        var inner = generation.Router.Route;
        Router = new FSharpRouter(FuncConvert.FromFunc<Record, Envelope, Choice>((record, envelope) =>
        {
            var choice = FSharpFunc<Record, Envelope>.InvokeFast(inner, record, envelope);
            Interlocked.Increment(ref _routed);
            if (choice is Choice.RuleFailed failure)
            {
                Interlocked.Increment(ref _failed);
                failed(this, failure.rule, failure.message, record);
            }
            else if (choice is Choice.Use { Item.Body: not null } use)
                // A body runs later, when the pipeline builds the request: its failure is counted then.
                choice = Choice.NewUse(RouteModule.observeBody((rule, message) =>
                {
                    Interlocked.Increment(ref _failed);
                    failed(this, rule, message, record);
                }, use.Item));
            if (Fallback is not null) routed(this);
            return choice;
        }));
    }
}
