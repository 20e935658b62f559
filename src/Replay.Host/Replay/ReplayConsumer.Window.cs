// --until and --speed carried out on the consuming thread: where a partition ends in time
// and when a record is due are the core's (Lease, Pacing, Consuming.admit); here records
// that are not due are kept (one per partition, for the pacing lead) or left in Kafka by
// seeking back, partitions pause and resume with the schedule, and a partition read to its
// end before the until-time's grace is confirmed with the broker once the grace has passed.
using Confluent.Kafka;
using Replay.Core;

namespace Replay.Host.Replay;

public sealed partial class ReplayConsumer
{
    /// <summary>The earliest time (the run's clock) a kept record is due or a waiting partition resumes.</summary>
    long _pacedWake = long.MaxValue;

    bool HasUntil => _settings.Until.IsValueSome;

    /// <summary>The record's Kafka timestamp in Unix milliseconds; -1 when it has none (due at once, never past --until).</summary>
    static long TimestampMs(Message<byte[]?, byte[]?> message) =>
        message.Timestamp.Type == TimestampType.NotAvailable ? -1 : message.Timestamp.UnixTimestampMs;

    /// <summary>Not due, but within the pacing lead: keep this one record; its partition pauses
    /// (librdkafka drops what it prefetched of it) and is fetched again after this record.</summary>
    void Hold(OwnedPartitions.Owned owned, ConsumeResult<byte[]?, byte[]?> result)
    {
        owned.Held = result;
        // Taken before the partition resumes: it goes on after it.
        owned.SeekOnResume = result.Offset.Value + 1;
        _pacedWake = Math.Min(_pacedWake, owned.Lease.PacedUntil);
        _owned.Reconcile(_mode);
    }

    /// <summary>Not due for longer: the record stays in Kafka. The partition pauses and is sought
    /// back to it, so that resuming fetches it again, shortly before it is due.</summary>
    void Defer(OwnedPartitions.Owned owned, ConsumeResult<byte[]?, byte[]?> result)
    {
        _owned.Reconcile(_mode);
        try
        {
            _consumer!.Seek(result.TopicPartitionOffset);
            owned.SeekOnResume = result.Offset.Value;
        }
        catch (KafkaException e)
        {
            // Without the seek, resuming would fetch past this record: keep it instead (the schedule
            // sees it again when the partition would have resumed, and keeps it for the lead).
            _services.Log.WriteLine($"kafka: could not seek {owned.Partition} back to offset {result.Offset.Value} ({e.Error.Reason}); keeping that record until it is due");
            owned.Held = result;
            owned.Lease.Holding = true;
            owned.SeekOnResume = result.Offset.Value + 1;
        }
        _pacedWake = Math.Min(_pacedWake, owned.Lease.PacedUntil);
    }

    /// <summary>Takes the kept records that are due, and resumes partitions whose wait is over.</summary>
    void ReleaseHeld()
    {
        var now = Environment.TickCount64;
        if (now < _pacedWake) return;
        foreach (var owned in _owned.All.Where(o => o.Held is not null && Consuming.heldIsDue(_mode, _owned.Hold, o.Lease, now)).ToList())
        {
            var held = owned.Held!;
            owned.Held = null;
            Handle(held);
        }
        _owned.Reconcile(_mode);
        _pacedWake = long.MaxValue;
        foreach (var owned in _owned.All)
        {
            var lease = owned.Lease;
            // A due record the budget holds back is looked at again shortly.
            if (lease.Holding) _pacedWake = Math.Min(_pacedWake, Math.Max(lease.PacedUntil, now + 20));
            else if (lease.PacedUntil > now) _pacedWake = Math.Min(_pacedWake, lease.PacedUntil);
        }
    }

    /// <summary>How long Consume may wait: no longer than until the next record is due.</summary>
    int ConsumeTimeout(int longest)
    {
        if (_pacedWake == long.MaxValue) return longest;
        return (int)Math.Clamp(_pacedWake - Environment.TickCount64, 0, longest);
    }

    /// <summary>--until: a partition read to its end before the until-time's grace had passed is at its
    /// end only if it still is now; a bounded broker call, once per such partition.</summary>
    void ConfirmEnds()
    {
        if (!HasUntil) return;
        var wall = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach (var owned in _owned.All)
        {
            if (LeaseModule.awaitsConfirmation(wall, owned.Lease) is not { IsValueSome: true } offset) continue;
            try
            {
                var high = _consumer!.QueryWatermarkOffsets(owned.Partition, TimeSpan.FromSeconds(5)).High.Value;
                if (high <= offset.Value) LeaseModule.caughtUp(offset.Value, wall, owned.Lease);
                else LeaseModule.movedOn(owned.Lease);
            }
            catch (KafkaException)
            {
                // The broker did not answer: asked again on the next turn.
            }
        }
    }
}
