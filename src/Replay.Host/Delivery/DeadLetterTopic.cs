// Dead letters to a Kafka topic: the original key, value and headers, plus headers
// that say where the record came from and why it failed. `replay redrive --topic`
// (or `replay run` on that topic) sends them again. A write returns only once the
// broker acknowledged it, so the record it stands for may then count as finished.
using System.Text;
using Confluent.Kafka;
using Replay.Host.Kafka;

namespace Replay.Host.Delivery;

public sealed class DeadLetterTopic : IDeadLetterSink
{
    public const string ReasonHeader = "replay-dead-letter-reason";
    public const string SourceHeader = "replay-dead-letter-source";
    public const string StatusHeader = "replay-dead-letter-last-status";
    public const string AttemptsHeader = "replay-dead-letter-attempts";
    public const string UrlHeader = "replay-dead-letter-url";

    readonly IProducer<byte[]?, byte[]?> _producer;
    readonly string _topic;

    /// <param name="log">Where Kafka's complaints go (deduplicated); standard error by default.</param>
    public DeadLetterTopic(IReadOnlyDictionary<string, string> kafka, string topic, TextWriter? log = null)
    {
        _topic = topic;
        var config = new ProducerConfig(kafka
            .Where(kv => !ConsumerOnly.Contains(kv.Key))
            .ToDictionary(kv => kv.Key, kv => kv.Value))
        {
            Acks = Acks.All,
            EnableIdempotence = true,
        };
        _diagnostics = new KafkaDiagnostics(log ?? Console.Error);
        _producer = new ProducerBuilder<byte[]?, byte[]?>(config).WithDiagnostics(_diagnostics).Build();
    }

    readonly KafkaDiagnostics _diagnostics;

    /// <summary>Consumer settings that a producer would reject.</summary>
    static readonly HashSet<string> ConsumerOnly = new(StringComparer.Ordinal)
    {
        "group.id", "group.protocol", "auto.offset.reset", "enable.auto.commit", "enable.auto.offset.store",
        "partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms",
        "fetch.max.bytes", "fetch.min.bytes", "fetch.wait.max.ms", "max.partition.fetch.bytes", "queued.max.messages.kbytes",
        "queued.min.messages", "enable.partition.eof", "auto.commit.interval.ms", "group.instance.id", "isolation.level",
        "check.crcs", "group.remote.assignor", "fetch.queue.backoff.ms", "fetch.error.backoff.ms",
    };

    public void Write(DeadLetter letter)
    {
        // The original headers byte for byte, repeats and binary values included: redrive sends them on.
        var headers = new Headers();
        if (letter.Original is { Headers: { } original })
            foreach (var header in original) headers.Add(header.Key, header.GetValueBytes());
        else if (letter.Headers is not null)
            foreach (var (name, value) in letter.Headers)
                headers.Add(name, value is null ? null : Encoding.UTF8.GetBytes(value));
        headers.Add(ReasonHeader, Encoding.UTF8.GetBytes(letter.Reason));
        headers.Add(SourceHeader, Encoding.UTF8.GetBytes($"{letter.Topic}/{letter.Partition}/{letter.Offset}"));
        headers.Add(AttemptsHeader, Encoding.UTF8.GetBytes(letter.Attempts.ToString()));
        if (letter.LastStatus is { } status) headers.Add(StatusHeader, Encoding.UTF8.GetBytes(status.ToString()));
        if (letter.Url is { } url) headers.Add(UrlHeader, Encoding.UTF8.GetBytes(url));
        var message = new Message<byte[]?, byte[]?>
        {
            Key = letter.Original is { } o ? o.Key : letter.KeyBase64 is null ? null : Convert.FromBase64String(letter.KeyBase64),
            Value = letter.Original is { } v ? v.Value.ToArray() : Convert.FromBase64String(letter.ValueBase64),
            Headers = headers,
        };
        // Blocking is deliberate: the record must not count as finished before its dead letter is stored.
        // A broker that does not acknowledge within message.timeout.ms makes this throw: the record
        // stays unfinished and the write is tried again.
        _producer.ProduceAsync(_topic, message).GetAwaiter().GetResult();
    }

    public void Dispose()
    {
        _producer.Flush(TimeSpan.FromSeconds(10));
        _producer.Dispose();
        _diagnostics.Dispose();
    }
}
