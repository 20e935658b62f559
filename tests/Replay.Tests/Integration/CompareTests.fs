/// `replay compare` end to end: the real program reads the embedded broker and sends
/// every record to a primary, a secondary and a candidate written for the test. All
/// three put a random requestId and the current time into their bodies; the candidate
/// differs on one JSON path for every fifth telemetry id and answers 500 for the crash
/// namespace. The run's counts per route must be exactly what was seeded, the random
/// fields must count as noise (or vanish with --ignore), and the report must show the
/// routes and the seeded path in a real browser.
module Replay.Tests.CompareTests

open System
open System.IO
open System.Text.Json
open System.Threading.Tasks
open Expecto
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open Replay.Tests

let private within = TimeSpan.FromSeconds 120.0
let private ids = [ 0..29 ]
let private countChanged id = id % 5 = 0

/// One of the three servers: answers POST /submit/{namespace}/{id}.
type private Server(candidate: bool) =
    let app =
        let builder = WebApplication.CreateSlimBuilder()
        builder.Logging.ClearProviders() |> ignore
        builder.WebHost.UseUrls "http://127.0.0.1:0" |> ignore
        let app = builder.Build()
        app.Run(fun (ctx: HttpContext) ->
            task {
                let parts = ctx.Request.Path.Value.Split('/', StringSplitOptions.RemoveEmptyEntries)
                let ns, id = parts[1], int parts[2]
                ctx.Response.StatusCode <- (if candidate && ns = "crash" then 500 else 201)
                ctx.Response.ContentType <- "application/json"
                let count = if candidate && ns = "telemetry" && countChanged id then id + 1 else id
                let body =
                    JsonSerializer.SerializeToUtf8Bytes
                        {| requestId = Guid.NewGuid().ToString()
                           time = DateTime.UtcNow.ToString "O"
                           result = {| accepted = true; count = count |} |}
                do! ctx.Response.Body.WriteAsync(body)
            }
            :> Task)
        app.StartAsync().GetAwaiter().GetResult()
        app
    member _.Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>().Addresses |> Seq.head
    interface IDisposable with
        member _.Dispose() = (app :> IAsyncDisposable).DisposeAsync().AsTask().GetAwaiter().GetResult()

/// The route lines of the summary: route -> (compared, equal, different, noisy, failed).
let private routeCounts (stderr: string) =
    [ for m in Text.RegularExpressions.Regex.Matches(
          stderr,
          @"compare: route (\S+): compared (\d+), equal (\d+), different (\d+), noisy (\d+), failed (\d+)"
      ) ->
          m.Groups[1].Value, (int m.Groups[2].Value, int m.Groups[3].Value, int m.Groups[4].Value, int m.Groups[5].Value, int m.Groups[6].Value) ]
    |> Map.ofList

let private compareWith (primaryUrl: string option) (extra: string list) =
    use cluster = Broker.start "t" 2
    Broker.produce
        cluster.BootstrapServers
        "t"
        [ for ns in [ "telemetry"; "crash" ] do
              for id in ids -> Broker.message $"{ns}-{id}" (ChildReplay.envelope ns (string id) "{}") ]
    use primary = new Server(false)
    use secondary = new Server(false)
    use candidate = new Server(true)
    let dir = Temp.dir ()
    let rules = Path.Combine(dir, "routes.yaml")
    File.WriteAllText(rules, "rules:\n  - name: telemetry\n    when: Namespace == \"telemetry\"\n  - name: crash\n    when: Namespace == \"crash\"\n")
    let report = Path.Combine(dir, "report")
    let properties = ChildReplay.properties (Path.Combine(dir, "kafka.properties")) [ $"bootstrap.servers={cluster.BootstrapServers}"; "auto.offset.reset=earliest" ]
    let code, _, stderr =
        ReplayProcess.run
            ([ "compare"; "-t"; "t"; "-gid"; "g"; "-p"; properties; "--until-end"; "--rules"; rules; "--report"; report
               "--primary"; $"{defaultArg primaryUrl primary.Url}/submit/{{namespace}}/{{id}}"
               "--secondary"; $"{secondary.Url}/submit/{{namespace}}/{{id}}"
               "--candidate"; $"{candidate.Url}/submit/{{namespace}}/{{id}}" ]
             @ extra)
            within
    Expect.equal code 0 $"compare exits 0 ({stderr})"
    routeCounts stderr, report, Broker.committedTotal cluster.BootstrapServers "g" "t" 2

let private compare extra = compareWith None extra

/// The paths of a report's differences.jsonl, noise or not.
let private reportedPaths (report: string) =
    File.ReadAllLines(Path.Combine(report, "differences.jsonl"))
    |> Array.collect (fun line ->
        use doc = JsonDocument.Parse line
        [| for d in doc.RootElement.GetProperty("differences").EnumerateArray() -> d.GetProperty("path").GetString() |])
    |> Set.ofArray

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Compare"
        [ test "finds exactly the seeded differences per route; the random fields are noise; the report shows them in a browser" {
              let counts, report, committed = compare []
              let seeded = ids |> List.filter countChanged |> List.length
              Expect.equal counts["telemetry"] (ids.Length, 0, seeded, ids.Length - seeded, 0) "telemetry: the seeded count differences, the rest noisy"
              Expect.equal counts["crash"] (ids.Length, 0, ids.Length, 0, 0) "crash: every record differs in status"
              Expect.equal committed (int64 (2 * ids.Length)) "every record committed once all three answered"
              let lines = File.ReadAllLines(Path.Combine(report, "differences.jsonl")) |> Array.map JsonDocument.Parse
              let pathsOf (line: JsonDocument) =
                  [ for d in line.RootElement.GetProperty("differences").EnumerateArray() do
                        if not (d.GetProperty("noise").GetBoolean()) then d.GetProperty("path").GetString() ]
              let telemetry = lines |> Array.filter (fun l -> l.RootElement.GetProperty("route").GetString() = "telemetry")
              let different = telemetry |> Array.filter (fun l -> l.RootElement.GetProperty("verdict").GetString() = "different")
              Expect.equal different.Length seeded "one line per seeded telemetry record"
              for line in different do
                  Expect.equal (pathsOf line) [ "$.result.count" ] "the seeded path, and nothing else, as a regression"
              let page = Chromium.dumpDom (Path.Combine(report, "report.html"))
              for text in [ "telemetry"; "crash"; "$.result.count"; "$.requestId"; "$.time" ] do
                  Expect.stringContains page text $"the rendered report shows {text}"
              Expect.containsAll (reportedPaths report) [ "$.requestId"; "$.time"; "$.result.count" ] "the random fields are in the report, as noise"
          }

          test "with --ignore the noise paths vanish: unchanged records are equal" {
              let counts, report, _ = compare [ "--ignore"; "$.requestId"; "--ignore"; "$.time" ]
              let seeded = ids |> List.filter countChanged |> List.length
              Expect.equal counts["telemetry"] (ids.Length, ids.Length - seeded, seeded, 0, 0) "equal but for the seeded records"
              let paths = reportedPaths report
              Expect.isFalse (paths.Contains "$.requestId" || paths.Contains "$.time") $"the ignored paths are nowhere in the report ({paths})"
              Expect.contains paths "$.result.count" "the seeded one still is"
          }

          test "an unreachable primary fails each record's comparison; the run goes on and ends" {
              let counts, _, committed = compareWith (Some "http://127.0.0.1:9") [ "--max-retry-duration"; "1s" ]
              for route in [ "telemetry"; "crash" ] do
                  let _, equal, different, noisy, failed = counts[route]
                  Expect.equal (equal, different, noisy, failed) (0, 0, 0, ids.Length) $"{route}: every record failed, none compared as equal or different"
              Expect.equal committed (int64 (2 * ids.Length)) "and every record is committed (the primary's copies are dead letters)"
          }

          test "--report with --dry-run is refused: a dry run sends nothing, so a report would call every record equal" {
              let report = Path.Combine(Temp.dir (), "report")
              let code, _, stderr =
                  ReplayProcess.run
                      [ "compare"; "-t"; "t"; "-gid"; "g"; "-b"; "127.0.0.1:9"; "--dry-run"; "--report"; report
                        "--primary"; "http://127.0.0.1:9/a/%k"; "--candidate"; "http://127.0.0.1:9/b/%k" ]
                      within
              Expect.equal code 2 $"bad settings ({stderr})"
              Expect.stringContains stderr "--report with --dry-run" "names the pair"
              Expect.isFalse (Directory.Exists report) "no report written"
          } ]
