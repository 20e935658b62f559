/// The Bagheera envelope decoder: round trips over generated envelopes, totality
/// over arbitrary and damaged bytes, and a corpus of hostile records, each with
/// the precise error the dead letter will carry.
module Replay.Tests.EnvelopeTests

open System
open System.Runtime.InteropServices
open Expecto
open FsCheck.FSharp
open Google.Protobuf
open Replay.Core.Envelope
open Replay.Tests.Generators

let private decodeBytes (bytes: byte[]) = decode (ReadOnlyMemory bytes)

let private errorOf bytes =
    match decodeBytes bytes with
    | Ok _ -> None
    | Error error -> Some error

let private decoded bytes =
    match decodeBytes bytes with
    | Ok envelope -> envelope
    | Error error -> failtest $"expected a valid envelope, got: {describe error}"

let private lengthDelimited = WireFormat.WireType.LengthDelimited
let private varintType = WireFormat.WireType.Varint

let private text field (value: string) (o: CodedOutputStream) =
    o.WriteTag(field, lengthDelimited)
    o.WriteString value

let private blob field (value: byte[]) (o: CodedOutputStream) =
    o.WriteTag(field, lengthDelimited)
    o.WriteBytes(ByteString.CopyFrom value)

let private varint field (value: uint64) (o: CodedOutputStream) =
    o.WriteTag(field, varintType)
    o.WriteUInt64 value

let private fields (writers: (CodedOutputStream -> unit) list) =
    protobuf (fun o -> for write in writers do write o)

/// The id field's tag followed by raw bytes standing for its length and content.
let private idThen (rest: int list) = Array.append [| 0x1Auy |] (rest |> List.map byte |> Array.ofList)

let private knownFields =
    [ 2, "namespace", lengthDelimited
      3, "id", lengthDelimited
      4, "ip_addr", lengthDelimited
      5, "payload", lengthDelimited
      6, "timestamp", varintType
      7, "operation", varintType
      8, "api_version", lengthDelimited
      9, "partition", lengthDelimited ]

let private expectMalformed bytes message =
    match errorOf bytes with
    | Some(Malformed _) -> ()
    | other -> failtest $"{message}: expected Malformed, got {other}"

let private roundTrips =
    testList
        "round trips"
        [ property "decode ∘ encode = id" envelope (fun (value, model) ->
              Expect.equal (EnvelopeModel.ofEnvelope (decoded (encode value))) model "every field survives")

          property "decoding a slice of a larger buffer = decoding the exact bytes" (Gen.zip envelope (Gen.zip (bytes 20) (bytes 20)))
          <| fun ((value, model), (before, after)) ->
              let encoded = encode value
              let buffer = Array.concat [ before; encoded; after ]
              match decode (ReadOnlyMemory(buffer, before.Length, encoded.Length)) with
              | Ok envelope -> Expect.equal (EnvelopeModel.ofEnvelope envelope) model "the bytes around the slice are not read"
              | Error error -> failtest (describe error)

          property "unknown fields before, between and after the known ones are skipped" (Gen.zip envelope (Gen.three unknownFields))
          <| fun ((value, model), (leading, between, trailing)) ->
              // Fields may come in any order: the partitions are written apart so that
              // unknown fields can sit between known ones.
              let withoutPartitions = encode { value with Partitions = [] }
              let partitions = fields [ for p in value.Partitions -> text 9 p ]
              let bytes = Array.concat [ leading; withoutPartitions; between; partitions; trailing ]
              Expect.equal (EnvelopeModel.ofEnvelope (decoded bytes)) model "unknown fields are ignored"

          test "an unknown group holding known field numbers does not set those fields" {
              let bytes =
                  Array.append
                      (fields
                          [ fun o ->
                                o.WriteTag(20, WireFormat.WireType.StartGroup)
                                text 3 "inner-id" o
                                o.WriteTag(20, WireFormat.WireType.EndGroup) ])
                      (fields [ text 3 "outer-id" ])
              Expect.equal (decoded bytes).Id "outer-id" "the id inside the unknown group is skipped, not a duplicate" } ]

let private totality =
    testList
        "totality"
        [ property "arbitrary bytes give Ok or Error, never an exception" (bytes 256) (fun bytes ->
              match decodeBytes bytes with
              | Ok envelope -> Expect.isTrue (envelope.Id <> "" && envelope.Id.Length <= MaxIdBytes) "an Ok envelope has a usable id"
              | Error _ -> ())

          property "protobuf-like bytes give Ok or Error, never an exception" protobufLike (fun bytes ->
              match decodeBytes bytes with
              | Ok envelope -> Expect.isLessThanOrEqual envelope.Partitions.Length MaxPartitions "partitions within the limit"
              | Error _ -> ())

          property "damaged envelopes give Ok or Error, never an exception" mutatedEnvelope (fun (bytes, _) ->
              decodeBytes bytes |> ignore)

          property "every truncation of a valid envelope gives Ok or Error" envelope (fun (value, _) ->
              let encoded = encode value
              for length in 0 .. encoded.Length do
                  decode (ReadOnlyMemory(encoded, 0, length)) |> ignore) ]

/// Bytes decoded on a warmed-up path, with what the decode allocated on this thread.
let private allocationOf (bytes: byte[]) =
    decodeBytes bytes |> ignore
    let before = GC.GetAllocatedBytesForCurrentThread()
    let result = errorOf bytes
    result, GC.GetAllocatedBytesForCurrentThread() - before

let private lengthLimit = 64L * 1024L

let private corpus =
    testList
        "crafted corpus"
        [ test "a length varint cut off by the end of the record is Truncated" {
              Expect.equal (errorOf (idThen [ 0x80 ])) (Some(Truncated "id")) "continuation bit on the last byte"
              Expect.equal (errorOf (idThen [ 0xFF; 0xFF ])) (Some(Truncated "id")) "two continuation bytes, then nothing"
              Expect.equal (errorOf [| 0x2Auy |]) (Some(Truncated "payload")) "a payload tag with no length at all"
          }

          test "a varint field cut off by the end of the record is Malformed" {
              expectMalformed (Array.append (fields [ text 3 "doc" ]) [| 0x30uy; 0xFFuy; 0xFFuy |]) "timestamp"
              expectMalformed (Array.append (fields [ text 3 "doc" ]) [| 0x38uy; 0x80uy |]) "operation"
              expectMalformed [| 0x80uy |] "a tag cut off"
          }

          test "a varint longer than ten bytes is Malformed" {
              let tooLong = Array.append [| 0x30uy |] (Array.create 11 0xFFuy)
              expectMalformed (Array.append (fields [ text 3 "doc" ]) tooLong) "timestamp"
          }

          test "a length prefix claiming 2 GB on a 10-byte record is Truncated, without a big allocation" {
              let record = idThen [ 0xFF; 0xFF; 0xFF; 0xFF; 0x07; 0x61; 0x62; 0x63; 0x64 ]
              Expect.equal record.Length 10 "the record is ten bytes"
              let result, allocated = allocationOf record
              Expect.equal result (Some(Truncated "id")) "the claimed length runs past the record"
              Expect.isLessThan allocated lengthLimit "nothing sized by the claimed length was allocated"
          }

          test "giant length prefixes on the payload, a partition and an unknown field allocate nothing large" {
              let giant field = Array.append [| byte ((field <<< 3) ||| 2) |] [| 0xFFuy; 0xFFuy; 0xFFuy; 0xFFuy; 0x07uy; 0x01uy |]
              let payload, payloadAllocated = allocationOf (Array.append (fields [ text 3 "doc" ]) (giant 5))
              Expect.equal payload (Some(Truncated "payload")) "payload"
              Expect.isLessThan payloadAllocated lengthLimit "payload allocation"
              let partition, partitionAllocated = allocationOf (giant 9)
              Expect.equal partition (Some(Truncated "partition")) "partition"
              Expect.isLessThan partitionAllocated lengthLimit "partition allocation"
              let unknown, unknownAllocated = allocationOf (giant 15)
              Expect.isTrue (unknown |> Option.exists (function Malformed _ -> true | _ -> false)) $"unknown field: {unknown}"
              Expect.isLessThan unknownAllocated lengthLimit "unknown field allocation"
          }

          test "a length prefix beyond the int range is Truncated" {
              Expect.equal (errorOf (idThen [ 0xFF; 0xFF; 0xFF; 0xFF; 0x0F; 0x61 ])) (Some(Truncated "id")) "2^32 - 1 reads as a negative length"
          }

          test "a non-canonical length varint (ten bytes, high bits set) is sliced where protobuf says" {
              // protobuf keeps the low 32 bits of a length and discards bytes six to ten:
              // this prefix means length 1 however the discarded bytes are set.
              let record = idThen [ 0x81; 0x80; 0x80; 0x80; 0x80; 0xFF; 0xFF; 0xFF; 0xFF; 0x01; 0x61 ]
              Expect.equal (decoded record).Id "a" "the id is the one byte after the ten-byte prefix"
              let empty = idThen [ 0x80; 0x80; 0x80; 0x80; 0x80; 0xFF; 0x7F ]
              Expect.equal (errorOf empty) (Some MissingId) "a ten-byte prefix meaning 0 is an empty id"
          }

          testList
              "a wrong wire type on each known field names the field"
              [ for number, name, right in knownFields do
                    for wireType in 0..7 do
                        if wireType <> int right then
                            test $"{name} with wire type {wireType}" {
                                let tag = uint32 ((number <<< 3) ||| wireType)
                                let bytes = protobuf (fun o -> o.WriteTag tag; o.WriteRawTag(0uy, 0uy, 0uy, 0uy))
                                Expect.equal (errorOf bytes) (Some(WrongWireType(name, wireType))) "the precise error"
                            } ]

          testList
              "a singular field given twice is DuplicateField"
              [ let id = text 3 "doc"
                for name, write in
                    [ "namespace", text 2 "telemetry"
                      "id", text 3 "other"
                      "ip_addr", blob 4 [| 127uy; 0uy; 0uy; 1uy |]
                      "payload", blob 5 [| 1uy |]
                      "timestamp", varint 6 42UL
                      "operation", varint 7 1UL
                      "api_version", text 8 "1" ] do
                    test name {
                        Expect.equal (errorOf (fields [ id; write; write ])) (Some(DuplicateField name)) "the precise error"
                    } ]

          test "partition repeats, in order" {
              let bytes = fields [ text 3 "doc"; text 9 "b"; text 9 "a"; text 9 "b" ]
              Expect.equal (decoded bytes).Partitions [ "b"; "a"; "b" ] "every partition kept, in wire order"
          }

          testList
              "invalid UTF-8 in a text field is InvalidUtf8"
              [ for label, invalid in
                    [ "overlong '/'", [| 0xC0uy; 0xAFuy |]
                      "encoded surrogate", [| 0xEDuy; 0xA0uy; 0x80uy |]
                      "cut multi-byte sequence", [| 0x61uy; 0xE2uy; 0x82uy |]
                      "0xFF", [| 0xFFuy |]
                      "above U+10FFFF", [| 0xF4uy; 0x90uy; 0x80uy; 0x80uy |] ] do
                    test label {
                        Expect.equal (errorOf (fields [ blob 3 invalid ])) (Some(InvalidUtf8 "id")) "id"
                        Expect.equal (errorOf (fields [ text 3 "doc"; blob 2 invalid ])) (Some(InvalidUtf8 "namespace")) "namespace"
                        Expect.equal (errorOf (fields [ text 3 "doc"; blob 8 invalid ])) (Some(InvalidUtf8 "api_version")) "api_version"
                        Expect.equal (errorOf (fields [ text 3 "doc"; blob 9 invalid ])) (Some(InvalidUtf8 "partition")) "partition"
                    } ]

          test "an empty id is MissingId" {
              Expect.equal (errorOf (fields [ text 3 ""; blob 5 [| 1uy |] ])) (Some MissingId) "empty id"
          }

          test "a missing id is MissingId" {
              Expect.equal (errorOf (fields [ text 2 "telemetry"; blob 5 [| 1uy |] ])) (Some MissingId) "no id field"
              Expect.equal (errorOf [||]) (Some MissingId) "an empty record"
          }

          test "a megabyte id is FieldTooLong, a 1024-byte id is fine" {
              Expect.equal
                  (errorOf (fields [ text 3 (String('x', 1 <<< 20)) ]))
                  (Some(FieldTooLong("id", 1 <<< 20, MaxIdBytes)))
                  "a megabyte id"
              Expect.equal (decoded (fields [ text 3 (String('x', MaxIdBytes)) ])).Id.Length MaxIdBytes "exactly at the limit"
              Expect.equal
                  (errorOf (fields [ text 3 (String('é', 513)) ]))
                  (Some(FieldTooLong("id", 1026, MaxIdBytes)))
                  "the limit counts UTF-8 bytes, not characters"
              Expect.equal
                  (errorOf (fields [ text 3 "doc"; text 2 (String('n', MaxTextBytes + 1)) ]))
                  (Some(FieldTooLong("namespace", MaxTextBytes + 1, MaxTextBytes)))
                  "namespace"
          }

          test "operations other than 0 and 1 are UnknownOperation" {
              Expect.equal (errorOf (fields [ text 3 "doc"; varint 7 7UL ])) (Some(UnknownOperation 7)) "7"
              Expect.equal (errorOf (fields [ text 3 "doc"; varint 7 2UL ])) (Some(UnknownOperation 2)) "2"
              Expect.equal (errorOf (fields [ text 3 "doc"; varint 7 UInt64.MaxValue ])) (Some(UnknownOperation -1)) "-1"
          }

          test "more than 64 partitions is FieldTooLong, 64 is fine" {
              let partitions n = fields [ yield text 3 "doc"; for i in 1..n -> text 9 $"p{i}" ]
              Expect.equal (decoded (partitions MaxPartitions)).Partitions.Length MaxPartitions "exactly at the limit"
              Expect.equal
                  (errorOf (partitions (MaxPartitions + 1)))
                  (Some(FieldTooLong("partition", MaxPartitions + 1, MaxPartitions)))
                  "one over"
          }

          test "tag 0 is Malformed" {
              expectMalformed [| 0x00uy |] "a lone zero tag"
              expectMalformed (Array.append (fields [ text 3 "doc" ]) [| 0x00uy; 0x01uy |]) "a zero tag after a valid id"
              expectMalformed [| 0x02uy; 0x00uy |] "field 0 with wire type 2"
          }

          test "wire types 6 and 7 on an unknown field are Malformed" {
              expectMalformed (Array.append (fields [ text 3 "doc" ]) [| byte ((15 <<< 3) ||| 6) |]) "wire type 6"
              expectMalformed (Array.append (fields [ text 3 "doc" ]) [| byte ((15 <<< 3) ||| 7) |]) "wire type 7"
          }

          test "an end-group with no start is Malformed" {
              expectMalformed (Array.append (fields [ text 3 "doc" ]) [| byte ((15 <<< 3) ||| 4) |]) "stray end-group"
          }

          test "deeply nested unknown groups are Malformed, not a stack overflow" {
              let nested = Array.create 100_000 (byte ((15 <<< 3) ||| 3))
              expectMalformed (Array.append (fields [ text 3 "doc" ]) nested) "100k nested start-groups"
          }

          test "a DELETE decodes as Delete" {
              let envelope = decoded (fields [ text 3 "doc"; varint 7 1UL ])
              Expect.equal envelope.Operation Delete "operation 1"
              Expect.equal envelope.Id "doc" "id"
          }

          test "absent fields take protobuf's defaults" {
              let envelope = decoded (fields [ text 3 "doc" ])
              Expect.equal
                  (EnvelopeModel.ofEnvelope envelope)
                  { Namespace = ""
                    Id = "doc"
                    IpAddr = [||]
                    Payload = [||]
                    Timestamp = 0L
                    Operation = CreateUpdate
                    ApiVersion = ""
                    Partitions = [] }
                  "only the id is set"
          }

          test "negative and extreme timestamps survive zig-zag encoding" {
              for ts in [ Int64.MinValue; -1L; Int64.MaxValue ] do
                  let bytes = fields [ text 3 "doc"; (fun o -> o.WriteTag(6, varintType); o.WriteSInt64 ts) ]
                  Expect.equal (decoded bytes).Timestamp ts $"timestamp {ts}"
          }

          test "the payload is a slice of the record, not a copy" {
              let payload = Text.Encoding.UTF8.GetBytes """{"hello":"world"}"""
              let encoded = fields [ text 3 "doc"; blob 5 payload ]
              let buffer = Array.concat [ [| 9uy; 9uy; 9uy |]; encoded; [| 9uy |] ]
              match decode (ReadOnlyMemory(buffer, 3, encoded.Length)) with
              | Error error -> failtest (describe error)
              | Ok envelope ->
                  match MemoryMarshal.TryGetArray envelope.Payload with
                  | true, segment ->
                      Expect.isTrue (Object.ReferenceEquals(segment.Array, buffer)) "the payload points into the input array"
                      Expect.equal segment.Offset (3 + encoded.Length - payload.Length) "at the payload's position"
                      Expect.equal (envelope.Payload.ToArray()) payload "with the payload's bytes"
                  | false, _ -> failtest "the payload is not backed by an array"
          } ]

[<Tests>]
let tests = testList "Envelope" [ roundTrips; totality; corpus ]
