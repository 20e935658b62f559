// What a replay works with besides its parameters (RunSettings, in the core): the
// router in force, where partitions start, how HTTP goes out, where dead letters and
// the responses log go, where the log goes. Immutable; built once by the command that runs it.
using System.Net;
using Replay.Core;
using Replay.Host.Delivery;
using Replay.Host.Operating;

namespace Replay.Host.Replay;

public sealed record ReplayServices
{
    /// <summary>The router in force now; read once per record so a rules reload takes effect between records.</summary>
    public required Func<FSharpRouter> Router { get; init; }
    /// <summary>The live rules behind <see cref="Router"/> with --rules (owned: disposed after the run).</summary>
    public Rules.LiveRules? Rules { get; init; }
    /// <summary>--from: the start of partitions without a committed offset (of all, with <see cref="Reset"/>).</summary>
    public StartPosition Start { get; init; } = StartPosition.Latest;
    /// <summary>--reset: start at <see cref="Start"/> even where the group has committed offsets.</summary>
    public bool Reset { get; init; }
    public IWebProxy? Proxy { get; init; }
    /// <summary>TLS to the destination (--ca-file, --client-cert/--client-key, --insecure-skip-verify); null: system defaults.</summary>
    public Security.ClientTls? Tls { get; init; }
    public IDeadLetterSink DeadLetters { get; init; } = new DeadLetterLog(Console.Error);
    /// <summary>--auth-bearer-file / --oauth2-*: the bearer token each request carries; null: none.</summary>
    public Security.ITokenSource? Tokens { get; init; }
    /// <summary>What of each answer is kept (status always; headers and body excerpts for dead letters, comparisons).</summary>
    public ResponseCapture Capture { get; init; } = ResponseCapture.Default;
    /// <summary>--responses / --responses-topic: the sampled log of exchanges; null: none (owned by
    /// the command that built it, which disposes it after the run).</summary>
    public ExchangeLog? Exchanges { get; init; }
    /// <summary>Overrides the HTTP handler (tests, --dry-run).</summary>
    public HttpMessageHandler? Handler { get; init; }
    public TextWriter Log { get; init; } = Console.Error;
    /// <summary>`replay compare`: told of each record's copies once all are finished; null for other runs.</summary>
    public Comparison.ComparingRun? Comparison { get; init; }
}
