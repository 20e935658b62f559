// The Kafka side of `replay ingest`: writes a submission's envelopes and answers only
// once Kafka has acknowledged every one of them, so a 201 means "stored". acks=all
// and idempotence are not the operator's to turn off: they are what makes the 201
// true and keeps retries from duplicating records. message.timeout.ms is bounded so
// that, with Kafka unreachable, the client hears 503 in seconds instead of waiting
// for librdkafka's default five minutes.
using Confluent.Kafka;
using Replay.Core;
using Replay.Host.Kafka;

namespace Replay.Host.Ingest;

/// <summary>How a write ended.</summary>
public enum WriteResult
{
    /// <summary>Kafka acknowledged every envelope.</summary>
    Written,
    /// <summary>Kafka refused a record as too large for it.</summary>
    TooLarge,
    /// <summary>Kafka did not acknowledge in time, or the producer cannot write: some
    /// envelopes may be missing, so the client must retry.</summary>
    Unavailable,
}

public sealed class KafkaWriter : IDisposable
{
    /// <summary>Envelope framing around a payload: namespace, id, address, partitions...</summary>
    const int EnvelopeOverhead = 64 * 1024;

    readonly IProducer<string, byte[]> _producer;
    readonly TextWriter _log;
    readonly CancellationTokenSource _fatal = new();
    string _lastError = "";

    /// <summary>Cancelled when the producer hit a fatal error: nothing more can be written.</summary>
    public CancellationToken Fatal => _fatal.Token;
    /// <summary>The latest error librdkafka reported, for 503 bodies and logs.</summary>
    public string LastError => Volatile.Read(ref _lastError);

    public KafkaWriter(IReadOnlyDictionary<string, string> kafka, TimeSpan timeout, int maxContentLength, TextWriter log)
    {
        _log = log;
        _diagnostics = new KafkaDiagnostics(log);
        _producer = new ProducerBuilder<string, byte[]>(BuildConfig(kafka, timeout, maxContentLength))
            .SetErrorHandler((_, e) => OnError(e))
            .SetLogHandler((_, m) => _diagnostics.OnLog(m))
            .Build();
    }

    public static ProducerConfig BuildConfig(IReadOnlyDictionary<string, string> kafka, TimeSpan timeout, int maxContentLength)
    {
        var config = new ProducerConfig(kafka.ToDictionary(kv => kv.Key, kv => kv.Value))
        {
            // A 201 promises the submission survives a broker loss: every in-sync replica has it.
            Acks = Acks.All,
            // librdkafka's retries may not duplicate or reorder what a client was told is stored.
            EnableIdempotence = true,
            // The longest a client waits for its answer when Kafka is down.
            MessageTimeoutMs = (int)Math.Max(1, timeout.TotalMilliseconds),
        };
        // After an outage clients are answered 503 until a reconnect; librdkafka's
        // default backoff grows to 10 s, which would keep answering 503 long after Kafka is back.
        if (!kafka.ContainsKey("reconnect.backoff.max.ms")) config.ReconnectBackoffMaxMs = 1000;
        // A short linger batches concurrent submissions without adding noticeable latency.
        if (!kafka.ContainsKey("linger.ms")) config.LingerMs = 2;
        // The largest body accepted must fit in one record, envelope included.
        var needed = maxContentLength + EnvelopeOverhead;
        if (!kafka.ContainsKey("message.max.bytes") || config.MessageMaxBytes < needed) config.MessageMaxBytes = needed;
        return config;
    }

    /// <summary>Writes the records to <paramref name="topic"/> in order and waits for every acknowledgement.</summary>
    public async Task<WriteResult> WriteAsync(string topic, IReadOnlyList<Submission.Write> writes)
    {
        if (_fatal.IsCancellationRequested) return WriteResult.Unavailable;
        var pending = new List<Task<DeliveryResult<string, byte[]>>>(writes.Count);
        var result = WriteResult.Written;
        // Produced one after another, so librdkafka keeps them in this order per partition.
        foreach (var write in writes)
        {
            try
            {
                var message = new Message<string, byte[]> { Key = write.Key, Value = Envelope.encode(write.Envelope) };
                pending.Add(_producer.ProduceAsync(topic, message));
            }
            catch (KafkaException e)
            {
                // The local queue is full or the producer is closing: the client retries the
                // whole submission, which at worst stores a document twice, never loses it.
                Report($"kafka: cannot queue a record for '{topic}': {e.Error.Reason}");
                result = Worse(result, Classify(e.Error));
                break;
            }
        }
        // Every record queued is awaited, even after a failure, so none ends unobserved.
        foreach (var task in pending)
        {
            try
            {
                await task.ConfigureAwait(false);
            }
            catch (KafkaException e)
            {
                Report($"kafka: a record was not written to '{topic}': {e.Error.Reason}");
                result = Worse(result, Classify(e.Error));
            }
        }
        return result;
    }

    /// <summary>Unavailable wins: the client must retry, whatever else happened.</summary>
    static WriteResult Worse(WriteResult a, WriteResult b) => (WriteResult)Math.Max((int)a, (int)b);

    static WriteResult Classify(Error error) => error.Code switch
    {
        ErrorCode.MsgSizeTooLarge => WriteResult.TooLarge,
        _ => WriteResult.Unavailable,
    };

    void OnError(Error error)
    {
        Volatile.Write(ref _lastError, error.Reason);
        if (error.IsFatal)
        {
            _log.WriteLine($"kafka: fatal producer error: {error.Reason}; no more submissions can be written, stopping");
            _fatal.Cancel();
            return;
        }
        _diagnostics.OnError(error);
    }

    readonly KafkaDiagnostics _diagnostics;

    /// <summary>Logs a failed write, once per kind of failure and window, with a count after:
    /// an outage must not print a line per request.</summary>
    void Report(string message) => _diagnostics.Report(message);

    /// <summary>Waits for records still in flight, then closes the producer.</summary>
    public void Dispose()
    {
        _producer.Flush(TimeSpan.FromSeconds(10));
        _producer.Dispose();
        _diagnostics.Dispose();
    }
}
