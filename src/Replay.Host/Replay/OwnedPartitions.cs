// The partitions this member owns: each one's lease in the core, the token that
// aborts its requests, and what Kafka was last told about it. Carries out the core's
// decisions for them — store the position Lease.storable gives, pause and resume as
// Backpressure.wantsPause says — on the consuming thread, the only one that calls here.
using Confluent.Kafka;
using Replay.Core;
using Replay.Host.Delivery;

namespace Replay.Host.Replay;

sealed class OwnedPartitions(TextWriter log, RunObserver observer, bool dryRun)
{
    public sealed class Owned(TopicPartition partition, Lease lease)
    {
        public TopicPartition Partition { get; } = partition;
        public Lease Lease { get; } = lease;
        public CancellationTokenSource Abort { get; } = new();
        /// <summary>What Kafka was last told: paused or not.</summary>
        public bool Paused;
        /// <summary>--speed: the one record kept until it is due (Consuming.Admission.Hold); its partition is paused meanwhile.</summary>
        public ConsumeResult<byte[]?, byte[]?>? Held;
        /// <summary>--speed: where the partition goes on when it resumes; sought to then, because librdkafka's fetcher
        /// does not notice a plain resume while it idles (up to a second) and a seek wakes it.</summary>
        public long? SeekOnResume;
    }

    readonly Dictionary<TopicPartition, Owned> _owned = new();

    public IConsumer<byte[]?, byte[]?>? Consumer { get; set; }

    /// <summary>Whether consuming is held as a whole (--max-dead-letter-ratio); the next Reconcile carries it out.</summary>
    public Backpressure.Hold Hold { get; set; } = Backpressure.Hold.Free;

    public IEnumerable<Lease> Leases => _owned.Values.Select(o => o.Lease);

    public IEnumerable<Owned> All => _owned.Values;

    public bool TryGet(TopicPartition partition, out Owned owned) => _owned.TryGetValue(partition, out owned!);

    /// <summary>For librdkafka's statistics callback, which runs on another thread: a stale answer is harmless.</summary>
    public bool Contains(TopicPartition partition) => _owned.ContainsKey(partition);

    public Owned Add(TopicPartition partition, Lease lease)
    {
        var owned = new Owned(partition, lease);
        _owned[partition] = owned;
        observer.Assigned = _owned.Count;
        return owned;
    }

    public List<Owned> Of(IEnumerable<TopicPartition> partitions) =>
        partitions.Select(p => _owned.GetValueOrDefault(p)).OfType<Owned>().ToList();

    /// <summary>Hands Kafka each position that moved (nothing in a dry run).</summary>
    public void StoreAll()
    {
        if (dryRun) return;
        foreach (var owned in _owned.Values)
        {
            if (LeaseModule.storable(owned.Lease) is not { IsValueSome: true } position) continue;
            try
            {
                Consumer!.StoreOffset(new TopicPartitionOffset(owned.Partition, position.Value));
                LeaseModule.stored(position.Value, owned.Lease);
            }
            catch (KafkaException e)
            {
                // The partition left us between the check and the store: its new owner re-reads from the last commit.
                log.WriteLine($"kafka: could not store offset {position.Value} for {owned.Partition}: {e.Error.Reason}");
            }
        }
    }

    /// <summary>The positions to commit for partitions about to leave: what may be stored now, or what was.</summary>
    public List<TopicPartitionOffset> FinalPositions(List<Owned> leaving) =>
        leaving
            .Select(o => (o, Position: LeaseModule.storable(o.Lease) is { IsValueSome: true } p ? p.Value : o.Lease.Stored))
            .Where(x => x.Position >= 0)
            .Select(x => new TopicPartitionOffset(x.o.Partition, x.Position))
            .ToList();

    /// <summary>Pauses or resumes each partition whose wanted state changed.</summary>
    public void Reconcile(Backpressure.Mode mode)
    {
        List<TopicPartition>? pause = null, resume = null;
        var now = Environment.TickCount64;
        foreach (var owned in _owned.Values)
        {
            var wanted = Backpressure.wantsPause(mode, Hold, owned.Lease, now);
            if (wanted == owned.Paused) continue;
            (wanted ? pause ??= [] : resume ??= []).Add(owned.Partition);
            owned.Paused = wanted;
        }
        try
        {
            if (pause is not null) Consumer!.Pause(pause);
            if (resume is not null)
            {
                Consumer!.Resume(resume);
                foreach (var partition in resume)
                {
                    var owned = _owned[partition];
                    if (owned.SeekOnResume is not { } next) continue;
                    owned.SeekOnResume = null;
                    Consumer.Seek(new TopicPartitionOffset(partition, next));
                }
            }
        }
        catch (KafkaException e)
        {
            log.WriteLine($"kafka: could not pause or resume partitions: {e.Error.Reason}");
        }
        observer.Paused = _owned.Values.Count(o => o.Paused);
    }

    /// <summary>The partitions are gone: nothing of them is sent or counted any more.</summary>
    public void Forget(List<Owned> leaving, ReplayStack? delivery)
    {
        foreach (var owned in leaving)
        {
            delivery?.Release(owned.Lease);
            owned.Abort.Cancel();
            // Never started: the next owner reads it again from the commit, which stays at or below it.
            owned.Held = null;
            _owned.Remove(owned.Partition);
        }
        observer.Assigned = _owned.Count;
        observer.Paused = _owned.Values.Count(o => o.Paused);
    }

    /// <summary>Aborts every request still on the wire (the run gives up on them).</summary>
    public void AbortAll()
    {
        foreach (var owned in _owned.Values) owned.Abort.Cancel();
    }
}
