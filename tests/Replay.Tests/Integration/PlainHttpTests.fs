/// The lean HTTP/1.1 path for http:// destinations, against a raw server on 127.0.0.1
/// that scripts what real servers do: what goes on the wire, every response framing,
/// connections the server closes, and answers that are not HTTP at all.
module Replay.Tests.PlainHttpTests

open System
open System.Threading
open Expecto
open Replay.Core
open Replay.Core.Outcome
open Replay.Core.Pipeline
open Replay.Host.Delivery
open Replay.Tests.ScriptedHttp

let private post url = request url Method.Post [ "X-Replay-Id", "t/0/1" ] (ascii "{\"a\":1}")

/// One request at a time per connection (pipeline 1), or up to `pipeline` before their answers come.
let private sender (pipeline: int) (timeout: TimeSpan) =
    new HttpSender(new Net.Http.SocketsHttpHandler(), timeout, new PlainHttp(pipeline, pipeline))

let private send (sender: HttpSender) (request: Request) =
    sender.SendAsync(request, CancellationToken.None).AsTask().GetAwaiter().GetResult()

let private created = ascii "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"

let private statusOf attempt =
    match attempt with
    | Answered answer -> answer.Status
    | other -> failwithf "expected an answer, got %A" other

let private lines (head: string) = head.Split("\r\n", StringSplitOptions.RemoveEmptyEntries) |> List.ofArray

/// Every case holds on both kinds of connection: pipelined ones carry these requests one after
/// another too, and must read, reuse and close them as a one-at-a-time connection does.
let private suite (name: string) (pipeline: int) =
    testList
        name
        [ test "the request on the wire: request line, Host, the route's headers, Content-Length, the body as consumed" {
              use server = new Server(fun _ -> Answer(created, 0))
              use sender = sender pipeline (TimeSpan.FromSeconds 10.0)
              let body = Array.init 3000 (fun i -> byte (i % 251))
              let attempt =
                  send sender (request $"{server.Url}/submit/telemetry/a%%2Fb?x=1" Method.Put [ "X-Replay-Id", "t/0/7"; "X-Tag", "blue" ] body)
              Expect.equal (statusOf attempt) 201 "answered"
              let got = server.Received |> List.exactlyOne
              let port = Uri(server.Url).Port
              Expect.equal
                  (lines got.Head)
                  [ "PUT /submit/telemetry/a%2Fb?x=1 HTTP/1.1"; $"Host: 127.0.0.1:{port}"; "X-Replay-Id: t/0/7"; "X-Tag: blue"; "Content-Length: 3000" ]
                  "exactly these lines, escapes kept"
              Expect.equal got.Body body "the body, byte for byte"
          }

          test "a delete without a body has no Content-Length; a route cannot forge the framing but may set Host" {
              use server = new Server(fun _ -> Answer(ascii "HTTP/1.1 204 No Content\r\n\r\n", 0))
              use sender = sender pipeline (TimeSpan.FromSeconds 10.0)
              let headers = [ "Content-Length", "5"; "Transfer-Encoding", "chunked"; "Host", "shadow.example" ]
              Expect.equal (statusOf (send sender (request $"{server.Url}/d/1" Method.Delete headers [||]))) 204 "answered"
              Expect.equal (lines (List.exactlyOne server.Received).Head) [ "DELETE /d/1 HTTP/1.1"; "Host: shadow.example" ] "framing is ours"
          }

          test "a body larger than one send arrives whole" {
              use server = new Server(fun _ -> Answer(created, 0))
              use sender = sender pipeline (TimeSpan.FromSeconds 10.0)
              let body = Array.init (300 * 1024) (fun i -> byte (i % 253))
              Expect.equal (statusOf (send sender (request $"{server.Url}/big" Method.Post [] body))) 201 "answered"
              Expect.equal (List.exactlyOne server.Received).Body body "all 300 KB, in order"
          }

          test "every response framing is read to its end, and the connection is reused after it" {
              let framings =
                  [| "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"
                     "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
                     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok"
                     "HTTP/1.1 204 No Content\r\n\r\n"
                     "HTTP/1.1 503 Busy\r\nRetry-After: 7\r\ncontent-length: 4\r\n\r\nbusy" |]
              // Byte by byte: a head or a chunk split anywhere must still parse.
              use server = new Server(fun i -> Answer(ascii framings[i], (if i % 2 = 0 then 1 else 0)))
              use sender = sender pipeline (TimeSpan.FromSeconds 10.0)
              let answers = [ for _ in framings -> send sender (post $"{server.Url}/x") ]
              Expect.equal
                  [ for attempt in answers ->
                        match attempt with
                        | Answered answer -> answer.Status, answer.RetryAfter, answer.BodyLength
                        | other -> failtestf "expected an answer, got %A" other ]
                  [ 200, None, 11L; 201, None, 11L; 202, None, 2L; 204, None, 0L; 503, Some(TimeSpan.FromSeconds 7.0), 4L ]
                  "status, Retry-After and body length of each"
              Expect.equal server.Connections 1 "one keep-alive connection carried them all"
          }

          test "Connection: close, HTTP/1.0 and a body that ends with the connection are followed by a new connection" {
              let replies =
                  [| AnswerAndClose(ascii "HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                     AnswerAndClose(ascii "HTTP/1.0 201 Created\r\nContent-Length: 0\r\n\r\n")
                     AnswerAndClose(ascii "HTTP/1.1 200 OK\r\n\r\nuntil the end")
                     Answer(created, 0) |]
              use server = new Server(fun i -> replies[i])
              use sender = sender pipeline (TimeSpan.FromSeconds 10.0)
              let statuses = [ for _ in replies -> statusOf (send sender (post $"{server.Url}/x")) ]
              Expect.equal statuses [ 201; 201; 200; 201 ] "each answered"
              Expect.equal server.Connections 4 "a new connection after each that ended"
          }

          test "a response that says Connection: close is not reused, even if the server leaves it open" {
              let replies =
                  [| ascii "HTTP/1.1 201 Created\r\nConnection: Upgrade, close\r\nContent-Length: 0\r\n\r\n"
                     ascii "HTTP/1.1 201 Created\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
                     created |]
              use server = new Server(fun i -> Answer(replies[i], 0))
              use sender = sender pipeline (TimeSpan.FromSeconds 10.0)
              let statuses = [ for _ in replies -> statusOf (send sender (post $"{server.Url}/x")) ]
              Expect.equal statuses [ 201; 201; 201 ] "each answered"
              Expect.equal server.Connections 2 "a new connection after the close, then the kept-alive one reused"
          }

          test "a keep-alive connection the server closed while idle is replaced without a failed attempt" {
              // The server answers, then drops the connection without saying so, as idle timeouts do.
              use server = new Server(fun i -> if i % 2 = 0 then AnswerAndClose created else Answer(created, 0))
              use sender = sender pipeline (TimeSpan.FromSeconds 10.0)
              Expect.equal (statusOf (send sender (post $"{server.Url}/x"))) 201 "first"
              Expect.equal (statusOf (send sender (post $"{server.Url}/x"))) 201 "second, on a new connection"
              Expect.equal server.Connections 2 "two connections"
          }

          test "a second answer to one request never answers the next: the connection it came on is closed" {
              // Two 201s for the first request, then 500 for the second: on a reused connection
              // the stray 201 would have been taken as the second request's answer.
              let twice = Array.append created created
              use server = new Server(fun i -> if i = 0 then Answer(twice, 0) else Answer(ascii "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", 0))
              use sender = sender pipeline (TimeSpan.FromSeconds 10.0)
              Expect.equal (statusOf (send sender (post $"{server.Url}/x"))) 201 "the first answer"
              Expect.equal (statusOf (send sender (post $"{server.Url}/x"))) 500 "the second request's own answer"
              Expect.equal server.Connections 2 "the connection with the stray answer was not reused"
          }

          test "a second answer that arrives after the connection went idle is noticed before reuse" {
              // Continuations off the completing thread: the server's loop must not run on the test's.
              let release = Threading.Tasks.TaskCompletionSource(Threading.Tasks.TaskCreationOptions.RunContinuationsAsynchronously)
              let strayWritten = Threading.Tasks.TaskCompletionSource(Threading.Tasks.TaskCreationOptions.RunContinuationsAsynchronously)
              let late (stream: IO.Stream) =
                  task {
                      stream.Write(created, 0, created.Length)
                      // Only once the first answer was taken and the connection is back in the pool.
                      do! release.Task
                      stream.Write(created, 0, created.Length)
                      stream.Flush()
                      strayWritten.SetResult()
                      return true
                  }
              use server = new Server(fun i -> if i = 0 then Scripted late else Answer(ascii "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", 0))
              use sender = sender pipeline (TimeSpan.FromSeconds 10.0)
              Expect.equal (statusOf (send sender (post $"{server.Url}/x"))) 201 "the first answer"
              release.SetResult()
              Expect.isTrue (strayWritten.Task.Wait(TimeSpan.FromSeconds 10.0)) "the server sent the stray answer"
              Expect.isTrue (server.ConnectionEnded(TimeSpan.FromSeconds 10.0)) "the idle connection that spoke out of turn was closed at once"
              Expect.equal (statusOf (send sender (post $"{server.Url}/x"))) 500 "the second request's own answer"
              Expect.equal server.Connections 2 "the idle connection with unread bytes was closed, not reused"
              Expect.equal [ for r in server.Received -> r.Connection ] [ 0; 1 ] "the second request went out on the new connection only"
          }

          test "an answer sent before the body was read is the outcome, even when the send breaks" {
              use server = new Server(fun _ -> AnswerBeforeBody(ascii "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
              use sender = sender pipeline (TimeSpan.FromSeconds 10.0)
              // Larger than the socket buffers on both sides, so the send cannot complete before the close.
              let body = Array.zeroCreate<byte> (32 * 1024 * 1024)
              Expect.equal (statusOf (send sender (request $"{server.Url}/big" Method.Post [] body))) 413 "the server's answer"
          }

          test "a server that hangs up or answers garbage is unreachable, with the reason" {
              use hangUp = new Server(fun _ -> Hang)
              use garbage = new Server(fun _ -> Answer(ascii "SSH-2.0-OpenSSH_9.6\r\n\r\n", 0))
              use sender = sender pipeline (TimeSpan.FromSeconds 10.0)
              match send sender (post $"{hangUp.Url}/x") with
              | Unreachable detail -> Expect.stringContains detail "closed before a response" "hang-up named"
              | other -> failtestf "expected unreachable, got %A" other
              match send sender (post $"{garbage.Url}/x") with
              | Unreachable detail -> Expect.stringContains detail "not an HTTP/1.x status line: 'SSH-2.0" "what came back is shown"
              | other -> failtestf "expected unreachable, got %A" other
          }

          test "sizes no server could mean are unreachable with the reason, never another exception; the next request gets a new connection" {
              let hostile =
                  [| "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nabc", "chunk size '7fffffffffffffff' is over the limit"
                     "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\nabc", "Content-Length 9223372036854775807 is over the limit"
                     "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "Content-Length '-5' is not a number"
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n", "not a hexadecimal number: '0x10'"
                     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", "two different Content-Lengths" |]
              use server = new Server(fun i -> if i < hostile.Length then Answer(ascii (fst hostile[i]), 0) else Answer(created, 0))
              use sender = sender pipeline (TimeSpan.FromSeconds 10.0)
              for _, says in hostile do
                  match send sender (post $"{server.Url}/x") with
                  | Unreachable detail -> Expect.stringContains detail says "the reason"
                  | other -> failtestf "expected unreachable (%s), got %A" says other
              Expect.equal (statusOf (send sender (post $"{server.Url}/x"))) 201 "a sane answer afterwards"
              Expect.equal server.Connections (hostile.Length + 1) "no connection was used after a violation"
          }

          test "a closed port is unreachable; a server that never answers times out" {
              let closedPort = HttpRecorder.freePort ()
              use silent = new Server(fun _ -> Silence)
              use sender = sender pipeline (TimeSpan.FromSeconds 2.0)
              match send sender (post $"http://127.0.0.1:{closedPort}/x") with
              | Unreachable detail -> Expect.stringContains detail "refused" "refused"
              | other -> failtestf "expected unreachable, got %A" other
              Expect.equal (send sender (post $"{silent.Url}/x")) TimedOut "timed out"
          }

          test "on a reused connection, whose next answer is read from before the request goes out, time-outs and stops still end the wait" {
              // Answered, then silent (to time out), answered twice, then silent until the test is done (to be stopped).
              let heard = Threading.Tasks.TaskCompletionSource(Threading.Tasks.TaskCreationOptions.RunContinuationsAsynchronously)
              let over = Threading.Tasks.TaskCompletionSource<bool>(Threading.Tasks.TaskCreationOptions.RunContinuationsAsynchronously)
              let replies i =
                  match i with
                  | 1 -> Silence
                  | 4 -> Scripted(fun _ -> heard.SetResult(); over.Task)
                  | _ -> Answer(created, 0)
              use server = new Server(replies)
              // A wait that never ends fails here instead of hanging the suite.
              let ended (waiting: Threading.Tasks.Task<Attempt>) =
                  Expect.isTrue (waiting.Wait(TimeSpan.FromSeconds 30.0) || waiting.IsCompleted) "the wait ended"
                  waiting.Result
              use sender = sender pipeline (TimeSpan.FromSeconds 2.0)
              Expect.equal (statusOf (send sender (post $"{server.Url}/x"))) 201 "answered; the connection goes idle"
              let silent = sender.SendAsync(post $"{server.Url}/x", CancellationToken.None).AsTask()
              Expect.equal (ended silent) TimedOut "the silent server times out on the reused connection"
              Expect.equal (statusOf (send sender (post $"{server.Url}/x"))) 201 "the next request gets a new connection"
              use patient = new HttpSender(new Net.Http.SocketsHttpHandler(), TimeSpan.FromMinutes 5.0, new PlainHttp(pipeline, pipeline))
              Expect.equal (statusOf (send patient (post $"{server.Url}/x"))) 201 "answered; idle again"
              use stop = new CancellationTokenSource()
              let waiting = patient.SendAsync(post $"{server.Url}/x", stop.Token).AsTask()
              Expect.isTrue (heard.Task.Wait(TimeSpan.FromSeconds 30.0)) "the request reached the server"
              stop.Cancel()
              let outcome = try Choice1Of2(ended waiting) with e -> Choice2Of2(e.GetBaseException())
              over.SetResult false
              Expect.equal [ for r in server.Received -> r.Connection ] [ 0; 0; 1; 2; 2 ] "the silent and the stopped requests went out on reused connections"
              match outcome with
              | Choice2Of2(:? OperationCanceledException) -> ()
              | other -> failtestf "a stop ends the wait as a stop, not as %A" other
          } ]

[<Tests>]
let tests = testList "PlainHttp" [ suite "one request at a time" 1; suite "pipelined" 4 ]
