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
      Headers: Map<string, string> }

/// Decides the status for a request; the hit's attempt number (1-based, per path+method) is passed too.
type Responder = Hit -> int -> int

let always status : Responder = fun _ _ -> status

type Recorder(responder: Responder, ?port: int) =
    let hits = ConcurrentQueue<Hit>()
    let accepted = ConcurrentQueue<Hit>()
    let attempts = ConcurrentDictionary<string, int>()
    let signal = new SemaphoreSlim(0)
    let mutable responder = responder
    let app =
        let builder = WebApplication.CreateSlimBuilder()
        builder.Logging.ClearProviders() |> ignore
        builder.WebHost.UseUrls($"http://127.0.0.1:{defaultArg port 0}") |> ignore
        let app = builder.Build()
        app.Run(fun (ctx: HttpContext) ->
            task {
                use buffer = new MemoryStream()
                do! ctx.Request.Body.CopyToAsync buffer
                let raw = ctx.Features.Get<IHttpRequestFeature>().RawTarget
                let hit =
                    { Method = ctx.Request.Method
                      Path = ctx.Request.Path.ToUriComponent()
                      RawTarget = raw
                      Body = buffer.ToArray()
                      Headers = ctx.Request.Headers |> Seq.map (fun kv -> kv.Key, string kv.Value) |> Map.ofSeq }
                let attempt = attempts.AddOrUpdate(hit.Method + " " + hit.Path, 1, fun _ n -> n + 1)
                let status = responder hit attempt
                hits.Enqueue hit
                if status >= 200 && status < 300 then accepted.Enqueue hit
                ctx.Response.StatusCode <- status
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

/// A port that nothing listens on right now.
let freePort () =
    let listener = new Net.Sockets.TcpListener(Net.IPAddress.Loopback, 0)
    listener.Start()
    let port = (listener.LocalEndpoint :?> Net.IPEndPoint).Port
    listener.Stop()
    port
