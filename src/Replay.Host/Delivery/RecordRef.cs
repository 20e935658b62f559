// The host's view of a record on its way out: what its dead letter needs (the
// record as consumed) and how to abort its request once its partition is fenced.
using Confluent.Kafka;

namespace Replay.Host.Delivery;

public sealed class RecordRef
{
    public required string Topic { get; init; }
    public required int Partition { get; init; }
    public required long Offset { get; init; }
    public byte[]? Key { get; init; }
    public required ReadOnlyMemory<byte> Value { get; init; }
    public Headers? Headers { get; init; }
    /// <summary>Fires when the record's partition is revoked or lost, or the run stops
    /// without waiting: a request still on the wire is aborted.</summary>
    public CancellationToken Abort { get; init; }
}
