/// An OAuth2 token endpoint on 127.0.0.1 for tests (client credentials only): it checks
/// the client's Basic credentials, issues unique bearer tokens with the lifetime the test
/// sets, can revoke them, and can misbehave as real ones do (5xx that echo the secret, an
/// HTML login page, a JSON answer without a token). A destination asks it whether a token
/// it was sent is good.
module Replay.Tests.TokenServer

open System
open System.Collections.Concurrent
open System.Net
open System.Text
open System.Text.Json
open System.Threading
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging

/// How the endpoint answers a token request.
type Mode =
    /// A token, when the credentials are right (else 401 invalid_client).
    | Issue
    /// This status, with an HTML page that quotes the client secret (servers do echo input).
    | Failing of status: int
    /// 200 with a login page instead of JSON.
    | Html
    /// 200 JSON without an access_token.
    | NoToken

/// One token request as received.
type Asked =
    { ClientId: string
      ClientSecret: string
      GrantType: string
      Scope: string }

type Server(clientId: string, clientSecret: string) =
    let asked = ConcurrentQueue<Asked>()
    let issued = ConcurrentQueue<string>()
    let revoked = ConcurrentDictionary<string, bool>()
    let mutable mode = Issue
    let mutable expiresIn = 3600
    let run = Guid.NewGuid().ToString("N").Substring(0, 12)
    let app =
        let builder = WebApplication.CreateSlimBuilder()
        builder.Logging.ClearProviders() |> ignore
        builder.WebHost.UseUrls("http://127.0.0.1:0") |> ignore
        let app = builder.Build()
        app.MapPost(
            "/oauth2/token",
            Func<HttpContext, Threading.Tasks.Task>(fun ctx ->
                task {
                    let! form = ctx.Request.ReadFormAsync()
                    let id, secret =
                        match string ctx.Request.Headers.Authorization with
                        | basic when basic.StartsWith "Basic " ->
                            let pair = Encoding.UTF8.GetString(Convert.FromBase64String(basic.Substring 6)).Split(':', 2)
                            WebUtility.UrlDecode pair[0], WebUtility.UrlDecode pair[1]
                        | _ -> string form["client_id"], string form["client_secret"]
                    asked.Enqueue { ClientId = id; ClientSecret = secret; GrantType = string form["grant_type"]; Scope = string form["scope"] }
                    let json (status: int) (body: obj) =
                        ctx.Response.StatusCode <- status
                        ctx.Response.ContentType <- "application/json"
                        ctx.Response.WriteAsync(JsonSerializer.Serialize body)
                    match mode with
                    | Issue when id = clientId && secret = clientSecret ->
                        let token = $"tok-{run}-{issued.Count + 1}"
                        issued.Enqueue token
                        do! json 200 {| access_token = token; token_type = "Bearer"; expires_in = expiresIn |}
                    | Issue -> do! json 401 {| error = "invalid_client"; error_description = $"unknown client {id}" |}
                    | Failing status ->
                        ctx.Response.StatusCode <- status
                        ctx.Response.ContentType <- "text/html"
                        do! ctx.Response.WriteAsync $"<html><body>down; you sent {secret}</body></html>"
                    | Html ->
                        ctx.Response.ContentType <- "text/html"
                        do! ctx.Response.WriteAsync "<html><body>Please log in</body></html>"
                    | NoToken -> do! json 200 {| token_type = "Bearer"; expires_in = 60 |}
                }
                :> Threading.Tasks.Task)
        )
        |> ignore
        app
    do app.StartAsync().GetAwaiter().GetResult()
    let url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>().Addresses |> Seq.head

    /// The token endpoint's URL.
    member _.TokenUrl = url + "/oauth2/token"
    member _.Mode
        with get () = mode
        and set value = mode <- value
    /// expires_in of the tokens issued from now on.
    member _.ExpiresIn
        with get () = expiresIn
        and set value = expiresIn <- value
    member _.Asked = List.ofSeq asked
    /// Every token issued, oldest first.
    member _.Issued = List.ofSeq issued
    /// Issued and not revoked.
    member _.IsValid(token: string) = Seq.contains token issued && not (revoked.ContainsKey token)
    /// Every token issued so far stops being good (as when a gateway's keys rotate).
    member _.RevokeAll() =
        for token in issued do
            revoked[token] <- true
    /// What a destination behind the gateway answers: 201 for a good bearer token, 401 otherwise.
    member this.Gate: HttpRecorder.Responder =
        fun hit _ ->
            match hit.Headers.TryFind "Authorization" with
            | Some value when value.StartsWith "Bearer " && this.IsValid(value.Substring 7) -> 201
            | _ -> 401

    interface IDisposable with
        member _.Dispose() =
            app.StopAsync().GetAwaiter().GetResult()
            (app :> IAsyncDisposable).DisposeAsync().AsTask().GetAwaiter().GetResult()
