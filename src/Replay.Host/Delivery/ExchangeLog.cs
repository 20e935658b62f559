// The responses log (--responses FILE, --responses-topic T): a sampled record of
// exchanges — one attempt and what came back — for people to read. Which exchanges
// is the core's decision (ExchangeSample). These are observations, not the contract:
// a sending worker only hands the exchange to a bounded queue and goes on; one thread
// of its own redacts, encodes and writes. A full queue drops and counts, a sink that
// cannot write counts and says so, and neither ever holds a record or slows delivery.
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.Channels;
using Replay.Core;
using Replay.Host.Security;
using static Replay.Core.Outcome;

namespace Replay.Host.Delivery;

/// <summary>One line of the responses log.</summary>
public sealed record ExchangeLine(
    [property: JsonPropertyName("time")] DateTimeOffset Time,
    [property: JsonPropertyName("replay_id")] string ReplayId,
    [property: JsonPropertyName("destination")] string Destination,
    [property: JsonPropertyName("route")] string Route,
    [property: JsonPropertyName("method")] string Method,
    [property: JsonPropertyName("url")] string Url,
    /// <summary>Which attempt of the record at this destination (1 for the first).</summary>
    [property: JsonPropertyName("attempt")] int Attempt,
    [property: JsonPropertyName("latency_ms")] double LatencyMs,
    /// <summary>True when the record was chosen by --responses-sample; false when the line is
    /// there only because the attempt got no 2xx.</summary>
    [property: JsonPropertyName("sampled")] bool Sampled,
    [property: JsonPropertyName("answer")] ServerAnswer Answer);

[JsonSerializable(typeof(ExchangeLine))]
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class ExchangeJson : JsonSerializerContext;

public sealed class ExchangeLog : IDisposable
{
    /// <summary>Exchanges waiting to be written before more are dropped: with bodies cut to 4 KiB,
    /// about 10 MB at most.</summary>
    public const int DefaultCapacity = 2048;

    static readonly TimeSpan ReportEvery = TimeSpan.FromSeconds(30);

    readonly ExchangeSample.Settings _settings;
    readonly IReadOnlyList<IExchangeSink> _sinks;
    readonly Secrets _secrets;
    readonly TextWriter _log;
    readonly Channel<Exchange> _queue;
    readonly Thread _writer;
    long _dropped;
    volatile bool _completed;
    long _reportedLosses;
    long _lastReport = long.MinValue / 2;

    /// <param name="sinks">Where lines go (owned: disposed with the log).</param>
    /// <param name="log">Where problems are reported (a sink that fails, a queue that overflows).</param>
    public ExchangeLog(ExchangeSample.Settings settings, IReadOnlyList<IExchangeSink> sinks, Secrets secrets, TextWriter log,
        int capacity = DefaultCapacity)
    {
        _settings = settings;
        _sinks = sinks;
        _secrets = secrets;
        _log = log;
        _queue = Channel.CreateBounded<Exchange>(new BoundedChannelOptions(capacity)
        {
            // TryWrite answers false when full: the worker drops and goes on, it never waits.
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
        });
        _writer = new Thread(WriteLines) { IsBackground = true, Name = "responses log" };
        _writer.Start();
    }

    public ExchangeSample.Settings Settings => _settings;

    /// <summary>Where the lines go, for the banner and the summary: "file F", "topic T".</summary>
    public string Describe() => string.Join(" and ", _sinks.Select(s => s.Name));

    /// <summary>What is kept, in words: "sample 0.01 and every attempt without a 2xx".</summary>
    public string DescribeSample() =>
        $"sample {Sampling.RateModule.value(_settings.Rate).ToString(System.Globalization.CultureInfo.InvariantCulture)}" +
        (_settings.Errors ? " and every attempt without a 2xx" : "");

    /// <summary>Exchanges not logged because the queue was full (the writing could not keep up).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);
    /// <summary>Lines the sinks stored (with two sinks, each counts its own).</summary>
    public long Written => _sinks.Sum(s => s.Written);
    /// <summary>Lines a sink could not store (a full disk, a topic that does not acknowledge).</summary>
    public long Unwritable => _sinks.Sum(s => s.Unwritable);
    /// <summary>The latest reason a sink could not write, or null.</summary>
    public string? Problem => _sinks.Select(s => s.Problem).LastOrDefault(p => p is not null);

    /// <summary>Before an attempt: whether its record's exchanges are chosen by the sample (and so
    /// the sender should keep a body excerpt even of a 2xx).</summary>
    public bool Chooses(Job job)
    {
        var source = (RecordRef)job.Source;
        return ExchangeSample.chosen(_settings, source.Topic, source.Partition, source.Offset);
    }

    /// <summary>After an attempt, on the sending worker: queues it when the sample keeps it; never blocks.</summary>
    public void Attempted(string destination, Job job, Attempt attempt, TimeSpan latency, bool chosen)
    {
        if (!ExchangeSample.kept(_settings, chosen, attempt)) return;
        // A capture larger than the excerpt (a comparison keeps up to 1 MiB) is cut here, so that
        // the queue holds at most the excerpt of each answer.
        var shown = attempt is Attempt.Answered { Item.Body.Length: > ResponseCapture.ExcerptBytes } ? ServerAnswer.Of(attempt) : null;
        var exchange = new Exchange((RecordRef)job.Source, destination, job.Request, job.Attempts, attempt, shown, latency, chosen, DateTimeOffset.UtcNow);
        if (!_queue.Writer.TryWrite(exchange) && !_completed) Interlocked.Increment(ref _dropped);
    }

    /// <summary>The line as written: everything from the server or the record redacted.</summary>
    ExchangeLine Line(Exchange e) =>
        new(e.Time,
            $"{e.Source.Topic}/{e.Source.Partition}/{e.Source.Offset}",
            e.Destination,
            e.Request.Route,
            MethodModule.name(e.Request.Method),
            _secrets.Redact(e.Request.Url.OriginalString),
            e.Number,
            Math.Round(e.Latency.TotalMilliseconds, 3),
            e.Chosen,
            (e.Shown ?? ServerAnswer.Of(e.Outcome)).Redacted(_secrets));

    void WriteLines()
    {
        var reader = _queue.Reader;
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            while (reader.TryRead(out var exchange))
            {
                byte[] line;
                try { line = JsonSerializer.SerializeToUtf8Bytes(Line(exchange), ExchangeJson.Default.ExchangeLine); }
                catch (Exception e)
                {
                    // A bug in building a line costs that line, never the run.
                    _log.WriteLine($"responses: warning: an exchange of {exchange.Source.Topic}/{exchange.Source.Partition}/{exchange.Source.Offset} could not be logged: {e.GetType().Name}: {e.Message}");
                    continue;
                }
                foreach (var sink in _sinks) sink.Write($"{exchange.Source.Topic}/{exchange.Source.Partition}/{exchange.Source.Offset}", line);
            }
            // Flushed whenever the queue is empty: a reader (tail -f) sees lines within moments,
            // and a burst is written in large pieces.
            foreach (var sink in _sinks) sink.Flush();
            ReportLosses();
        }
    }

    /// <summary>Says, at most every 30 s, that exchanges are being lost and why (the summary says it at the end).</summary>
    void ReportLosses()
    {
        var lost = Unwritable + Dropped;
        if (lost == _reportedLosses) return;
        var now = Environment.TickCount64;
        if (now - _lastReport < (long)ReportEvery.TotalMilliseconds) return;
        _lastReport = now;
        _reportedLosses = lost;
        if (Unwritable > 0)
            _log.WriteLine($"responses: warning: {Exchanges(Unwritable)} could not be written to {Describe()} so far ({Problem}); the run goes on, delivery is not affected");
        if (Dropped > 0)
            _log.WriteLine($"responses: warning: {Exchanges(Dropped)} dropped so far: writing could not keep up; the run goes on, delivery is not affected");
    }

    /// <summary>Stops taking exchanges, writes what is queued (for at most <paramref name="timeout"/>)
    /// and closes the sinks (a topic waits for its acknowledgements); the counts are final
    /// afterwards, for the summary. Only the first call does anything.</summary>
    public void Complete(TimeSpan timeout)
    {
        lock (_sinks)
        {
            if (_completed) return;
            _completed = true;
        }
        _queue.Writer.TryComplete();
        // A writer stuck on a hung disk keeps its sinks; the process ends without them.
        if (!_writer.Join(timeout)) return;
        foreach (var sink in _sinks) sink.Dispose();
    }

    /// <summary>The closing account: how many exchanges went where, and what was lost.</summary>
    public string Summary()
    {
        var text = $"responses: {Exchanges(Written)} logged to {Describe()} ({DescribeSample()})";
        if (Unwritable > 0) text += $"; {Unwritable} could not be written ({Problem})";
        if (Dropped > 0) text += $"; {Dropped} dropped because writing could not keep up";
        return text;
    }

    static string Exchanges(long count) => count == 1 ? "1 exchange" : $"{count} exchanges";

    public void Dispose() => Complete(TimeSpan.FromSeconds(10));

    /// <summary>One attempt, as the worker hands it over: nothing is encoded or redacted on its thread.</summary>
    sealed record Exchange(RecordRef Source, string Destination, Pipeline.Request Request, int Number, Attempt Outcome,
        ServerAnswer? Shown, TimeSpan Latency, bool Chosen, DateTimeOffset Time);
}
