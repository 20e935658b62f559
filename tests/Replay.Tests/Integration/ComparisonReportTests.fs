/// The comparison report through real parts: three HTTP servers written for the
/// test (primary, secondary and candidate on 127.0.0.1, each putting a random
/// requestId and the current time into every body), the candidate differing on
/// known JSON paths for a known share of ids, answering another status for one
/// namespace and a hostile note for one id; one primary unreachable for a few ids.
/// The report must find exactly what was seeded, put requestId and the time under
/// noise (or nowhere, with --ignore), write differences.jsonl redacted, and write
/// a report.html that headless Chromium shows with the routes and the seeded paths
/// and the hostile note as text. Then the report directory's faults: not a
/// directory, not creatable, and a disk that is full.
module Replay.Tests.ComparisonReportTests

open System
open System.IO
open System.Net.Http
open System.Text
open System.Text.Encodings.Web
open System.Text.Json
open System.Text.RegularExpressions
open System.Threading.Tasks
open Expecto
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open Replay.Core
open Replay.Core.Outcome
open Replay.Host.Comparison
open Replay.Host.Security
open Replay.Tests

type private Role =
    | Primary
    | Secondary
    | Candidate

// What was seeded, as rules over (namespace, id): the servers answer by them and the
// expectations are counted from them.
let private namespaces = [ "telemetry"; "crash"; "metrics" ]
let private records = [ for id in 0..149 -> namespaces[id % 3], id ]
let private routeOf ns = $"POST /submit/{ns}"
let private countChanged ns id = ns <> "crash" && id % 5 = 0
let private priceChanged ns id = ns = "telemetry" && id % 4 = 0
let private statusChanged ns (_: int) = ns = "crash"
let private hostileId = 2 // a metrics id
let private primaryDown ns id = ns = "metrics" && id % 30 = 8
let private secret = "s3cr3t-in-body-7d2e"
let private hostileNote = $"</script><img src=x onerror=alert(1)> {secret}"

/// The fields where the candidate's answer to (ns, id) was made to differ.
let private seeded ns id =
    [ if countChanged ns id then "$.result.count"
      if priceChanged ns id then "$.items[*].price"
      if statusChanged ns id then "status"
      if ns = "metrics" && id = hostileId then "$.result.note" ]

let private body role (ns: string) (id: int) =
    use stream = new MemoryStream()
    // Relaxed escaping, so that the hostile note arrives as the raw characters it is.
    (use w = new Utf8JsonWriter(stream, JsonWriterOptions(Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping))
     w.WriteStartObject()
     w.WriteString("requestId", Guid.NewGuid().ToString())
     w.WriteString("time", DateTime.UtcNow.ToString("O"))
     w.WriteString("namespace", ns)
     w.WriteNumber("id", id)
     w.WriteString("echo", $"token {secret}")
     w.WriteStartObject "result"
     w.WriteBoolean("accepted", true)
     w.WriteNumber("count", (if role = Candidate && countChanged ns id then id + 1 else id))
     w.WriteStartArray "tags"
     // The candidate lists tags in another order for even ids: --unordered makes that no difference.
     for tag in (if role = Candidate && id % 2 = 0 then [ "c"; "a"; "b" ] else [ "a"; "b"; "c" ]) do
         w.WriteStringValue tag
     w.WriteEndArray()
     if role = Candidate && ns = "metrics" && id = hostileId then w.WriteString("note", hostileNote)
     w.WriteEndObject()
     w.WriteStartArray "items"
     for k in 0..1 do
         w.WriteStartObject()
         w.WriteString("sku", $"sku-{k}")
         // Every candidate price is off by 0.004, inside --tolerance 0.01; seeded ones by a whole unit.
         let offset = if role = Candidate then 0.004m + (if priceChanged ns id && k = 1 then 1m else 0m) else 0m
         w.WriteNumber("price", 10.5m + decimal k + offset)
         w.WriteEndObject()
     w.WriteEndArray()
     w.WriteEndObject())
    stream.ToArray()

/// One of the three servers: answers POST /submit/{ns}/{id} as its role says.
type private Server(role: Role) =
    let app =
        let builder = WebApplication.CreateSlimBuilder()
        builder.Logging.ClearProviders() |> ignore
        builder.WebHost.UseUrls "http://127.0.0.1:0" |> ignore
        let app = builder.Build()
        app.Run(fun (ctx: HttpContext) ->
            task {
                let parts = ctx.Request.Path.Value.Split('/', StringSplitOptions.RemoveEmptyEntries)
                let ns, id = parts[1], int parts[2]
                ctx.Response.StatusCode <- (if role = Candidate && statusChanged ns id then 500 else 201)
                ctx.Response.ContentType <- "application/json"
                ctx.Response.Headers["X-Session-Token"] <- "session-value-9f1c"
                do! ctx.Response.Body.WriteAsync(body role ns id)
            }
            :> Task)
        app.StartAsync().GetAwaiter().GetResult()
        app
    member _.Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>().Addresses |> Seq.head
    interface IDisposable with
        member _.Dispose() = (app :> IAsyncDisposable).DisposeAsync().AsTask().GetAwaiter().GetResult()

let private answerOf (response: HttpResponseMessage) =
    task {
        let! bytes = response.Content.ReadAsByteArrayAsync()
        let headers =
            [ for h in Seq.append response.Headers response.Content.Headers do
                  for v in h.Value -> h.Key, v ]
        return
            { Status = int response.StatusCode
              RetryAfter = None
              Headers = headers
              Body = bytes
              BodyLength = int64 bytes.Length
              BodyHash = [||] }
    }

let private options dir ignore : ComparisonOptions =
    ComparisonOptions(
        Tolerance = 0.01,
        Unordered = [ "$.result.tags" ],
        Ignore = ignore,
        ReportDirectory = dir,
        ReportInterval = Threading.Timeout.InfiniteTimeSpan)

let private opened (result: Replay.Host.Result<ComparisonReport>) =
    if result.IsOk then result.Value else failtest result.Error

let private secrets () =
    let s = Secrets()
    s.Add secret
    s

/// Both reports, fed the same answers: one as the operator first runs it, one ignoring requestId and time.
type private Run =
    { Noisy: ComparisonReport
      NoisyDir: string
      Quiet: ComparisonReport
      Metrics: string }

let private run =
    lazy
        (use primary = new Server(Primary)
         use secondary = new Server(Secondary)
         use candidate = new Server(Candidate)
         let down = $"http://127.0.0.1:{HttpRecorder.freePort ()}"
         let noisyDir = Temp.dir ()
         let noisy = opened (ComparisonReport.Open(options noisyDir [], secrets ()))
         let quiet = opened (ComparisonReport.Open(options (Temp.dir ()) [ "$.requestId"; "$.time" ], secrets ()))
         use client = new HttpClient()
         let send (url: string) ns id =
             task {
                 use content = new ByteArrayContent("{}"B)
                 use! response = client.PostAsync($"{url}/submit/{ns}/{id}", content)
                 return! answerOf response
             }
         Parallel
             .ForEachAsync(
                 records,
                 ParallelOptions(MaxDegreeOfParallelism = 8),
                 fun (ns, id) _ ->
                     task {
                         let route, replayId, line = routeOf ns, $"compare/0/{id}", $"POST /submit/{ns}/{id}"
                         try
                             let! p = send (if primaryDown ns id then down else primary.Url) ns id
                             let! s = send secondary.Url ns id
                             let! c = send candidate.Url ns id
                             for report in [ noisy; quiet ] do
                                 report.Observe(route, replayId, line, p, s, c) |> ignore
                         with :? HttpRequestException as e ->
                             for report in [ noisy; quiet ] do
                                 report.Failed(route, replayId, line, $"primary unreachable: {e.Message}")
                     }
                     |> ValueTask)
             .GetAwaiter()
             .GetResult()
         let registry = Prometheus.Metrics.NewCustomRegistry()
         ComparisonMetrics.Register(registry, noisy)
         use metrics = new MemoryStream()
         registry.CollectAndExportAsTextAsync(metrics).GetAwaiter().GetResult()
         Expect.isNull (noisy.Finish()) "the noisy report was written whole"
         Expect.isNull (quiet.Finish()) "the quiet report was written whole"
         { Noisy = noisy
           NoisyDir = noisyDir
           Quiet = quiet
           Metrics = Encoding.UTF8.GetString(metrics.ToArray()) })

let private compared ns = records |> List.filter (fun (n, id) -> n = ns && not (primaryDown n id))
let private expectedDifferent ns = compared ns |> List.filter (fun (n, id) -> not (seeded n id).IsEmpty) |> List.length |> int64

let private expectedFields ns =
    compared ns
    |> List.collect (fun (n, id) -> seeded n id)
    |> List.countBy id
    |> List.map (fun (f, n) -> f, int64 n)
    |> List.sort

let private route (report: ComparisonReport) ns =
    report.Summary() |> Seq.find (fun r -> r.Route = routeOf ns)

let private regressions (r: ComparisonTally.RouteSummary) =
    r.Fields |> Array.filter (fun f -> not f.IsNoise) |> Array.map (fun f -> f.Field, f.Differences) |> List.ofArray |> List.sort

let private attribute name (tag: string) =
    let m = Regex.Match(tag, $"\\s{name}=\"([^\"]*)\"")
    if m.Success then Net.WebUtility.HtmlDecode m.Groups[1].Value else failtest $"no {name} in {tag}"

/// The route sections of a DOM, each with the (path, count) rows of one of its tables.
let private sections (dom: string) (table: string) =
    [ for s in Regex.Matches(dom, "<section[^>]*class=\"route\"[^>]*>.*?</section>", RegexOptions.Singleline) ->
          let head = Regex.Match(s.Value, "<section[^>]*>").Value
          let rows =
              match Regex.Match(s.Value, $"<table class=\"{table}\">.*?</table>", RegexOptions.Singleline) with
              | t when t.Success ->
                  [ for row in Regex.Matches(t.Value, "<tr class=\"path\"[^>]*>") ->
                        attribute "data-path" row.Value, int64 (attribute "data-count" row.Value) ]
              | _ -> []
          attribute "data-route" head, List.sort rows ]
    |> Map.ofList

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Comparison report"
        [ test "counts per route and path equal what was seeded; requestId and the time are noise; an unreachable primary is a failure" {
              let r = run.Force()
              for ns in namespaces do
                  let summary = route r.Noisy ns
                  let c = summary.Counts
                  let failed = records |> List.filter (fun (n, id) -> n = ns && primaryDown n id) |> List.length |> int64
                  Expect.equal c.Compared (int64 (compared ns).Length) $"{ns}: compared"
                  Expect.equal c.Different (expectedDifferent ns) $"{ns}: different"
                  // Every body has a fresh requestId and time, so no record is equal; the rest are noisy.
                  Expect.equal c.Noisy (c.Compared - c.Different) $"{ns}: noisy"
                  Expect.equal c.Equal 0L $"{ns}: equal"
                  Expect.equal c.Failed failed $"{ns}: failed"
                  Expect.equal (regressions summary) (expectedFields ns) $"{ns}: the seeded paths, exactly"
                  let noise = summary.Fields |> Array.filter _.IsNoise |> Array.map (fun f -> f.Field, f.Differences, f.Noise) |> List.ofArray |> List.sort
                  Expect.equal noise [ "$.requestId", c.Compared, c.Compared; "$.time", c.Compared, c.Compared ] $"{ns}: noise"
              let crashDifferent = expectedDifferent "crash"
              Expect.isTrue (r.Metrics.Contains $"replay_compare_records{{route=\"POST /submit/crash\",outcome=\"different\"}} {crashDifferent}") r.Metrics
              Expect.stringContains (r.Noisy.Progress()) $"different {r.Noisy.Totals().Different}" "the progress line"
          }

          test "with --ignore requestId and time vanish from the report, and the rest is equal" {
              let r = run.Force()
              for ns in namespaces do
                  let summary = route r.Quiet ns
                  Expect.equal (summary.Fields |> Array.map (fun f -> f.Field, f.Differences) |> List.ofArray |> List.sort) (expectedFields ns) $"{ns}: only the seeded paths"
                  Expect.equal summary.Counts.Different (expectedDifferent ns) $"{ns}: different"
                  Expect.equal summary.Counts.Equal (summary.Counts.Compared - summary.Counts.Different) $"{ns}: equal"
                  Expect.equal summary.Counts.Noisy 0L $"{ns}: noisy"
          }

          test "differences.jsonl has a redacted line per differing or failed record, naming the seeded paths" {
              let r = run.Force()
              let text = File.ReadAllText(Path.Combine(r.NoisyDir, ReportFiles.DifferencesName))
              Expect.isFalse (text.Contains secret) "the known secret is masked in bodies and excerpts"
              Expect.isFalse (text.Contains "session-value-9f1c") "a session header's value is masked"
              Expect.stringContains text Secrets.Mask "the mask shows where"
              let lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries) |> Array.map JsonDocument.Parse
              let verdict (l: JsonDocument) = l.RootElement.GetProperty("verdict").GetString()
              Expect.equal (lines |> Array.filter (fun l -> verdict l = "failed") |> Array.length) (records |> List.filter (fun (n, i) -> primaryDown n i) |> List.length) "failed lines"
              Expect.equal (lines |> Array.filter (fun l -> verdict l = "different") |> Array.length |> int64) (namespaces |> List.sumBy expectedDifferent) "different lines"
              for l in lines |> Array.filter (fun l -> verdict l <> "failed") do
                  let root = l.RootElement
                  let id = int (root.GetProperty("replay_id").GetString().Split('/')[2])
                  let ns = root.GetProperty("route").GetString().Split('/')[2]
                  let regressions =
                      [ for d in root.GetProperty("differences").EnumerateArray() do
                            if not (d.GetProperty("noise").GetBoolean()) then d.GetProperty("field").GetString() ]
                  // The noise flag is what was known when the line was written: the first records of a route may not know it yet.
                  Expect.containsAll regressions (seeded ns id) $"{ns}/{id}: the seeded fields are listed"
                  Expect.equal (root.GetProperty("primary").GetProperty("status").GetInt32()) 201 "the primary's answer"
                  Expect.equal (root.GetProperty("candidate").GetProperty("status").GetInt32()) (if ns = "crash" then 500 else 201) "the candidate's answer"
          }

          test "report.html opened from the file in headless Chromium shows the routes and the seeded paths, and the hostile note as text" {
              let r = run.Force()
              let html = Path.Combine(r.NoisyDir, ReportFiles.HtmlName)
              let dom = Chromium.dumpDom html
              let paths = sections dom "paths"
              Expect.equal (paths.Keys |> List.ofSeq) (namespaces |> List.map routeOf |> List.sort) "one section per route"
              for ns in namespaces do
                  Expect.equal paths[routeOf ns] (expectedFields ns) $"{ns}: the rendered paths and counts"
                  Expect.equal ((sections dom "noise")[routeOf ns] |> List.map fst) [ "$.requestId"; "$.time" ] $"{ns}: noise shown apart"
              Expect.isFalse (Regex.IsMatch(dom, "<img", RegexOptions.IgnoreCase)) "the hostile note made no element"
              Expect.stringContains dom "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" "the hostile note is text on the page"
              Expect.isFalse (dom.Contains secret) "the known secret is masked on the page"
          }

          test "report.html is rewritten while the run goes on, not only at the end" {
              let dir = Temp.dir ()
              let report = opened (ComparisonReport.Open(ComparisonOptions(ReportDirectory = dir, ReportInterval = TimeSpan.FromMilliseconds 50.0), Secrets()))
              let html = Path.Combine(dir, ReportFiles.HtmlName)
              Expect.isFalse (File.ReadAllText(html).Contains "GET /periodic") "the first page has no routes"
              report.Failed("GET /periodic", "t/0/1", "GET /periodic/1", "refused")
              let shows () =
                  try
                      File.ReadAllText(html).Contains "GET /periodic"
                  with :? IOException ->
                      false
              Expect.isTrue (Wait.until (TimeSpan.FromSeconds 30.0) shows) "the route appears without a call to WriteReport"
              Expect.isNull (report.Finish()) "written whole"
          }

          test "a report directory that is a file, or cannot be created, is refused at start with the reason" {
              let file = Temp.file "not-a-dir"
              File.WriteAllText(file, "x")
              let result = ComparisonReport.Open(options file [], Secrets())
              Expect.isFalse result.IsOk "refused"
              Expect.stringContains result.Error "is a file" "says why"
              let under = ComparisonReport.Open(options (Path.Combine(file, "sub")) [], Secrets())
              Expect.isFalse under.IsOk "refused"
              Expect.stringContains under.Error "cannot be created" "says why"
              let badFlag = ComparisonReport.Open(options (Temp.dir ()) [ "requestId" ], Secrets())
              Expect.stringContains badFlag.Error "$.requestId" "a bad --ignore says what to write"
          }

          test "a full disk ends differences.jsonl, not the run: counting goes on and the problem is reported" {
              let dir = Temp.dir ()
              File.CreateSymbolicLink(Path.Combine(dir, ReportFiles.DifferencesName), "/dev/full") |> ignore
              let report = opened (ComparisonReport.Open(options dir [], Secrets()))
              let answer (n: int) = { Answer.status 200 None with Body = Encoding.UTF8.GetBytes $"{{\"n\":{n}}}"; BodyLength = -1L }
              for i in 1..3 do
                  Expect.equal (report.Observe("r", $"t/0/{i}", "POST /x", answer 1, Unchecked.defaultof<Answer>, answer 2)) ComparisonVerdict.Different "compared"
              Expect.equal (report.Totals().Different) 3L "every record counted"
              let problem = report.Finish()
              Expect.isNotNull problem "the failure is reported"
              Expect.stringContains problem ReportFiles.DifferencesName "naming the file"
              Expect.stringContains (File.ReadAllText(Path.Combine(dir, ReportFiles.HtmlName))) "No space left" "and shown on the page"
          }

          test "a full disk under report.html is refused at start, and mid-run keeps the previous page" {
              let dir = Temp.dir ()
              let partial = Path.Combine(dir, ReportFiles.HtmlName + ".partial")
              File.CreateSymbolicLink(partial, "/dev/full") |> ignore
              let refused = ComparisonReport.Open(options dir [], Secrets())
              Expect.isFalse refused.IsOk "refused"
              Expect.stringContains refused.Error "report.html" "names the file"

              let dir = Temp.dir ()
              let report = opened (ComparisonReport.Open(options dir [], Secrets()))
              let before = File.ReadAllText(Path.Combine(dir, ReportFiles.HtmlName))
              File.CreateSymbolicLink(Path.Combine(dir, ReportFiles.HtmlName + ".partial"), "/dev/full") |> ignore
              report.Failed("r", "t/0/1", "POST /x", "refused")
              Expect.isNotNull (report.WriteReport()) "the failed write is reported"
              Expect.equal (File.ReadAllText(Path.Combine(dir, ReportFiles.HtmlName))) before "the previous page stays"
              Expect.isNull (report.Finish()) "the next write, with room again, succeeds"
              Expect.stringContains (File.ReadAllText(Path.Combine(dir, ReportFiles.HtmlName))) "refused" "and shows the failure"
          } ]
