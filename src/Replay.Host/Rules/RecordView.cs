// What a rule's C# snippet sees: every snippet of a rules file is compiled as a
// member of one class derived from RecordView, so `Namespace`, `Header("channel")`
// or `Json("payload.version")` read the record being routed without any prefix.
// One view is made per record and shared by all rules that look at it, so costly
// lookups (payload text, parsed JSON, Bagheera partitions) are done at most once.
using System.Globalization;
using System.Text;
using System.Text.Json;
using Replay.Core;
using Envelope = Replay.Core.Envelope.Envelope;

namespace Replay.Host.Rules;

/// <summary>The record a rule is looking at. Members are cheap unless noted.</summary>
public abstract class RecordView
{
    Record _record = null!;
    Envelope _envelope = null!;
    string[]? _partitions;
    string? _payloadText;
    JsonDocument? _json;
    bool _jsonParsed;

    internal void Bind(Record record, Envelope envelope)
    {
        _record = record;
        _envelope = envelope;
    }

    /// <summary>The Bagheera namespace, e.g. "telemetry".</summary>
    public string Namespace => _envelope.Namespace;
    /// <summary>The document id.</summary>
    public string Id => _envelope.Id;
    public string Topic => _record.Topic;
    /// <summary>The Kafka partition the record was read from.</summary>
    public int Partition => _record.Partition;
    public long Offset => _record.Offset;
    /// <summary>The envelope's timestamp (milliseconds since the Unix epoch, as Bagheera wrote it).</summary>
    public long Timestamp => _envelope.Timestamp;
    /// <summary>The Kafka record's timestamp (milliseconds since the Unix epoch).</summary>
    public long KafkaTimestamp => _record.TimestampMs;
    /// <summary>The envelope's timestamp as a date.</summary>
    public DateTimeOffset Time => DateTimeOffset.FromUnixTimeMilliseconds(_envelope.Timestamp);
    public string ApiVersion => _envelope.ApiVersion;
    /// <summary>Bagheera's partition values of the envelope, in order.</summary>
    public IReadOnlyList<string> Partitions => _partitions ??= _envelope.Partitions.ToArray();
    /// <summary>True for a Bagheera DELETE.</summary>
    public bool IsDelete => _envelope.Operation.IsDelete;
    /// <summary>The Kafka key as UTF-8 text; null when the record has no key.</summary>
    public string? Key => _record.Key is { } key ? Encoding.UTF8.GetString(key) : null;

    /// <summary>The last Kafka header of that name as UTF-8 text; null when absent.</summary>
    public string? Header(string name) => RecordModule.header(name, _record);
    public bool HasHeader(string name)
    {
        foreach (var header in _record.Headers)
            if (string.Equals(header.Name, name, StringComparison.Ordinal)) return true;
        return false;
    }

    /// <summary>The document body (not copied).</summary>
    public ReadOnlyMemory<byte> Payload => _envelope.Payload;
    public int PayloadSize => _envelope.Payload.Length;
    /// <summary>The body decoded as UTF-8 (decoded once per record, on first use).</summary>
    public string PayloadText => _payloadText ??= Encoding.UTF8.GetString(_envelope.Payload.Span);
    /// <summary>True when the body is one JSON document (parsed once per record, on first use).</summary>
    public bool IsJson => ParsedJson() is not null;

    /// <summary>A field of the JSON body by dotted path, e.g. "environment.build.version" or
    /// "items.0.name": strings as they are, numbers and booleans as their JSON text, objects
    /// and arrays as JSON; null when the body is not JSON or the path leads nowhere.</summary>
    public string? Json(string path)
    {
        if (Locate(path) is not { } element) return null;
        return element.ValueKind switch
        {
            JsonValueKind.String => element.GetString(),
            JsonValueKind.Null or JsonValueKind.Undefined => null,
            _ => element.GetRawText(),
        };
    }

    /// <summary>A JSON number by dotted path; null when absent or not a number.</summary>
    public double? JsonNumber(string path) =>
        Locate(path) is { ValueKind: JsonValueKind.Number } element ? element.GetDouble() : null;

    JsonElement? Locate(string path)
    {
        if (ParsedJson() is not { } document) return null;
        var element = document.RootElement;
        foreach (var segment in path.Split('.'))
        {
            if (element.ValueKind == JsonValueKind.Object && element.TryGetProperty(segment, out var child))
                element = child;
            else if (element.ValueKind == JsonValueKind.Array
                     && int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var index)
                     && index < element.GetArrayLength())
                element = element[index];
            else
                return null;
        }
        return element;
    }

    JsonDocument? ParsedJson()
    {
        if (_jsonParsed) return _json;
        _jsonParsed = true;
        try
        {
            _json = JsonDocument.Parse(_envelope.Payload);
        }
        catch (JsonException)
        {
            _json = null;
        }
        return _json;
    }
}

/// <summary>Helpers the generated code calls; not meant for rules themselves.</summary>
public static class RuleRuntime
{
    /// <summary>A header expression's value as header text: numbers and dates in the
    /// invariant culture, null as "no header".</summary>
    public static string? HeaderText(object? value) => value switch
    {
        null => null,
        string text => text,
        bool flag => flag ? "true" : "false",
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString(),
    };
}
