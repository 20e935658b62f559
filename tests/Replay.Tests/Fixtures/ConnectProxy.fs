/// A tiny HTTP CONNECT proxy on 127.0.0.1 for tests: it asks for Basic credentials
/// with a 407 challenge (as real proxies do), tunnels only to 127.0.0.1/localhost,
/// and records every CONNECT it saw with the Proxy-Authorization it carried, so a
/// test can check that credentials were sent, and sent only to the proxy.
module Replay.Tests.ConnectProxy

open System
open System.Collections.Concurrent
open System.IO
open System.Net
open System.Net.Sockets
open System.Text
open System.Threading
open System.Threading.Tasks

type Connect =
    { Target: string
      /// The Proxy-Authorization header as received, if any.
      Authorization: string option
      /// The status the proxy answered: 200 (tunnel), 407 (credentials wanted), 403 or 405.
      Status: int }

/// The request head: request line and headers, read up to the blank line (None when the
/// connection ends first, or the head runs past 16 KB). Also the scripted server's reader.
let readHead (stream: Stream) =
    let buffer = StringBuilder()
    let one = Array.zeroCreate<byte> 1
    let mutable finished = false
    let mutable closed = false
    while not finished && not closed do
        if stream.Read(one, 0, 1) = 0 then closed <- true
        else
            buffer.Append(char one[0]) |> ignore
            let text = buffer.ToString()
            finished <- text.EndsWith "\r\n\r\n"
            if buffer.Length > 16384 then closed <- true
    if finished then Some(buffer.ToString()) else None

type Proxy(user: string, password: string) =
    let listener = new TcpListener(IPAddress.Loopback, 0)
    let connects = ConcurrentQueue<Connect>()
    let stop = new CancellationTokenSource()
    let expected = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes $"{user}:{password}")

    let answer (stream: Stream) (status: string) (headers: string) =
        let bytes = Encoding.ASCII.GetBytes $"HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\n\r\n"
        stream.Write(bytes, 0, bytes.Length)
        stream.Flush()

    let tunnel (client: TcpClient) (target: string) =
        task {
            // Only loopback targets get here, so the port is all that is needed.
            let port = int (target.Substring(target.LastIndexOf ':' + 1))
            use upstream = new TcpClient()
            do! upstream.ConnectAsync(IPAddress.Loopback, port)
            let clientStream = client.GetStream()
            answer clientStream "200 Connection Established" ""
            let upstreamStream = upstream.GetStream()
            let up = clientStream.CopyToAsync(upstreamStream, stop.Token)
            let down = upstreamStream.CopyToAsync(clientStream, stop.Token)
            let! _ = Task.WhenAny(up, down)
            ()
        }

    let serve (client: TcpClient) =
        task {
          use client = client
          try
            let stream = client.GetStream()
            let mutable again = true
            while again do
                match readHead stream with
                | None -> again <- false
                | Some head ->
                    let lines = head.Split("\r\n", StringSplitOptions.RemoveEmptyEntries)
                    let requestLine = lines[0].Split ' '
                    let header (name: string) =
                        lines
                        |> Array.tryPick (fun line ->
                            match line.IndexOf ':' with
                            | -1 -> None
                            | i when String.Equals(line.Substring(0, i).Trim(), name, StringComparison.OrdinalIgnoreCase) ->
                                Some(line.Substring(i + 1).Trim())
                            | _ -> None)
                    let target = if requestLine.Length > 1 then requestLine[1] else ""
                    let authorization = header "Proxy-Authorization"
                    let record status = connects.Enqueue { Target = target; Authorization = authorization; Status = status }
                    let loopback = target.StartsWith "127.0.0.1:" || target.StartsWith "localhost:"
                    if requestLine[0] <> "CONNECT" then
                        record 405
                        answer stream "405 Method Not Allowed" "Connection: close\r\n"
                        again <- false
                    elif authorization <> Some expected then
                        record 407
                        answer stream "407 Proxy Authentication Required" "Proxy-Authenticate: Basic realm=\"replay-test\"\r\n"
                    elif not loopback then
                        record 403
                        answer stream "403 Forbidden" "Connection: close\r\n"
                        again <- false
                    else
                        record 200
                        do! tunnel client target
                        again <- false
          with
          | :? IOException
          | :? SocketException
          | :? OperationCanceledException -> ()
        }

    do
        listener.Start()
        let accept =
            task {
                try
                    while not stop.IsCancellationRequested do
                        let! client = listener.AcceptTcpClientAsync stop.Token
                        serve client |> ignore
                with
                | :? OperationCanceledException
                | :? ObjectDisposedException
                | :? SocketException -> ()
            }
        accept |> ignore

    member _.Port = (listener.LocalEndpoint :?> IPEndPoint).Port
    /// The proxy URL with credentials in it, as an operator would pass to --proxy.
    member this.UrlWithCredentials = $"http://{Uri.EscapeDataString user}:{Uri.EscapeDataString password}@127.0.0.1:{this.Port}"
    member _.Connects = connects.ToArray() |> List.ofArray
    member _.ExpectedAuthorization = expected

    interface IDisposable with
        member _.Dispose() =
            stop.Cancel()
            listener.Stop()

let start user password = new Proxy(user, password)
