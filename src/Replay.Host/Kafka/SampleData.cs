// Telemetry-like Bagheera envelopes for trying Replay out: `replay produce`,
// `replay demo` and the benchmark. Deletes name documents written earlier.
using System.Text;
using Confluent.Kafka;
using Microsoft.FSharp.Collections;
using Replay.Core;
using static Replay.Core.Envelope;

namespace Replay.Host.Kafka;

public sealed record SampleRecord(string Id, Operation Operation, byte[] Value);

public static class SampleData
{
    /// <summary>Makes <paramref name="count"/> envelopes; a fraction <paramref name="deleteRatio"/> delete an earlier document.</summary>
    public static IEnumerable<SampleRecord> Generate(int count, double deleteRatio, int payloadBytes, string ns, int seed)
    {
        var random = new Random(seed);
        var ids = new List<string>();
        var channels = new[] { "release", "beta", "aurora", "nightly" };
        for (var i = 0; i < count; i++)
        {
            if (ids.Count > 0 && random.NextDouble() < deleteRatio)
            {
                var victim = ids[random.Next(ids.Count)];
                yield return new SampleRecord(victim, Operation.Delete, encode(Envelope(ns, victim, [], Operation.Delete, i)));
                continue;
            }
            var id = new Guid(RandomBytes(random, 16)).ToString();
            ids.Add(id);
            var payload = Payload(random, channels[random.Next(channels.Length)], i, payloadBytes);
            yield return new SampleRecord(id, Operation.CreateUpdate, encode(Envelope(ns, id, payload, Operation.CreateUpdate, i)));
        }
    }

    static global::Replay.Core.Envelope.Envelope Envelope(string ns, string id, byte[] payload, Operation operation, int i) =>
        new(ns, id, new byte[] { 127, 0, 0, 1 }, payload, 1_700_000_000_000L + i * 1000L, operation, "1", FSharpList<string>.Empty);

    static byte[] RandomBytes(Random random, int n) { var b = new byte[n]; random.NextBytes(b); return b; }

    static byte[] Payload(Random random, string channel, int i, int size)
    {
        var head = $"{{\"ver\":1,\"seq\":{i},\"info\":{{\"appUpdateChannel\":\"{channel}\",\"reason\":\"idle-daily\"}},\"simpleMeasurements\":{{\"uptime\":{random.Next(1, 100000)}}},\"pad\":\"";
        var padding = Math.Max(0, size - head.Length - 2);
        var sb = new StringBuilder(head, size + 2);
        for (var j = 0; j < padding; j++) sb.Append((char)('a' + random.Next(26)));
        sb.Append("\"}");
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    /// <summary>Writes records keyed by document id (as Bagheera did), waiting for every acknowledgement.</summary>
    public static void Produce(string bootstrapServers, string topic, IEnumerable<SampleRecord> records, IReadOnlyList<Headers>? headers = null)
    {
        using var diagnostics = new KafkaDiagnostics(TextWriter.Null);
        var written = Produce(bootstrapServers, topic, records, diagnostics, CancellationToken.None, headers);
        if (written.Failure is { } failure) throw new KafkaException(failure);
    }

    /// <summary>What a produce run did: how many records Kafka acknowledged, and the first error.</summary>
    public sealed record Produced(long Acknowledged, Error? Failure, bool Stopped);

    /// <summary>Writes records keyed by document id until done or <paramref name="stop"/>; then waits
    /// (a bounded time once stopped) for the acknowledgements of what was handed over.</summary>
    public static Produced Produce(string bootstrapServers, string topic, IEnumerable<SampleRecord> records, KafkaDiagnostics diagnostics,
        CancellationToken stop, IReadOnlyList<Headers>? headers = null, TimeSpan? messageTimeout = null)
    {
        var config = new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            Acks = Acks.All,
            EnableIdempotence = true,
            LingerMs = 5,
            // librdkafka's default is five minutes per record: a broker gone for that long is an answer too.
            MessageTimeoutMs = (int)(messageTimeout ?? TimeSpan.FromMinutes(5)).TotalMilliseconds,
        };
        using var producer = new ProducerBuilder<string, byte[]>(config).WithDiagnostics(diagnostics).Build();
        Error? failure = null;
        long acknowledged = 0;
        var i = 0;
        foreach (var record in records)
        {
            if (stop.IsCancellationRequested) break;
            var message = new Message<string, byte[]> { Key = record.Id, Value = record.Value, Headers = headers?[i % headers.Count] };
            i++;
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    producer.Produce(topic, message, report =>
                    {
                        if (report.Error.IsError) failure ??= report.Error;
                        else Interlocked.Increment(ref acknowledged);
                    });
                    break;
                }
                catch (ProduceException<string, byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    producer.Poll(TimeSpan.FromMilliseconds(50));
                }
            }
        }
        // Flushed in slices, so that a signal is heard; once stopped, a few seconds more at most.
        var giveUp = DateTime.MaxValue;
        while (producer.Flush(TimeSpan.FromMilliseconds(200)) > 0)
        {
            if (stop.IsCancellationRequested && giveUp == DateTime.MaxValue) giveUp = DateTime.UtcNow + TimeSpan.FromSeconds(5);
            if (DateTime.UtcNow > giveUp) break;
        }
        return new Produced(Interlocked.Read(ref acknowledged), failure, stop.IsCancellationRequested);
    }
}
