/// `replay ingest` through real parts: HTTP on 127.0.0.1 into the embedded broker,
/// with every envelope read back from Kafka and decoded by the core (and once by
/// kafka-python, an independent client); then the whole loop: submissions →
/// ingest → Kafka → replay → a destination that must receive what was submitted.
module Replay.Tests.IngestTests

open System
open System.Diagnostics
open System.IO
open System.IO.Compression
open System.Net
open System.Net.Http
open System.Text
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Confluent.Kafka
open Expecto
open Replay.Core
open Replay.Host.Ingest
open Replay.Host.Kafka
open Replay.Tests

/// One record as read back: its Kafka key and the envelope decoded from its value.
type Stored =
    { Topic: string
      Key: string
      Value: byte[]
      Envelope: Envelope.Envelope }

let private decode (value: byte[]) =
    match Envelope.decode (ReadOnlyMemory value) with
    | Ok envelope -> envelope
    | Error e -> failtestf "a record ingest wrote does not decode: %s" (Envelope.describe e)

/// Every record of the topics, from the beginning to the end (all writes were
/// acknowledged before this is called, so the end is where the last one sits).
let readTopics (bootstrap: string) (topics: string list) =
    let config =
        ConsumerConfig(
            BootstrapServers = bootstrap,
            GroupId = "ingest-test-reader",
            EnableAutoCommit = false,
            EnablePartitionEof = true
        )
    use consumer = ConsumerBuilder<string, byte[]>(config).Build()
    use admin = DependentAdminClientBuilder(consumer.Handle).Build()
    let partitions =
        [ for topic in topics do
              let metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds 10.0)
              for p in metadata.Topics[0].Partitions -> TopicPartition(topic, Partition p.PartitionId) ]
    consumer.Assign [ for tp in partitions -> TopicPartitionOffset(tp, Offset.Beginning) ]
    let atEnd = Collections.Generic.HashSet<TopicPartition>()
    let records = ResizeArray()
    let deadline = DateTime.UtcNow.AddSeconds 30.0
    while atEnd.Count < partitions.Length do
        if DateTime.UtcNow > deadline then failtestf "reading %A back did not reach the end within 30 s" topics
        match consumer.Consume(TimeSpan.FromMilliseconds 200.0) with
        | null -> ()
        | result when result.IsPartitionEOF -> atEnd.Add result.TopicPartition |> ignore
        | result ->
            records.Add
                { Topic = result.Topic
                  Key = result.Message.Key
                  Value = result.Message.Value
                  Envelope = decode result.Message.Value }
    List.ofSeq records

/// An answer: status, body text and headers.
type Answer =
    { Status: int
      Body: string
      Headers: Map<string, string> }

let private http = new HttpClient(new SocketsHttpHandler(AutomaticDecompression = DecompressionMethods.None))

let send (url: string) (methodName: string) (path: string) (content: HttpContent option) (headers: (string * string) list) =
    task {
        use request = new HttpRequestMessage(HttpMethod methodName, url + path)
        content |> Option.iter (fun c -> request.Content <- c)
        for name, value in headers do
            request.Headers.TryAddWithoutValidation(name, value) |> ignore
        use! response = http.SendAsync request
        let! body = response.Content.ReadAsStringAsync()
        let headers =
            Seq.append response.Headers response.Content.Headers
            |> Seq.map (fun h -> h.Key, String.Join(", ", h.Value))
            |> Map.ofSeq
        return { Status = int response.StatusCode; Body = body; Headers = headers }
    }

let private bytes (text: string) = new ByteArrayContent(Encoding.UTF8.GetBytes text) :> HttpContent

/// A body whose length is unknown up front, so HttpClient sends it chunked and no
/// Content-Length tells the server its size in advance.
type private Chunked(payload: byte[]) =
    inherit HttpContent()
    override _.SerializeToStreamAsync(stream: Stream, _context: TransportContext) = stream.WriteAsync(payload, 0, payload.Length)
    override _.TryComputeLength(length: byref<int64>) =
        length <- 0L
        false

let private chunked (payload: byte[]) = new Chunked(payload) :> HttpContent

let private gzip (payload: byte[]) =
    use buffer = new MemoryStream()
    (use zip = new GZipStream(buffer, CompressionLevel.Fastest)
     zip.Write(payload, 0, payload.Length))
    let content = new ByteArrayContent(buffer.ToArray())
    content.Headers.ContentEncoding.Add "gzip"
    content :> HttpContent

/// Passes writes on to `inner`, each as one chunk when `chunked` (the last chunk is not
/// written: the body never ends).
type private ChunkFraming(inner: Stream, chunked: bool) =
    inherit Stream()
    override _.CanRead = false
    override _.CanSeek = false
    override _.CanWrite = true
    override _.Length = raise (NotSupportedException())
    override _.Position with get () = raise (NotSupportedException()) and set _ = raise (NotSupportedException())
    override _.Flush() = inner.Flush()
    override _.Read(_, _, _) = raise (NotSupportedException())
    override _.Seek(_, _) = raise (NotSupportedException())
    override _.SetLength _ = raise (NotSupportedException())
    override _.Write(buffer: byte[], offset: int, count: int) =
        if chunked then inner.Write(Encoding.ASCII.GetBytes $"{count:x}\r\n")
        inner.Write(buffer, offset, count)
        if chunked then inner.Write("\r\n"B, 0, 2)

/// A compressed body that goes on and on: a real start, then `padding` repeated up to
/// `total` bytes, generated as it is sent (nothing of that size is ever in memory).
/// Chunked unless `declared`, when the whole length is announced up front.
type private Padded(start: byte[], padding: byte[], total: int64, encoding: string, declared: bool) as this =
    inherit HttpContent()
    let mutable written = 0L
    do this.Headers.ContentEncoding.Add encoding
    /// How much of it went out before the server stopped taking it.
    member _.Written = Volatile.Read &written
    override _.SerializeToStreamAsync(stream: Stream, _context: TransportContext) =
        task {
            do! stream.WriteAsync(start, 0, start.Length)
            written <- int64 start.Length
            let block = Array.concat (Array.replicate (65536 / padding.Length) padding)
            while written < total do
                let n = int (min (int64 block.Length) (total - written))
                do! stream.WriteAsync(block, 0, n)
                written <- written + int64 n
        }
        :> Task
    override _.TryComputeLength(length: byref<int64>) =
        length <- total
        declared

/// Gzip without compression: larger than what it holds.
let private stored (payload: byte[]) =
    use buffer = new MemoryStream()
    (use zip = new GZipStream(buffer, CompressionLevel.NoCompression)
     zip.Write(payload, 0, payload.Length))
    buffer.ToArray()

/// 200 MiB of padding, rounded to whole paddings so the stream stays valid to its end.
let private padded (start: byte[]) (padding: byte[]) encoding declared =
    let total = int64 start.Length + (200L * 1024L * 1024L / int64 padding.Length) * int64 padding.Length
    new Padded(start, padding, total, encoding, declared)

/// A gzip member holding nothing: header, an empty final block, CRC-32 and size of nothing.
let private emptyGzipMember =
    [| 0x1fuy; 0x8buy; 8uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0xffuy; 3uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy |]

/// A zlib stream's header and a stored block with `{"a":1}` that is not the last; after it,
/// empty stored blocks that are not the last either can follow for ever.
let private deflateStart =
    Array.concat [ [| 0x78uy; 0x9cuy; 0uy; 7uy; 0uy; 0xf8uy; 0xffuy |]; Encoding.UTF8.GetBytes "{\"a\":1}" ]

let private emptyStoredBlock = [| 0uy; 0uy; 0uy; 0xffuy; 0xffuy |]

let private paddedBodies =
    let first =
        use buffer = new MemoryStream()
        (use zip = new GZipStream(buffer, CompressionLevel.Fastest)
         zip.Write(Encoding.UTF8.GetBytes "{\"a\":1}"))
        buffer.ToArray()
    [ "gzip members", "gzip", first, emptyGzipMember; "deflate blocks", "deflate", deflateStart, emptyStoredBlock ]

/// POSTs `body` over a raw connection, reading the answer while the body goes out (as curl
/// does, and HttpClient does not), and stops sending once the answer is in: its status, its
/// text (head and body as sent, chunk sizes included), and how many body bytes went out.
let private sendWatching (url: string) (path: string) (body: Padded) =
    use client = new Net.Sockets.TcpClient()
    client.Connect(IPAddress.Loopback, Uri(url).Port)
    use stream = client.GetStream()
    let length =
        match body.Headers.ContentLength |> Option.ofNullable with
        | Some n when n > 0L -> $"Content-Length: {n}"
        | _ -> "Transfer-Encoding: chunked"
    let head = $"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Encoding: {body.Headers.ContentEncoding |> Seq.head}\r\n{length}\r\n\r\n"
    stream.Write(Encoding.ASCII.GetBytes head)
    let chunked = length.StartsWith "Transfer"
    use stop = new CancellationTokenSource()
    // The body as HttpClient would frame it, through a stream that frames chunks when needed.
    let sending =
        Task.Run(fun () ->
            task {
                try
                    use framed = new ChunkFraming(stream, chunked)
                    do! body.CopyToAsync(framed, stop.Token)
                with _ -> ()
            }
            :> Task)
    let answer = ConnectProxy.readHead stream
    stop.Cancel()
    let text =
        match answer with
        | None -> ""
        | Some head ->
            // The answer says Connection: close: its body (chunked or not) runs to the close.
            use rest = new MemoryStream()
            let buffer = Array.zeroCreate<byte> 4096
            stream.ReadTimeout <- 10_000
            let mutable more = true
            while more && rest.Length < 65536L do
                let n = try stream.Read(buffer, 0, buffer.Length) with :? IOException -> 0
                if n = 0 then more <- false else rest.Write(buffer, 0, n)
            head + Encoding.UTF8.GetString(rest.ToArray())
    let status = if text.Length >= 12 then int (text.Substring(9, 3)) else 0
    client.Close()
    sending.Wait(TimeSpan.FromSeconds 30.0) |> ignore
    status, text, body.Written

[<Literal>]
let private Topic = "submissions"

[<Literal>]
let private Limit = 1000

/// An ingest server in this process in front of a fresh embedded broker.
type Running(cluster: MockCluster, server: IngestServer, topics: string list) =
    member _.Cluster = cluster
    member _.Server = server
    member _.Url = server.Url
    member _.Send methodName path content headers = (send server.Url methodName path content headers).GetAwaiter().GetResult()
    member this.Post path (body: string) = this.Send "POST" path (Some(bytes body)) []
    /// Everything ingest wrote so far.
    member _.Records() = readTopics cluster.BootstrapServers topics

    interface IDisposable with
        member _.Dispose() =
            server.DisposeAsync().AsTask().GetAwaiter().GetResult()
            cluster.Dispose()

let start (configure: IngestSettings -> unit) =
    let cluster = new MockCluster()
    let settings =
        IngestSettings(
            Kafka = readOnlyDict [ "bootstrap.servers", cluster.BootstrapServers ],
            Topic = Topic,
            Namespaces = Collections.Generic.HashSet [ "telemetry"; "metrics" ],
            Port = 0,
            MaxContentLength = Limit,
            KafkaTimeout = TimeSpan.FromSeconds 2.0,
            Log = TextWriter.Null
        )
    configure settings
    let topics = match settings.Topic with | null -> List.ofSeq settings.Namespaces | topic -> [ topic ]
    for topic in topics do
        cluster.CreateTopic(topic, 3)
    let server = new IngestServer(settings)
    server.StartAsync().GetAwaiter().GetResult()
    new Running(cluster, server, topics)

let private defaults = ignore<IngestSettings>

let private loopback = [| 127uy; 0uy; 0uy; 1uy |]

/// Runs requests that must be refused, then one that must be stored: the stored one
/// is then the only record, so none of the refused ones wrote anything.
let private expectNothingWrittenBy (ingest: Running) (refused: unit -> unit) =
    refused ()
    let sentinel = ingest.Post "/submit/telemetry/sentinel" "{}"
    Expect.equal sentinel.Status 201 "the sentinel is stored"
    Expect.equal [ for r in ingest.Records() -> r.Key ] [ "sentinel" ] "nothing but the sentinel was written"

let private expectStatus (expected: int) (what: string) (answer: Answer) =
    Expect.equal answer.Status expected $"{what}: {answer.Body}"
    answer

/// The first interpreter that can import kafka-python: the python3 on PATH, else the
/// distribution's own (a python3 first on PATH may be another build without it).
let private kafkaPython =
    lazy
        [ "python3"; "/usr/bin/python3" ]
        |> List.tryFind (fun interpreter ->
            try
                use proc = Process.Start(ProcessStartInfo(interpreter, "-c \"import kafka\"", RedirectStandardError = true, UseShellExecute = false))
                proc.StandardError.ReadToEnd() |> ignore
                proc.WaitForExit 30_000 && proc.ExitCode = 0
            with :? ComponentModel.Win32Exception ->
                false)

let private kafkaPythonReader =
    """
import base64, json, sys, time
from kafka import KafkaConsumer, TopicPartition
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], enable_auto_commit=False)
partitions = [TopicPartition(sys.argv[2], p) for p in sorted(consumer.partitions_for_topic(sys.argv[2]))]
consumer.assign(partitions)
consumer.seek_to_beginning()
end = consumer.end_offsets(partitions)
deadline = time.time() + 20
while any(consumer.position(tp) < end[tp] for tp in partitions):
    if time.time() > deadline:
        sys.exit("did not reach the end within 20 s")
    for records in consumer.poll(timeout_ms=500).values():
        for r in records:
            print(json.dumps({"key": r.key.decode("utf-8"), "value": base64.b64encode(r.value).decode("ascii")}))
"""

/// Reads a topic with kafka-python; fails (never skips) when it is not installed.
let private readWithKafkaPython (bootstrap: string) (topic: string) =
    let python =
        match kafkaPython.Force() with
        | Some interpreter -> interpreter
        | None -> failtest "no python3 can import kafka-python: install it (Debian: apt-get install python3-kafka) to run this check"
    let script = Path.Combine(Path.GetTempPath(), $"ingest-read-{Guid.NewGuid():N}.py")
    File.WriteAllText(script, kafkaPythonReader)
    try
        let info = ProcessStartInfo(python, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
        for a in [ script; bootstrap; topic ] do
            info.ArgumentList.Add a
        use proc = Process.Start info
        let stdout = proc.StandardOutput.ReadToEndAsync()
        let stderr = proc.StandardError.ReadToEndAsync()
        if not (proc.WaitForExit 30_000) then
            proc.Kill true
            failtest "kafka-python did not finish within 30 s"
        Expect.equal proc.ExitCode 0 $"kafka-python failed: {stderr.Result}"
        [ for line in stdout.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries) ->
              let json = JsonDocument.Parse line
              json.RootElement.GetProperty("key").GetString(), Convert.FromBase64String(json.RootElement.GetProperty("value").GetString()) ]
    finally
        File.Delete script

[<Tests>]
let rest =
    testSequenced
    <| testList
        "Ingest REST contract"
        [ test "POST stores one envelope keyed by id: namespace, id, payload, timestamp (ms), client address" {
              use ingest = start defaults
              let before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()
              let answer = ingest.Post "/submit/telemetry/doc-1" "{\"a\":1}" |> expectStatus 201 "POST"
              let after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()
              Expect.equal answer.Body "doc-1" "the answer is the id, as Bagheera's"
              match ingest.Records() with
              | [ r ] ->
                  Expect.equal (r.Topic, r.Key) (Topic, "doc-1") "topic and key = id"
                  let e = r.Envelope
                  Expect.equal (e.Namespace, e.Id, e.Operation) ("telemetry", "doc-1", Envelope.CreateUpdate) "a store"
                  Expect.equal (Encoding.UTF8.GetString(e.Payload.Span)) "{\"a\":1}" "the body, byte for byte"
                  Expect.isTrue (e.Timestamp >= before && e.Timestamp <= after) $"timestamp {e.Timestamp} is the time of the request"
                  Expect.equal (e.IpAddr.ToArray()) loopback "the client's address as 4 bytes"
                  Expect.equal (e.ApiVersion, e.Partitions) ("", []) "no version, no partitions"
              | other -> failtestf "expected one record, got %d" other.Length
          }

          test "a version prefix and partitions are stored, percent-decoded, for the replay to rebuild" {
              use ingest = start defaults
              ingest.Post "/1.0/submit/metrics/doc-2/release/caf%C3%A9/a%20b" "x" |> expectStatus 201 "POST" |> ignore
              let e = (List.exactlyOne (ingest.Records())).Envelope
              Expect.equal (e.Namespace, e.Id, e.ApiVersion, e.Partitions) ("metrics", "doc-2", "1.0", [ "release"; "café"; "a b" ]) "path parts"
          }

          test "PUT without an id: the server chooses a UUID, answers it and keys the record by it" {
              use ingest = start defaults
              let answer = ingest.Send "PUT" "/submit/telemetry" (Some(bytes "{}")) [] |> expectStatus 201 "PUT"
              Expect.isTrue (fst (Guid.TryParse answer.Body)) $"'{answer.Body}' is a UUID"
              let r = List.exactlyOne (ingest.Records())
              Expect.equal (r.Key, r.Envelope.Id) (answer.Body, answer.Body) "key and id are the answered id"
          }

          test "X-Obsolete-Document: the document, then one DELETE envelope per listed id" {
              use ingest = start defaults
              ingest.Send "POST" "/submit/telemetry/new" (Some(bytes "{}")) [ "X-Obsolete-Document", "old-1, old-2,old-3" ]
              |> expectStatus 201 "POST"
              |> ignore
              let records = ingest.Records()
              let byKey = records |> List.map (fun r -> r.Key, r.Envelope) |> Map.ofList
              Expect.equal (Set.ofSeq byKey.Keys) (set [ "new"; "old-1"; "old-2"; "old-3" ]) "four records"
              Expect.equal byKey["new"].Operation Envelope.CreateUpdate "the document"
              for old in [ "old-1"; "old-2"; "old-3" ] do
                  let e = byKey[old]
                  Expect.equal (e.Operation, e.Namespace, e.Id) (Envelope.Delete, "telemetry", old) $"{old} is deleted"
                  Expect.equal (e.IpAddr.ToArray()) loopback "with the submitter's address"
          }

          test "DELETE writes a DELETE envelope and answers 200" {
              use ingest = start defaults
              ingest.Send "DELETE" "/1/submit/telemetry/doc-3/p" None [] |> expectStatus 200 "DELETE" |> ignore
              let r = List.exactlyOne (ingest.Records())
              Expect.equal (r.Key, r.Envelope.Operation, r.Envelope.ApiVersion, r.Envelope.Partitions) ("doc-3", Envelope.Delete, "1", [ "p" ]) "a delete"
              Expect.isTrue r.Envelope.Payload.IsEmpty "no payload"
          }

          test "GET is 405 with Allow; unknown namespaces and other paths are 404; nothing is written" {
              use ingest = start defaults
              expectNothingWrittenBy ingest (fun () ->
                  let get = ingest.Send "GET" "/submit/telemetry/doc" None [] |> expectStatus 405 "GET"
                  Expect.equal get.Headers["Allow"] "POST, PUT, DELETE, OPTIONS" "Allow lists what works"
                  ingest.Send "HEAD" "/submit/telemetry/doc" None [] |> expectStatus 405 "HEAD" |> ignore
                  let unknown = ingest.Post "/submit/crashes/doc" "{}" |> expectStatus 404 "unknown namespace"
                  Expect.stringContains unknown.Body "crashes" "names the namespace"
                  for path in [ "/map/telemetry/doc"; "/submit"; "/2/telemetry/doc"; "/v1/submit/telemetry/doc" ] do
                      ingest.Post path "{}" |> expectStatus 404 path |> ignore
                  ingest.Send "DELETE" "/submit/telemetry" None [] |> expectStatus 400 "DELETE without an id" |> ignore)
          }

          test "an empty body is 400 and writes nothing" {
              use ingest = start defaults
              expectNothingWrittenBy ingest (fun () ->
                  let answer = ingest.Send "POST" "/submit/telemetry/doc" (Some(new ByteArrayContent([||]))) [] |> expectStatus 400 "empty"
                  Expect.stringContains answer.Body "no body" "says what is missing"
                  ingest.Send "PUT" "/submit/telemetry/doc" None [] |> expectStatus 400 "no content at all" |> ignore)
          }

          test "over --max-content-length is 413 (declared, chunked or after gzip) and writes nothing" {
              use ingest = start defaults
              let tooLarge = Array.create (Limit + 1) (byte 'x')
              expectNothingWrittenBy ingest (fun () ->
                  let declared = ingest.Send "POST" "/submit/telemetry/big" (Some(new ByteArrayContent(tooLarge))) [] |> expectStatus 413 "declared"
                  Expect.stringContains declared.Body "--max-content-length" "names the flag"
                  ingest.Send "POST" "/submit/telemetry/big" (Some(chunked tooLarge)) [] |> expectStatus 413 "chunked" |> ignore
                  ingest.Send "POST" "/submit/telemetry/big" (Some(gzip tooLarge)) [] |> expectStatus 413 "gzip bomb" |> ignore)
          }

          test "a compressed body padded without end (empty gzip members, empty deflate blocks) is refused early, declared or chunked" {
              use ingest = start defaults
              expectNothingWrittenBy ingest (fun () ->
                  for name, encoding, start, padding in paddedBodies do
                      for declared in [ true; false ] do
                          let what = $"""{name}, {(if declared then "declared" else "chunked")}"""
                          use body = padded start padding encoding declared
                          // HttpClient reads no answer while it is still sending: when the server answers
                          // early and closes, it reports the closed connection rather than the 413.
                          match (try Some(ingest.Send "POST" "/submit/telemetry/padded" (Some body) []) with :? HttpRequestException -> None) with
                          | Some answer -> expectStatus 413 what answer |> ignore
                          | None -> ()
                          // The server stops reading near the wire limit; the sockets' buffers take some
                          // more before the client's writes fail.
                          Expect.isLessThan body.Written (16L <<< 20) $"{what}: far from the 200 MiB offered")
          }

          test "a client that reads while it sends gets the 413 for an endless compressed body before it is done sending" {
              use ingest = start defaults
              for name, encoding, start, padding in paddedBodies do
                  for declared in [ true; false ] do
                      let what = $"""{name}, {(if declared then "declared" else "chunked")}"""
                      use body = padded start padding encoding declared
                      let status, text, sent = sendWatching ingest.Url "/submit/telemetry/padded" body
                      Expect.equal status 413 $"{what}: {text}"
                      Expect.stringContains text "compressed body" $"{what}: says which limit"
                      Expect.stringContains text "--max-content-length" $"{what}: names the flag"
                      Expect.isLessThan sent (16L <<< 20) $"{what}: answered long before the 200 MiB were sent"
          }

          test "an incompressible body at the limit is stored even though gzip made it larger" {
              use ingest = start defaults
              let noise = Array.init Limit (fun i -> byte ((i * 7919) % 251))
              let zipped = stored noise
              Expect.isGreaterThan zipped.Length Limit "compression added bytes"
              let content = new ByteArrayContent(zipped)
              content.Headers.ContentEncoding.Add "gzip"
              ingest.Send "POST" "/submit/telemetry/noise" (Some content) [] |> expectStatus 201 "stored" |> ignore
              Expect.equal [ for r in ingest.Records() -> r.Envelope.Payload.ToArray() ] [ noise ] "decompressed, every byte"
          }

          test "an unknown Content-Encoding is 415 and a broken gzip body 400; nothing is written" {
              use ingest = start defaults
              expectNothingWrittenBy ingest (fun () ->
                  let brotli = bytes "{}"
                  brotli.Headers.ContentEncoding.Add "br"
                  let answer = ingest.Send "POST" "/submit/telemetry/doc" (Some brotli) [] |> expectStatus 415 "br"
                  Expect.stringContains answer.Body "gzip" "says what is supported"
                  let broken = bytes "this is not gzip"
                  broken.Headers.ContentEncoding.Add "gzip"
                  ingest.Send "POST" "/submit/telemetry/doc" (Some broken) [] |> expectStatus 400 "broken gzip" |> ignore)
          }

          test "a body at the limit is stored; a gzip body is stored decompressed, as Bagheera did" {
              use ingest = start defaults
              let atLimit = Array.create Limit (byte 'y')
              ingest.Send "POST" "/submit/telemetry/full" (Some(chunked atLimit)) [] |> expectStatus 201 "at the limit" |> ignore
              ingest.Send "POST" "/submit/telemetry/zipped" (Some(gzip (Encoding.UTF8.GetBytes "{\"z\":1}"))) [] |> expectStatus 201 "gzip" |> ignore
              let byKey = ingest.Records() |> List.map (fun r -> r.Key, r.Envelope.Payload.ToArray()) |> Map.ofList
              Expect.equal byKey["full"] atLimit "every byte"
              Expect.equal (Encoding.UTF8.GetString byKey["zipped"]) "{\"z\":1}" "decompressed"
          }

          test "OPTIONS answers a CORS preflight; every answer allows any origin" {
              use ingest = start defaults
              let answer = ingest.Send "OPTIONS" "/submit/telemetry/doc" None [ "Origin", "https://example.org"; "Access-Control-Request-Method", "POST" ]
              Expect.equal answer.Status 200 "200"
              Expect.equal answer.Headers["Access-Control-Allow-Origin"] "*" "any origin"
              Expect.equal answer.Headers["Access-Control-Allow-Methods"] "POST, PUT, DELETE, OPTIONS" "methods"
              Expect.stringContains answer.Headers["Access-Control-Allow-Headers"] "X-Obsolete-Document" "Bagheera's own header may be sent"
              let stored = ingest.Post "/submit/telemetry/doc" "{}"
              Expect.equal stored.Headers["Access-Control-Allow-Origin"] "*" "a page may read the id it got"
          }

          test "X-Forwarded-For is ignored from an untrusted peer and followed through trusted proxies" {
              use untrusting = start defaults
              untrusting.Send "POST" "/submit/telemetry/a" (Some(bytes "{}")) [ "X-Forwarded-For", "203.0.113.7" ] |> expectStatus 201 "POST" |> ignore
              Expect.equal ((List.exactlyOne (untrusting.Records())).Envelope.IpAddr.ToArray()) loopback "a client cannot choose its address"
              use trusting = start (fun s -> s.TrustedProxies <- [ IPNetwork.Parse "127.0.0.0/8" ])
              trusting.Send "POST" "/submit/telemetry/b" (Some(bytes "{}")) [ "X-Forwarded-For", "198.51.100.1, 203.0.113.7" ] |> expectStatus 201 "POST" |> ignore
              Expect.equal ((List.exactlyOne (trusting.Records())).Envelope.IpAddr.ToArray()) [| 203uy; 0uy; 113uy; 7uy |] "the address the trusted proxy saw"
          }

          test "--topic-per-namespace writes each namespace to its own topic" {
              use ingest = start (fun s -> s.Topic <- null)
              ingest.Post "/submit/telemetry/t1" "{}" |> expectStatus 201 "telemetry" |> ignore
              ingest.Post "/submit/metrics/m1" "{}" |> expectStatus 201 "metrics" |> ignore
              let placed = ingest.Records() |> List.map (fun r -> r.Key, r.Topic) |> Set.ofList
              Expect.equal placed (set [ "t1", "telemetry"; "m1", "metrics" ]) "by namespace"
          }

          test "an independent client (kafka-python) reads the same keys and bytes, and they decode" {
              use ingest = start defaults
              let ids = [ for i in 1..5 -> $"py-{i}" ]
              for id in ids do
                  ingest.Post $"/1.0/submit/telemetry/{id}/x" $"{{\"id\":\"{id}\"}}" |> expectStatus 201 id |> ignore
              let ours = ingest.Records() |> List.map (fun r -> r.Key, Convert.ToBase64String r.Value) |> Set.ofList
              let theirs = readWithKafkaPython ingest.Cluster.BootstrapServers Topic
              Expect.equal (theirs |> List.map (fun (k, v) -> k, Convert.ToBase64String v) |> Set.ofList) ours "same records"
              for key, value in theirs do
                  let e = decode value
                  Expect.equal (e.Id, e.Namespace, e.ApiVersion, e.Partitions) (key, "telemetry", "1.0", [ "x" ]) "decodes"
                  Expect.equal (Encoding.UTF8.GetString e.Payload.Span) $"{{\"id\":\"{key}\"}}" "payload"
          } ]

/// Posts until the answer is not 503 (what a client does after a 503), within a deadline.
let private postUntilAccepted (ingest: Running) path body (within: TimeSpan) =
    let clock = Stopwatch.StartNew()
    let mutable answer = ingest.Post path body
    while answer.Status = 503 && clock.Elapsed < within do
        answer <- ingest.Post path body
    answer

[<Tests>]
let outage =
    testSequenced
    <| testList
        "Ingest when Kafka is down"
        [ test "503 within the timeout, no 201 for anything not written, 201 again once Kafka is back" {
              let timeout = TimeSpan.FromSeconds 1.5
              use ingest = start (fun s -> s.KafkaTimeout <- timeout)
              let accepted = Collections.Concurrent.ConcurrentBag<string>()
              let post id =
                  let answer = ingest.Post $"/submit/telemetry/{id}" $"{{\"id\":\"{id}\"}}"
                  if answer.Status = 201 then accepted.Add id
                  answer
              for i in 1..10 do
                  post $"before-{i}" |> expectStatus 201 "Kafka up" |> ignore

              ingest.Cluster.SetBrokerDown 1
              let clock = Stopwatch.StartNew()
              let during =
                  [ for i in 1..10 -> Task.Run(fun () -> post $"during-{i}") ]
                  |> Task.WhenAll
                  |> _.GetAwaiter().GetResult()
              let waited = clock.Elapsed
              for answer in during do
                  Expect.equal answer.Status 503 $"Kafka down: {answer.Body}"
                  Expect.stringContains answer.Body "retry" "tells the client to retry"
              Expect.isLessThan waited (timeout + TimeSpan.FromSeconds 5.0) "answered within the timeout, not librdkafka's five minutes"
              Expect.equal ingest.Server.Stats.Unavailable 10L "counted"

              ingest.Cluster.SetBrokerUp 1
              let back = postUntilAccepted ingest "/submit/telemetry/after-0" "{\"id\":\"after-0\"}" (TimeSpan.FromSeconds 20.0)
              Expect.equal back.Status 201 "stored again once Kafka is back"
              accepted.Add "after-0"
              for i in 1..10 do
                  post $"after-{i}" |> expectStatus 201 "Kafka back" |> ignore

              let written = ingest.Records() |> List.map _.Key |> Set.ofList
              let promised = Set.ofSeq accepted
              Expect.isEmpty (Set.difference promised written) "every 201 is in Kafka"
              Expect.isFalse (written |> Set.exists (fun k -> k.StartsWith "during-")) "nothing was written while the broker was down"
          }

          test "an outage in the middle of concurrent traffic: every 201 is in Kafka" {
              use ingest = start (fun s -> s.KafkaTimeout <- TimeSpan.FromSeconds 1.5)
              let answers = Collections.Concurrent.ConcurrentDictionary<string, int>()
              let firstAccepted = TaskCompletionSource()
              let firstUnavailable = TaskCompletionSource()
              let afterOutage = TaskCompletionSource()
              let mutable outageOver = 0
              let mutable acceptedAfter = 0
              use stop = new CancellationTokenSource()
              let worker (w: int) =
                  task {
                      let mutable i = 0
                      while not stop.IsCancellationRequested do
                          i <- i + 1
                          let id = $"w{w}-{i}"
                          let! answer = send ingest.Url "POST" $"/submit/telemetry/{id}" (Some(bytes "{}")) []
                          answers[id] <- answer.Status
                          match answer.Status with
                          | 201 ->
                              firstAccepted.TrySetResult() |> ignore
                              if Volatile.Read &outageOver = 1 && Interlocked.Increment &acceptedAfter >= 20 then afterOutage.TrySetResult() |> ignore
                          | 503 -> firstUnavailable.TrySetResult() |> ignore
                          | other -> failtestf "unexpected status %d: %s" other answer.Body
                  }
              let workers = [| for w in 1..8 -> worker w :> Task |]
              let within (t: Task) what = Expect.isTrue (t.Wait(TimeSpan.FromSeconds 30.0)) what
              within firstAccepted.Task "traffic flows"
              ingest.Cluster.SetBrokerDown 1
              within firstUnavailable.Task "clients hear 503 during the outage"
              ingest.Cluster.SetBrokerUp 1
              Volatile.Write(&outageOver, 1)
              within afterOutage.Task "traffic flows again after the outage"
              stop.Cancel()
              Task.WaitAll workers
              let written = ingest.Records() |> List.map _.Key |> Set.ofList
              let promised = answers |> Seq.filter (fun kv -> kv.Value = 201) |> Seq.map _.Key |> Set.ofSeq
              Expect.isEmpty (Set.difference promised written) "every 201 is in Kafka"
              Expect.isGreaterThan (answers.Values |> Seq.filter ((=) 503) |> Seq.length) 0 "some were refused"
          } ]

[<Tests>]
let roundTrip =
    testSequenced
    <| testList
        "Ingest round trip"
        [ test "submissions -> ingest -> Kafka -> replay -> the destination receives the same (method, path, body) set" {
              use ingest = start (fun s -> s.Namespaces <- null)
              let expected = Collections.Generic.HashSet<string * string * string>()
              let submit methodName (path: string) (body: string) headers =
                  let content = if body = "" then None else Some(bytes body)
                  let answer = ingest.Send methodName path content headers
                  Expect.isTrue (answer.Status = 201 || answer.Status = 200) $"{methodName} {path}: {answer.Status} {answer.Body}"
                  answer.Body
              for i in 1..150 do
                  let body = $"{{\"n\":{i}}}"
                  match i % 6 with
                  | 0 ->
                      let id = submit "POST" "/submit/telemetry" body []
                      expected.Add("POST", $"/submit/telemetry/{id}", body) |> ignore
                  | 1 ->
                      let path = $"/1.0/submit/telemetry/doc-{i}/release/45.0.{i}"
                      submit "POST" path body [] |> ignore
                      expected.Add("POST", path, body) |> ignore
                  | 2 ->
                      let path = $"/submit/telemetry/doc-{i}"
                      submit "POST" path body [ "X-Obsolete-Document", $"old-{i}-a, old-{i}-b" ] |> ignore
                      expected.Add("POST", path, body) |> ignore
                      expected.Add("DELETE", $"/submit/telemetry/old-{i}-a", "") |> ignore
                      expected.Add("DELETE", $"/submit/telemetry/old-{i}-b", "") |> ignore
                  | 3 ->
                      let path = $"/1/submit/metrics/doc-{i}/x"
                      submit "DELETE" path "" [] |> ignore
                      expected.Add("DELETE", path, "") |> ignore
                  | 4 ->
                      let path = $"/submit/metrics/doc%%20{i}/caf%%C3%%A9/a%%2Fb"
                      submit "POST" path body [] |> ignore
                      expected.Add("POST", path, body) |> ignore
                  | _ ->
                      let path = $"/2/submit/telemetry/doc-{i}"
                      submit "POST" path body [] |> ignore
                      expected.Add("POST", path, body) |> ignore

              use destination = HttpRecorder.start (HttpRecorder.always 201)
              let route = ReplayProcess.route $"{destination.Url}/{{api_version}}/submit/{{namespace}}/{{id}}/{{partitions}}" 1.0 true true
              let settings = ReplayProcess.settings ingest.Cluster.BootstrapServers "ingest-round-trip" Topic route |> ReplayProcess.untilEnd
              use replay = ReplayProcess.start settings
              Expect.equal (replay.Wait(TimeSpan.FromSeconds 60.0)) (Some 0) "the replay reads to the end and exits 0"
              let received =
                  destination.Accepted |> List.map (fun h -> h.Method, h.RawTarget, Encoding.UTF8.GetString h.Body) |> Set.ofList
              Expect.equal received (Set.ofSeq expected) "what the destination received is what was submitted"
              Expect.equal destination.Hits.Length expected.Count "each exactly once"
          } ]

[<Tests>]
let program =
    testSequenced
    <| testList
        "Ingest program"
        [ test "unclear flags exit 2 with a message that says what to write" {
              let cases =
                  [ [ "ingest"; "-b"; "127.0.0.1:1" ], "either -t TOPIC"
                    [ "ingest"; "-b"; "127.0.0.1:1"; "-t"; "t"; "--topic-per-namespace"; "--namespaces"; "a" ], "either -t TOPIC"
                    [ "ingest"; "-b"; "127.0.0.1:1"; "--topic-per-namespace" ], "--namespaces"
                    [ "ingest"; "-t"; "t" ], "--bootstrap-servers"
                    [ "ingest"; "-b"; "127.0.0.1:1"; "-t"; "t"; "--trusted-proxies"; "proxy.example" ], "proxy.example"
                    [ "ingest"; "-b"; "127.0.0.1:1"; "-t"; "bad topic" ], "not a Kafka topic name" ]
              for args, message in cases do
                  let code, _, stderr = ReplayProcess.run args (TimeSpan.FromSeconds 30.0)
                  Expect.equal code 2 $"%A{args} is a usage error"
                  Expect.stringContains stderr message $"%A{args} explains itself"
          }

          test "replay ingest listens on 127.0.0.1, stores a submission and stops on SIGTERM with exit 0" {
              use cluster = Broker.start "t" 2
              use child = ReplayProcess.spawn [ "ingest"; "-b"; cluster.BootstrapServers; "-t"; "t"; "--port"; "0" ]
              let listening () = Text.RegularExpressions.Regex.Match(child.Stdout, "listening on (http://[0-9.]+:[0-9]+)")
              Expect.isTrue (SpinWait.SpinUntil((fun () -> listening().Success || child.Process.HasExited), TimeSpan.FromSeconds 30.0)) "it says where it listens"
              let url = listening().Groups[1].Value
              Expect.stringStarts url "http://127.0.0.1:" $"loopback by default: {child.Stdout} {child.Stderr}"
              let answer = (send url "POST" "/submit/anything/doc-1" (Some(bytes "{}")) []).GetAwaiter().GetResult()
              Expect.equal answer.Status 201 answer.Body
              child.Signal 15
              Expect.equal (child.WaitForExit(TimeSpan.FromSeconds 30.0)) (Some 0) $"exit 0 on SIGTERM: {child.Stderr}"
              Expect.stringContains child.Stdout "1 stored (201)" "the closing line counts it"
              Expect.equal [ for r in readTopics cluster.BootstrapServers [ "t" ] -> r.Key ] [ "doc-1" ] "it is in Kafka"
          }

          test "replay demo runs HTTP -> ingest -> Kafka -> replay -> sink and exits 0 when the numbers add up" {
              let code, stdout, stderr = ReplayProcess.run [ "demo"; "--count"; "400" ] (TimeSpan.FromSeconds 60.0)
              Expect.equal code 0 $"exit 0: {stdout} {stderr}"
              Expect.stringContains stdout "ingest" "the summary names the ingest step"
              Expect.stringContains stdout "ok:" "and says the numbers add up"
          } ]
