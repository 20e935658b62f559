// Everything a run tells its operator, in one of two shapes (--log-format): plain
// text lines, or one JSON object per line for log shippers. On a terminal in text
// format it also keeps one status line at the bottom that progress rewrites in place;
// ordinary lines are printed above it. It is a TextWriter, so every part of the
// replay that logs (the consume loop, dead letters, Kafka) goes through it unchanged.
using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Replay.Host.Operating;

/// <summary>How much a log line matters: the "level" of a JSON line.</summary>
public enum Severity { Debug, Info, Warn, Error }

public sealed class OperatorLog(TextWriter log, TextWriter output, LogFormat format, bool terminal) : TextWriter
{
    readonly object _gate = new();
    readonly StringBuilder _partial = new();
    string? _status;

    public override Encoding Encoding => Encoding.UTF8;
    public LogFormat Format => format;

    /// <summary>True when progress is a status line rewritten in place rather than log lines.</summary>
    public bool ShowsStatusLine => terminal && format == LogFormat.Text;

    public override void WriteLine(string? value) => Message(value ?? "");

    public override void Write(char value)
    {
        lock (_gate)
        {
            if (value != '\n')
            {
                if (value != '\r') _partial.Append(value);
                return;
            }
            var line = _partial.ToString();
            _partial.Clear();
            Message(line);
        }
    }

    public override void Write(string? value)
    {
        if (value is null) return;
        foreach (var c in value) Write(c);
    }

    /// <summary>One line for the operator, at the level its wording implies (see <see cref="SeverityOf"/>).</summary>
    public void Message(string text) => Write(SeverityOf(text), text);

    /// <summary>One line: the text as it is in text format; in JSON, the text as "msg" next to the fields.</summary>
    public void Write(Severity severity, string text, IEnumerable<KeyValuePair<string, object?>>? fields = null)
    {
        lock (_gate)
        {
            if (format == LogFormat.Json)
                Emit(log, Json(w =>
                {
                    Header(w, Name(severity));
                    w.WriteString("msg", text);
                    foreach (var (key, value) in fields ?? []) Field(w, key, value);
                }));
            else
                Emit(log, text);
        }
    }

    /// <summary>A structured event: <c>name k=v k=v</c> in text, a JSON object with an "event" field in JSON.</summary>
    public void Event(string name, IEnumerable<KeyValuePair<string, object?>> fields, Severity severity = Severity.Info)
    {
        lock (_gate)
        {
            if (format == LogFormat.Json)
                Emit(log, Json(w =>
                {
                    Header(w, Name(severity));
                    w.WriteString("event", name);
                    foreach (var (key, value) in fields) Field(w, key, value);
                }));
            else
                Emit(log, name + " " + string.Join(' ', fields.Select(f => $"{f.Key}={Text(f.Value)}")));
        }
    }

    /// <summary>Lines written as plain text by parts that do not know the log's shape carry their
    /// level in their wording: "warning: ...", "error: ...", and a few known beginnings.</summary>
    public static Severity SeverityOf(string text)
    {
        foreach (var (prefix, severity) in Prefixes)
            if (text.StartsWith(prefix, StringComparison.Ordinal)) return severity;
        return text.Contains(": warning:", StringComparison.Ordinal) || text.Contains("WARNING", StringComparison.Ordinal) ? Severity.Warn
            : text.Contains(": error:", StringComparison.Ordinal) ? Severity.Error
            : Severity.Info;
    }

    static readonly (string Prefix, Severity Severity)[] Prefixes =
    [
        ("warning:", Severity.Warn), ("error:", Severity.Error), ("kafka: fatal", Severity.Error),
        ("kafka: commit failed", Severity.Warn), ("kafka: could not store", Severity.Warn), ("kafka:", Severity.Warn),
        ("dead letter", Severity.Warn), ("--from committed:", Severity.Error), ("replay: stopping:", Severity.Error),
        ("shutdown:", Severity.Warn), ("rules: rule", Severity.Warn), ("delivery worker:", Severity.Error),
        ("destination ", Severity.Warn),
    ];

    static string Name(Severity severity) => severity switch
    {
        Severity.Debug => "debug",
        Severity.Warn => "warn",
        Severity.Error => "error",
        _ => "info",
    };

    /// <summary>Rewrites the status line in place (terminal, text format only).</summary>
    public void Status(string line)
    {
        if (!ShowsStatusLine) return;
        lock (_gate)
        {
            _status = line;
            log.Write("\r" + line + "\u001b[K");
            log.Flush();
        }
    }

    /// <summary>Removes the status line for good, before the summary.</summary>
    public void EndStatus()
    {
        lock (_gate)
        {
            if (_status is null) return;
            _status = null;
            log.Write("\r\u001b[K");
            log.Flush();
        }
    }

    /// <summary>A result line on standard output (what --dry-run would send), kept clear of the status line.</summary>
    public void Output(string text, IEnumerable<KeyValuePair<string, object?>> fields)
    {
        lock (_gate)
        {
            if (format == LogFormat.Json)
                Emit(output, Json(w => { foreach (var (key, value) in fields) Field(w, key, value); }));
            else
                Emit(output, text);
        }
    }

    /// <summary>Writes a line, lifting the status line out of the way on a shared terminal.</summary>
    void Emit(TextWriter writer, string line)
    {
        if (_status is not null) log.Write("\r\u001b[K");
        writer.WriteLine(line);
        writer.Flush();
        if (_status is not null)
        {
            log.Write(_status + "\u001b[K");
            log.Flush();
        }
    }

    static void Header(Utf8JsonWriter w, string level)
    {
        w.WriteString("ts", DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture));
        w.WriteString("level", level);
    }

    static void Field(Utf8JsonWriter w, string key, object? value)
    {
        switch (value)
        {
            case null: w.WriteNull(key); break;
            case long n: w.WriteNumber(key, n); break;
            case int n: w.WriteNumber(key, n); break;
            case double d: w.WriteNumber(key, Math.Round(d, 1)); break;
            case bool b: w.WriteBoolean(key, b); break;
            case IEnumerable<string> list:
                w.WriteStartArray(key);
                foreach (var item in list) w.WriteStringValue(item);
                w.WriteEndArray();
                break;
            case IEnumerable<KeyValuePair<string, string>> map:
                w.WriteStartObject(key);
                foreach (var (k, v) in map) w.WriteString(k, v);
                w.WriteEndObject();
                break;
            default: w.WriteString(key, value.ToString()); break;
        }
    }

    static string Text(object? value) => value switch
    {
        null => "-",
        double d => d.ToString("F1", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() is { } s && s.Contains(' ') ? $"\"{s}\"" : value.ToString() ?? "",
    };

    static string Json(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
