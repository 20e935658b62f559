// The Kafka loop. One thread consumes, decides (through the pure core), hands records
// to the delivery service, moves checkpoints and carries out the core's decisions on
// what to store, pause and resume; every call into the consumer happens on that
// thread. The decisions themselves — what may be committed, when to pause, what a
// revoke abandons, where a partition ends and when a record is due — are the core's
// (Lease, Backpressure, Consuming, Pacing, DeliveryEngine). --until and --speed are
// carried out in ReplayConsumer.Window.cs.
using System.Collections.Concurrent;
using Confluent.Kafka;
using Replay.Core;
using Replay.Host.Delivery;
using Replay.Host.Kafka;
using Replay.Host.Operating;

namespace Replay.Host.Replay;

public sealed partial class ReplayConsumer
{
    readonly RunSettings _settings;
    readonly ReplayServices _services;
    readonly ReplayStats _stats;
    readonly OwnedPartitions _owned;
    readonly ConcurrentQueue<Job> _completions = new();
    /// <summary>Set when a job finishes; shutdown, revoke and a full budget wait on it.</summary>
    readonly ManualResetEventSlim _finishedSignal = new(false, spinCount: 1);
    /// <summary>The budget is full and the consuming thread waits for room: finished jobs wake it
    /// only once there is (Backpressure.hasRoom), not one by one.</summary>
    volatile bool _roomWanted;
    readonly StartOffsets _starts;
    readonly RunObserver _observer = new();
    readonly Pacing.Pacer _pacer;
    IConsumer<byte[]?, byte[]?>? _consumer;
    ReplayStack? _stack;
    UntilEnd? _untilEnd;
    Backpressure.Mode _mode = Backpressure.Mode.Flowing;
    long _consumed;
    long _lastStore;
    /// <summary>Set once the run cannot go on: a TLS setting that cannot work, dead letters unwritable, a bug.</summary>
    volatile string? _fatal;
    int _fatalCode = Cli.ExitCodes.Failure;
    const int StoreIntervalMs = 20;

    public ReplayConsumer(RunSettings settings, ReplayServices services, ReplayStats? stats = null)
    {
        _settings = settings;
        _services = services;
        _stats = stats ?? new ReplayStats();
        _starts = new StartOffsets(services.Start, services.Reset, settings.Kafka, services.Log);
        _owned = new OwnedPartitions(services.Log, _observer, settings.DryRun);
        StartBrake();
        _pacer = new Pacing.Pacer(settings.Speed);
        _observer.Pacer = _pacer;
    }

    public ReplayStats Stats => _stats;

    /// <summary>What the operating layer (progress, metrics, readiness) reads of this run.</summary>
    public RunObserver Observer => _observer;

    /// <summary>Runs until <paramref name="stop"/> fires or a stop condition is met, then
    /// drains, commits and leaves the group. Returns the process exit code.</summary>
    public int Run(CancellationToken stop)
    {
        _observer.Running = true;
        try { return RunConsumer(stop); }
        finally { _observer.Running = false; }
    }

    int RunConsumer(CancellationToken stop)
    {
        var config = ConsumerSettings.Build(_settings.Kafka, partitionEof: _settings.UntilEnd || HasUntil, _settings.DryRun, paced: _pacer.IsPaced);
        using var stack = new ReplayStack(_settings, _services, _stats, OnFinished,
            tlsFailure: reason => Stop(reason, Cli.ExitCodes.DestinationTls),
            fatal: reason => Stop(reason, Cli.ExitCodes.Failure),
            // A run that must end (--until-end, --until) does not wait forever for a disk: as long as any
            // record may retry, or as long as a poison record may hold its partition when no limit is set.
            giveUpOnDeadLetters: _settings.UntilEnd || HasUntil
                ? _settings.Delivery.Retry.MaxRetryDuration?.Value ?? _settings.Delivery.Retry.PoisonAfter
                : null);
        _stack = stack;
        _observer.Attach(stack);
        using var kafkaLog = new KafkaDiagnostics(_services.Log);
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(config)
            .SetPartitionsAssignedHandler(OnAssigned)
            .SetStatisticsHandler((_, json) => _observer.Lag.Update(json, _owned.Contains))
            .SetPartitionsRevokedHandler(OnRevoked)
            .SetPartitionsLostHandler((_, parts) => OnLost(parts))
            .WithDiagnostics(kafkaLog)
            .Build();
        _consumer = consumer;
        _owned.Consumer = consumer;
        if (_settings.UntilEnd) _untilEnd = UntilEnd.Start(consumer, _settings.Topic, _settings.DryRun, waitForGroup: !HasUntil);
        if (_services.Reset && !_settings.Topic.StartsWith('^'))
            _starts.RememberCommitted(consumer, Topics.Partitions(consumer, _settings.Topic));
        consumer.Subscribe(_settings.Topic);

        try
        {
            while (!stop.IsCancellationRequested && _fatal is null && (_settings.MaxRecords == 0 || _consumed < _settings.MaxRecords))
            {
                _observer.Turned();
                // Whether every partition is at its end is asked at the store interval, not per
                // record: it walks every lease (a tenth of the consuming thread at 128 partitions).
                if (Drain())
                {
                    if (_untilEnd is { } untilEnd && untilEnd.Reached(consumer, _owned.Leases, () => { _owned.StoreAll(); Commit(); })) break;
                    if (_untilEnd is null && HasUntil && Consuming.allDone(_owned.Leases)) break;
                }
                if (!Admit()) continue;
                ReleaseHeld();
                var result = consumer.Consume(ConsumeTimeout(_mode.IsPaused ? 50 : 100));
                if (result is null) continue;
                if (result.IsPartitionEOF) AtEnd(result.TopicPartition, result.Offset.Value);
                else Handle(result);
            }
        }
        catch (ConsumeException e) when (e.Error.Code == ErrorCode.Local_AutoOffsetReset)
        {
            // --from committed: librdkafka refused to guess a start (auto.offset.reset=error).
            var at = e.ConsumerRecord?.TopicPartition is { } tp ? $"{tp.Topic}[{tp.Partition.Value}]" : "a partition";
            _services.Log.WriteLine($"--from committed: {at} has no usable committed offset for this group (none was committed, " +
                "or it is older than the topic keeps); start it with --from earliest, latest or a time");
            Shutdown();
            return Cli.ExitCodes.Usage;
        }
        catch (Exception e)
        {
            // Whatever ended consuming, what was delivered is still committed before leaving: the
            // checkpoints only ever hold finished records. Anything but Kafka's own refusal is a bug,
            // shown whole so that it can be reported.
            var reason = e switch
            {
                KafkaException k => $"kafka: consuming stopped: {k.Error.Reason}{(k.Error.IsFatal ? " (fatal)" : "")}",
                InvalidOperationException when e.Source == "Confluent.Kafka" => $"kafka: consuming stopped: {e.Message}",
                _ => $"replay: internal error while consuming: {e}",
            };
            _services.Log.WriteLine($"{reason}; finishing in-flight requests and committing what is done");
            Shutdown();
            return Cli.ExitCodes.Failure;
        }
        if (_fatal is { } fatal)
        {
            // No retry can succeed: give up the in-flight requests at once (they stay
            // uncommitted), commit what was finished, and say why.
            _services.Log.WriteLine($"replay: stopping: {fatal}");
            Shutdown(wait: false);
            return _fatalCode;
        }
        return Shutdown();
    }

    void Stop(string reason, int exitCode)
    {
        if (Interlocked.CompareExchange(ref _fatal, reason, null) is null) _fatalCode = exitCode;
    }

    /// <summary>One turn of the budget (Backpressure.step); true when a record may be consumed.</summary>
    bool Admit()
    {
        var (records, bytes) = _stack!.Load();
        var (mode, decision) = Backpressure.step(_settings.Budget, _mode, records, bytes, Environment.TickCount64);
        var changed = mode.IsPaused != _mode.IsPaused;
        _mode = mode;
        _observer.Backpressured = mode.IsPaused;
        if (changed) _owned.Reconcile(_mode);
        if (decision != Backpressure.Decision.WaitForRoom) return true;
        // Sleep until a quarter of the budget is free rather than waking per completion:
        // on a small host a consume thread that spins here takes the CPU the requests need.
        _roomWanted = true;
        Interlocked.MemoryBarrier();
        _finishedSignal.Reset();
        var (nowRecords, nowBytes) = _stack.Load();
        if (!Backpressure.hasRoom(_settings.Budget, nowRecords, nowBytes)) _finishedSignal.Wait(50);
        _roomWanted = false;
        return false;
    }

    void Handle(ConsumeResult<byte[]?, byte[]?> result)
    {
        if (!_owned.TryGet(result.TopicPartition, out var owned)) return;
        var lease = owned.Lease;
        var offset = result.Offset.Value;
        if (_untilEnd is { } untilEnd && !untilEnd.EnsureMark(_consumer!, owned.Partition, lease))
        {
            // Without its mark the record might not be this run's: read it again once the broker answers.
            _consumer!.Seek(result.TopicPartitionOffset);
            return;
        }
        var message = result.Message;
        switch (Consuming.admit(_pacer, lease, offset, TimestampMs(message), Environment.TickCount64))
        {
            case Consuming.Admission.PastEnd:
                _owned.Reconcile(_mode);
                return;
            case Consuming.Admission.Hold:
                Hold(owned, result);
                return;
            case Consuming.Admission.Defer:
                Defer(owned, result);
                return;
        }
        var value = message.Value ?? [];
        _stats.Consume(value.Length);
        _consumed++;
        var record = new Record(result.Topic, result.Partition.Value, offset, message.Key, value, ToHeaders(message.Headers),
            TimestampMs(message));
        if (_stack!.InFlight == 0) _observer.Progressed();
        var source = new RecordRef
        {
            Topic = result.Topic, Partition = result.Partition.Value, Offset = offset, Key = message.Key, Value = value,
            Headers = message.Headers, Abort = owned.Abort.Token,
        };
        _stack.Take(lease, offset, value.Length, _stack.Decide(record), source);
        // One record held too many behind an open one: this partition waits (the others go on).
        if (lease.SpanFull && !owned.Paused) _owned.Reconcile(_mode);
    }

    static KafkaHeader[] ToHeaders(Headers? headers)
    {
        if (headers is null || headers.Count == 0) return [];
        var result = new KafkaHeader[headers.Count];
        for (var i = 0; i < headers.Count; i++)
            result[i] = new KafkaHeader(headers[i].Key, headers[i].GetValueBytes());
        return result;
    }

    /// <summary>Kafka says the partition has nothing more (only with --until-end or --until).</summary>
    void AtEnd(TopicPartition tp, long offset)
    {
        if (!_owned.TryGet(tp, out var owned)) return;
        if (_untilEnd is not { } untilEnd || untilEnd.EnsureMark(_consumer!, tp, owned.Lease))
            LeaseModule.caughtUp(offset, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), owned.Lease);
        _owned.Reconcile(_mode);
    }

    /// <summary>Called under the engine's lock by the delivery service: hands the job to this thread.</summary>
    void OnFinished(Job job)
    {
        _observer.Progressed();
        _completions.Enqueue(job);
        // Waking the consuming thread per finished record cost a context switch per record on each side.
        Interlocked.MemoryBarrier();
        if (_roomWanted && !HasRoom()) return;
        _finishedSignal.Set();
    }

    bool HasRoom()
    {
        var (records, bytes) = _stack!.Load();
        return Backpressure.hasRoom(_settings.Budget, records, bytes);
    }

    /// <summary>Moves finished records into the checkpoints and, every few milliseconds,
    /// stores the new commit positions and re-evaluates what must be paused. True on those turns.</summary>
    bool Drain()
    {
        DrainCompletions();
        if (Environment.TickCount64 - _lastStore < StoreIntervalMs) return false;
        _lastStore = Environment.TickCount64;
        _owned.StoreAll();
        Consuming.updateSpans(_settings.Budget, _owned.Leases);
        TurnBrake();
        ConfirmEnds();
        _owned.Reconcile(_mode);
        return true;
    }

    void DrainCompletions()
    {
        while (_completions.TryDequeue(out var job))
            if (Consuming.finished(job) is { IsValueSome: true } end)
            {
                _stats.Ended(end.Value);
                ObserveForBrake(end.Value);
                if (_services.Comparison is { } comparison && job.Copies is { } copies) comparison.Finished(copies.Finished);
            }
    }

    void Commit(IEnumerable<TopicPartitionOffset>? offsets = null)
    {
        if (_settings.DryRun) return;
        try
        {
            if (offsets is null) _consumer!.Commit();
            else _consumer!.Commit(offsets);
        }
        catch (KafkaException e) when (e.Error.Code == ErrorCode.Local_NoOffset)
        {
            // Nothing new was finished since the last commit.
        }
        catch (KafkaException e)
        {
            _services.Log.WriteLine($"kafka: commit failed: {e.Error.Reason} (finished records will be committed by the next commit, or replayed)");
        }
    }

    /// <summary>Waits for every unfinished job (retries included) up to --shutdown-timeout, commits
    /// what finished, gives up the rest (uncommitted: replayed next time) and leaves the group.</summary>
    int Shutdown(bool wait = true)
    {
        var delivery = _stack!;
        var deadline = Environment.TickCount64 + (long)_settings.Delivery.ShutdownTimeout.TotalMilliseconds;
        // Best-effort copies hold nothing, so they do not hold the exit either.
        while (wait && delivery.RequiredInFlight > 0 && Environment.TickCount64 < deadline)
        {
            WaitForFinished();
            DrainCompletions();
        }
        if (delivery.InFlight > 0)
        {
            if (wait && delivery.RequiredInFlight > 0)
                _services.Log.WriteLine($"shutdown: {delivery.RequiredInFlight} records still in flight after --shutdown-timeout; they are not committed and will be replayed next time");
            delivery.Stop();
            _owned.AbortAll();
        }
        DrainCompletions();
        _owned.StoreAll();
        Commit();
        try { _consumer!.Close(); }
        catch (KafkaException e) { _services.Log.WriteLine($"kafka: leaving the group failed: {e.Error.Reason} (its session will time out)"); }
        return 0;
    }

    /// <summary>Waits (up to 100 ms) for some job to finish since the last wait.</summary>
    void WaitForFinished()
    {
        _finishedSignal.Wait(TimeSpan.FromMilliseconds(100));
        _finishedSignal.Reset();
    }
}
