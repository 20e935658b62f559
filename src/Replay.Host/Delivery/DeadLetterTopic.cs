// Dead letters to a Kafka topic: the original key, value and headers, plus headers
// that say where the record came from, why it failed and what the destination last
// answered (never in the record itself, which stays byte for byte). `replay redrive --topic`
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
    /// <summary>Which of the run's destinations could not take it, named as in the metrics.</summary>
    public const string DestinationHeader = "replay-dead-letter-destination";
    /// <summary>What the last attempt got: answered, timeout or unreachable.</summary>
    public const string OutcomeHeader = "replay-dead-letter-last-outcome";
    /// <summary>Why the last attempt got no answer (unreachable).</summary>
    public const string ErrorHeader = "replay-dead-letter-last-error";
    /// <summary>The last answer's kept headers, as a JSON object.</summary>
    public const string AnswerHeadersHeader = "replay-dead-letter-last-headers";
    /// <summary>The start of the last answer's body, as its bytes (at most 4 KiB, redacted).</summary>
    public const string AnswerBodyHeader = "replay-dead-letter-last-body";
    public const string AnswerBodyLengthHeader = "replay-dead-letter-last-body-length";
    public const string AnswerTruncatedHeader = "replay-dead-letter-last-body-truncated";

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
    internal static readonly HashSet<string> ConsumerOnly = new(StringComparer.Ordinal)
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
        if (letter.Destination is { } destination) headers.Add(DestinationHeader, Encoding.UTF8.GetBytes(destination));
        if (letter.LastAnswer is { } answer) AddAnswer(headers, answer);
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

    /// <summary>The last answer as headers, each bounded: the body excerpt is at most 4 KiB (as in
    /// the file, but as bytes, so a binary body needs no base64) and header values 1 KiB each.</summary>
    static void AddAnswer(Headers headers, ServerAnswer answer)
    {
        headers.Add(OutcomeHeader, Encoding.UTF8.GetBytes(answer.Outcome));
        if (answer.Error is { } error) headers.Add(ErrorHeader, Encoding.UTF8.GetBytes(error));
        if (answer.Headers is { } kept)
            headers.Add(AnswerHeadersHeader, System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(kept, DeadLetterJson.Default.IReadOnlyDictionaryStringString));
        // Masking a secret can lengthen the excerpt: cut it to the bound again.
        var shown = answer.Cut(ResponseCapture.ExcerptBytes);
        if (shown.Body is not null || shown.BodyBase64 is not null) headers.Add(AnswerBodyHeader, shown.BodyBytes());
        if (shown.BodyLength is { } length) headers.Add(AnswerBodyLengthHeader, Encoding.UTF8.GetBytes(length.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        if (shown.BodyTruncated is { } truncated) headers.Add(AnswerTruncatedHeader, Encoding.UTF8.GetBytes(truncated ? "true" : "false"));
    }

    public void Dispose()
    {
        _producer.Flush(TimeSpan.FromSeconds(10));
        _producer.Dispose();
        _diagnostics.Dispose();
    }
}
