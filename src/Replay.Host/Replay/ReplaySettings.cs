using System.Net;
using Replay.Core;
using Replay.Host.Delivery;
using Replay.Host.Operating;

namespace Replay.Host.Replay;

/// <summary>Everything one `replay run` needs, already validated.</summary>
public sealed class ReplaySettings
{
    /// <summary>librdkafka settings, bootstrap.servers and group.id included.</summary>
    public required IReadOnlyDictionary<string, string> Kafka { get; set; }
    /// <summary>A topic name, or a regex when it starts with '^'.</summary>
    public required string Topic { get; set; }
    public required Pipeline.Settings Pipeline { get; set; }
    /// <summary>The router in force now; read once per record so a rules reload takes effect between records.</summary>
    public required Func<FSharpRouter> Router { get; set; }
    /// <summary>The live rules behind <see cref="Router"/> with --rules (owned: disposed after the run).</summary>
    public Rules.LiveRules? Rules { get; set; }
    public int Concurrency { get; set; } = 64;
    public int MaxInFlightRecords { get; set; } = 512;
    public long MaxInFlightBytes { get; set; } = 64L << 20;
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan? MaxRetryDuration { get; set; }
    /// <summary>Requests per second at most; null: unlimited.</summary>
    public double? MaxRate { get; set; }
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(100);
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>Stop once the high-water marks seen at assignment are reached.</summary>
    public bool UntilEnd { get; set; }
    public long? MaxRecords { get; set; }
    public IWebProxy? Proxy { get; set; }
    /// <summary>TLS to the destination (--ca-file, --client-cert/--client-key, --insecure-skip-verify); null: system defaults.</summary>
    public Security.ClientTls? Tls { get; set; }
    public IDeadLetterSink DeadLetters { get; set; } = new DeadLetterLog(Console.Error);
    /// <summary>The destination's bearer tokens (--auth-bearer-file, --oauth2-*); null: none sent. Owned: disposed after the run.</summary>
    public Security.ITokenSource? Tokens { get; set; }
    /// <summary>What the senders keep of each answer.</summary>
    public ResponseCapture Capture { get; set; } = ResponseCapture.Default;
    /// <summary>Overrides the HTTP handler (tests, TLS options).</summary>
    public HttpMessageHandler? Handler { get; set; }
    public TextWriter Log { get; set; } = Console.Error;

    // Operating: where partitions start, whether anything is sent, how the run is watched.
    /// <summary>--from: the start of partitions without a committed offset (of all, with <see cref="Reset"/>).</summary>
    public StartPosition Start { get; set; } = StartPosition.Latest;
    /// <summary>--reset: start at <see cref="Start"/> even where the group has committed offsets.</summary>
    public bool Reset { get; set; }
    /// <summary>--dry-run: print each request instead of sending it; store and commit nothing.</summary>
    public bool DryRun { get; set; }
    public OperatingSettings Operating { get; set; } = new();
}
