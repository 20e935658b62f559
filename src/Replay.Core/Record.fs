/// A Kafka record as plain data: what the consumer hands to the core. The host
/// fills it from Confluent.Kafka without copying the value.
namespace Replay.Core

open System

/// One Kafka record header; `Value` is null when the producer wrote a null header.
[<NoEquality; NoComparison>]
type KafkaHeader = { Name: string; Value: byte[] | null }

[<NoEquality; NoComparison>]
type Record =
    { Topic: string
      Partition: int
      Offset: int64
      /// Null when the record has no key.
      Key: byte[] | null
      Value: ReadOnlyMemory<byte>
      Headers: KafkaHeader[]
      /// Milliseconds since the Unix epoch, as Kafka stamped the record.
      TimestampMs: int64 }

module Record =
    /// The last header of that name (Kafka allows repeats; the latest wins, as in
    /// Kafka Streams), decoded as UTF-8; null when absent.
    let header (name: string) (record: Record) : string | null =
        let mutable found: string | null = null
        for h in record.Headers do
            if String.Equals(h.Name, name, StringComparison.Ordinal) then
                found <-
                    match h.Value with
                    | null -> null
                    | bytes -> Text.Encoding.UTF8.GetString bytes
        found

    /// `topic/partition/offset`: names one record uniquely, so a destination can
    /// drop a replay it has already seen.
    let replayId (record: Record) =
        // Concat, not interpolation: F# boxes interpolated values, and this runs per record.
        String.Concat(record.Topic, "/", string record.Partition, "/", string record.Offset)
