// librdkafka reports each failed connection attempt twice (a log line and an error) and
// retries every few hundred milliseconds: an absent broker made thousands of lines a minute.
// This is the one place every Kafka client of the program (the consumer, the dead-letter
// producer, the ingest writer, `replay produce`, the pre-flight checks) sends what librdkafka
// says. A message is shown once, in plain words ("cannot reach 127.0.0.1:9: connection
// refused"); while it keeps coming back it is counted, and once a window it is shown again
// with the count ("...; 380 attempts in 30 s"). A message that stops is forgotten, so its
// return is shown at once.
using System.Text.RegularExpressions;
using Confluent.Kafka;
using Replay.Host.Operating;

namespace Replay.Host.Kafka;

public sealed partial class KafkaDiagnostics : IDisposable
{
    sealed class Seen
    {
        public required string Text;
        public required Severity Severity;
        public required IReadOnlyList<KeyValuePair<string, object?>> Fields;
        public long Since;
        public int Logs, Errors;
        /// <summary>Occurrences of this problem in the current window: one per attempt, however many
        /// channels librdkafka reported it on.</summary>
        public int Attempts => Math.Max(Logs, Errors);
    }

    readonly TextWriter _log;
    readonly TimeSpan _window;
    readonly Func<long> _clock;
    readonly Lock _gate = new();
    readonly Dictionary<string, Seen> _seen = new(StringComparer.Ordinal);
    readonly Timer _timer;
    volatile string? _lastProblem;
    volatile bool _refusedCredentials;

    /// <param name="log">Where the lines go; an <see cref="OperatorLog"/> gets levels and fields.</param>
    /// <param name="window">How often a recurring message is repeated with its count (30 s).</param>
    public KafkaDiagnostics(TextWriter log, TimeSpan? window = null, Func<long>? clock = null)
    {
        _log = log;
        _window = window ?? TimeSpan.FromSeconds(30);
        _clock = clock ?? (() => Environment.TickCount64);
        // Checked several times a window, so that each message is repeated about a window after it was last shown.
        var tick = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(100).Ticks, _window.Ticks / 6));
        _timer = new Timer(_ => Flush(final: false), null, tick, tick);
    }

    /// <summary>The latest problem, in the words it was shown in; null while there was none.</summary>
    public string? LastProblem => _lastProblem;

    /// <summary>True once Kafka refused the connection's TLS or credentials: settings to fix, not an outage.</summary>
    public bool RefusedCredentials => _refusedCredentials;

    /// <summary>For a client's SetErrorHandler.</summary>
    public void OnError(Error error)
    {
        if (error.Code is ErrorCode.Local_Authentication or ErrorCode.Local_Ssl or ErrorCode.SaslAuthenticationFailed
            or ErrorCode.Local_UnsupportedFeature) _refusedCredentials = true;
        Observe(error.Reason, Severity.Error, fromLog: false, error.IsFatal);
    }

    /// <summary>For a client's SetLogHandler: warnings and worse; librdkafka's chatter below that is not the operator's.</summary>
    public void OnLog(LogMessage message)
    {
        if (message.Level > SyslogLevel.Warning) return;
        if (message.Message.Contains("SSL handshake failed", StringComparison.Ordinal)
            || message.Message.Contains("SASL authentication", StringComparison.Ordinal)) _refusedCredentials = true;
        Observe(message.Message, message.Level <= SyslogLevel.Error ? Severity.Error : Severity.Warn, fromLog: true, fatal: false);
    }

    /// <summary>A message of the program's own about Kafka ("kafka: a record was not written ..."),
    /// shown and counted like librdkafka's.</summary>
    public void Report(string message)
    {
        var text = message.StartsWith("kafka: ", StringComparison.Ordinal) ? message[7..] : message;
        Observe(text, [new("reason", text)], Severity.Error, fromLog: false);
    }

    void Observe(string raw, Severity severity, bool fromLog, bool fatal)
    {
        var (text, fields) = Describe(raw);
        if (fatal) text += " (fatal)";
        Observe(text, fields, severity, fromLog);
    }

    void Observe(string text, IReadOnlyList<KeyValuePair<string, object?>> fields, Severity severity, bool fromLog)
    {
        Seen? show = null;
        lock (_gate)
        {
            if (!_seen.TryGetValue(text, out var seen))
            {
                seen = new Seen { Text = text, Severity = severity, Fields = fields, Since = _clock() };
                _seen[text] = seen;
                show = seen;
            }
            else if (severity > seen.Severity) seen.Severity = severity;
            if (fromLog) seen.Logs++;
            else seen.Errors++;
        }
        _lastProblem = text;
        if (show is not null) Emit(show.Severity, $"kafka: {text}", fields);
    }

    /// <summary>Shows the count of each message that came back during the window; forgets the ones that did not.
    /// <paramref name="final"/>: at the end, also a window not yet over.</summary>
    public void Flush(bool final = true)
    {
        var due = new List<(Seen Seen, int Repeats, double Seconds)>();
        lock (_gate)
        {
            var now = _clock();
            foreach (var (key, seen) in _seen.ToList())
            {
                var seconds = (now - seen.Since) / 1000.0;
                if (!final && seconds < _window.TotalSeconds) continue;
                // The first occurrence was shown when it happened; only repeats are news.
                if (seen.Attempts > 1) due.Add((seen, seen.Attempts, seconds));
                if (seen.Attempts <= 1 || final) _seen.Remove(key);
                else
                {
                    seen.Logs = seen.Errors = 0;
                    seen.Since = now;
                }
            }
        }
        foreach (var (seen, repeats, seconds) in due)
            Emit(seen.Severity, $"kafka: {seen.Text}; {repeats} attempts in {Math.Max(1, Math.Round(seconds)):0} s",
                [.. seen.Fields, new("attempts", (long)repeats), new("window_s", Math.Round(seconds, 1))]);
    }

    void Emit(Severity severity, string text, IEnumerable<KeyValuePair<string, object?>> fields)
    {
        if (_log is OperatorLog operatorLog) operatorLog.Write(severity, text, [new("event", "kafka"), .. fields]);
        else lock (_log) _log.WriteLine(text);
    }

    [GeneratedRegex(@"^\[thrd:[^\]]*\]: ")]
    private static partial Regex Thread();
    [GeneratedRegex(@"\s*\((after \d+ms in state \w+)?(, )?(\d+ identical error\(s\) suppressed)?\)$")]
    private static partial Regex Timing();
    /// <summary>librdkafka's prefixes naming a broker: "host:port/bootstrap: ", "host:port/1: ", "GroupCoordinator: ", "host:port: ".</summary>
    [GeneratedRegex(@"^(?<broker>GroupCoordinator|([a-z]+://)?[A-Za-z0-9.\-\[\]:]+:\d+(/(bootstrap|\d+|GroupCoordinator))?): (?<rest>.*)$", RegexOptions.Singleline)]
    private static partial Regex Broker();
    [GeneratedRegex(@"^Connect to (ipv4|ipv6)#(?<address>\S+) failed: (?<why>.*)$", RegexOptions.Singleline)]
    private static partial Regex Connect();
    [GeneratedRegex(@"^Failed to resolve '(?<address>[^']*)': (?<why>.*)$", RegexOptions.Singleline)]
    private static partial Regex Resolve();
    [GeneratedRegex(@"^(?<down>\d+)/(?<all>\d+) brokers are down$")]
    private static partial Regex AllDown();

    /// <summary>librdkafka's wording made plain and stable, so that repeats are recognised, and
    /// the fields a log shipper can use.</summary>
    public static (string Text, IReadOnlyList<KeyValuePair<string, object?>> Fields) Describe(string raw)
    {
        var text = Timing().Replace(Thread().Replace(raw.Trim(), ""), "");
        string? broker = null;
        for (var prefixes = 0; prefixes < 3 && Broker().Match(text) is { Success: true } b; prefixes++)
        {
            var name = b.Groups["broker"].Value;
            if (name != "GroupCoordinator") broker = Regex.Replace(name, "^[a-z]+://", "").Split('/')[0];
            text = b.Groups["rest"].Value;
        }
        if (Connect().Match(text) is { Success: true } c)
        {
            var address = c.Groups["address"].Value;
            var why = Lower(c.Groups["why"].Value);
            return ($"cannot reach {address}: {why}", [new("broker", address), new("problem", "unreachable"), new("reason", why)]);
        }
        if (Resolve().Match(text) is { Success: true } r)
        {
            var address = r.Groups["address"].Value;
            var why = Lower(r.Groups["why"].Value);
            return ($"cannot resolve {address}: {why}", [new("broker", address), new("problem", "unresolvable"), new("reason", why)]);
        }
        if (AllDown().Match(text) is { Success: true } d)
            return ($"no broker answers ({d.Groups["down"].Value} of {d.Groups["all"].Value} down)", [new("problem", "all_brokers_down")]);
        return broker is null
            ? (text, [new("reason", text)])
            : ($"{broker}: {text}", [new("broker", broker), new("reason", text)]);
    }

    static string Lower(string s) => s.Length > 1 && char.IsUpper(s[0]) && !char.IsUpper(s[1]) ? char.ToLowerInvariant(s[0]) + s[1..] : s;

    public void Dispose()
    {
        _timer.Dispose();
        Flush(final: true);
    }
}

/// <summary>Routes a Confluent.Kafka client's errors and logs to <see cref="KafkaDiagnostics"/>.</summary>
public static class KafkaDiagnosticsExtensions
{
    public static ConsumerBuilder<TKey, TValue> WithDiagnostics<TKey, TValue>(this ConsumerBuilder<TKey, TValue> builder, KafkaDiagnostics diagnostics) =>
        builder.SetErrorHandler((_, e) => diagnostics.OnError(e)).SetLogHandler((_, m) => diagnostics.OnLog(m));

    public static ProducerBuilder<TKey, TValue> WithDiagnostics<TKey, TValue>(this ProducerBuilder<TKey, TValue> builder, KafkaDiagnostics diagnostics) =>
        builder.SetErrorHandler((_, e) => diagnostics.OnError(e)).SetLogHandler((_, m) => diagnostics.OnLog(m));

    public static AdminClientBuilder WithDiagnostics(this AdminClientBuilder builder, KafkaDiagnostics diagnostics) =>
        builder.SetErrorHandler((_, e) => diagnostics.OnError(e)).SetLogHandler((_, m) => diagnostics.OnLog(m));
}
