/// FsCheck generators shared by the property tests, and the one FsCheck config they
/// all run under. Where a law needs an oracle, the generator returns the value
/// together with a reference model the law compares against.
///
/// Replaying a failure: Expecto ends a failing property's report with
/// `Focus on error: etestPropertyWithConfig (SEEDUL, GAMMAUL, Some SIZE) "name"`.
/// Run it again with exactly that input by setting `REPLAY_FSCHECK_SEED` to those
/// three numbers (without the UL suffixes), e.g.
///
///     REPLAY_FSCHECK_SEED="17829381238,9871234567,42" \
///       dotnet tests/Replay.Tests/bin/Debug/net10.0/Replay.Tests.dll --filter "Envelope"
///
/// The size may be left out (`"seed,gamma"`). Filter to the one failing list: the
/// seed applies to every property that runs.
module Replay.Tests.Generators

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Envelope

let private replayFromEnvironment () =
    match Environment.GetEnvironmentVariable "REPLAY_FSCHECK_SEED" with
    | null
    | "" -> None
    | text ->
        match text.Split(',', StringSplitOptions.TrimEntries) with
        | [| seed; gamma |] -> Some(UInt64.Parse seed, UInt64.Parse gamma, None)
        | [| seed; gamma; size |] -> Some(UInt64.Parse seed, UInt64.Parse gamma, Some(Int32.Parse size))
        | _ -> failwith $"REPLAY_FSCHECK_SEED must be 'seed,gamma' or 'seed,gamma,size', not '{text}'"

/// The one FsCheck configuration every property uses.
let config =
    { FsCheckConfig.defaultConfig with
        maxTest = 300
        replay = replayFromEnvironment () }

/// Runs `body` over values of `gen` under the shared config.
let property name (gen: Gen<'a>) (body: 'a -> unit) =
    testPropertyWithConfig config name (Prop.forAll (Arb.fromGen gen) body)

let private ofList (items: 'a list) = Gen.elements items

/// One Unicode scalar value as UTF-16: ASCII, the characters URLs and HTTP give
/// meaning to, controls, multi-byte BMP letters and astral symbols (surrogate pairs).
let scalar: Gen<string> =
    Gen.frequency
        [ 6, Gen.choose (0x20, 0x7E) |> Gen.map (char >> string)
          3, ofList [ "/"; "."; ".."; "?"; "#"; "%"; "%2F"; "%2e"; "&"; "="; "+"; ":"; "@"; ";"; "\\"; " "; "~"; "{"; "}" ]
          2, ofList [ "\r"; "\n"; "\r\n"; "\t"; "\u0000"; "\u007F"; "\u0085"; "\u2028" ]
          2, Gen.choose (0xA0, 0xD7FF) |> Gen.map (char >> string)
          1, Gen.choose (0xE000, 0xFFFD) |> Gen.map (char >> string)
          1, Gen.choose (0x10000, 0x10FFFF) |> Gen.map Char.ConvertFromUtf32 ]

/// A well-formed UTF-16 string of at most `maxScalars` scalar values (at most 4
/// UTF-8 bytes each), as every decoded id and text field is.
let text (maxScalars: int) : Gen<string> =
    gen {
        let! count = Gen.choose (0, maxScalars)
        let! parts = Gen.listOfLength count scalar
        return String.concat "" parts
    }

let nonEmptyText maxScalars = text maxScalars |> Gen.filter (fun s -> s <> "")

/// Document ids a well-behaved producer writes: any text the core lets into a URL
/// (no control characters, no dot segments). Hostile ids have generators of their own.
let documentId maxScalars =
    nonEmptyText maxScalars |> Gen.filter (fun s -> (Replay.Core.Destination.refuseValue s).IsNone)

/// Keys an attacker would try to climb out of a path segment with, mixed with
/// arbitrary well-formed text.
let hostileKey: Gen<string> =
    Gen.frequency
        [ 1, ofList [ "."; ".."; "../.."; "../../admin?x=1"; "/"; "//evil.example/x"; "?"; "#"; "%"; "%2F"; "%2E%2E"; "a\r\nHost: evil"; "é/中/😀"; "" ]
          6, nonEmptyText 40 ]

/// Any .NET string, lone surrogates and all: the escaping must not throw on them.
let anyString: Gen<string> =
    ArbMap.defaults |> ArbMap.generate<string> |> Gen.map (fun s -> if isNull s then "" else s)

let bytes (maxLength: int) : Gen<byte[]> =
    gen {
        let! length = Gen.choose (0, maxLength)
        let! values = Gen.arrayOfLength length (Gen.choose (0, 255))
        return Array.map byte values
    }

/// An envelope as plain comparable data: what the decoder should give back.
type EnvelopeModel =
    { Namespace: string
      Id: string
      IpAddr: byte[]
      Payload: byte[]
      Timestamp: int64
      Operation: Operation
      ApiVersion: string
      Partitions: string list }

module EnvelopeModel =
    let ofEnvelope (e: Envelope) : EnvelopeModel =
        { Namespace = e.Namespace
          Id = e.Id
          IpAddr = e.IpAddr.ToArray()
          Payload = e.Payload.ToArray()
          Timestamp = e.Timestamp
          Operation = e.Operation
          ApiVersion = e.ApiVersion
          Partitions = e.Partitions }

    /// The envelope with its byte fields as slices of larger arrays, as a
    /// decoded envelope's are.
    let toEnvelope (m: EnvelopeModel) : Envelope =
        let sliced (content: byte[]) =
            let padded = Array.concat [ [| 0xEEuy |]; content; [| 0xEEuy |] ]
            ReadOnlyMemory(padded, 1, content.Length)
        { Namespace = m.Namespace
          Id = m.Id
          IpAddr = sliced m.IpAddr
          Payload = sliced m.Payload
          Timestamp = m.Timestamp
          Operation = m.Operation
          ApiVersion = m.ApiVersion
          Partitions = m.Partitions }

let private timestamp: Gen<int64> =
    Gen.frequency
        [ 4, ArbMap.defaults |> ArbMap.generate<int64>
          1, ofList [ 0L; -1L; 1L; Int64.MinValue; Int64.MaxValue; 1_700_000_000_000L ] ]

/// A valid envelope (non-empty id, every field within its limit) and its model.
let envelope: Gen<Envelope * EnvelopeModel> =
    gen {
        let! ns = text 20
        let! id = nonEmptyText 60
        let! ip = Gen.oneof [ Gen.constant [||]; bytes 16 ]
        let! payload = bytes 300
        let! ts = timestamp
        let! operation = ofList [ CreateUpdate; Delete ]
        let! apiVersion = text 5
        let! partitionCount = Gen.frequency [ 4, Gen.choose (0, 3); 1, Gen.choose (0, MaxPartitions) ]
        let! partitions = Gen.listOfLength partitionCount (text 10)
        let model =
            { Namespace = ns
              Id = id
              IpAddr = ip
              Payload = payload
              Timestamp = ts
              Operation = operation
              ApiVersion = apiVersion
              Partitions = partitions }
        return EnvelopeModel.toEnvelope model, model
    }

/// One damaging edit of a valid record, described for the failure report.
type Mutation =
    | Truncate of length: int
    | Flip of position: int * value: byte
    | Insert of position: int * inserted: byte[]
    | Remove of position: int * count: int
    | Repeat of position: int * count: int

module Mutation =
    let apply (bytes: byte[]) mutation =
        let clamp i = max 0 (min i bytes.Length)
        match mutation with
        | Truncate length -> bytes[.. clamp length - 1]
        | Flip(position, value) ->
            let copy = Array.copy bytes
            if copy.Length > 0 then copy[position % copy.Length] <- value
            copy
        | Insert(position, inserted) ->
            let at = clamp position
            Array.concat [ bytes[.. at - 1]; inserted; bytes[at..] ]
        | Remove(position, count) ->
            let at = clamp position
            Array.append bytes[.. at - 1] bytes[clamp (at + count) ..]
        | Repeat(position, count) ->
            let at = clamp position
            let stretch = bytes[at .. clamp (at + count) - 1]
            Array.concat [ bytes[.. at - 1]; stretch; stretch; bytes[at..] ]

/// A valid encoded envelope broken by a few random edits.
let mutatedEnvelope: Gen<byte[] * Mutation list> =
    gen {
        let! _, model = envelope
        let encoded = encode (EnvelopeModel.toEnvelope model)
        let position = Gen.choose (0, encoded.Length)
        let mutation =
            Gen.oneof
                [ Gen.map Truncate position
                  gen {
                      let! at = position
                      let! value = Gen.choose (0, 255)
                      return Flip(at, byte value)
                  }
                  gen {
                      let! at = position
                      let! inserted = bytes 12
                      return Insert(at, inserted)
                  }
                  gen {
                      let! at = position
                      let! count = Gen.choose (1, 12)
                      return Remove(at, count)
                  }
                  gen {
                      let! at = position
                      let! count = Gen.choose (1, 40)
                      return Repeat(at, count)
                  } ]
        let! count = Gen.choose (1, 4)
        let! mutations = Gen.listOfLength count mutation
        return List.fold Mutation.apply encoded mutations, mutations
    }

/// What happens to one partition's progress: a record is consumed at an offset,
/// a consumed record finishes, or the partition is revoked (its progress is
/// dropped and consumption resumes later from the committed position).
type CheckpointCommand =
    | Consume of offset: int64
    | Finish of offset: int64
    | Revoke

/// The reference model of a partition's progress: the consumed offsets in order
/// with a finished flag each, and where consumption resumes after a revoke.
type CheckpointModel =
    { Consumed: (int64 * bool) list
      Resume: int64 }

module CheckpointModel =
    let committable (model: CheckpointModel) =
        match model.Consumed |> List.tryFind (fun (_, finished) -> not finished) with
        | Some(offset, _) -> Some offset
        | None -> model.Consumed |> List.tryLast |> Option.map (fun (offset, _) -> offset + 1L)

    let unfinished (model: CheckpointModel) =
        model.Consumed |> List.filter (snd >> not) |> List.map fst

    let nextOffset (model: CheckpointModel) =
        match List.tryLast model.Consumed with
        | Some(offset, _) -> offset + 1L
        | None -> model.Resume

    let step (model: CheckpointModel) command =
        match command with
        | Consume offset -> { model with Consumed = model.Consumed @ [ offset, false ] }
        | Finish offset ->
            { model with Consumed = model.Consumed |> List.map (fun (o, f) -> o, f || o = offset) }
        | Revoke ->
            // What was committable is what the group committed; a fresh owner resumes there.
            { Consumed = []
              Resume = committable model |> Option.defaultValue model.Resume }

/// Commands for one partition over several assignments: increasing offsets with
/// gaps (compaction, transaction markers), completions in arbitrary order, and
/// revokes. Returns the commands and the model's committable offset after each.
let checkpointCommands: Gen<CheckpointCommand list * (int64 option) list> =
    let gap = Gen.frequency [ 6, Gen.constant 0L; 3, Gen.choose (1, 5) |> Gen.map int64; 1, Gen.choose (100, 100_000) |> Gen.map int64 ]
    let rec steps remaining model acc =
        gen {
            if remaining = 0 then
                return List.rev acc
            else
                let unfinished = CheckpointModel.unfinished model
                let consume = gap |> Gen.map (fun g -> Consume(CheckpointModel.nextOffset model + g))
                let finish = ofList unfinished |> Gen.map Finish
                let! command =
                    Gen.frequency
                        [ yield 5, consume
                          if not unfinished.IsEmpty then yield 5, finish
                          yield 1, Gen.constant Revoke ]
                let next = CheckpointModel.step model command
                return! steps (remaining - 1) next ((command, CheckpointModel.committable next) :: acc)
        }
    gen {
        let! start = Gen.frequency [ 3, Gen.constant 0L; 1, Gen.choose (0, Int32.MaxValue) |> Gen.map int64 ]
        let! length = Gen.sized (fun size -> Gen.choose (0, 4 * size + 10))
        let! trace = steps length { Consumed = []; Resume = start } []
        return List.unzip trace
    }

/// A Kafka record for the pipeline tests.
let record topic partition offset (key: byte[] | null) (value: ReadOnlyMemory<byte>) : Record =
    { Topic = topic
      Partition = partition
      Offset = offset
      Key = key
      Value = value
      Headers = [||]
      TimestampMs = 0L }

/// A Bagheera-format record at an offset of topic `t`, partition 0, holding `envelope`.
let envelopeRecord offset (envelope: Envelope) =
    record "t" 0 offset null (ReadOnlyMemory(encode envelope))

/// A minimal envelope: an id, an operation and a payload.
let simpleEnvelope id operation (payload: byte[]) : Envelope =
    { Namespace = "telemetry"
      Id = id
      IpAddr = ReadOnlyMemory.Empty
      Payload = ReadOnlyMemory payload
      Timestamp = 0L
      Operation = operation
      ApiVersion = "1"
      Partitions = [] }

/// A rate in [0, 1], with the edges and tiny rates more often than uniform draws give them.
let rate: Gen<float> =
    Gen.frequency
        [ 1, ofList [ 0.0; 1.0; 1e-9; 0.5; 1.0 - 1e-9 ]
          4, Gen.choose (0, 1_000_000) |> Gen.map (fun n -> float n / 1_000_000.0) ]

/// A uniform draw in [0, 1).
let draw: Gen<float> = Gen.choose (0, 999_999) |> Gen.map (fun n -> float n / 1_000_000.0)

/// Writes protobuf by hand, for bytes no well-behaved encoder would produce.
let protobuf (write: Google.Protobuf.CodedOutputStream -> unit) : byte[] =
    use buffer = new IO.MemoryStream()
    let output = new Google.Protobuf.CodedOutputStream(buffer, true)
    write output
    output.Flush()
    buffer.ToArray()

/// Fields a newer producer might add: numbers the envelope does not define, every
/// wire type, groups included. Encoded fields may be concatenated in any order.
let unknownFields: Gen<byte[]> =
    let number = ofList [ 1; 10; 11; 15; 16; 100; 2047; 2048; 536_870_911 ]
    let field =
        gen {
            let! n = number
            let! kind = Gen.choose (0, 4)
            let! value = ArbMap.defaults |> ArbMap.generate<uint64>
            let! blob = bytes 40
            return
                protobuf (fun o ->
                    match kind with
                    | 0 ->
                        o.WriteTag(n, Google.Protobuf.WireFormat.WireType.Varint)
                        o.WriteUInt64 value
                    | 1 ->
                        o.WriteTag(n, Google.Protobuf.WireFormat.WireType.Fixed32)
                        o.WriteFixed32(uint32 value)
                    | 2 ->
                        o.WriteTag(n, Google.Protobuf.WireFormat.WireType.Fixed64)
                        o.WriteFixed64 value
                    | 3 ->
                        o.WriteTag(n, Google.Protobuf.WireFormat.WireType.LengthDelimited)
                        o.WriteBytes(Google.Protobuf.ByteString.CopyFrom blob)
                    | _ ->
                        // A group, holding fields whose numbers the envelope does know.
                        o.WriteTag(n, Google.Protobuf.WireFormat.WireType.StartGroup)
                        o.WriteTag(3, Google.Protobuf.WireFormat.WireType.LengthDelimited)
                        o.WriteBytes(Google.Protobuf.ByteString.CopyFrom blob)
                        o.WriteTag(6, Google.Protobuf.WireFormat.WireType.Varint)
                        o.WriteUInt64 value
                        o.WriteTag(n, Google.Protobuf.WireFormat.WireType.EndGroup))
        }
    gen {
        let! count = Gen.choose (0, 5)
        let! fields = Gen.listOfLength count field
        return Array.concat fields
    }

/// Byte strings that look like protobuf: tags of every field number near the
/// envelope's and every wire type, varints of every length, length prefixes
/// that lie. Reaches the decoder's branches far more often than uniform bytes.
let protobufLike: Gen<byte[]> =
    let varint =
        gen {
            let! length = Gen.choose (1, 11)
            let! payload = Gen.arrayOfLength length (Gen.choose (0, 127))
            let! terminated = Gen.frequency [ 9, Gen.constant true; 1, Gen.constant false ]
            return
                payload
                |> Array.mapi (fun i b -> if i < length - 1 || not terminated then byte (b ||| 0x80) else byte b)
        }
    let token =
        Gen.frequency
            [ 4,
              gen {
                  let! field = Gen.choose (0, 12)
                  let! wireType = Gen.choose (0, 7)
                  return [| byte ((field <<< 3) ||| wireType) |]
              }
              3, varint
              3,
              gen {
                  let! field = Gen.choose (2, 9)
                  let! content = bytes 12
                  let! claimed = Gen.frequency [ 4, Gen.constant content.Length; 1, Gen.choose (0, 40) ]
                  return Array.concat [ [| byte ((field <<< 3) ||| 2) |]; protobuf (fun o -> o.WriteLength claimed); content ]
              }
              1, bytes 6 ]
    gen {
        let! count = Gen.choose (0, 12)
        let! tokens = Gen.listOfLength count token
        return Array.concat tokens
    }
