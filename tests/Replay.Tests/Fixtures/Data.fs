/// Bagheera envelopes for integration tests, built with the core's encoder.
module Replay.Tests.Data

open System
open Replay.Core.Envelope

let envelope ns id (payload: string) operation : Envelope =
    { Namespace = ns
      Id = id
      IpAddr = ReadOnlyMemory.Empty
      Payload = ReadOnlyMemory(Text.Encoding.UTF8.GetBytes payload)
      Timestamp = 1L
      Operation = operation
      ApiVersion = "1"
      Partitions = [] }

/// A CREATE_UPDATE of `id` in namespace telemetry, keyed by id.
let store id body = Broker.message id (encode (envelope "telemetry" id body CreateUpdate))

/// A DELETE of `id` in namespace telemetry, keyed by id.
let remove id = Broker.message id (encode (envelope "telemetry" id "" Delete))

/// `n` documents with `versions` successive stores each, payload `{"id":..,"seq":k}`,
/// interleaved so that versions of one id are spread through the topic.
let versioned n versions =
    [ for v in 1..versions do
          for i in 1..n -> store $"doc-{i}" $"{{\"id\":\"doc-{i}\",\"seq\":{v}}}" ]

/// The `seq` of a versioned payload.
let seqOf (body: byte[]) =
    use doc = Text.Json.JsonDocument.Parse body
    doc.RootElement.GetProperty("seq").GetInt32()
