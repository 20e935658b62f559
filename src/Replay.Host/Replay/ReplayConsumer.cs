// The Kafka loop. One thread consumes, decides (through the pure core), hands
// requests to the delivery engine and moves checkpoints; all calls into the
// consumer happen on that thread. Offsets are stored only for records that are
// finished, and only up to the lowest unfinished one of each partition, so a
// crash at any moment loses nothing: what was not delivered is read again.
using System.Collections.Concurrent;
using System.Text;
using Confluent.Kafka;
using Microsoft.FSharp.Core;
using Replay.Core;
using Replay.Host.Delivery;
using Replay.Host.Operating;
using static Replay.Core.Pipeline;

namespace Replay.Host.Replay;

public sealed class ReplayConsumer
{
    /// <summary>The progress of one assigned partition; dropped on revoke or loss.</summary>
    sealed class PartitionState(TopicPartition partition)
    {
        public TopicPartition Partition { get; } = partition;
        public readonly Checkpoint.Partition Progress = Checkpoint.create();
        public long Stored = -1;
        /// <summary>--until-end: the high-water mark seen when the partition was assigned.</summary>
        public long? End;
        /// <summary>An offset that may be stored although no record was consumed: where --from placed
        /// the partition, or where --until-end found its end. Everything below it is this run's business done.</summary>
        public long Floor = -1;
        public bool ReachedEnd;
        public bool Gone;
    }

    readonly ReplaySettings _settings;
    readonly ReplayStats _stats;
    readonly Dictionary<TopicPartition, PartitionState> _partitions = new();
    readonly ConcurrentQueue<Job> _completions = new();
    /// <summary>Set whenever a request finishes; shutdown and revoke wait on it. An event, not a
    /// counting semaphore: nothing consumes the count in normal running, and a semaphore
    /// released per record would overflow after about 2^31 records.</summary>
    readonly ManualResetEventSlim _finishedSignal = new(false, spinCount: 1);
    readonly Entropy _entropy;
    readonly CancellationTokenSource _abandon = new();
    IConsumer<byte[]?, byte[]?>? _consumer;
    DeliveryEngine? _engine;
    long _inFlightBytes;
    bool _backpressured;
    int _assignedCount;
    long _consumedTotal;
    bool _stopConsuming;
    Dictionary<TopicPartition, (long Low, long High)>? _startEnds;
    DateTime _nextGroupCheck;
    /// <summary>Set (once, from a delivery worker) when the destination cannot be reached safely at all.</summary>
    volatile string? _fatal;
    readonly StartOffsets _starts;
    readonly ConsumerLag _lag = new();
    int _pausedCount;
    long _lastTurn = Environment.TickCount64;
    long _lastProgress = Environment.TickCount64;
    int _running;

    public ReplayConsumer(ReplaySettings settings, ReplayStats? stats = null)
    {
        _settings = settings;
        _stats = stats ?? new ReplayStats();
        _entropy = new Entropy(
            FuncConvert.FromFunc(() => Guid.NewGuid().ToString()),
            FuncConvert.FromFunc(() => Random.Shared.NextDouble()));
        _starts = new StartOffsets(settings.Start, settings.Reset, settings.Kafka, settings.Log);
    }

    public ReplayStats Stats => _stats;

    /// <summary>True once the consumer has partitions (for readiness checks).</summary>
    public bool IsAssigned => AssignedCount > 0;

    /// <summary>How many partitions this member owns now.</summary>
    public int AssignedCount => Volatile.Read(ref _assignedCount);

    /// <summary>True while consuming is paused because the in-flight budget is full.</summary>
    public bool IsBackpressured => Volatile.Read(ref _backpressured);

    /// <summary>Requests handed to the delivery engine and not yet finished.</summary>
    public int InFlight => _engine?.InFlight ?? 0;

    public long InFlightBytes => Interlocked.Read(ref _inFlightBytes);

    /// <summary>Partitions paused now: by backpressure, or because --until-end reached their end.</summary>
    public int PausedCount => Volatile.Read(ref _pausedCount);

    /// <summary>Consumer lag per owned partition, from librdkafka's statistics.</summary>
    public ConsumerLag Lag => _lag;

    /// <summary>True between the start of <see cref="Run"/> and its return.</summary>
    public bool IsRunning => Volatile.Read(ref _running) == 1;

    /// <summary>Time since the consume loop last turned (a handler or the broker may hold it).</summary>
    public TimeSpan SinceLastTurn => TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastTurn));

    /// <summary>Time since a record last finished, or since work arrived while none was in flight.</summary>
    public TimeSpan SinceLastProgress => TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastProgress));

    /// <summary>Builds the librdkafka configuration: the operator's settings plus the
    /// few that the no-loss contract depends on, which cannot be overridden.</summary>
    public static ConsumerConfig BuildConfig(IReadOnlyDictionary<string, string> kafka, bool untilEnd, bool dryRun = false)
    {
        var config = new ConsumerConfig(kafka.ToDictionary(kv => kv.Key, kv => kv.Value));
        // Offsets move only when a record is finished: we store them, librdkafka commits them.
        config.EnableAutoOffsetStore = false;
        config.EnableAutoCommit = true;
        // librdkafka's default prefetch (64 MB) would dominate the process's memory; 16 MB
        // still keeps a fast destination busy.
        if (!kafka.ContainsKey("queued.max.messages.kbytes")) config.QueuedMaxMessagesKbytes = 16 * 1024;
        // With a prefetch queue that small, librdkafka's default 1 s pause after the queue fills
        // starves a fast destination: measured, 0.5 s of every 1.2 s was spent with nothing to send.
        if (!kafka.ContainsKey("fetch.queue.backoff.ms")) config.FetchQueueBackoffMs = 10;
        // librdkafka's 5 s default would replay up to 5 s of delivered records after a crash.
        if (!kafka.ContainsKey("auto.commit.interval.ms")) config.AutoCommitIntervalMs = 1000;
        config.EnablePartitionEof = untilEnd;
        // --dry-run leaves the group's offsets exactly as they were.
        if (dryRun) config.EnableAutoCommit = false;
        // Lag per partition for the metrics and the progress line; cheap at this interval.
        if (!kafka.ContainsKey("statistics.interval.ms")) config.StatisticsIntervalMs = 5000;
        var newProtocol = kafka.TryGetValue("group.protocol", out var protocol) && protocol == "consumer";
        if (!newProtocol && !kafka.ContainsKey("partition.assignment.strategy"))
            // Incremental rebalances: partitions that stay with us keep flowing.
            config.PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky;
        return config;
    }

    /// <summary>Runs until <paramref name="stop"/> fires or a stop condition is met, then
    /// drains, commits and leaves the group. Returns the process exit code.</summary>
    public int Run(CancellationToken stop)
    {
        Volatile.Write(ref _running, 1);
        try { return RunConsumer(stop); }
        finally { Volatile.Write(ref _running, 0); }
    }

    int RunConsumer(CancellationToken stop)
    {
        var config = BuildConfig(_settings.Kafka, _settings.UntilEnd, _settings.DryRun);
        using var handler = _settings.Handler is null
            ? null
            : new PassThroughHandler(_settings.Handler);
        using var sender = new HttpSender(
            new Security.TlsFailureWatch(
                handler ?? (HttpMessageHandler)HttpSender.CreateHandler(_settings.Concurrency, _settings.Proxy, _settings.Tls),
                _settings.Tls,
                message => _fatal = message),
            _settings.RequestTimeout,
            PlainHttp.For(_settings.Handler, _settings.Proxy), _settings.Capture, _settings.Tokens);
        using var engine = new DeliveryEngine(
            sender,
            new DeliveryOptions(_settings.Concurrency, _settings.RetryBaseDelay, _settings.RetryMaxDelay, _settings.MaxRetryDuration, _settings.MaxRate),
            _stats,
            OnFinished,
            _abandon.Token,
            _settings.Log.WriteLine);
        _engine = engine;

        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(config)
            .SetPartitionsAssignedHandler((c, parts) => OnAssigned(c, parts))
            .SetStatisticsHandler((_, json) => _lag.Update(json, _partitions.ContainsKey))
            .SetPartitionsRevokedHandler((c, parts) => OnRevoked(c, parts))
            .SetPartitionsLostHandler((c, parts) => OnLost(parts))
            .SetErrorHandler((_, e) => _settings.Log.WriteLine($"kafka: {e.Reason}{(e.IsFatal ? " (fatal)" : "")}"))
            .SetLogHandler((_, m) => { if (m.Level <= SyslogLevel.Warning) _settings.Log.WriteLine($"kafka {m.Level}: {m.Message}"); })
            .Build();
        _consumer = consumer;
        if (_settings.UntilEnd && !_settings.Topic.StartsWith('^'))
            _startEnds = StartMarks(consumer, _settings.Topic);
        if (_settings.Reset && !_settings.Topic.StartsWith('^'))
            _starts.RememberCommitted(consumer, Partitions(consumer, _settings.Topic));
        consumer.Subscribe(_settings.Topic);

        try
        {
            while (!stop.IsCancellationRequested && !_stopConsuming && _fatal is null)
            {
                Volatile.Write(ref _lastTurn, Environment.TickCount64);
                Drain();
                if (_settings.UntilEnd && IsAtEnd()) break;
                if (!ApplyBackpressure()) continue;
                var result = consumer.Consume(_backpressured ? 50 : 100);
                if (result is null) continue;
                if (result.IsPartitionEOF)
                {
                    MarkEnd(result.TopicPartition, result.Offset.Value);
                    continue;
                }
                Handle(result);
            }
        }
        catch (ConsumeException e) when (e.Error.IsFatal)
        {
            _settings.Log.WriteLine($"kafka: fatal consumer error: {e.Error.Reason}");
            return 1;
        }
        catch (ConsumeException e) when (e.Error.Code == ErrorCode.Local_AutoOffsetReset)
        {
            // --from committed: librdkafka refused to guess a start (auto.offset.reset=error).
            var at = e.ConsumerRecord?.TopicPartition is { } tp ? $"{tp.Topic}[{tp.Partition.Value}]" : "a partition";
            _settings.Log.WriteLine($"--from committed: {at} has no usable committed offset for this group (none was committed, " +
                "or it is older than the topic keeps); start it with --from earliest, latest or a time");
            Shutdown(consumer);
            return Cli.ExitCodes.Usage;
        }
        if (_fatal is { } fatal)
        {
            // No retry can succeed: give up the in-flight requests at once (they stay
            // uncommitted), commit what was finished, and say why.
            _settings.Log.WriteLine($"replay: stopping: {fatal}");
            _abandon.Cancel();
            Shutdown(consumer);
            return Cli.ExitCodes.DestinationTls;
        }
        return Shutdown(consumer);
    }

    /// <summary>Waits (up to 100 ms) for some request to finish since the last wait.</summary>
    void WaitForFinished()
    {
        _finishedSignal.Wait(TimeSpan.FromMilliseconds(100));
        _finishedSignal.Reset();
    }

    int Shutdown(IConsumer<byte[]?, byte[]?> consumer)
    {
        var deadline = DateTime.UtcNow + _settings.ShutdownTimeout;
        while (_engine!.InFlight > 0 && DateTime.UtcNow < deadline)
        {
            WaitForFinished();
            Drain();
        }
        DrainCompletions();
        StoreAll();
        if (_engine.InFlight > 0)
        {
            _settings.Log.WriteLine($"shutdown: {_engine.InFlight} requests still in flight after --shutdown-timeout; they are not committed and will be replayed next time");
            _abandon.Cancel();
        }
        Commit(consumer, null);
        consumer.Close();
        return 0;
    }

    void Handle(ConsumeResult<byte[]?, byte[]?> result)
    {
        if (!_partitions.TryGetValue(result.TopicPartition, out var state)) return;
        var offset = result.Offset.Value;
        if (state.End is { } end && offset >= end)
        {
            // --until-end: records written after the start are not this run's.
            MarkEnd(result.TopicPartition, offset);
            return;
        }
        var value = result.Message.Value ?? [];
        _stats.Consume(value.Length);
        Checkpoint.start(offset, state.Progress);
        var record = new Record(result.Topic, result.Partition.Value, offset, result.Message.Key,
            value, ToHeaders(result.Message.Headers), result.Message.Timestamp.UnixTimestampMs);
        var decision = decide(_settings.Pipeline, _settings.Router().Route, _entropy, record);
        switch (decision)
        {
            case Decision.Send send:
                // Work arriving after an idle spell is not a stall: the stall clock starts now.
                if (_engine!.InFlight == 0) Volatile.Write(ref _lastProgress, Environment.TickCount64);
                Interlocked.Add(ref _inFlightBytes, value.Length);
                _engine!.Submit(new Job
                {
                    Request = send.Item,
                    Source = new RecordRef
                    {
                        Topic = result.Topic, Partition = result.Partition.Value, Offset = offset, Bytes = value.Length,
                        Key = result.Message.Key, Value = value, Headers = result.Message.Headers, Owner = state,
                    },
                });
                break;
            case Decision.Skip skip:
                _stats.Skip(skip.Item);
                Checkpoint.finish(offset, state.Progress);
                break;
            case Decision.Reject reject:
                if (reject.Item.IsUndecodable) _stats.DecodeError();
                if (TryDeadLetter(Letter(result.Topic, result.Partition.Value, offset, result.Message.Key, value,
                        result.Message.Headers, null, null, describeReject(reject.Item), null, 0)))
                    Checkpoint.finish(offset, state.Progress);
                break;
        }
        _consumedTotal++;
        if (_settings.MaxRecords is { } max && _consumedTotal >= max) _stopConsuming = true;
    }

    static KafkaHeader[] ToHeaders(Headers? headers)
    {
        if (headers is null || headers.Count == 0) return [];
        var result = new KafkaHeader[headers.Count];
        for (var i = 0; i < headers.Count; i++)
            result[i] = new KafkaHeader(headers[i].Key, headers[i].GetValueBytes());
        return result;
    }

    /// <summary>Runs on a delivery worker: records the dead letter (durably) before the
    /// record may count as finished, then hands the job to the consume thread.</summary>
    void OnFinished(Job job)
    {
        Interlocked.Add(ref _inFlightBytes, -job.Source.Bytes);
        Volatile.Write(ref _lastProgress, Environment.TickCount64);
        switch (job.Result)
        {
            case JobResult.Delivered:
                _stats.Deliver();
                break;
            case JobResult.DeadLettered:
                var s = job.Source;
                if (!TryDeadLetter(Letter(s.Topic, s.Partition, s.Offset, s.Key, s.Value, s.Headers,
                        job.Request, job.Request.OrderingKey, job.FailureReason ?? "failed", job.LastStatus == 0 ? null : job.LastStatus, job.Attempts)))
                    job.Result = JobResult.Abandoned;
                break;
        }
        _completions.Enqueue(job);
        _finishedSignal.Set();
        if (Volatile.Read(ref _waitingForRoom) && HasRoom()) _room.Set();
    }

    /// <summary>Stores a dead letter; false when that failed. A record whose dead letter was not
    /// stored is not finished: its partition's commit stops there and the record is read again
    /// after a restart rather than lost.</summary>
    bool TryDeadLetter(DeadLetter letter)
    {
        try
        {
            _settings.DeadLetters.Write(letter);
            _stats.DeadLetter();
            return true;
        }
        catch (Exception e)
        {
            _settings.Log.WriteLine($"dead letter for {letter.Topic}/{letter.Partition}/{letter.Offset} could not be written ({e.Message}); it stays uncommitted");
            return false;
        }
    }

    internal static DeadLetter Letter(string topic, int partition, long offset, byte[]? key, ReadOnlyMemory<byte> value, Headers? headers,
        Request? request, string? id, string reason, int? lastStatus, int attempts) =>
        new(topic, partition, offset, id, request is null ? null : MethodModule.name(request.Method), request?.Url.OriginalString,
            reason, lastStatus, attempts, DateTimeOffset.UtcNow,
            key is null ? null : Convert.ToBase64String(key),
            Convert.ToBase64String(value.Span),
            headers is null || headers.Count == 0 ? null
                : headers.GroupBy(h => h.Key).ToDictionary(g => g.Key, g => g.Last().GetValueBytes() is { } b ? Encoding.UTF8.GetString(b) : null));

    /// <summary>Moves finished records into the checkpoints and, at most every few
    /// milliseconds, stores the new commit positions (a store is a call into librdkafka
    /// per partition; per record it would cost more than the record).</summary>
    void Drain()
    {
        DrainCompletions();
        if (Environment.TickCount64 - _lastStore < StoreIntervalMs) return;
        _lastStore = Environment.TickCount64;
        StoreAll();
    }

    const int StoreIntervalMs = 20;
    long _lastStore;

    void DrainCompletions()
    {
        while (_completions.TryDequeue(out var job))
        {
            var state = (PartitionState)job.Source.Owner;
            if (state.Gone || job.Result == JobResult.Abandoned) continue;
            Checkpoint.finish(job.Source.Offset, state.Progress);
        }
    }

    void StoreAll()
    {
        // --dry-run: the group's offsets stay where they were.
        if (_settings.DryRun) return;
        foreach (var state in _partitions.Values)
        {
            var committable = Checkpoint.committable(state.Progress) is { } p ? p.Value : -1;
            // The floor counts only when nothing is open: an open record below it must be read again after a crash.
            var position = Checkpoint.isIdle(state.Progress) ? Math.Max(committable, state.Floor) : committable;
            if (position < 0 || position <= state.Stored) continue;
            try
            {
                _consumer!.StoreOffset(new TopicPartitionOffset(state.Partition, position));
                state.Stored = position;
            }
            catch (KafkaException e)
            {
                // The partition left us between the check and the store: its new owner re-reads from the last commit.
                _settings.Log.WriteLine($"kafka: could not store offset {position} for {state.Partition}: {e.Error.Reason}");
            }
        }
    }

    void Commit(IConsumer<byte[]?, byte[]?> consumer, IEnumerable<TopicPartitionOffset>? offsets)
    {
        if (_settings.DryRun) return;
        try
        {
            if (offsets is null) consumer.Commit();
            else consumer.Commit(offsets);
        }
        catch (KafkaException e) when (e.Error.Code == ErrorCode.Local_NoOffset)
        {
            // Nothing new was finished since the last commit.
        }
        catch (KafkaException e)
        {
            _settings.Log.WriteLine($"kafka: commit failed: {e.Error.Reason} (finished records will be committed by the next commit, or replayed)");
        }
    }

    /// <summary>Keeps what is in flight within the budget. A full budget first just
    /// stops taking records for a moment (the destination is usually only slower than
    /// Kafka); only when it stays full are the partitions paused. Pausing is kept for real
    /// stalls because librdkafka drops its prefetched records on pause and fetches them
    /// again on resume. Resuming waits until half the budget is free, so pause and
    /// resume do not alternate per record. Returns true when a record may be consumed.</summary>
    bool ApplyBackpressure()
    {
        if (_consumer is null) return true;
        var inFlight = _engine!.InFlight;
        var bytes = Interlocked.Read(ref _inFlightBytes);
        var full = inFlight >= _settings.MaxInFlightRecords || bytes >= _settings.MaxInFlightBytes;
        if (_backpressured && _repause)
        {
            _consumer.Pause(_partitions.Values.Where(p => !p.ReachedEnd).Select(p => p.Partition).ToList());
            _repause = false;
        }
        if (_backpressured)
        {
            var roomAgain = inFlight <= _settings.MaxInFlightRecords / 2 && bytes <= _settings.MaxInFlightBytes / 2;
            if (!roomAgain) return true; // paused: Consume serves callbacks and returns nothing
            _consumer.Resume(_partitions.Values.Where(p => !p.ReachedEnd).Select(p => p.Partition).ToList());
            Volatile.Write(ref _backpressured, false);
            _fullSince = 0;
            CountPaused();
            return true;
        }
        if (!full)
        {
            _fullSince = 0;
            return true;
        }
        var now = Environment.TickCount64;
        if (_fullSince == 0) _fullSince = now;
        if (now - _fullSince < PauseAfterFullMs)
        {
            // Sleep until a quarter of the budget is free rather than waking per completion:
            // on a small host a consume thread that spins here takes the CPU the requests need.
            _room.Reset();
            Volatile.Write(ref _waitingForRoom, true);
            if (!HasRoom()) _room.Wait(50);
            Volatile.Write(ref _waitingForRoom, false);
            return false;
        }
        _consumer.Pause(_partitions.Values.Where(p => !p.ReachedEnd).Select(p => p.Partition).ToList());
        Volatile.Write(ref _backpressured, true);
        CountPaused();
        return true;
    }

    bool HasRoom() =>
        _engine!.InFlight <= _settings.MaxInFlightRecords * 3 / 4
        && Interlocked.Read(ref _inFlightBytes) <= _settings.MaxInFlightBytes * 3 / 4;

    readonly ManualResetEventSlim _room = new(false, spinCount: 1);
    bool _waitingForRoom;

    /// <summary>How long the budget may stay full before partitions are paused.</summary>
    const int PauseAfterFullMs = 1000;
    long _fullSince;
    bool _repause;

    void CountPaused() =>
        Volatile.Write(ref _pausedCount, _backpressured ? _partitions.Count : _partitions.Values.Count(p => p.ReachedEnd));

    IEnumerable<TopicPartitionOffset> OnAssigned(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> partitions)
    {
        var starts = _starts.Decide(consumer, partitions);
        foreach (var tp in partitions)
        {
            var state = new PartitionState(tp);
            if (_settings.UntilEnd)
            {
                state.End = _startEnds is not null && _startEnds.TryGetValue(tp, out var mark)
                    ? mark.High
                    : consumer.QueryWatermarkOffsets(tp, TimeSpan.FromSeconds(10)).High.Value;
            }
            _partitions[tp] = state;
        }
        // A start chosen by --from is stored (and so committed) at once, so that a restart resumes there.
        foreach (var start in starts)
            if (start.Offset.Value >= 0 && _partitions.TryGetValue(start.TopicPartition, out var state))
                state.Floor = start.Offset.Value;
        // New partitions start unpaused; while the budget is full the next loop turn pauses them too.
        _repause = _backpressured;
        Volatile.Write(ref _assignedCount, _partitions.Count);
        CountPaused();
        _settings.Log.WriteLine($"assigned: {string.Join(", ", starts.Select(Describe))}");
        return starts;
    }

    static string Describe(TopicPartitionOffset start) =>
        $"{start.Topic}[{start.Partition.Value}]" + (start.Offset.Value >= 0 ? $" from offset {start.Offset.Value}" : "");

    void OnRevoked(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartitionOffset> partitions)
    {
        var leaving = partitions.Select(p => _partitions.GetValueOrDefault(p.TopicPartition)).OfType<PartitionState>().ToList();
        var deadline = DateTime.UtcNow + _settings.ShutdownTimeout;
        // Let the revoked partitions' requests finish so their progress can be committed
        // before the next owner starts; bounded so a dead destination cannot stall the group.
        // Abandoned requests never finish, so once work was abandoned there is nothing to wait for.
        while (leaving.Any(s => !Checkpoint.isIdle(s.Progress)) && DateTime.UtcNow < deadline && !_abandon.IsCancellationRequested)
        {
            WaitForFinished();
            Drain();
        }
        DrainCompletions();
        StoreAll();
        var offsets = leaving
            .Select(s => Checkpoint.committable(s.Progress) is { } p ? new TopicPartitionOffset(s.Partition, p.Value) : null)
            .OfType<TopicPartitionOffset>()
            .ToList();
        if (offsets.Count > 0) Commit(consumer, offsets);
        foreach (var s in leaving)
        {
            s.Gone = true;
            _partitions.Remove(s.Partition);
        }
        Volatile.Write(ref _assignedCount, _partitions.Count);
        CountPaused();
        _settings.Log.WriteLine($"revoked: {string.Join(", ", partitions.Select(p => $"{p.Topic}[{p.Partition.Value}]"))}");
    }

    void OnLost(List<TopicPartitionOffset> partitions)
    {
        // Another member may already own these: committing now could move its offsets backwards.
        foreach (var p in partitions)
            if (_partitions.Remove(p.TopicPartition, out var s)) s.Gone = true;
        Volatile.Write(ref _assignedCount, _partitions.Count);
        CountPaused();
        _settings.Log.WriteLine($"lost: {string.Join(", ", partitions.Select(p => $"{p.Topic}[{p.Partition.Value}]"))}");
    }

    void MarkEnd(TopicPartition tp, long offset)
    {
        if (!_partitions.TryGetValue(tp, out var state) || state.ReachedEnd) return;
        if (state.End is { } end && offset < end) return;
        state.ReachedEnd = true;
        // Records below the end that this run never consumed (before a --from start) are not this
        // run's to replay: the end itself may be committed once nothing below it is open.
        state.Floor = Math.Max(state.Floor, state.End is { } e ? Math.Min(offset, e) : offset);
        _consumer?.Pause([tp]);
        CountPaused();
    }

    /// <summary>--until-end is reached when this member's partitions are at their start marks
    /// and nothing of them is open — and, for a named topic, when the whole group has
    /// committed up to the start marks of every partition, so that a member does not stop
    /// while partitions of a crashed member are still waiting for a new owner.</summary>
    bool IsAtEnd()
    {
        if (_partitions.Count == 0 || !_partitions.Values.All(p => p.ReachedEnd && Checkpoint.isIdle(p.Progress)))
            return false;
        // A dry run commits nothing, so there is no group progress to wait for.
        if (_startEnds is null || _settings.DryRun) return true;
        if (DateTime.UtcNow < _nextGroupCheck) return false;
        _nextGroupCheck = DateTime.UtcNow + TimeSpan.FromMilliseconds(500);
        StoreAll();
        Commit(_consumer!, null);
        try
        {
            var committed = _consumer!.Committed(_startEnds.Keys, TimeSpan.FromSeconds(10));
            return committed.All(c =>
            {
                var mark = _startEnds[c.TopicPartition];
                return mark.High <= mark.Low || c.Offset.Value >= mark.High;
            });
        }
        catch (KafkaException)
        {
            return false;
        }
    }

    /// <summary>Low and high watermarks of every partition of the topic, as they are now.</summary>
    static Dictionary<TopicPartition, (long Low, long High)> StartMarks(IConsumer<byte[]?, byte[]?> consumer, string topic)
    {
        var marks = new Dictionary<TopicPartition, (long, long)>();
        foreach (var tp in Partitions(consumer, topic))
        {
            var w = consumer.QueryWatermarkOffsets(tp, TimeSpan.FromSeconds(10));
            marks[tp] = (w.Low.Value, w.High.Value);
        }
        return marks;
    }

    /// <summary>Every partition of a named topic, from the cluster's metadata.</summary>
    static List<TopicPartition> Partitions(IConsumer<byte[]?, byte[]?> consumer, string topic)
    {
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
        var metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds(10));
        return metadata.Topics.Where(t => t.Topic == topic)
            .SelectMany(t => t.Partitions.Select(p => new TopicPartition(topic, new Partition(p.PartitionId))))
            .ToList();
    }

    /// <summary>Wraps a caller-owned handler so that disposing the sender leaves it alive.</summary>
    sealed class PassThroughHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override void Dispose(bool disposing) { }
    }
}
