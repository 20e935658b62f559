/// A raw TCP server on 127.0.0.1 that speaks just enough HTTP/1.1 to read requests
/// and answers with bytes the test scripts: the framings and misbehaviours real
/// servers produce (chunked bodies, interim responses, closing idle keep-alive
/// connections, garbage) that a well-mannered test server never would.
module Replay.Tests.ScriptedHttp

open System
open System.Collections.Concurrent
open System.IO
open System.Net
open System.Net.Sockets
open System.Text
open System.Threading
open System.Threading.Tasks

type Received =
    { /// Which accepted connection (0-based) carried the request.
      Connection: int
      /// The request line and headers, as sent.
      Head: string
      Body: byte[] }

/// What the server does with one request.
type Reply =
    /// Writes these bytes, in pieces of the given size (0: all at once), then keeps the connection.
    | Answer of bytes: byte[] * pieces: int
    /// Writes these bytes, then closes the connection.
    | AnswerAndClose of byte[]
    /// Writes these bytes as soon as the head has arrived, without reading the body, and closes
    /// (a server refusing a body too large).
    | AnswerBeforeBody of byte[]
    /// Closes the connection without a word.
    | Hang
    /// Never answers (until the server is disposed).
    | Silence
    /// Writes whatever the function writes to the connection, when it likes; it returns
    /// whether the connection stays open for the next request.
    | Scripted of (Stream -> Task<bool>)

let ascii (text: string) = Encoding.ASCII.GetBytes text

/// A request as the engine hands it to a sender, for tests that drive a sender directly.
let request (url: string) method (headers: (string * string) list) (body: byte[]) : Replay.Core.Pipeline.Request =
    { Method = method
      Url = Uri url
      Headers = headers
      Body = ReadOnlyMemory body
      OrderingKey = "doc"
      Route = "test"
      StatusPolicy = Replay.Core.StatusPolicy.defaults
      Destination = 0 }

/// Reads one request's head up to the blank line, and its Content-Length.
let private readHead (stream: Stream) =
    ConnectProxy.readHead stream
    |> Option.map (fun text ->
        let length =
            text.Split("\r\n")
            |> Array.tryPick (fun line ->
                if line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase) then Some(int (line.Substring(15).Trim()))
                else None)
            |> Option.defaultValue 0
        text, length)

let private readBody (stream: Stream) length =
    let body = Array.zeroCreate<byte> length
    let mutable read = 0
    while read < length do
        let n = stream.Read(body, read, length - read)
        if n = 0 then failwith "request body cut short"
        read <- read + n
    body

/// Serves every connection with `script`, given the request's overall index (0-based).
type Server(script: int -> Reply) =
    let listener = new TcpListener(IPAddress.Loopback, 0)
    let received = ConcurrentQueue<Received>()
    let stop = new CancellationTokenSource()
    let mutable connections = 0
    let mutable requests = 0
    let ended = new SemaphoreSlim(0)
    let serve (client: TcpClient) (index: int) =
        task {
            use _ = { new IDisposable with member _.Dispose() = ended.Release() |> ignore }
            use client = client
            use stream = client.GetStream()
            let mutable openConnection = true
            while openConnection do
                match readHead stream with
                | None -> openConnection <- false
                | Some(head, length) ->
                    let reply = script (Interlocked.Increment(&requests) - 1)
                    let body =
                        match reply with
                        | AnswerBeforeBody _ -> [||]
                        | _ -> readBody stream length
                    received.Enqueue { Connection = index; Head = head; Body = body }
                    match reply with
                    | Answer(bytes, pieces) when pieces > 0 ->
                        for chunk in Array.chunkBySize pieces bytes do
                            stream.Write(chunk, 0, chunk.Length)
                            stream.Flush()
                    | Answer(bytes, _) -> stream.Write(bytes, 0, bytes.Length)
                    | AnswerAndClose bytes ->
                        stream.Write(bytes, 0, bytes.Length)
                        openConnection <- false
                    | AnswerBeforeBody bytes ->
                        stream.Write(bytes, 0, bytes.Length)
                        client.Client.Shutdown(SocketShutdown.Send)
                        openConnection <- false
                    | Hang -> openConnection <- false
                    | Silence ->
                        try do! Task.Delay(Timeout.Infinite, stop.Token) with _ -> ()
                        openConnection <- false
                    | Scripted act ->
                        let! keep = act stream
                        openConnection <- keep
        }
    do
        listener.Start()
        Task.Run(fun () ->
            task {
                try
                    while true do
                        let! client = listener.AcceptTcpClientAsync stop.Token
                        let index = Interlocked.Increment(&connections) - 1
                        Task.Run(fun () -> serve client index :> Task) |> ignore
                with _ -> ()
            } :> Task) |> ignore

    member _.Url = $"http://127.0.0.1:{(listener.LocalEndpoint :?> IPEndPoint).Port}"
    member _.Received = List.ofSeq received
    member _.Connections = Volatile.Read &connections
    /// Waits until one more connection has ended (either side closed it); false after the time-out.
    member _.ConnectionEnded(timeout: TimeSpan) = ended.Wait timeout

    interface IDisposable with
        member _.Dispose() =
            stop.Cancel()
            listener.Stop()
