/// Bagheera's protobuf `BagheeraMessage`, the envelope every production record is
/// wrapped in. Decoding is total: any byte string becomes `Ok` or a precise `Error`,
/// never an exception, and no allocation is sized by a length the bytes claim
/// before that length has been checked against the bytes actually there.
module Replay.Core.Envelope

open System
open System.Runtime.InteropServices
open System.Text
open Google.Protobuf

/// What a Bagheera submission asks for: store (or replace) a document, or delete it.
type Operation =
    | CreateUpdate
    | Delete

/// A decoded `BagheeraMessage`. Byte fields are slices of the consumed record,
/// not copies, so a payload travels from Kafka to the HTTP body without copying.
[<NoEquality; NoComparison>]
type Envelope =
    { Namespace: string
      Id: string
      IpAddr: ReadOnlyMemory<byte>
      Payload: ReadOnlyMemory<byte>
      Timestamp: int64
      Operation: Operation
      ApiVersion: string
      Partitions: string list }

/// Why a record is not a usable envelope. Each case names the field at fault so the
/// dead letter says what the producer got wrong.
type DecodeError =
    /// The bytes are not protobuf at all (bad tag, bad varint, invalid wire type).
    | Malformed of detail: string
    /// A field claims more bytes than the record holds.
    | Truncated of field: string
    | WrongWireType of field: string * wireType: int
    | DuplicateField of field: string
    | InvalidUtf8 of field: string
    | FieldTooLong of field: string * length: int * limit: int
    | UnknownOperation of value: int
    | MissingId

/// Ids become URL path segments and header values: far longer than any real
/// document id means the producer is broken or hostile.
[<Literal>]
let MaxIdBytes = 1024

/// Short text fields (namespace, api_version, each partition) share one bound.
[<Literal>]
let MaxTextBytes = 1024

/// How many Bagheera partitions one envelope may carry.
[<Literal>]
let MaxPartitions = 64

let describe (error: DecodeError) =
    match error with
    | Malformed detail -> $"not a BagheeraMessage: {detail}"
    | Truncated field -> $"field '{field}' is truncated: its length runs past the end of the record"
    | WrongWireType(field, wireType) -> $"field '{field}' has wire type {wireType}, which does not fit its declared type"
    | DuplicateField field -> $"field '{field}' appears more than once"
    | InvalidUtf8 field -> $"field '{field}' is not valid UTF-8"
    | FieldTooLong(field, length, limit) -> $"field '{field}' is {length} bytes long, over the limit of {limit}"
    | UnknownOperation value -> $"operation {value} is neither CREATE_UPDATE (0) nor DELETE (1)"
    | MissingId -> "the document id is missing or empty"

module private Field =
    [<Literal>]
    let Namespace = 2
    [<Literal>]
    let Id = 3
    [<Literal>]
    let IpAddr = 4
    [<Literal>]
    let Payload = 5
    [<Literal>]
    let Timestamp = 6
    [<Literal>]
    let Operation = 7
    [<Literal>]
    let ApiVersion = 8
    [<Literal>]
    let Partition = 9

    let name number =
        match number with
        | Namespace -> "namespace"
        | Id -> "id"
        | IpAddr -> "ip_addr"
        | Payload -> "payload"
        | Timestamp -> "timestamp"
        | Operation -> "operation"
        | ApiVersion -> "api_version"
        | Partition -> "partition"
        | other -> string other

exception private Rejected of DecodeError

let private reject error = raise (Rejected error)

/// A field seen twice is malformed: protobuf would keep the last, silently.
let private once field (seen: bool) =
    if seen then reject (DuplicateField(Field.name field))

/// Where the varint starting at `position` ends. Only called on a length prefix the
/// reader has already accepted, so it is terminated within the array. Its value is
/// not needed: the content is whatever lies between the prefix and where the reader
/// stopped, which also holds for the non-canonical ten-byte prefixes protobuf accepts.
let private afterVarint (array: byte[]) (position: int) =
    let mutable i = position
    while array[i] &&& 0x80uy <> 0uy do
        i <- i + 1
    i + 1

let private text field limit (bytes: ReadOnlyMemory<byte>) =
    if bytes.Length > limit then reject (FieldTooLong(Field.name field, bytes.Length, limit))
    if not (Unicode.Utf8.IsValid bytes.Span) then reject (InvalidUtf8(Field.name field))
    Encoding.UTF8.GetString bytes.Span

let private requireWireType field (wireType: WireFormat.WireType) expected =
    if wireType <> expected then reject (WrongWireType(Field.name field, int wireType))

/// Length-delimited fields are sliced out of the record rather than copied:
/// SkipLastField validates the length against the bytes present, then the
/// slice is taken from positions we already know are in range. The reader's
/// positions count from the start of the array, not of the record within it.
let private delimited (input: CodedInputStream) (array: byte[]) field =
    let lengthStart = int input.Position
    try
        input.SkipLastField()
    with :? InvalidProtocolBufferException ->
        reject (Truncated(Field.name field))
    let finish = int input.Position
    let contentStart = afterVarint array lengthStart
    ReadOnlyMemory(array, contentStart, finish - contentStart)

// Plain mutable locals and flags rather than options: this runs once per record, and
// an option per field was a third of what decoding allocated. Each value is read and
// judged before a repeat is reported, so a malformed second copy is reported for what
// is wrong with it.
let private decodeWith (input: CodedInputStream) (array: byte[]) =
    let mutable ns, hasNamespace = "", false
    let mutable id, hasId = "", false
    let mutable ipAddr, hasIpAddr = ReadOnlyMemory<byte>.Empty, false
    let mutable payload, hasPayload = ReadOnlyMemory<byte>.Empty, false
    let mutable timestamp, hasTimestamp = 0L, false
    let mutable operation, hasOperation = CreateUpdate, false
    let mutable apiVersion, hasApiVersion = "", false
    let mutable partitions: string list = []
    let mutable partitionCount = 0
    let mutable tag = input.ReadTag()
    while tag <> 0u do
        let field = WireFormat.GetTagFieldNumber tag
        let wireType = WireFormat.GetTagWireType tag
        match field with
        | Field.Namespace
        | Field.Id
        | Field.ApiVersion
        | Field.Partition
        | Field.IpAddr
        | Field.Payload ->
            requireWireType field wireType WireFormat.WireType.LengthDelimited
            let bytes = delimited input array field
            match field with
            | Field.Namespace ->
                let value = text field MaxTextBytes bytes
                once field hasNamespace
                ns <- value
                hasNamespace <- true
            | Field.Id ->
                let value = text field MaxIdBytes bytes
                once field hasId
                id <- value
                hasId <- true
            | Field.ApiVersion ->
                let value = text field MaxTextBytes bytes
                once field hasApiVersion
                apiVersion <- value
                hasApiVersion <- true
            | Field.IpAddr ->
                once field hasIpAddr
                ipAddr <- bytes
                hasIpAddr <- true
            | Field.Payload ->
                once field hasPayload
                payload <- bytes
                hasPayload <- true
            | _ ->
                if partitionCount >= MaxPartitions then
                    reject (FieldTooLong(Field.name field, partitionCount + 1, MaxPartitions))
                partitions <- text field MaxTextBytes bytes :: partitions
                partitionCount <- partitionCount + 1
        | Field.Timestamp ->
            requireWireType field wireType WireFormat.WireType.Varint
            let value = input.ReadSInt64()
            once field hasTimestamp
            timestamp <- value
            hasTimestamp <- true
        | Field.Operation ->
            requireWireType field wireType WireFormat.WireType.Varint
            let value =
                match input.ReadEnum() with
                | 0 -> CreateUpdate
                | 1 -> Delete
                | other -> reject (UnknownOperation other)
            once field hasOperation
            operation <- value
            hasOperation <- true
        | _ ->
            // Google.Protobuf skips wire types 6 and 7 as if they were empty fields;
            // no protobuf encoder writes them.
            if int wireType > 5 then reject (Malformed $"field {field} has wire type {int wireType}, which does not exist")
            input.SkipLastField()
        tag <- input.ReadTag()
    if id = "" then reject MissingId
    { Namespace = ns
      Id = id
      IpAddr = ipAddr
      Payload = payload
      Timestamp = timestamp
      Operation = operation
      ApiVersion = apiVersion
      Partitions = List.rev partitions }

/// Decodes one Kafka record value. Unknown fields are skipped, as protobuf readers do.
let decode (record: ReadOnlyMemory<byte>) : Result<Envelope, DecodeError> =
    let array, offset =
        match MemoryMarshal.TryGetArray record with
        | true, segment ->
            match segment.Array with
            | null -> [||], 0
            | array -> array, segment.Offset
        | _ -> record.ToArray(), 0
    try
        use input = new CodedInputStream(array, offset, record.Length)
        Ok(decodeWith input array)
    with
    | Rejected error -> Error error
    | :? InvalidProtocolBufferException as e -> Error(Malformed e.Message)

/// Encodes an envelope as Bagheera's producers do; used by `replay produce`,
/// `replay ingest` and the tests' reference data.
let encode (envelope: Envelope) : byte[] =
    use buffer = new IO.MemoryStream()
    let output = new CodedOutputStream(buffer)
    let tag field wireType = output.WriteTag(field, wireType)
    let bytes field (value: ReadOnlyMemory<byte>) =
        tag field WireFormat.WireType.LengthDelimited
        output.WriteBytes(ByteString.CopyFrom value.Span)
    let text field (value: string) =
        tag field WireFormat.WireType.LengthDelimited
        output.WriteString value
    if envelope.Namespace <> "" then text Field.Namespace envelope.Namespace
    text Field.Id envelope.Id
    if not envelope.IpAddr.IsEmpty then bytes Field.IpAddr envelope.IpAddr
    bytes Field.Payload envelope.Payload
    tag Field.Timestamp WireFormat.WireType.Varint
    output.WriteSInt64 envelope.Timestamp
    if envelope.Operation = Delete then
        tag Field.Operation WireFormat.WireType.Varint
        output.WriteEnum 1
    if envelope.ApiVersion <> "" then text Field.ApiVersion envelope.ApiVersion
    for partition in envelope.Partitions do
        text Field.Partition partition
    output.Flush()
    buffer.ToArray()

/// The envelope with its ip_addr cleared (`--drop-ip`): what a route that must not
/// send the client's address builds its request and values from.
let withoutIpAddr (envelope: Envelope) =
    if envelope.IpAddr.IsEmpty then envelope else { envelope with IpAddr = ReadOnlyMemory.Empty }

/// A `raw`-format record: the Kafka key is the document id and the value the payload.
let ofRaw (id: string) (payload: ReadOnlyMemory<byte>) =
    { Namespace = ""
      Id = id
      IpAddr = ReadOnlyMemory.Empty
      Payload = payload
      Timestamp = 0L
      Operation = CreateUpdate
      ApiVersion = ""
      Partitions = [] }
