/// `--concurrency auto` through the real program against a real HTTP server on 127.0.0.1
/// that models a fragile prototype: quick while it serves at most 8 requests at once,
/// slower by 20 ms for every request past that. The server measures, time-weighted, how
/// many requests it is serving; the replay must settle near 8 where a fixed 64 drowns it.
module Replay.Tests.AdaptiveConcurrencyTests

open System
open System.Diagnostics
open System.Net.Http
open System.Text.Json
open Expecto
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open Replay.Tests

let private within = TimeSpan.FromSeconds 60.0

/// How many requests a server was serving, weighted by how long it served that many.
type Load =
    { Seconds: float
      Answered: int
      Mean: float
      P50: int
      P90: int
      P99: int
      Max: int }

    override l.ToString() =
        $"mean {l.Mean:F1}, p50 {l.P50}, p90 {l.P90}, p99 {l.P99}, max {l.Max} over {l.Seconds:F1} s ({l.Answered} answered)"

/// A prototype with a knee: `fast` while it serves at most `knee` requests at once, and
/// `perExtra` slower for every request past that, decided when a request arrives.
type KneeServer(knee: int, fast: TimeSpan, perExtra: TimeSpan) =
    let gate = obj ()
    let clock = Stopwatch.StartNew()
    let mutable serving = 0
    let mutable answered = 0
    // Time spent serving n requests, since measuring (re)started.
    let mutable spent: float[] = Array.zeroCreate 1024
    let mutable since = 0.0
    let mutable last = 0.0
    let mutable answeredSince = 0
    let advance () =
        let now = clock.Elapsed.TotalSeconds
        spent[serving] <- spent[serving] + (now - last)
        last <- now

    let app =
        let builder = WebApplication.CreateSlimBuilder()
        builder.Logging.ClearProviders() |> ignore
        builder.WebHost.UseUrls "http://127.0.0.1:0" |> ignore
        let app = builder.Build()
        app.Run(fun (ctx: HttpContext) ->
            task {
                use sink = new IO.MemoryStream()
                do! ctx.Request.Body.CopyToAsync sink
                let took =
                    lock gate (fun () ->
                        advance ()
                        serving <- serving + 1
                        fast + perExtra * float (max 0 (serving - knee)))
                do! Threading.Tasks.Task.Delay took
                lock gate (fun () ->
                    advance ()
                    serving <- serving - 1
                    answered <- answered + 1)
                ctx.Response.StatusCode <- 201
            }
            :> Threading.Tasks.Task)
        app
    do app.StartAsync().GetAwaiter().GetResult()

    member _.Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>().Addresses |> Seq.head
    member _.Answered = lock gate (fun () -> answered)
    /// Seconds since measuring started.
    member _.MeasuredFor = clock.Elapsed.TotalSeconds - lock gate (fun () -> since)

    /// Forgets what was measured so far (the warm-up) and measures from now.
    member _.Measure() =
        lock gate (fun () ->
            advance ()
            spent <- Array.zeroCreate spent.Length
            since <- last
            answeredSince <- answered)

    member _.Load =
        lock gate (fun () ->
            advance ()
            let total = Array.sum spent
            let percentile p =
                let mutable seen = 0.0
                let mutable n = 0
                while seen + spent[n] < p * total do
                    seen <- seen + spent[n]
                    n <- n + 1
                n
            { Seconds = last - since
              Answered = answered - answeredSince
              Mean = (spent |> Array.mapi (fun n t -> float n * t) |> Array.sum) / max total 1e-9
              P50 = percentile 0.5
              P90 = percentile 0.9
              P99 = percentile 0.99
              Max = spent |> Array.findIndexBack (fun t -> t > 0.0) })

    interface IDisposable with
        member _.Dispose() =
            app.StopAsync().GetAwaiter().GetResult()
            (app :> IAsyncDisposable).DisposeAsync().AsTask().GetAwaiter().GetResult()

let private http = new HttpClient(Timeout = TimeSpan.FromSeconds 10.0)

/// The value of an unlabelled metric on a Prometheus page.
let private metric (name: string) (page: string) =
    page.Split '\n'
    |> Array.tryPick (fun l -> if l.StartsWith(name + " ") then Some(Double.Parse(l.Substring(name.Length + 1), Globalization.CultureInfo.InvariantCulture)) else None)

/// Replays the topic to `server` with `concurrency` until the server has been measured for
/// `measure` after a warm-up of `warmUp` answers; returns the server's load, the limits the
/// replay reported (progress events and /metrics) and its exit code after SIGTERM.
let private replayAgainst (properties: string) (group: string) (server: KneeServer) (concurrency: string list) warmUp (measure: TimeSpan) =
    use child =
        ReplayProcess.spawn (
            [ "run"; "-p"; properties; "-t"; "t"; "-gid"; group; "--from"; "earliest"; "--dest"; $"{server.Url}/submit/telemetry/%%k"
              "--log-format"; "json"; "--progress-interval"; "500ms"; "--metrics-port"; "0" ]
            @ concurrency
        )
    let started = server.Answered
    Expect.isTrue (Wait.until within (fun () -> server.Answered - started >= warmUp)) $"{group}: under way; stderr: {child.Stderr}"
    server.Measure()
    Expect.isTrue (Wait.until within (fun () -> server.MeasuredFor >= measure.TotalSeconds)) $"{group}: measured"
    let load = server.Load
    let metricsUrl =
        child.Stderr.Split '\n'
        |> Array.tryPick (fun l ->
            let i = l.IndexOf "http://127.0.0.1:"
            if i < 0 then None else Some(Uri(l.Substring(i).Split(' ', '"', '\\').[0], UriKind.Absolute)))
    let url = Expect.wantSome metricsUrl "the run says where its metrics are"
    let scraped = metric "replay_concurrency_limit" (http.GetStringAsync(Uri(url, "/metrics")).GetAwaiter().GetResult())
    child.Signal 15
    let code = child.WaitForExit within
    let reported =
        child.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)
        |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)
        |> Array.filter (fun e -> e.TryGetProperty("event") |> fst && e.GetProperty("event").GetString() = "progress")
        |> Array.map (fun e -> e.GetProperty("concurrency_limit").GetInt32())
    load, scraped, reported, code

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Adaptive concurrency"
        [ test "--concurrency auto settles near a fragile server's knee of 8 at once; a fixed 64 drowns it" {
              use cluster = Broker.start "t" 8
              let records = 12_000
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..records -> Data.store $"doc-{i}" "{}" ]
              let properties = ChildReplay.properties (Temp.file "kafka.properties") [ $"bootstrap.servers={cluster.BootstrapServers}" ]
              use server = new KneeServer(8, TimeSpan.FromMilliseconds 10.0, TimeSpan.FromMilliseconds 20.0)

              let auto, autoScraped, autoReported, autoCode =
                  replayAgainst properties "auto" server [ "--concurrency"; "auto" ] 300 (TimeSpan.FromSeconds 6.0)
              // Still records to send when measuring stopped: the load was the limit's, not the topic's end.
              Expect.isLessThan server.Answered records "the replay never ran out of records while measured"
              let fixedLoad, fixedScraped, fixedReported, fixedCode =
                  replayAgainst properties "fixed" server [ "--concurrency"; "64" ] 64 (TimeSpan.FromSeconds 3.0)
              printfn "adaptive concurrency against a knee at 8 (10 ms, +20 ms per request past 8):\n  auto:     %O\n  fixed 64: %O" auto fixedLoad

              Expect.equal autoCode (Some 0) "auto: a signal stops it cleanly"
              Expect.equal fixedCode (Some 0) "fixed: a signal stops it cleanly"
              Expect.isTrue (auto.Mean >= 5.0 && auto.Mean <= 12.0) $"auto keeps the server near its knee: {auto}"
              Expect.isLessThanOrEqual auto.P90 14 $"auto rarely goes far past it: {auto}"
              Expect.isGreaterThan fixedLoad.Mean 48.0 $"a fixed 64 overloads it: {fixedLoad}"
              Expect.isGreaterThan (float auto.Answered / auto.Seconds) (2.0 * float fixedLoad.Answered / fixedLoad.Seconds) "and auto gets more through"

              let autoLimit = Expect.wantSome autoScraped "/metrics has replay_concurrency_limit"
              Expect.isTrue (autoLimit >= 1.0 && autoLimit <= 20.0) $"/metrics shows the adaptive limit near the knee: {autoLimit}"
              Expect.isNonEmpty autoReported "progress reports the limit"
              Expect.isTrue (autoReported |> Array.forall (fun l -> l >= 1 && l <= 64)) $"progress limits within [1, 64]: %A{autoReported}"
              Expect.equal fixedScraped (Some 64.0) "/metrics shows a fixed --concurrency as it is"
              Expect.isTrue (fixedReported |> Array.forall ((=) 64)) $"and so does progress: %A{fixedReported}"
          } ]
