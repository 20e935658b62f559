// Records made up for `replay rules test` and the benchmark: what a Bagheera
// producer would have written to Kafka (an encoded envelope, a key, headers), so
// the dry run goes through the very decision a real run makes. Records come from a
// JSON-lines file, one object per line, or from one set of command-line values.
using System.Text;
using System.Text.Json;
using Microsoft.FSharp.Collections;
using Replay.Core;
using Envelope = Replay.Core.Envelope;

namespace Replay.Host.Rules;

/// <summary>One made-up record, described by the fields a rule can read.</summary>
public sealed class SampleRecord
{
    public string Topic { get; set; } = "telemetry";
    public int Partition { get; set; }
    public long Offset { get; set; }
    public string? Key { get; set; }
    public long KafkaTimestamp { get; set; } = 1_700_000_000_000;
    public List<(string Name, string Value)> Headers { get; } = [];
    public string Namespace { get; set; } = "telemetry";
    public string Id { get; set; } = "sample-id";
    public string Payload { get; set; } = "{}";
    public long Timestamp { get; set; } = 1_700_000_000_000;
    public bool Delete { get; set; }
    public string ApiVersion { get; set; } = "1";
    public List<string> Partitions { get; } = [];

    /// <summary>The Kafka record a producer would have written for it.</summary>
    public Record ToRecord()
    {
        var envelope = new Envelope.Envelope(Namespace, Id, ReadOnlyMemory<byte>.Empty, Encoding.UTF8.GetBytes(Payload), Timestamp,
            Delete ? Envelope.Operation.Delete : Envelope.Operation.CreateUpdate, ApiVersion, ListModule.OfSeq(Partitions));
        return new Record(Topic, Partition, Offset, Encoding.UTF8.GetBytes(Key ?? Id), Envelope.encode(envelope),
            Headers.Select(h => new KafkaHeader(h.Name, Encoding.UTF8.GetBytes(h.Value))).ToArray(), KafkaTimestamp);
    }

    public string Describe() => $"{Namespace}/{Id} ({Topic}[{Partition}]@{Offset})";
}

public static class SampleRecords
{
    public const string Format = """
        one JSON object per line, e.g. {"namespace": "telemetry", "id": "abc", "headers": {"channel": "nightly"},
        "payload": {"build": 1}, "payload_size": 2000000, "topic": "telemetry", "partition": 0, "offset": 7,
        "timestamp": 1700000000000, "kafka_timestamp": 1700000000000, "api_version": "1", "partitions": ["a"],
        "delete": false, "key": "abc"}
        """;

    /// <summary>Reads a JSON-lines file; errors name the line.</summary>
    public static Result<List<SampleRecord>> Read(string path)
    {
        var records = new List<SampleRecord>();
        var number = 0;
        try
        {
            foreach (var line in File.ReadLines(path))
            {
                number++;
                if (string.IsNullOrWhiteSpace(line) || line.TrimStart().StartsWith("//", StringComparison.Ordinal)) continue;
                var parsed = Parse(line, records.Count);
                if (!parsed.IsOk) return Result<List<SampleRecord>>.Fail($"{path}({number}): {parsed.Error}");
                records.Add(parsed.Value!);
            }
        }
        catch (IOException e)
        {
            return Result<List<SampleRecord>>.Fail($"{path}: {e.Message}");
        }
        return Result<List<SampleRecord>>.Ok(records);
    }

    static Result<SampleRecord> Parse(string line, int index)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                return Result<SampleRecord>.Fail("each line is one JSON object describing a record");
            var record = new SampleRecord { Offset = index };
            int? payloadSize = null;
            foreach (var field in document.RootElement.EnumerateObject())
            {
                var v = field.Value;
                switch (field.Name)
                {
                    case "topic": record.Topic = v.GetString()!; break;
                    case "partition": record.Partition = v.GetInt32(); break;
                    case "offset": record.Offset = v.GetInt64(); break;
                    case "key": record.Key = v.GetString(); break;
                    case "kafka_timestamp": record.KafkaTimestamp = v.GetInt64(); break;
                    case "namespace": record.Namespace = v.GetString()!; break;
                    case "id": record.Id = v.GetString()!; break;
                    case "payload": record.Payload = v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText(); break;
                    case "payload_size": payloadSize = v.GetInt32(); break;
                    case "timestamp": record.Timestamp = v.GetInt64(); break;
                    case "delete": record.Delete = v.GetBoolean(); break;
                    case "api_version": record.ApiVersion = v.GetString()!; break;
                    case "partitions":
                        foreach (var p in v.EnumerateArray()) record.Partitions.Add(p.GetString()!);
                        break;
                    case "headers":
                        foreach (var h in v.EnumerateObject()) record.Headers.Add((h.Name, h.Value.GetString()!));
                        break;
                    default:
                        return Result<SampleRecord>.Fail($"unknown field '{field.Name}'; a record is {Format}");
                }
            }
            if (payloadSize is { } size) record.Payload = Padded(record.Payload, size);
            return Result<SampleRecord>.Ok(record);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            return Result<SampleRecord>.Fail($"not a record: {e.Message}");
        }
    }

    /// <summary>A JSON payload of exactly <paramref name="size"/> bytes (at least "{}").</summary>
    public static string Padded(string payload, int size)
    {
        if (size <= Encoding.UTF8.GetByteCount(payload)) return payload;
        const string prefix = "{\"padding\":\"";
        const string suffix = "\"}";
        return prefix + new string('x', Math.Max(0, size - prefix.Length - suffix.Length)) + suffix;
    }
}
