/// Pipelining on the lean path (`--pipeline N`), against a raw server on 127.0.0.1 that reads
/// requests one after another from each connection, as real servers do: the requests really
/// share a connection, each gets its own answer, and when the connection breaks (the server
/// closes after an answer, the oldest request never answers, a request is abandoned) the ones
/// behind are sent again elsewhere or carried on, never answered with another's answer.
module Replay.Tests.PipelinedHttpTests

open System
open System.IO
open System.Net.Sockets
open System.Threading
open System.Threading.Tasks
open Expecto
open Replay.Core
open Replay.Core.Outcome
open Replay.Core.Pipeline
open Replay.Host.Delivery
open Replay.Tests.ScriptedHttp

let private post url = request url Method.Post [ "X-Replay-Id", "t/0/1" ] (ascii "{\"a\":1}")

/// Up to four requests on one connection (four at once need only one).
let private sender (timeout: TimeSpan) =
    new HttpSender(new Net.Http.SocketsHttpHandler(), timeout, new PlainHttp(4, 4))

let private answer status = ascii $"HTTP/1.1 {status} Status\r\nContent-Length: 0\r\n\r\n"

/// Before answering, waits until the next request is already on the connection: proof that the
/// client sent it without waiting for this answer.
let private afterTheNextArrived (bytes: byte[]) (stream: Stream) =
    task {
        let network = stream :?> Net.Sockets.NetworkStream
        if not (Wait.until (TimeSpan.FromSeconds 10.0) (fun () -> network.DataAvailable)) then failwith "the next request never came"
        stream.Write(bytes, 0, bytes.Length)
        return true
    }

/// Answers with `status` once `release` completes: a request the test holds unanswered meanwhile.
let private answerOnce (release: Task) status (stream: Stream) =
    task {
        do! release
        let bytes = answer status
        stream.Write(bytes, 0, bytes.Length)
        return true
    }

let private sendAll (sender: HttpSender) (paths: string list) (url: string) =
    paths |> List.map (fun path -> sender.SendAsync(post $"{url}/{path}", CancellationToken.None).AsTask())

let private ended (waiting: Task<Attempt>) =
    Expect.isTrue (waiting.Wait(TimeSpan.FromSeconds 30.0) || waiting.IsCompleted) "the wait ended"
    waiting.Result

let private statusOf attempt =
    match attempt with
    | Answered answer -> answer.Status
    | other -> failtestf "expected an answer, got %A" other

let private pathOf (received: Received) = (received.Head.Split ' ').[1].TrimStart '/'

[<Tests>]
let tests =
    testList
        "Pipelined HTTP"
        [ test "requests share one connection before their answers come, and each gets its own answer, in order" {
              // The server answers its i-th request with 200 + i, and the first only once the second is there.
              use server = new Server(fun i -> if i = 0 then Scripted(afterTheNextArrived (answer 200)) else Answer(answer (200 + i), 0))
              use sender = sender (TimeSpan.FromSeconds 10.0)
              let paths = [ "a"; "b"; "c"; "d" ]
              let statuses = sendAll sender paths server.Url |> List.map (ended >> statusOf)
              let order = server.Received |> List.map pathOf
              Expect.equal (List.sort order) paths "every request arrived once"
              Expect.equal statuses [ for path in paths -> 200 + List.findIndex ((=) path) order ] "each request got the answer to itself"
              Expect.equal server.Connections 1 "all on one connection"
          }

          test "the server closing after an answer: the requests behind it are sent again on a new connection" {
              // The second answer says close; the server drains what it was sent and hangs up, as nginx does.
              let closeAfter (stream: Stream) =
                  task {
                      let closing = ascii "HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                      stream.Write(closing, 0, closing.Length)
                      (stream :?> NetworkStream).Socket.Shutdown SocketShutdown.Send
                      let sink = Array.zeroCreate<byte> 4096
                      try
                          while stream.Read(sink, 0, sink.Length) > 0 do ()
                      with :? IOException -> ()
                      return false
                  }
              use server =
                  new Server(fun i ->
                      match i with
                      | 0 -> Scripted(afterTheNextArrived (answer 201))
                      | 1 -> Scripted closeAfter
                      | _ -> Answer(answer 201, 0))
              use sender = sender (TimeSpan.FromSeconds 10.0)
              let statuses = sendAll sender [ "a"; "b"; "c"; "d" ] server.Url |> List.map (ended >> statusOf)
              Expect.equal statuses [ 201; 201; 201; 201 ] "every request answered"
              Expect.equal server.Connections 2 "a new connection for the ones the closed one never answered"
              Expect.equal [ for r in server.Received -> r.Connection ] [ 0; 0; 1; 1 ] "two answered on the first, two sent again on the second"
          }

          test "the oldest request never answering times out alone; the ones behind it are answered on a new connection" {
              use server = new Server(fun i -> if i = 0 then Silence else Answer(answer 201, 0))
              use sender = sender (TimeSpan.FromSeconds 2.0)
              let first = sender.SendAsync(post $"{server.Url}/a", CancellationToken.None).AsTask()
              Expect.isTrue (Wait.until (TimeSpan.FromSeconds 10.0) (fun () -> server.Received.Length = 1)) "the first request reached the server"
              let attempts = first :: sendAll sender [ "b"; "c" ] server.Url |> List.map ended
              Expect.equal attempts.Head TimedOut "the silent one timed out"
              Expect.equal (attempts.Tail |> List.map statusOf) [ 201; 201 ] "the others were answered"
              let received = [ for r in server.Received -> r.Connection, pathOf r ]
              Expect.equal received.Head (0, "a") "the silent one on the first connection"
              Expect.equal (List.sort received.Tail) [ 1, "b"; 1, "c" ] "the others read only on the new connection (in either order: they are different documents)"
              Expect.equal server.Connections 2 "the first connection was given up"
          }

          test "an abandoned request's late answer is read and dropped: the next request on the connection gets its own" {
              let release = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
              use server = new Server(fun i -> if i = 0 then Scripted(answerOnce release.Task 500) else Answer(answer 202, 0))
              use sender = sender (TimeSpan.FromSeconds 10.0)
              use abandon = new CancellationTokenSource()
              let first = sender.SendAsync(post $"{server.Url}/a", abandon.Token).AsTask()
              Expect.isTrue (Wait.until (TimeSpan.FromSeconds 10.0) (fun () -> server.Received.Length = 1)) "the first request reached the server"
              let second = sender.SendAsync(post $"{server.Url}/b", CancellationToken.None).AsTask()
              abandon.Cancel()
              match (try Choice1Of2(ended first) with e -> Choice2Of2(e.GetBaseException())) with
              | Choice2Of2(:? OperationCanceledException) -> ()
              | other -> failtestf "the abandoned request ends as abandoned, not as %A" other
              release.SetResult()
              Expect.equal (statusOf (ended second)) 202 "the second request's own answer, not the first's late 500"
              Expect.equal server.Connections 1 "the connection carried on"
          }

          test "a second answer already read with the first never answers the request begun as the first is handed out" {
              // Two answers in one write to the first request; the second request starts in the first's
              // continuation, on the thread handing it out, and joins the same connection before it is sent.
              let twice = Array.append (answer 201) (answer 201)
              use server = new Server(fun i -> if i = 0 then Answer(twice, 0) else Answer(answer 500, 0))
              use sender = sender (TimeSpan.FromSeconds 10.0)
              let second =
                  sender.SendAsync(post $"{server.Url}/a", CancellationToken.None).AsTask()
                      .ContinueWith((fun (first: Task<Attempt>) ->
                          Expect.equal (statusOf first.Result) 201 "the first answer"
                          sender.SendAsync(post $"{server.Url}/b", CancellationToken.None).AsTask()), TaskContinuationOptions.ExecuteSynchronously)
                      .Unwrap()
              Expect.equal (statusOf (ended second)) 500 "the second request's own answer, not the stray 201"
              Expect.equal [ for r in server.Received -> pathOf r ] [ "a"; "b" ] "each request reached the server once"
          }

          test "a request abandoned before it went out never goes: its connection is closed, the others go again" {
              let release = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
              use server = new Server(fun i -> if i = 0 then Scripted(answerOnce release.Task 201) else Answer(answer 202, 0))
              use sender = sender (TimeSpan.FromSeconds 10.0)
              use abandon = new CancellationTokenSource()
              // The first request is out; the next two are begun while its answer is handed out, so they wait
              // to leave together, and one of them is abandoned in that moment.
              let first = sender.SendAsync(post $"{server.Url}/a", CancellationToken.None).AsTask()
              Expect.isTrue (Wait.until (TimeSpan.FromSeconds 10.0) (fun () -> server.Received.Length = 1)) "the first request reached the server"
              let later =
                  first.ContinueWith((fun (_: Task<Attempt>) ->
                      let b = sender.SendAsync(post $"{server.Url}/b", abandon.Token).AsTask()
                      let c = sender.SendAsync(post $"{server.Url}/c", CancellationToken.None).AsTask()
                      abandon.Cancel()
                      b, c), TaskContinuationOptions.ExecuteSynchronously)
              release.SetResult()
              Expect.equal (statusOf (ended first)) 201 "the first answered"
              Expect.isTrue (later.Wait(TimeSpan.FromSeconds 30.0)) "the later requests were begun"
              let b, c = later.Result
              match (try Choice1Of2(ended b) with e -> Choice2Of2(e.GetBaseException())) with
              | Choice2Of2(:? OperationCanceledException) -> ()
              | other -> failtestf "the abandoned request ends as abandoned, not as %A" other
              Expect.equal (statusOf (ended c)) 202 "the other request was answered"
              Expect.equal [ for r in server.Received -> pathOf r ] [ "a"; "c" ] "the abandoned request never reached the server"
          }

          test "bytes nobody asked for, arriving on an idle pipelined connection, close it; the next request goes on a new one" {
              let twice = Array.append (answer 201) (answer 201)
              use server = new Server(fun i -> if i = 0 then Answer(twice, 0) else Answer(answer 500, 0))
              use sender = sender (TimeSpan.FromSeconds 10.0)
              Expect.equal (sendAll sender [ "a" ] server.Url |> List.exactlyOne |> ended |> statusOf) 201 "the first answer"
              Expect.isTrue (server.ConnectionEnded(TimeSpan.FromSeconds 10.0)) "the connection that spoke out of turn was closed"
              Expect.equal (sendAll sender [ "b" ] server.Url |> List.exactlyOne |> ended |> statusOf) 500 "the second request's own answer"
              Expect.equal server.Connections 2 "a new connection"
          } ]
