// Everything one `replay ingest` needs, already validated: where to listen, which
// namespaces to accept, where each namespace's envelopes go, and the Kafka client.
using System.Net;

namespace Replay.Host.Ingest;

public sealed class IngestSettings
{
    /// <summary>librdkafka settings, bootstrap.servers included. The writer adds the no-loss ones.</summary>
    public required IReadOnlyDictionary<string, string> Kafka { get; set; }
    /// <summary>One topic for every namespace; null when each namespace has its own topic.</summary>
    public string? Topic { get; set; }
    /// <summary>The accepted namespaces; null accepts any (only with a single <see cref="Topic"/>).</summary>
    public IReadOnlySet<string>? Namespaces { get; set; }
    /// <summary>The address to listen on; loopback unless the operator widens it.</summary>
    public string Host { get; set; } = "127.0.0.1";
    /// <summary>0 picks a free port.</summary>
    public int Port { get; set; } = 8080;
    /// <summary>Bagheera's max.content.length: larger bodies (after decompression) get 413.</summary>
    public int MaxContentLength { get; set; } = 1 << 20;
    /// <summary>Peers whose X-Forwarded-For is believed.</summary>
    public IReadOnlyList<IPNetwork> TrustedProxies { get; set; } = [];
    /// <summary>How long a write may wait for Kafka before the client gets 503.</summary>
    public TimeSpan KafkaTimeout { get; set; } = TimeSpan.FromSeconds(5);
    public TextWriter Log { get; set; } = Console.Error;

    /// <summary>The most bytes a compressed body may have on the wire: what a body within
    /// <see cref="MaxContentLength"/> can take even when incompressible (deflate then adds
    /// 5 bytes per 64 KiB, gzip 18 in all), with room to spare. Anything longer cannot
    /// decompress to an acceptable body, however it is padded.</summary>
    public long MaxWireLength => MaxContentLength + MaxContentLength / 64L + 1024;

    /// <summary>The topic a namespace's envelopes go to.</summary>
    public string TopicFor(string ns) => Topic ?? ns;

    public bool Accepts(string ns) => Namespaces is null || Namespaces.Contains(ns);

    /// <summary>The checks the command line cannot express; null when the settings are usable.</summary>
    public string? Validate()
    {
        if (!Kafka.ContainsKey("bootstrap.servers"))
            return "no Kafka to write to: pass --bootstrap-servers HOST:PORT (or bootstrap.servers in --properties)";
        if (Topic is null && Namespaces is null)
            return "--topic-per-namespace needs --namespaces a,b: clients must not choose which topics are written";
        if (Topic is not null && !KafkaNames.IsTopic(Topic))
            return $"--topic: '{Topic}' is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)";
        if (Topic is null && Namespaces!.FirstOrDefault(ns => !KafkaNames.IsTopic(ns)) is { } bad)
            return $"--namespaces: '{bad}' cannot be a topic name with --topic-per-namespace (1-249 of a-z A-Z 0-9 . _ -)";
        if (Namespaces is { Count: 0 })
            return "--namespaces is empty: name at least one namespace, e.g. --namespaces telemetry";
        if (MaxContentLength <= 0)
            return $"--max-content-length must be a positive number of bytes, not {MaxContentLength}";
        if (Port is < 0 or > 65535)
            return $"--port must be in 0-65535, not {Port}";
        if (KafkaTimeout < TimeSpan.FromMilliseconds(1))
            return "--kafka-timeout must be positive, e.g. 5s";
        return null;
    }
}

/// <summary>Kafka's rule for topic names.</summary>
public static class KafkaNames
{
    public static bool IsTopic(string name) =>
        name.Length is > 0 and < 250 && name is not ("." or "..")
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');
}
