/// "What it answered", with the real `replay run` program, the embedded broker and real
/// HTTP servers: dead letters (file and topic) carry the destination's last answer and
/// `--responses` logs the exchanges — status, headers, body excerpt, latency — with a
/// credential the server echoes masked; the sample is the same in every run; and a
/// responses file that cannot be written costs the log, never the run.
module Replay.Tests.ResponsesTests

open System
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json
open Confluent.Kafka
open Expecto
open Replay.Core
open Replay.Host.Delivery
open Replay.Host.Security
open Replay.Tests
open Replay.Tests.ChildReplay

let private within = TimeSpan.FromSeconds 90.0
let private token = "Bearer-Secret-5e2f9a"

let private properties (bootstrap: string) =
    ChildReplay.properties (Temp.file "kafka.properties") [ $"bootstrap.servers={bootstrap}"; "auto.offset.reset=earliest" ]

let private idOf (hit: HttpRecorder.Hit) = hit.Path.Substring(hit.Path.LastIndexOf '/' + 1)

let private json (text: string) = (JsonDocument.Parse text).RootElement

/// The lines of a responses file.
let private lines (path: string) =
    File.ReadAllLines path |> Array.filter (fun l -> l.Trim() <> "") |> Array.map json |> List.ofArray

let private str (e: JsonElement) (name: string) = e.GetProperty(name).GetString()

/// Up to `count` records of a topic's partition 0, from its beginning.
let private readTopic (bootstrap: string) (topic: string) (count: int) =
    let config =
        ConsumerConfig(BootstrapServers = bootstrap, GroupId = $"reader-{Guid.NewGuid()}", EnableAutoCommit = false)
    use consumer = ConsumerBuilder<byte[], byte[]>(config).Build()
    consumer.Assign(TopicPartitionOffset(topic, Partition 0, Offset.Beginning))
    let got = Collections.Generic.List<Message<byte[], byte[]>>()
    let deadline = DateTime.UtcNow + within
    while got.Count < count && DateTime.UtcNow < deadline do
        match consumer.Consume(TimeSpan.FromMilliseconds 500.0) with
        | null -> ()
        | result -> got.Add result.Message
    consumer.Close()
    List.ofSeq got

let private header (message: Message<byte[], byte[]>) (name: string) =
    match message.Headers.TryGetLastBytes name with
    | true, bytes -> Some(Encoding.UTF8.GetString bytes)
    | _ -> None

let private http = new HttpClient(Timeout = TimeSpan.FromSeconds 10.0)

let private metric (url: Uri) (name: string) =
    http.GetStringAsync(url).GetAwaiter().GetResult().Split '\n'
    |> Array.tryPick (fun l -> if l.StartsWith(name + " ") then Some(float (l.Substring(name.Length + 1))) else None)
    |> Option.defaultValue 0.0

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Responses"
        [ test "a 400 that echoes the bearer token: dead letters (file and topic) and --responses show the status, headers and excerpt, the token masked" {
              use cluster = Broker.start "t" 1
              cluster.CreateTopic("dead", 1)
              cluster.CreateTopic("exchanges", 1)
              let values = [ for id in [ "doc-1"; "doc-2" ] -> id, envelope "telemetry" id $"{{\"id\":\"{id}\"}}" ]
              Broker.produce cluster.BootstrapServers "t" [ for id, value in values -> Broker.message id value ]
              use server = HttpRecorder.start (HttpRecorder.always 400)
              // A gateway that quotes what it refused: the credential comes back in the body.
              server.Body <-
                  fun hit _ ->
                      let auth = hit.Headers.TryFind "Authorization" |> Option.defaultValue "none"
                      Some("application/json", Encoding.UTF8.GetBytes $"{{\"error\":\"invalid_token\",\"detail\":\"{auth} may not write {hit.Path}\"}}")
              use dir = new Certificates.TempDir()
              let tokenFile = dir.File "token"
              File.WriteAllText(tokenFile, token)
              let deadFile = dir.File "dead.jsonl"
              let responsesFile = dir.File "responses.jsonl"
              let code, stdout, stderr =
                  ReplayProcess.run
                      [ "run"; "-t"; "t"; "-gid"; "g"; "-p"; properties cluster.BootstrapServers; "--until-end"
                        "--dest"; $"{server.Url}/submit/telemetry/%%k"; "--auth-bearer-file"; tokenFile
                        "--dead-letter"; deadFile; "--dead-letter-topic"; "dead"
                        "--responses"; responsesFile; "--responses-sample"; "0"; "--responses-topic"; "exchanges" ]
                      within
              Expect.equal code 0 $"until-end exits 0; stderr: {stderr}"
              Expect.isTrue (server.Hits |> List.forall (fun h -> h.Headers["Authorization"] = $"Bearer {token}")) "the token was really sent"
              let masked (path: string) = $"{{\"error\":\"invalid_token\",\"detail\":\"Bearer {Secrets.Mask} may not write {path}\"}}"

              // The file: the answer next to the record, redacted.
              let letters = deadLetters deadFile |> List.sortBy (fun l -> l.Offset)
              Expect.equal letters.Length 2 "both records are dead letters"
              for letter in letters do
                  let answer = letter.LastAnswer
                  Expect.equal letter.LastStatus (Nullable 400) "the last status"
                  Expect.equal answer.Outcome "answered" "an answer came"
                  Expect.equal answer.Status (Nullable 400) "its status"
                  Expect.equal answer.Headers["Content-Type"] "application/json" "the header that says what the body is"
                  Expect.equal answer.Body (masked $"/submit/telemetry/{letter.Id}") "the body the server sent, the token masked"
                  Expect.equal answer.BodyLength (Nullable(int64 (Encoding.UTF8.GetByteCount($"{{\"error\":\"invalid_token\",\"detail\":\"Bearer {token} may not write /submit/telemetry/{letter.Id}\"}}")))) "its whole length"
                  Expect.equal answer.BodyTruncated (Nullable false) "whole"

              // The topic: the record byte for byte, the answer in headers.
              let dead = readTopic cluster.BootstrapServers "dead" 2
              Expect.equal dead.Length 2 "both on the dead-letter topic"
              for message in dead do
                  let id = Encoding.UTF8.GetString message.Key
                  Expect.equal message.Value (values |> List.find (fst >> (=) id) |> snd) "the record's value byte for byte"
                  Expect.equal (header message DeadLetterTopic.StatusHeader) (Some "400") "the status"
                  Expect.equal (header message DeadLetterTopic.OutcomeHeader) (Some "answered") "an answer came"
                  Expect.equal (header message DeadLetterTopic.AnswerBodyHeader) (Some(masked $"/submit/telemetry/{id}")) "the excerpt, the token masked"
                  Expect.equal (header message DeadLetterTopic.AnswerTruncatedHeader) (Some "false") "whole"
                  let kept = json (header message DeadLetterTopic.AnswerHeadersHeader).Value
                  Expect.equal (str kept "Content-Type") "application/json" "the kept headers as JSON"

              // --responses with a sample of 0: the exchanges without a 2xx, in the file and the topic.
              let logged = lines responsesFile
              Expect.equal logged.Length 2 "one line per attempt (a 400 is not retried)"
              for line in logged do
                  let answer = line.GetProperty "answer"
                  let replayId = str line "replay_id"
                  Expect.stringStarts replayId "t/0/" "the replay id"
                  Expect.equal (answer.GetProperty("status").GetInt32()) 400 "the status"
                  Expect.isFalse (line.GetProperty("sampled").GetBoolean()) "logged because it was not a 2xx"
                  Expect.equal (line.GetProperty("attempt").GetInt32()) 1 "the first attempt"
                  Expect.isGreaterThan (line.GetProperty("latency_ms").GetDouble()) 0.0 "how long it took"
                  Expect.stringContains (str answer "body") $"Bearer {Secrets.Mask}" "the excerpt, the token masked"
              let exchanges = readTopic cluster.BootstrapServers "exchanges" 2
              Expect.equal
                  (exchanges |> List.map (fun m -> Encoding.UTF8.GetString m.Key) |> Set.ofList)
                  (logged |> List.map (fun l -> str l "replay_id") |> Set.ofList)
                  "the topic has the same exchanges, keyed by replay id"

              for path, text in filesUnder dir.Path |> List.filter (fun (p, _) -> p <> tokenFile) do
                  Expect.isFalse (text.Contains token) $"{path} must not contain the token"
              for m in dead @ exchanges do
                  Expect.isFalse (Encoding.UTF8.GetString(m.Value).Contains token) "no record value carries it"
                  for h in m.Headers do
                      Expect.isFalse (Encoding.UTF8.GetString(h.GetValueBytes()).Contains token) $"header {h.Key} does not carry it"
              Expect.isFalse ((stdout + stderr).Contains token) "nor any output"
          }

          test "--responses-sample 1 logs every exchange with latency, headers and body; 0 only those without a 2xx" {
              use cluster = Broker.start "t" 1
              let ids = [ for i in 1..8 -> $"doc-{i}" ] @ [ "flaky"; "bad" ]
              Broker.produce cluster.BootstrapServers "t" [ for id in ids -> Data.store id "{}" ]
              let destination () =
                  let server =
                      HttpRecorder.start (fun hit attempt ->
                          match idOf hit with
                          | "flaky" when attempt = 1 -> 503
                          | "bad" -> 422
                          | _ -> 201)
                  server.RetryAfterSeconds <- Some 0
                  server.Body <-
                      fun hit _ -> Some("application/json", Encoding.UTF8.GetBytes $"{{\"document\":\"{idOf hit}\"}}")
                  server
              use all = destination ()
              use errors = destination ()
              let props = properties cluster.BootstrapServers
              let allFile = Temp.file "all.jsonl"
              let errorsFile = Temp.file "errors.jsonl"
              let run group (server: HttpRecorder.Recorder) file sample =
                  ReplayProcess.spawn
                      [ "run"; "-t"; "t"; "-gid"; group; "-p"; props; "--until-end"; "--dest"; $"{server.Url}/submit/telemetry/%%k"
                        "--responses"; file; "--responses-sample"; sample ]
              use everything = run "all" all allFile "1"
              use onlyErrors = run "errors" errors errorsFile "0"
              Expect.equal (everything.WaitForExit within) (Some 0) $"sample 1 exits 0: {everything.Stderr}"
              Expect.equal (onlyErrors.WaitForExit within) (Some 0) $"sample 0 exits 0: {onlyErrors.Stderr}"

              let summarize (line: JsonElement) =
                  let answer = line.GetProperty "answer"
                  (str line "url").Substring((str line "url").LastIndexOf '/' + 1), line.GetProperty("attempt").GetInt32(), answer.GetProperty("status").GetInt32()
              let logged = lines allFile
              Expect.equal
                  (logged |> List.map summarize |> List.sort)
                  (List.sort ([ for i in 1..8 -> $"doc-{i}", 1, 201 ] @ [ "flaky", 1, 503; "flaky", 2, 201; "bad", 1, 422 ]))
                  "every attempt of every record, once"
              Expect.equal (all.Hits.Length) logged.Length "as many lines as the server saw requests"
              for line in logged do
                  let answer = line.GetProperty "answer"
                  let id = (str line "url").Substring((str line "url").LastIndexOf '/' + 1)
                  Expect.equal (str answer "body") $"{{\"document\":\"{id}\"}}" "the body the server sent, 2xx included"
                  Expect.equal (str (answer.GetProperty "headers") "Content-Type") "application/json" "the Content-Type"
                  Expect.isTrue (line.GetProperty("sampled").GetBoolean()) "chosen by the sample"
                  Expect.isGreaterThan (line.GetProperty("latency_ms").GetDouble()) 0.0 "its latency"
                  Expect.equal (str line "method") "POST" "the method"
                  Expect.equal (str line "destination") (Uri(all.Url).Authority) "the destination, named as in the metrics"
                  Expect.equal (str line "route") "defaults" "the route"
                  Expect.isTrue (DateTimeOffset.UtcNow - line.GetProperty("time").GetDateTimeOffset() < within) "when"
              let retried = logged |> List.find (fun l -> summarize l = ("flaky", 1, 503))
              Expect.equal (str (retried.GetProperty("answer").GetProperty "headers") "Retry-After") "0" "the Retry-After it was told"

              Expect.equal
                  (lines errorsFile |> List.map summarize |> List.sort)
                  [ "bad", 1, 422; "flaky", 1, 503 ]
                  "at sample 0, only the attempts without a 2xx"
              Expect.stringContains onlyErrors.Stderr "responses: 2 exchanges logged to file" "the summary counts them"
          }

          test "the sample is the same in two runs: exactly the records the core chooses, every time" {
              use cluster = Broker.start "t" 2
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..300 -> Data.store $"doc-{i}" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              let props = properties cluster.BootstrapServers
              let run group =
                  let file = Temp.file "responses.jsonl"
                  file,
                  ReplayProcess.spawn
                      [ "run"; "-t"; "t"; "-gid"; group; "-p"; props; "--until-end"; "--dest"; $"{server.Url}/submit/telemetry/%%k"
                        "--responses"; file; "--responses-sample"; "0.2"; "--responses-errors"; "false" ]
              let firstFile, first = run "first"
              let secondFile, second = run "second"
              use first = first
              use second = second
              Expect.equal (first.WaitForExit within) (Some 0) $"first run: {first.Stderr}"
              Expect.equal (second.WaitForExit within) (Some 0) $"second run: {second.Stderr}"
              let chosen file = lines file |> List.map (fun l -> str l "replay_id") |> Set.ofList
              let expected =
                  server.Hits
                  |> List.map (fun h -> h.Headers["X-Replay-Id"])
                  |> List.distinct
                  |> List.filter (fun id ->
                      let parts = id.Split '/'
                      ExchangeSample.chosen { Rate = Sampling.Rate.create 0.2 |> Result.toOption |> Option.get; Errors = false } parts[0] (int parts[1]) (int64 parts[2]))
                  |> Set.ofList
              Expect.equal (server.Hits.Length) 600 "both runs sent every record"
              Expect.isGreaterThan expected.Count 20 "a fifth of 300 records is a real sample"
              Expect.isLessThan expected.Count 120 "and not all of them"
              Expect.equal (chosen firstFile) expected "the first run logged exactly the chosen records"
              Expect.equal (chosen secondFile) expected "so did the second"
          }

          test "/dev/full as the responses file: delivery goes on, the log line, metric and summary say what was lost, exit 0" {
              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..20 -> Data.store $"doc-{i}" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 201)
              use child =
                  ReplayProcess.spawn
                      [ "run"; "-t"; "t"; "-gid"; "g"; "-p"; properties cluster.BootstrapServers
                        "--dest"; $"{server.Url}/submit/telemetry/%%k"; "--metrics-port"; "0"
                        "--responses"; "/dev/full"; "--responses-sample"; "1" ]
              Expect.isTrue (server.WaitForAccepted(20, within)) $"every record delivered: {child.Stderr}"
              let metricsUrl () =
                  child.Stderr.Split '\n'
                  |> Array.tryPick (fun l ->
                      let i = l.IndexOf "http://127.0.0.1:"
                      if i < 0 then None else Some(Uri(l.Substring(i).Split(' ', '"').[0])))
              Expect.isTrue (Wait.until within (fun () -> (metricsUrl ()).IsSome)) "prints where metrics are served"
              let unwritable () = metric (metricsUrl ()).Value "replay_responses_log_lines_total{outcome=\"unwritable\"}"
              Expect.isTrue (Wait.until within (fun () -> unwritable () = 20.0)) $"every line counted as unwritable (now {unwritable ()})"
              Expect.stringContains child.Stderr "could not be written to file /dev/full so far (No space left on device" "a log line says so"
              child.Signal 15
              Expect.equal (child.WaitForExit within) (Some 0) $"stops as asked, exit 0: {child.Stderr}"
              Expect.stringContains child.Stderr "responses: 0 exchanges logged to file /dev/full" "the summary"
              Expect.stringContains child.Stderr "20 could not be written (No space left on device" "and what was lost, and why"
              Expect.equal server.Accepted.Length 20 "each record once"
          } ]
