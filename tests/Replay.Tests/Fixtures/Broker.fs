/// The embedded broker for tests: a fresh mock cluster per test, with helpers to
/// fill a topic the way Bagheera's producers did (key = document id).
module Replay.Tests.Broker

open System
open Confluent.Kafka
open Replay.Host.Kafka

type Message = { Key: string; Value: byte[]; Headers: (string * string) list }

let message key value = { Key = key; Value = value; Headers = [] }

/// A new embedded cluster with one topic.
let start (topic: string) (partitions: int) =
    let cluster = new MockCluster()
    cluster.CreateTopic(topic, partitions)
    cluster

/// Writes messages in order and waits until every one is acknowledged.
let produce (bootstrap: string) (topic: string) (messages: Message seq) =
    let config = ProducerConfig(BootstrapServers = bootstrap, Acks = Acks.All, EnableIdempotence = true, LingerMs = 2.0)
    use producer = ProducerBuilder<string, byte[]>(config).Build()
    let mutable failure: Error option = None
    for m in messages do
        let headers = Headers()
        for (name, value) in m.Headers do
            headers.Add(name, Text.Encoding.UTF8.GetBytes value)
        let msg = Message<string, byte[]>(Key = m.Key, Value = m.Value, Headers = headers)
        producer.Produce(topic, msg, fun report -> if report.Error.IsError then failure <- Some report.Error)
    producer.Flush(TimeSpan.FromSeconds 30.0) |> ignore
    match failure with
    | Some error -> failwithf "produce failed: %s" error.Reason
    | None -> ()

/// The group's committed offset per partition (-1001 where it has none).
let committed (bootstrap: string) (group: string) (topic: string) (partitions: int) =
    let config = ConsumerConfig(BootstrapServers = bootstrap, GroupId = group)
    use consumer = ConsumerBuilder<Ignore, Ignore>(config).Build()
    let tps = [ for p in 0 .. partitions - 1 -> TopicPartition(topic, Partition p) ]
    consumer.Committed(tps, TimeSpan.FromSeconds 10.0)
    |> Seq.map (fun tpo -> tpo.Partition.Value, tpo.Offset.Value)
    |> Map.ofSeq

/// The group's committed offsets summed over partitions; a partition without a commit counts 0.
let committedTotal bootstrap group topic partitions =
    committed bootstrap group topic partitions |> Map.toSeq |> Seq.sumBy (fun (_, o) -> max 0L o)

/// Kafka settings for a replay under test: KIP-848 groups get their assignment at
/// once on the mock broker and rebalance when members come and go.
let kafkaSettings (bootstrap: string) (group: string) =
    dict
        [ "bootstrap.servers", bootstrap
          "group.id", group
          "auto.offset.reset", "earliest"
          "group.protocol", "consumer" ]
    |> Collections.Generic.Dictionary
    :> Collections.Generic.IReadOnlyDictionary<string, string>
