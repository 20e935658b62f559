// What one destination did, for the metrics and the summary when a run has several
// (mirroring, comparing). The record-level account (ReplayStats) says what became of
// each record; this says what became of its copy at this destination.
namespace Replay.Host.Delivery;

public sealed class DestinationStats(string name, bool bestEffort)
{
    long _sent, _dropped, _deadLetters, _shed, _unfinished;

    public string Name { get; } = name;
    public bool BestEffort { get; } = bestEffort;
    /// <summary>Copies this destination accepted (2xx, or a status --ok-on names).</summary>
    public long Sent => Volatile.Read(ref _sent);
    /// <summary>Copies its status policy dropped, and best-effort copies given up after their retries.</summary>
    public long Dropped => Volatile.Read(ref _dropped);
    public long DeadLetters => Volatile.Read(ref _deadLetters);
    /// <summary>Best-effort copies not sent because this destination's budget was full.</summary>
    public long Shed => Volatile.Read(ref _shed);
    /// <summary>Copies given up unfinished (revoked, or in flight when the run stopped): a required
    /// destination's record stays uncommitted and is replayed; a best-effort copy is not sent again.</summary>
    public long Unfinished => Volatile.Read(ref _unfinished);

    internal void Send() => Interlocked.Increment(ref _sent);
    internal void Drop() => Interlocked.Increment(ref _dropped);
    internal void DeadLetter() => Interlocked.Increment(ref _deadLetters);
    internal void ShedOne() => Interlocked.Increment(ref _shed);
    internal void Abandon() => Interlocked.Increment(ref _unfinished);

    public override string ToString() =>
        $"{Name}{(BestEffort ? " (best effort)" : "")}: sent {Sent}, dropped {Dropped}, dead letters {DeadLetters}" + (Shed > 0 ? $", shed {Shed}" : "")
        + (Unfinished > 0 ? $", unfinished {Unfinished}" : "");
}
