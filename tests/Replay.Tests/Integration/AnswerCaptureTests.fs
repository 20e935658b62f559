/// What both senders keep of an answer, through real sockets: the lean path and the
/// HttpClient path against the same raw server must keep the same status, headers,
/// body start, length and hash for every framing, as the capture setting says.
module Replay.Tests.AnswerCaptureTests

open System
open System.IO
open System.IO.Compression
open System.Security.Cryptography
open System.Text
open System.Threading
open Expecto
open Replay.Core
open Replay.Core.Outcome
open Replay.Core.Pipeline
open Replay.Host.Delivery
open Replay.Tests.ScriptedHttp

let private post url = request url Method.Post [ "X-Replay-Id", "t/0/1" ] (ascii "{}")

/// What a test compares of an answer; headers sorted, since HttpClient lists the
/// response's headers before the content's.
type private Kept =
    { Status: int
      RetryAfter: TimeSpan option
      Headers: (string * string) list
      Body: byte[]
      Length: int64
      Hash: string }

let private kept attempt =
    match attempt with
    | Answered answer ->
        { Status = answer.Status
          RetryAfter = answer.RetryAfter
          Headers = List.sort answer.Headers
          Body = answer.Body
          Length = answer.BodyLength
          Hash = Convert.ToHexString answer.BodyHash }
    | other -> failtestf "expected an answer, got %A" other

let private send (sender: HttpSender) url =
    sender.SendAsync(post url, CancellationToken.None).AsTask().GetAwaiter().GetResult()

/// Sends to `url` on the lean path and on the HttpClient path with `capture`.
let private bothPaths capture (url: string) =
    use lean = new HttpSender(new Net.Http.SocketsHttpHandler(), TimeSpan.FromSeconds 10.0, new PlainHttp(), capture)
    use client = new HttpSender(HttpSender.CreateHandler(4, null), TimeSpan.FromSeconds 10.0, null, capture)
    kept (send lean url), kept (send client url)

let private gzipped (text: string) =
    use buffer = new MemoryStream()
    (use zip = new GZipStream(buffer, CompressionLevel.Fastest)
     zip.Write(Encoding.UTF8.GetBytes text))
    buffer.ToArray()

let private response (head: string) (body: byte[]) = Array.append (Encoding.Latin1.GetBytes head) body

let private chunked (body: byte[]) =
    let pieces = body |> Array.chunkBySize 5
    Array.concat
        [ for piece in pieces -> Array.concat [ ascii $"{piece.Length:x}\r\n"; piece; ascii "\r\n" ] ]
    |> fun chunks -> Array.append chunks (ascii "0\r\n\r\n")

let private nothing = { Status = 0; RetryAfter = None; Headers = []; Body = [||]; Length = -1L; Hash = "" }

[<Tests>]
let tests =
    testList
        "Answer capture"
        [ test "every framing keeps the same answer on both paths: headers that matter, the body as received, its length" {
              let notHere = ascii "not here"
              let boom = ascii "boom, in chunks"
              let zipped = gzipped "{\"error\":\"compressed and kept so\"}"
              let long = Array.init 10000 (fun i -> byte (65 + i % 26))
              let cases =
                  [ "content-length",
                    response $"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nX-Other: no\r\nContent-Length: {notHere.Length}\r\n\r\n" notHere,
                    { nothing with
                        Status = 404
                        Headers = [ "Content-Length", "8"; "Content-Type", "text/plain" ]
                        Body = notHere
                        Length = 8L }
                    "chunked",
                    response "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" (chunked boom),
                    { nothing with Status = 500; Headers = [ "Content-Type", "text/plain" ]; Body = boom; Length = int64 boom.Length }
                    "gzip, not decoded",
                    response
                        $"HTTP/1.1 422 Unprocessable\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {zipped.Length}\r\n\r\n"
                        zipped,
                    { nothing with
                        Status = 422
                        Headers = [ "Content-Encoding", "gzip"; "Content-Length", string zipped.Length; "Content-Type", "application/json" ]
                        Body = zipped
                        Length = int64 zipped.Length }
                    "gzip and chunked",
                    response "HTTP/1.1 422 Unprocessable\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" (chunked zipped),
                    { nothing with Status = 422; Headers = [ "Content-Encoding", "gzip" ]; Body = zipped; Length = int64 zipped.Length }
                    "Retry-After and Location",
                    response "HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nLocation: /later\r\nContent-Length: 4\r\n\r\n" (ascii "busy"),
                    { nothing with
                        Status = 503
                        RetryAfter = Some(TimeSpan.FromSeconds 7.0)
                        Headers = [ "Content-Length", "4"; "Location", "/later"; "Retry-After", "7" ]
                        Body = ascii "busy"
                        Length = 4L }
                    "longer than kept",
                    response "HTTP/1.1 400 Bad Request\r\nContent-Length: 10000\r\n\r\n" long,
                    { nothing with Status = 400; Headers = [ "Content-Length", "10000" ]; Body = long[..4095]; Length = 10000L }
                    "a success: the status and the length only",
                    response "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nLocation: /doc\r\nContent-Length: 2\r\n\r\n" (ascii "ok"),
                    { nothing with Status = 201; Length = 2L }
                    "no content",
                    response "HTTP/1.1 204 No Content\r\n\r\n" [||],
                    { nothing with Status = 204; Length = -1L } ]
              for name, bytes, expected in cases do
                  use server = new Server(fun _ -> Answer(bytes, 0))
                  let lean, client = bothPaths ResponseCapture.Default $"{server.Url}/x"
                  // A 204 has no body and says so by its status: the lean path knows its length is 0.
                  let leanExpected = if expected.Status = 204 then { expected with Length = 0L } else expected
                  Expect.equal lean leanExpected $"{name}: the lean path"
                  Expect.equal client expected $"{name}: the HttpClient path"
          }

          test "a body that ends with the connection is kept whole, Retry-After with it" {
              use server = new Server(fun _ -> AnswerAndClose(response "HTTP/1.1 503 Busy\r\nRetry-After: 3\r\n\r\n" (ascii "until the close")))
              let lean, client = bothPaths ResponseCapture.Default $"{server.Url}/x"
              let expected =
                  { nothing with
                      Status = 503
                      RetryAfter = Some(TimeSpan.FromSeconds 3.0)
                      Headers = [ "Retry-After", "3" ]
                      Body = ascii "until the close"
                      Length = 15L }
              Expect.equal lean expected "the lean path"
              Expect.equal client expected "the HttpClient path"
          }

          test "a comparison's capture: success bodies, a chosen header, and the hash of what was not kept" {
              let body = Array.init 3000 (fun i -> byte (i % 251))
              let hash = Convert.ToHexString(SHA256.HashData body)
              // HttpClient spells this name X-Request-ID; both paths report the capture's spelling.
              let capture = ResponseCapture(100, 100, true, [ "X-Request-Id" ])
              for name, bytes in
                  [ "content-length", response "HTTP/1.1 200 OK\r\nx-request-id: r-1\r\nContent-Length: 3000\r\n\r\n" body
                    "chunked", response "HTTP/1.1 200 OK\r\nX-Request-Id: r-1\r\nTransfer-Encoding: chunked\r\n\r\n" (chunked body) ] do
                  use server = new Server(fun _ -> Answer(bytes, 0))
                  let lean, client = bothPaths capture $"{server.Url}/x"
                  let expected =
                      { nothing with
                          Status = 200
                          Headers = (if name = "chunked" then [] else [ "Content-Length", "3000" ]) @ [ "X-Request-Id", "r-1" ]
                          Body = body[..99]
                          Length = 3000L
                          Hash = hash }
                  Expect.equal lean expected $"{name}: the lean path"
                  Expect.equal client expected $"{name}: the HttpClient path"
          }

          test "a success body longer than the drain allowance is not read: the answer stands and the connection is not reused" {
              let large = ResponseReader.DrainBytes * 2
              let bytes = response $"HTTP/1.1 201 Created\r\nContent-Length: {large}\r\n\r\n" (Array.zeroCreate large)
              use server = new Server(fun _ -> Answer(bytes, 0))
              use lean = new HttpSender(new Net.Http.SocketsHttpHandler(), TimeSpan.FromSeconds 10.0, new PlainHttp())
              Expect.equal (kept (send lean $"{server.Url}/x")) { nothing with Status = 201; Length = int64 large } "first"
              Expect.equal (kept (send lean $"{server.Url}/x")) { nothing with Status = 201; Length = int64 large } "second"
              Expect.equal server.Connections 2 "the connection with the unread body was closed"
          }

          test "a kept body that breaks off is unreachable on both paths, not a truncated answer" {
              use server = new Server(fun _ -> AnswerAndClose(response "HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\n" (ascii "only part")))
              use lean = new HttpSender(new Net.Http.SocketsHttpHandler(), TimeSpan.FromSeconds 10.0, new PlainHttp())
              use client = new HttpSender(HttpSender.CreateHandler(4, null), TimeSpan.FromSeconds 10.0)
              for name, sender in [ "lean", lean; "HttpClient", client ] do
                  match send sender $"{server.Url}/x" with
                  | Unreachable _ -> ()
                  | other -> failtestf "%s: expected unreachable, got %A" name other
          } ]
