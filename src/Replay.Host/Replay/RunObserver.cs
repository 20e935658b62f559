// What the operating layer (progress line, metrics, readiness) reads of a running
// replay, written by the consuming thread and the delivery service and read from
// other threads: plain counters and clocks, no decisions.
using Replay.Host.Delivery;
using Replay.Host.Operating;

namespace Replay.Host.Replay;

public sealed class RunObserver
{
    ReplayStack? _delivery;
    int _assigned, _paused, _running, _backpressured;
    long _lastTurn = Environment.TickCount64, _lastProgress = Environment.TickCount64;

    internal void Attach(ReplayStack delivery) => _delivery = delivery;

    /// <summary>True between the start of the run and its return.</summary>
    public bool IsRunning => Volatile.Read(ref _running) == 1;
    internal bool Running { set => Volatile.Write(ref _running, value ? 1 : 0); }

    /// <summary>How many partitions this member owns now.</summary>
    public int AssignedCount => Volatile.Read(ref _assigned);
    internal int Assigned { set => Volatile.Write(ref _assigned, value); }

    /// <summary>True once the consumer has partitions (for readiness checks).</summary>
    public bool IsAssigned => AssignedCount > 0;

    /// <summary>--speed: the run's schedule; null until the consumer exists.</summary>
    internal global::Replay.Core.Pacing.Pacer? Pacer { get; set; }

    /// <summary>--speed: how late the latest record was handed on against its schedule; null when not paced.</summary>
    public TimeSpan? BehindSchedule => Pacer is { IsPaced: true } pacer ? TimeSpan.FromMilliseconds(pacer.BehindMs) : null;

    /// <summary>Partitions paused now: by backpressure, at their end, by their span, or waiting for a record that is not due.</summary>
    public int PausedCount => Volatile.Read(ref _paused);
    internal int Paused { set => Volatile.Write(ref _paused, value); }

    /// <summary>True while every partition is paused because the in-flight budget stayed full.</summary>
    public bool IsBackpressured => Volatile.Read(ref _backpressured) == 1;
    internal bool Backpressured { set => Volatile.Write(ref _backpressured, value ? 1 : 0); }

    /// <summary>Why consuming is held by --max-dead-letter-ratio, in words; null while it is not.</summary>
    public string? Held { get => Volatile.Read(ref _held); internal set => Volatile.Write(ref _held, value); }
    string? _held;

    /// <summary>Times --max-dead-letter-ratio held consuming.</summary>
    public long Holds => Volatile.Read(ref _holds);
    internal void HeldAgain() => Interlocked.Increment(ref _holds);
    long _holds;

    /// <summary>Records handed to the delivery engine and not yet finished.</summary>
    public int InFlight => _delivery?.InFlight ?? 0;

    public long InFlightBytes => _delivery?.InFlightBytes ?? 0;

    /// <summary>Copies in flight per destination of the run.</summary>
    public IEnumerable<(string Destination, int InFlight)> InFlightByDestination() =>
        _delivery?.Deliveries.Select(d => (d.Destination.Name, d.InFlight)) ?? [];

    /// <summary>Requests allowed on the wire at once now, at the first destination (0 before delivery starts).</summary>
    public int WireLimit => _delivery?.Deliveries[0].WireLimit ?? 0;

    /// <summary>True when that limit adapts to the destination (--concurrency auto).</summary>
    public bool AdaptsConcurrency => _delivery?.Deliveries[0].AdaptsConcurrency ?? false;

    /// <summary>Consumer lag per owned partition, from librdkafka's statistics.</summary>
    public ConsumerLag Lag { get; } = new();

    /// <summary>Time since the consume loop last turned (a handler or the broker may hold it).</summary>
    public TimeSpan SinceLastTurn => TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastTurn));

    /// <summary>Time since a record last finished, or since work arrived while none was in flight.</summary>
    public TimeSpan SinceLastProgress => TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastProgress));

    internal void Turned() => Volatile.Write(ref _lastTurn, Environment.TickCount64);
    internal void Progressed() => Volatile.Write(ref _lastProgress, Environment.TickCount64);
}
