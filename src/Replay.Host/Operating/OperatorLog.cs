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

    /// <summary>One line for the operator; "warning: ..." lines carry level warn in JSON.</summary>
    public void Message(string text)
    {
        var level = text.StartsWith("warning:", StringComparison.Ordinal) ? "warn" : "info";
        lock (_gate)
        {
            if (format == LogFormat.Json)
                Emit(log, Json(w => { Header(w, level); w.WriteString("msg", text); }));
            else
                Emit(log, text);
        }
    }

    /// <summary>A structured event: <c>name k=v k=v</c> in text, a JSON object with an "event" field in JSON.</summary>
    public void Event(string name, IEnumerable<KeyValuePair<string, object?>> fields)
    {
        lock (_gate)
        {
            if (format == LogFormat.Json)
                Emit(log, Json(w =>
                {
                    Header(w, "info");
                    w.WriteString("event", name);
                    foreach (var (key, value) in fields) Field(w, key, value);
                }));
            else
                Emit(log, name + " " + string.Join(' ', fields.Select(f => $"{f.Key}={Text(f.Value)}")));
        }
    }

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
