/// The walking skeleton end to end: the embedded broker, the replay, and a real
/// HTTP server on 127.0.0.1.
module Replay.Tests.ReplayTests

open System
open Expecto
open Replay.Core
open Replay.Core.Envelope
open Replay.Tests

let private envelope ns id (payload: string) operation : Envelope =
    { Namespace = ns
      Id = id
      IpAddr = ReadOnlyMemory.Empty
      Payload = ReadOnlyMemory(Text.Encoding.UTF8.GetBytes payload)
      Timestamp = 1L
      Operation = operation
      ApiVersion = "1"
      Partitions = [] }

let private store id body = Broker.message id (encode (envelope "telemetry" id body CreateUpdate))
let private remove id = Broker.message id (encode (envelope "telemetry" id "" Delete))

let private within = TimeSpan.FromSeconds 60.0

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Replay end to end"
        [ test "replays every envelope as POST dest(id) with its payload, and DELETEs" {
              use cluster = Broker.start "t" 4
              let ids = [ for i in 1..200 -> $"doc-{i}" ]
              let messages = [ for id in ids -> store id $"{{\"n\":\"{id}\"}}" ] @ [ remove "doc-7"; remove "doc-9" ]
              Broker.produce cluster.BootstrapServers "t" messages
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let route = ReplayProcess.route $"{server.Url}/submit/telemetry/%%k" 1.0 true true
              let settings = ReplayProcess.settings cluster.BootstrapServers "g" "t" route
              settings.UntilEnd <- true
              use replay = ReplayProcess.start settings
              Expect.equal (replay.Wait within) (Some 0) "until-end exits 0"
              let got = server.Accepted |> List.map (fun h -> h.Method, h.Path, Text.Encoding.UTF8.GetString h.Body) |> Set.ofList
              let expected =
                  Set.ofList (
                      [ for id in ids -> "POST", $"/submit/telemetry/{id}", $"{{\"n\":\"{id}\"}}" ]
                      @ [ "DELETE", "/submit/telemetry/doc-7", ""; "DELETE", "/submit/telemetry/doc-9", "" ]
                  )
              Expect.equal got expected "the server received exactly the expected (method, path, body) set"
              Expect.equal server.Hits.Length 202 "no request twice"
          } ]
