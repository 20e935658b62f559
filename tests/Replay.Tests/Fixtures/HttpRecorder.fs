/// A real HTTP server on 127.0.0.1 that records every request and answers as the
/// test tells it to: the destination of replays under test, with fault modes.
module Replay.Tests.HttpRecorder

open System
open System.Collections.Concurrent
open System.IO
open System.Threading
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Http.Features
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging

type Hit =
    { Method: string
      /// The path as sent (still percent-encoded).
      Path: string
      /// The request target exactly as on the request line (absolute form via a proxy).
      RawTarget: string
      Body: byte[]
      Headers: Map<string, string>
      /// When the request arrived, in milliseconds of the monotonic clock (Stopwatch).
      ArrivedMs: float }

/// Decides the status for a request; the attempt number of that record (1-based) is passed too.
type Responder = Hit -> int -> int

let always status : Responder = fun _ _ -> status

type Recorder(responder: Responder, ?port: int, ?delay: Hit -> TimeSpan) =
    let hits = ConcurrentQueue<Hit>()
    let accepted = ConcurrentQueue<Hit>()
    let attempts = ConcurrentDictionary<string, int>()
    let signal = new SemaphoreSlim(0)
    let mutable responder = responder
    let mutable retryAfter: string option = None
    let mutable body: Hit -> int -> (string * byte[]) option = fun _ _ -> None
    let app =
        let builder = WebApplication.CreateSlimBuilder()
        builder.Logging.ClearProviders() |> ignore
        builder.WebHost.UseUrls($"http://127.0.0.1:{defaultArg port 0}") |> ignore
        let app = builder.Build()
        app.Run(fun (ctx: HttpContext) ->
            task {
                let arrived = float (Diagnostics.Stopwatch.GetTimestamp()) * 1000.0 / float Diagnostics.Stopwatch.Frequency
                use buffer = new MemoryStream()
                do! ctx.Request.Body.CopyToAsync buffer
                let raw = ctx.Features.Get<IHttpRequestFeature>().RawTarget
                let hit =
                    { Method = ctx.Request.Method
                      Path = ctx.Request.Path.ToUriComponent()
                      RawTarget = raw
                      Body = buffer.ToArray()
                      Headers = ctx.Request.Headers |> Seq.map (fun kv -> kv.Key, string kv.Value) |> Map.ofSeq
                      ArrivedMs = arrived }
                // One request is one replayed record: count its attempts by X-Replay-Id when it has one.
                let identity =
                    match hit.Headers.TryFind "X-Replay-Id" with
                    | Some id -> id
                    | None -> hit.Method + " " + hit.Path
                let attempt = attempts.AddOrUpdate(identity, 1, fun _ n -> n + 1)
                let status = responder hit attempt
                // A slow destination, so that requests overlap and order could be lost.
                match delay with
                | Some d when d hit > TimeSpan.Zero -> do! Threading.Tasks.Task.Delay(d hit)
                | _ -> ()
                hits.Enqueue hit
                if status >= 200 && status < 300 then accepted.Enqueue hit
                ctx.Response.StatusCode <- status
                match retryAfter with
                | Some value when status = 429 || status = 503 -> ctx.Response.Headers.RetryAfter <- value
                | _ -> ()
                match body hit attempt with
                | Some(contentType, bytes) ->
                    ctx.Response.ContentType <- contentType
                    do! ctx.Response.Body.WriteAsync(bytes, 0, bytes.Length)
                | None -> ()
                signal.Release() |> ignore
            }
            :> Threading.Tasks.Task)
        app
    do app.StartAsync().GetAwaiter().GetResult()
    let url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>().Addresses |> Seq.head

    member _.Url = url
    member _.Port = Uri(url).Port
    /// Every request, including those answered with an error.
    member _.Hits = hits.ToArray() |> List.ofArray
    /// Requests answered 2xx, in arrival order.
    member _.Accepted = accepted.ToArray() |> List.ofArray
    member _.SetResponder r = responder <- r
    /// Sent as Retry-After with 429 and 503 answers.
    member _.RetryAfterSeconds
        with set (v: int option) = retryAfter <- v |> Option.map string
    /// Sent as Retry-After with 429 and 503 answers, as written (an HTTP date, say).
    member _.RetryAfterText
        with set (v: string option) = retryAfter <- v

    /// The body of each answer, with its Content-Type, given the request and its attempt
    /// number; None (the default): an empty body.
    member _.Body
        with set (f: Hit -> int -> (string * byte[]) option) = body <- f

    /// Waits until at least `count` requests were answered 2xx; false on timeout.
    member _.WaitForAccepted(count: int, timeout: TimeSpan) =
        let deadline = DateTime.UtcNow + timeout
        let mutable ok = accepted.Count >= count
        while not ok && DateTime.UtcNow < deadline do
            signal.Wait(TimeSpan.FromMilliseconds 200.0) |> ignore
            ok <- accepted.Count >= count
        ok

    interface IDisposable with
        member _.Dispose() =
            app.StopAsync().GetAwaiter().GetResult()
            (app :> IAsyncDisposable).DisposeAsync().AsTask().GetAwaiter().GetResult()

let start responder = new Recorder(responder)
let startOn port responder = new Recorder(responder, port)
let startSlow delay responder = new Recorder(responder, delay = delay)

/// A port that nothing listens on right now.
let freePort () =
    let listener = new Net.Sockets.TcpListener(Net.IPAddress.Loopback, 0)
    listener.Start()
    let port = (listener.LocalEndpoint :?> Net.IPEndPoint).Port
    listener.Stop()
    port
