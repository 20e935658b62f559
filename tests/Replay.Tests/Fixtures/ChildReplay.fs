/// Helpers for tests that run the real `replay run` program as a child process
/// against the embedded broker: the properties file such a run needs, envelopes to
/// produce, and waiting on an observable condition (a file's lines, a process's
/// output) with a deadline instead of sleeping.
module Replay.Tests.ChildReplay

open System
open System.IO
open System.Threading
open Replay.Core
open Replay.Core.Envelope

/// A Bagheera envelope storing `payload` under `id` in namespace `ns`.
let envelope (ns: string) (id: string) (payload: string) : byte[] =
    encode (Data.envelope ns id payload CreateUpdate)

/// Writes a properties file with the settings every child replay on the mock broker
/// needs (KIP-848 groups, so the assignment comes at once) plus `extra` lines.
let properties (path: string) (extra: string list) =
    File.WriteAllLines(path, "group.protocol=consumer" :: extra)
    path

/// The text of a file a replay may be writing: .NET readers take a shared lock, which is refused
/// while the writer holds its exclusive one for an entry (milliseconds), so the read is tried until
/// it gets in; past the deadline, the last refusal is the test's failure.
let private readShared (path: string) =
    let read () =
        use stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite)
        use reader = new StreamReader(stream)
        reader.ReadToEnd()
    let text = ref null
    let attempt () =
        try
            text.Value <- read ()
            true
        with :? IOException when File.Exists path -> false
    if Wait.until (TimeSpan.FromSeconds 5.0) attempt then text.Value else read ()

/// The entries of a dead-letter file (none when it does not exist yet).
let deadLetters (path: string) =
    if File.Exists path then
        let text = readShared path
        // Only complete lines: the writer may be half way through the next one.
        text.Substring(0, text.LastIndexOf '\n' + 1).Split('\n', StringSplitOptions.RemoveEmptyEntries)
        |> Array.map (fun line -> Text.Json.JsonSerializer.Deserialize<Replay.Host.Delivery.DeadLetter> line)
        |> List.ofArray
    else
        []

/// Every file under a directory with its text, for "the secret appears nowhere" checks.
let filesUnder (dir: string) =
    Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
    |> Seq.map (fun path -> path, File.ReadAllText path)
    |> List.ofSeq

/// True when the text looks like a .NET stack trace.
let hasStackTrace (text: string) =
    text.Contains "Unhandled exception" || Text.RegularExpressions.Regex.IsMatch(text, @"^\s+at \S+\(", Text.RegularExpressions.RegexOptions.Multiline)

let private http = new Net.Http.HttpClient(Timeout = TimeSpan.FromSeconds 10.0)

/// The metrics URL a child printed (`--metrics-port 0`), once it has.
let metricsUrl (child: ReplayProcess.Child) =
    let m = Text.RegularExpressions.Regex.Match(child.Stderr, "metrics: (http://[0-9.:]+/metrics)")
    if m.Success then Some m.Groups[1].Value else None

/// One scrape of a metrics URL: each sample's series (`name{labels}` as written) and its value.
let scrape (url: string) =
    http.GetStringAsync(url).GetAwaiter().GetResult().Split '\n'
    |> Array.filter (fun line -> line <> "" && not (line.StartsWith "#"))
    |> Array.map (fun line ->
        let cut = line.LastIndexOf ' '
        line.Substring(0, cut), Double.Parse(line.Substring(cut + 1), Globalization.CultureInfo.InvariantCulture))
    |> Map.ofArray
