// How this member takes partitions on and gives them up. The handlers run inside
// Consume, on the consuming thread; they never throw (Confluent.Kafka would unassign
// and rethrow from Consume) and make no broker call but the bounded ones a --from
// start needs. A revoke is a fence: the partitions' waiting work is abandoned at once,
// requests on the wire get the bounded wait, what finished is committed, and nothing
// of them is sent after the handler returns.
using Confluent.Kafka;
using Replay.Core;

namespace Replay.Host.Replay;

public sealed partial class ReplayConsumer
{
    /// <summary>Rebalance handlers run inside Consume and must not throw (Confluent.Kafka would
    /// unassign and rethrow): every failure is logged and handled here.</summary>
    IEnumerable<TopicPartitionOffset> OnAssigned(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> partitions)
    {
        List<TopicPartitionOffset> starts;
        try
        {
            // Broker calls only for --from TIME and --reset, bounded; the default resumes from commits.
            starts = _starts.Decide(consumer, partitions);
        }
        catch (Exception e)
        {
            _services.Log.WriteLine($"could not position {string.Join(", ", partitions)} by --from ({e.Message}); they resume from the group's committed offsets");
            starts = partitions.Select(p => new TopicPartitionOffset(p, Offset.Unset)).ToList();
        }
        foreach (var start in starts)
        {
            var lease = LeaseModule.create(start.Topic, start.Partition.Value, start.Offset.Value >= 0 ? start.Offset.Value : -1);
            if (_settings.Until.IsValueSome) lease.Until = _settings.Until.Value;
            _untilEnd?.Assigned(start.TopicPartition, lease);
            _owned.Add(start.TopicPartition, lease);
        }
        // New partitions start unpaused; the next turn pauses them when the budget says so.
        _lastStore = 0;
        _services.Log.WriteLine($"assigned: {string.Join(", ", starts.Select(Describe))}");
        return starts;
    }

    static string Describe(TopicPartitionOffset start) =>
        $"{start.Topic}[{start.Partition.Value}]" + (start.Offset.Value >= 0 ? $" from offset {start.Offset.Value}" : "");

    /// <summary>A revoke is a fence: the partitions' waiting work is abandoned at once, requests on
    /// the wire get the bounded wait, what finished is committed, and nothing of them is sent after
    /// this returns — so the next owner's requests for a document never cross a late one of ours.</summary>
    void OnRevoked(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartitionOffset> partitions)
    {
        var leaving = _owned.Of(partitions.Select(p => p.TopicPartition));
        try
        {
            var delivery = _stack!;
            foreach (var owned in leaving) delivery.Revoke(owned.Lease);
            var deadline = Environment.TickCount64 + (long)_settings.Delivery.ShutdownTimeout.TotalMilliseconds;
            while (leaving.Any(o => !delivery.IsSettled(o.Lease)) && Environment.TickCount64 < deadline)
            {
                WaitForFinished();
                DrainCompletions();
            }
            DrainCompletions();
            _owned.StoreAll();
            var offsets = _owned.FinalPositions(leaving);
            if (offsets.Count > 0) Commit(offsets);
        }
        catch (Exception e)
        {
            _services.Log.WriteLine($"revoke of {string.Join(", ", partitions)}: {e.Message}; what was not committed is replayed by the next owner");
        }
        finally
        {
            _owned.Forget(leaving, _stack);
            _services.Log.WriteLine($"revoked: {string.Join(", ", partitions.Select(p => $"{p.Topic}[{p.Partition.Value}]"))}");
        }
    }

    void OnLost(List<TopicPartitionOffset> partitions)
    {
        // Another member may already own these: committing now could move its offsets backwards.
        _owned.Forget(_owned.Of(partitions.Select(p => p.TopicPartition)), _stack);
        _services.Log.WriteLine($"lost: {string.Join(", ", partitions.Select(p => $"{p.Topic}[{p.Partition.Value}]"))}");
    }
}
