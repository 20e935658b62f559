// Where the responses log's lines go: a JSON-lines file or a Kafka topic. Unlike dead
// letters, a line that cannot be stored is counted and given up, never retried at the
// expense of delivery: a sink never throws and never blocks for long. Both are used
// by the log's one writer thread only.
using System.Text;
using Confluent.Kafka;
using Replay.Host.Kafka;

namespace Replay.Host.Delivery;

public interface IExchangeSink : IDisposable
{
    /// <summary>"file F" or "topic T".</summary>
    string Name { get; }
    /// <summary>Lines stored (the file flushed them, the broker acknowledged them).</summary>
    long Written { get; }
    /// <summary>Lines that could not be stored.</summary>
    long Unwritable { get; }
    /// <summary>The latest reason a line could not be stored, or null.</summary>
    string? Problem { get; }
    /// <summary>Hands one line on; never throws. <paramref name="key"/> is its record's replay id.</summary>
    void Write(string key, byte[] line);
    /// <summary>Stores what was handed on so far, where that is the sink's to do; never throws.</summary>
    void Flush();
}

/// <summary>Appends lines to a file, flushed whenever the log's queue runs empty (not fsynced:
/// these are observations). After a failed write (a full disk) the file is opened again for the
/// next lines, at most once a second, starting with a line break so that a line cut by the
/// failure stays apart from the next.</summary>
public sealed class ExchangeFile : IExchangeSink
{
    static readonly long RetryAfterMs = 1000;
    readonly string _path;
    FileStream? _stream;
    int _pending;
    bool _broken;
    long _retryAt;
    long _written, _unwritable;
    volatile string? _problem;

    ExchangeFile(string path, FileStream stream) => (_path, _stream) = (path, stream);

    /// <summary>Opens (or creates) the file for appending; one that cannot be opened is an error now.</summary>
    public static Result<ExchangeFile> Open(string path)
    {
        try
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(path));
            if (dir is not null) Directory.CreateDirectory(dir);
            return Result<ExchangeFile>.Ok(new ExchangeFile(path, Append(path)));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Result<ExchangeFile>.Fail($"cannot write '{path}': {e.Message}");
        }
    }

    static FileStream Append(string path) => new(path, FileMode.Append, FileAccess.Write, FileShare.Read, 64 * 1024);

    public string Name => $"file {_path}";
    public long Written => Interlocked.Read(ref _written);
    public long Unwritable => Interlocked.Read(ref _unwritable);
    public string? Problem => _problem;

    public void Write(string key, byte[] line)
    {
        if (_stream is null && !Reopen())
        {
            Interlocked.Increment(ref _unwritable);
            return;
        }
        try
        {
            _stream!.Write(line);
            _stream.WriteByte((byte)'\n');
            _pending++;
        }
        catch (IOException e) { Fail(e, lost: 1); }
    }

    public void Flush()
    {
        if (_stream is null || _pending == 0) return;
        try
        {
            _stream.Flush();
            Interlocked.Add(ref _written, _pending);
            _pending = 0;
        }
        catch (IOException e) { Fail(e, lost: 0); }
    }

    bool Reopen()
    {
        if (Environment.TickCount64 < _retryAt) return false;
        try
        {
            _stream = Append(_path);
            if (_broken) _stream.WriteByte((byte)'\n');
            _broken = false;
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _problem = e.Message;
            _retryAt = Environment.TickCount64 + RetryAfterMs;
            return false;
        }
    }

    /// <summary>Every line since the last good flush is lost (some may be on disk in part).</summary>
    void Fail(IOException e, int lost)
    {
        Interlocked.Add(ref _unwritable, _pending + lost);
        _pending = 0;
        _problem = e.Message;
        _broken = true;
        _retryAt = Environment.TickCount64 + RetryAfterMs;
        Close();
    }

    void Close()
    {
        var stream = _stream;
        _stream = null;
        // The buffered bytes that failed fail again here; they are already counted.
        try { stream?.Dispose(); }
        catch (IOException) { }
    }

    public void Dispose()
    {
        Flush();
        Close();
    }
}

/// <summary>Produces lines to a Kafka topic, keyed by replay id (one record's exchanges stay in
/// order on one partition). Produce only queues in librdkafka; what the broker does not
/// acknowledge within message.timeout.ms, or what the local queue has no room for, is counted.</summary>
public sealed class ExchangeTopic : IExchangeSink
{
    readonly IProducer<byte[], byte[]> _producer;
    readonly KafkaDiagnostics _diagnostics;
    readonly string _topic;
    readonly Action<DeliveryReport<byte[], byte[]>> _delivered;
    long _written, _unwritable;
    volatile string? _problem;

    public ExchangeTopic(IReadOnlyDictionary<string, string> kafka, string topic, TextWriter log)
    {
        _topic = topic;
        var config = new ProducerConfig(kafka
            .Where(kv => !DeadLetterTopic.ConsumerOnly.Contains(kv.Key))
            .ToDictionary(kv => kv.Key, kv => kv.Value));
        _diagnostics = new KafkaDiagnostics(log);
        _producer = new ProducerBuilder<byte[], byte[]>(config).WithDiagnostics(_diagnostics).Build();
        _delivered = report =>
        {
            if (report.Error.IsError)
            {
                _problem = report.Error.Reason;
                Interlocked.Increment(ref _unwritable);
            }
            else Interlocked.Increment(ref _written);
        };
    }

    public string Name => $"topic {_topic}";
    public long Written => Interlocked.Read(ref _written);
    public long Unwritable => Interlocked.Read(ref _unwritable);
    public string? Problem => _problem;

    public void Write(string key, byte[] line)
    {
        try
        {
            _producer.Produce(_topic, new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(key), Value = line }, _delivered);
        }
        catch (KafkaException e)
        {
            // The local queue is full (the broker is away) or the producer failed: this line is lost.
            _problem = e.Error.Reason;
            Interlocked.Increment(ref _unwritable);
        }
    }

    public void Flush() { }

    public void Dispose()
    {
        // What the broker has not acknowledged within this time is lost with the process.
        var left = _producer.Flush(TimeSpan.FromSeconds(10));
        if (left > 0)
        {
            Interlocked.Add(ref _unwritable, left);
            _problem ??= "not acknowledged before the run ended";
        }
        _producer.Dispose();
        _diagnostics.Dispose();
    }
}
