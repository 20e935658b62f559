/// A real HTTPS server (Kestrel) on 127.0.0.1 with a test certificate: records each
/// request with the client certificate it came with, answers 201. Mutual TLS mode
/// requires a client certificate that chains to a given CA.
module Replay.Tests.HttpsRecorder

open System
open System.Collections.Concurrent
open System.Net
open System.Security.Cryptography.X509Certificates
open System.Threading
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Server.Kestrel.Https
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging

type Hit =
    { Method: string
      Path: string
      /// The client certificate's subject, when one was presented.
      ClientSubject: string option
      /// True when a Proxy-Authorization header reached the destination (it must not).
      ProxyAuthorization: bool }

type Recorder(certificate: X509Certificate2, requireClientFrom: X509Certificate2 option) =
    let hits = ConcurrentQueue<Hit>()
    let signal = new SemaphoreSlim(0)
    let app =
        let builder = WebApplication.CreateSlimBuilder()
        builder.Logging.ClearProviders() |> ignore
        builder.WebHost.ConfigureKestrel(fun options ->
            options.Listen(
                IPAddress.Loopback,
                0,
                fun listen ->
                    listen.UseHttps(fun (https: HttpsConnectionAdapterOptions) ->
                        https.ServerCertificate <- certificate
                        match requireClientFrom with
                        | Some ca ->
                            https.ClientCertificateMode <- ClientCertificateMode.RequireCertificate
                            https.ClientCertificateValidation <- fun client _ _ -> Certificates.chainsTo ca client
                        | None -> ())
                    |> ignore))
        |> ignore
        let app = builder.Build()
        app.Run(fun (ctx: HttpContext) ->
            task {
                do! ctx.Request.Body.CopyToAsync IO.Stream.Null
                hits.Enqueue
                    { Method = ctx.Request.Method
                      Path = ctx.Request.Path.ToUriComponent()
                      ClientSubject = ctx.Connection.ClientCertificate |> Option.ofObj |> Option.map _.Subject
                      ProxyAuthorization = ctx.Request.Headers.ContainsKey "Proxy-Authorization" }
                ctx.Response.StatusCode <- 201
                signal.Release() |> ignore
            }
            :> Threading.Tasks.Task)
        app
    do app.StartAsync().GetAwaiter().GetResult()
    let port =
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>().Addresses
        |> Seq.head
        |> fun address -> Uri(address).Port

    /// The base URL, by IP address (the name the server certificate carries).
    member _.Url = $"https://127.0.0.1:{port}"
    member _.Port = port
    member _.Hits = hits.ToArray() |> List.ofArray

    /// Waits until at least `count` requests arrived; false on timeout.
    member _.WaitForHits(count: int, timeout: TimeSpan) =
        let deadline = DateTime.UtcNow + timeout
        while hits.Count < count && DateTime.UtcNow < deadline do
            signal.Wait(TimeSpan.FromMilliseconds 200.0) |> ignore
        hits.Count >= count

    interface IDisposable with
        member _.Dispose() =
            app.StopAsync().GetAwaiter().GetResult()
            (app :> IAsyncDisposable).DisposeAsync().AsTask().GetAwaiter().GetResult()

let start certificate = new Recorder(certificate, None)
let startMutual certificate clientCa = new Recorder(certificate, Some clientCa)
