// --until-end: which records were there when the run started, and when the run is
// done with them. A named topic's marks are read once before subscribing, never in
// a rebalance handler; a partition of a regex topic is measured on the consuming
// thread when first met. The run is done when this member's partitions are at their
// marks with nothing open and — for a named topic — the whole group has committed up
// to every mark, so that a member does not stop while partitions of a crashed member
// still wait for a new owner. With --until as well, partitions may end before their
// marks, where the group's commits will then stay: each member stops when its own
// partitions are done.
using Confluent.Kafka;
using Microsoft.FSharp.Core;
using Replay.Core;

namespace Replay.Host.Replay;

public sealed class UntilEnd
{
    static readonly TimeSpan BrokerTimeout = TimeSpan.FromSeconds(10);
    readonly Dictionary<TopicPartition, (long Low, long High)>? _marks;
    readonly bool _dryRun;
    readonly bool _waitForGroup;
    long _nextGroupCheck;

    UntilEnd(Dictionary<TopicPartition, (long Low, long High)>? marks, bool dryRun, bool waitForGroup)
    {
        _marks = marks;
        _dryRun = dryRun;
        _waitForGroup = waitForGroup;
    }

    /// <summary>Reads the marks of a named topic now (a regex topic's come later, per partition).</summary>
    /// <param name="waitForGroup">False with --until: the group's commits may stop short of the marks.</param>
    public static UntilEnd Start(IConsumer<byte[]?, byte[]?> consumer, string topic, bool dryRun, bool waitForGroup = true)
    {
        if (topic.StartsWith('^')) return new UntilEnd(null, dryRun, waitForGroup);
        var marks = new Dictionary<TopicPartition, (long, long)>();
        foreach (var tp in Topics.Partitions(consumer, topic))
        {
            var w = consumer.QueryWatermarkOffsets(tp, BrokerTimeout);
            marks[tp] = (w.Low.Value, w.High.Value);
        }
        return new UntilEnd(marks, dryRun, waitForGroup);
    }

    /// <summary>Gives a new lease its mark when it is already known.</summary>
    public void Assigned(TopicPartition tp, Lease lease)
    {
        if (_marks is not null && _marks.TryGetValue(tp, out var mark)) lease.End = FSharpValueOption<long>.NewValueSome(mark.High);
    }

    /// <summary>Makes sure the lease knows its mark: a bounded broker call on the consuming thread.
    /// False when the broker did not answer; the caller tries again later.</summary>
    public bool EnsureMark(IConsumer<byte[]?, byte[]?> consumer, TopicPartition tp, Lease lease)
    {
        if (lease.End.IsValueSome) return true;
        try
        {
            lease.End = FSharpValueOption<long>.NewValueSome(consumer.QueryWatermarkOffsets(tp, BrokerTimeout).High.Value);
            // A partition already at or past its mark has nothing to consume, and may never say so again.
            var position = consumer.Position(tp).Value;
            if (position >= 0) LeaseModule.endOfPartition(position, lease);
            return true;
        }
        catch (KafkaException)
        {
            return false;
        }
    }

    /// <summary>True when the run is done; may store and commit (through <paramref name="commit"/>)
    /// to see the group's progress.</summary>
    public bool Reached(IConsumer<byte[]?, byte[]?> consumer, IEnumerable<Lease> leases, Action commit)
    {
        if (!Consuming.allDone(leases)) return false;
        // A dry run commits nothing, so there is no group progress to wait for.
        if (_marks is null || _dryRun || !_waitForGroup) return true;
        var now = Environment.TickCount64;
        if (now < _nextGroupCheck) return false;
        _nextGroupCheck = now + 500;
        commit();
        try
        {
            return consumer.Committed(_marks.Keys, BrokerTimeout).All(c =>
            {
                var mark = _marks[c.TopicPartition];
                return mark.High <= mark.Low || c.Offset.Value >= mark.High;
            });
        }
        catch (KafkaException)
        {
            return false;
        }
    }
}

public static class Topics
{
    /// <summary>Every partition of a named topic, from the cluster's metadata.</summary>
    public static List<TopicPartition> Partitions(IConsumer<byte[]?, byte[]?> consumer, string topic)
    {
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
        var metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds(10));
        return metadata.Topics.Where(t => t.Topic == topic)
            .SelectMany(t => t.Partitions.Select(p => new TopicPartition(topic, new Partition(p.PartitionId))))
            .ToList();
    }
}
