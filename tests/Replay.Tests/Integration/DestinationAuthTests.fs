/// Credentials towards a destination behind a gateway, through real parts: a bearer
/// file rotated while requests go out, an OAuth2 token endpoint written for the tests
/// (one fetch, renewal before expiry on a test clock, renewal on a 401, failures of
/// every kind), both HTTP paths, and the real program: a token endpoint down at start
/// delays the records but dead-letters none, and neither the client secret nor a token
/// is ever printed.
module Replay.Tests.DestinationAuthTests

open System
open System.Collections.Concurrent
open System.IO
open System.Threading
open Expecto
open Replay.Core
open Replay.Core.Outcome
open Replay.Core.Pipeline
open Replay.Host.Delivery
open Replay.Host.Security
open Replay.Tests
open Replay.Tests.ChildReplay

let private within = TimeSpan.FromSeconds 60.0
let private clientId = "replay-test"
let private clientSecret = "Client-S3cret-9f1e"

/// A clock the test moves.
type private ManualClock() =
    inherit TimeProvider()
    let mutable now = DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero)
    member _.Advance(by: TimeSpan) = now <- now + by
    override _.GetUtcNow() = now

let private post (url: string) (headers: (string * string) list) : Request =
    { Method = Method.Post
      Url = Uri url
      Headers = ("X-Replay-Id", $"t/0/{Guid.NewGuid()}") :: headers
      Body = ReadOnlyMemory(Text.Encoding.ASCII.GetBytes "{}")
      OrderingKey = "doc"
      Route = "test"
      StatusPolicy = StatusPolicy.defaults
      Destination = 0 }

/// The lean path and the HttpClient path, both with `tokens`.
let private senders (tokens: ITokenSource) =
    [ "lean", new HttpSender(new Net.Http.SocketsHttpHandler(), TimeSpan.FromSeconds 10.0, new PlainHttp(), null, tokens)
      "HttpClient", new HttpSender(HttpSender.CreateHandler(4, null), TimeSpan.FromSeconds 10.0, null, null, tokens) ]

let private lean (tokens: ITokenSource) =
    new HttpSender(new Net.Http.SocketsHttpHandler(), TimeSpan.FromSeconds 10.0, new PlainHttp(), null, tokens)

let private send (sender: HttpSender) (url: string) =
    sender.SendAsync(post url [], CancellationToken.None).AsTask().GetAwaiter().GetResult()

/// Waits until `condition` holds, trying it at most every 50 ms (each try sends a request).
let private eventually (condition: unit -> bool) =
    let watch = Diagnostics.Stopwatch()
    Wait.until (TimeSpan.FromSeconds 20.0) (fun () ->
        if watch.IsRunning && watch.ElapsedMilliseconds < 50L then false
        else
            watch.Restart()
            condition ())

let private statusOf attempt =
    match attempt with
    | Answered answer -> answer.Status
    | other -> failtestf "expected an answer, got %A" other

let private bearerOf (hit: HttpRecorder.Hit) = hit.Headers.TryFind "Authorization"

let private warnings () =
    let seen = ConcurrentQueue<string>()
    seen, Action<string>(fun message -> seen.Enqueue message)

let private oauth2 (tokens: TokenServer.Server) (clock: TimeProvider option) warn =
    new OAuth2Tokens(Uri tokens.TokenUrl, clientId, clientSecret, "ingest:write", TimeSpan.FromSeconds 10.0, Secrets(), warn, null,
                     Option.toObj clock)

[<Tests>]
let tests =
    testList
        "Destination authentication"
        [ test "a bearer file's token goes out on both paths, replacing a route's Authorization; a rotated file is picked up while running" {
              use dir = new Certificates.TempDir()
              let path = dir.File "token"
              File.WriteAllText(path, "token-A\n")
              let valid = ConcurrentDictionary<string, bool>()
              valid["Bearer token-A"] <- true
              use destination = HttpRecorder.start (fun hit _ -> if (bearerOf hit |> Option.exists valid.ContainsKey) then 201 else 401)
              let seen, warn = warnings ()
              let source =
                  match BearerFile.Open(path, Secrets(), warn) with
                  | opened when opened.IsOk -> opened.Value
                  | failed -> failtest failed.Error
              for name, sender in senders source do
                  use sender = sender
                  let attempt = sender.SendAsync(post $"{destination.Url}/x" [ "Authorization", "Bearer production-credential" ], CancellationToken.None).AsTask().Result
                  Expect.equal (statusOf attempt) 201 $"{name}: accepted"
              Expect.equal [ for hit in destination.Hits -> bearerOf hit ] [ Some "Bearer token-A"; Some "Bearer token-A" ] "ours, never the route's"

              // Rotated: both tokens are good for a while, so only the periodic look can switch.
              valid["Bearer token-B"] <- true
              File.WriteAllText(path, "token-B\n")
              for name, sender in senders source do
                  use sender = sender
                  let mark = destination.Hits.Length
                  Expect.isTrue
                      (eventually (fun () ->
                          statusOf (send sender $"{destination.Url}/x") = 201
                          && destination.Hits |> List.skip mark |> List.exists (fun h -> bearerOf h = Some "Bearer token-B")))
                      $"{name}: the new token went out"

              // Rotated again, and the old token dies with it: the 401 makes the file be read at once.
              valid.Clear()
              valid["Bearer token-C"] <- true
              File.WriteAllText(path, "Bearer token-C")
              for name, sender in senders source do
                  use sender = sender
                  Expect.equal (statusOf (send sender $"{destination.Url}/x")) 201 $"{name}: delivered in the same attempt"

              // Deleted, then emptied: the last good token stays in use, with a warning each.
              use sender = lean source
              File.Delete path
              Expect.isTrue (eventually (fun () -> statusOf (send sender $"{destination.Url}/x") = 201 && not seen.IsEmpty)) "warned"
              Expect.stringContains (Seq.head seen) "does not exist; still sending the token it held before" "what and what it does about it"
              File.WriteAllText(path, "")
              Expect.isTrue (eventually (fun () -> statusOf (send sender $"{destination.Url}/x") = 201 && seen.Count >= 2)) "warned again"
              Expect.stringContains (Seq.last seen) "holds no usable token: it is empty" "the empty file named"
          }

          test "a bearer file that is missing, empty or not a header value is refused up front with the reason" {
              use dir = new Certificates.TempDir()
              for content, says in
                  [ None, "does not exist"
                    Some "", "holds no usable token: it is empty"
                    Some "  \n", "holds no usable token: it is empty"
                    Some "two words", "a character a header cannot carry (a space)"
                    Some "line\r\nX-Injected: 1", "a character a header cannot carry (U+000D)"
                    Some "caf\u00e9", "a character a header cannot carry (U+00E9)" ] do
                  let path = dir.File $"token-{Guid.NewGuid()}"
                  content |> Option.iter (fun text -> File.WriteAllText(path, text))
                  let opened = BearerFile.Open(path, Secrets(), Action<string> ignore)
                  Expect.isFalse opened.IsOk $"{content} refused"
                  Expect.stringContains opened.Error says $"{content}"
                  Expect.stringContains opened.Error "--auth-bearer-file" "names the flag"
          }

          test "OAuth2: one token serves many requests on both paths; the client authenticates with Basic and asks for its scope" {
              use tokens = new TokenServer.Server(clientId, clientSecret)
              use destination = HttpRecorder.start tokens.Gate
              use source = oauth2 tokens None (Action<string> ignore)
              for name, sender in senders source do
                  use sender = sender
                  for _ in 1..10 do
                      Expect.equal (statusOf (send sender $"{destination.Url}/x")) 201 $"{name}: accepted"
              Expect.equal tokens.Issued.Length 1 "fetched once"
              Expect.equal tokens.Asked [ { ClientId = clientId; ClientSecret = clientSecret; GrantType = "client_credentials"; Scope = "ingest:write" } ] "as asked"
              Expect.isTrue (destination.Hits |> List.forall (fun h -> bearerOf h = Some $"Bearer {tokens.Issued.Head}")) "every request carried it"
          }

          test "OAuth2: renewed in the background before it expires, the current token used meanwhile, even while renewing fails" {
              use tokens = new TokenServer.Server(clientId, clientSecret, ExpiresIn = 100)
              use destination = HttpRecorder.start tokens.Gate
              let clock = ManualClock()
              let seen, warn = warnings ()
              use source = oauth2 tokens (Some(clock :> TimeProvider)) warn
              use sender = lean source
              Expect.isTrue (Wait.until within (fun () -> tokens.Issued.Length = 1)) "fetched when the sender started"
              Expect.equal (statusOf (send sender $"{destination.Url}/x")) 201 "first"
              clock.Advance(TimeSpan.FromSeconds 70.0)
              Expect.equal (statusOf (send sender $"{destination.Url}/x")) 201 "not due yet"
              Expect.equal tokens.Issued.Length 1 "no renewal before four fifths of the lifetime"
              // Due, and the endpoint fails: the current token goes on, one warning, no waiting.
              tokens.Mode <- TokenServer.Failing 503
              clock.Advance(TimeSpan.FromSeconds 12.0)
              // Each failed renewal is recorded before the clock or the endpoint moves on: a renewal
              // still in flight when the endpoint recovers would otherwise be the one that succeeds.
              for round in 1..3 do
                  Expect.equal (statusOf (send sender $"{destination.Url}/x")) 201 "due, renewal failing: sent with the current token"
                  Expect.isTrue (source.Settled.Wait within) "the renewal ended"
                  Expect.equal tokens.Asked.Length (1 + round) "one renewal each time the clock moved on, each one failing"
                  clock.Advance(TimeSpan.FromSeconds 2.0)
              Expect.equal seen.Count 1 "warned once, not at every failed renewal"
              Expect.stringContains (Seq.head seen) "answered 503" "with the reason"
              tokens.Mode <- TokenServer.Issue
              Expect.equal (statusOf (send sender $"{destination.Url}/x")) 201 "due: sent with the current token"
              Expect.equal (bearerOf (List.last destination.Hits)) (Some $"Bearer {tokens.Issued.Head}") "the current one, not waiting"
              Expect.isTrue (source.Settled.Wait within) "the renewal ended"
              Expect.equal tokens.Issued.Length 2 "renewed in the background"
              for _ in 1..5 do
                  Expect.equal (statusOf (send sender $"{destination.Url}/x")) 201 "after"
              Expect.equal (bearerOf (List.last destination.Hits)) (Some $"Bearer {List.last tokens.Issued}") "the new one"
              Expect.equal tokens.Issued.Length 2 "renewed once"
          }

          test "OAuth2: a 401 renews the token once and resends in the same attempt" {
              use tokens = new TokenServer.Server(clientId, clientSecret)
              use destination = HttpRecorder.start tokens.Gate
              use source = oauth2 tokens None (Action<string> ignore)
              for name, sender in senders source do
                  use sender = sender
                  Expect.equal (statusOf (send sender $"{destination.Url}/x")) 201 $"{name}: first"
                  let issued = tokens.Issued.Length
                  let hits = destination.Hits.Length
                  tokens.RevokeAll()
                  Expect.equal (statusOf (send sender $"{destination.Url}/x")) 201 $"{name}: delivered within the attempt"
                  Expect.equal tokens.Issued.Length (issued + 1) $"{name}: renewed once"
                  Expect.equal destination.Hits.Length (hits + 2) $"{name}: refused, then accepted"
              // A destination that refuses every token: one renewal, one resend, then its 401 is the answer.
              destination.SetResponder(HttpRecorder.always 401)
              use sender = lean source
              let issued = tokens.Issued.Length
              Expect.equal (statusOf (send sender $"{destination.Url}/x")) 401 "the destination's answer"
              Expect.equal tokens.Issued.Length (issued + 1) "renewed once, not in a loop"
          }

          test "OAuth2: a failing token endpoint makes the attempt unreachable, naming it; never an answer; served again once it is back" {
              use tokens = new TokenServer.Server(clientId, clientSecret)
              use destination = HttpRecorder.start tokens.Gate
              use silent = new ScriptedHttp.Server(fun _ -> ScriptedHttp.Silence)
              let closedPort = HttpRecorder.freePort ()
              let clock = ManualClock()
              let seen, warn = warnings ()
              let failing =
                  [ "500", Some(TokenServer.Failing 500), tokens.TokenUrl, "answered 500 Internal Server Error"
                    "503", Some(TokenServer.Failing 503), tokens.TokenUrl, "answered 503 Service Unavailable"
                    "HTML", Some TokenServer.Html, tokens.TokenUrl, "answered 200 OK with text/html, not a JSON token response"
                    "no token", Some TokenServer.NoToken, tokens.TokenUrl, "answered 200 without an access_token"
                    "closed port", None, $"http://127.0.0.1:{closedPort}/oauth2/token", "is unreachable: Connection refused"
                    "silent", None, $"{silent.Url}/oauth2/token", "did not answer within 1 s" ]
              for name, mode, url, says in failing do
                  mode |> Option.iter (fun m -> tokens.Mode <- m)
                  use source = new OAuth2Tokens(Uri url, clientId, clientSecret, null, TimeSpan.FromSeconds 1.0, Secrets(), warn, null, clock)
                  for path, sender in senders source do
                      use sender = sender
                      clock.Advance(TimeSpan.FromSeconds 2.0)
                      match send sender $"{destination.Url}/x" with
                      | Unreachable detail ->
                          Expect.stringContains detail $"the token endpoint {Uri(url).GetLeftPart(UriPartial.Path)}" $"{name}, {path}: names the endpoint"
                          Expect.stringContains detail says $"{name}, {path}: says what went wrong"
                          Expect.isFalse (detail.Contains clientSecret) $"{name}, {path}: never the secret"
                      | other -> failtestf "%s, %s: expected unreachable, got %A" name path other
              Expect.isEmpty destination.Hits "nothing went to the destination without a token"
              // Wrong credentials are the endpoint's refusal, not the destination's.
              tokens.Mode <- TokenServer.Issue
              use wrong = new OAuth2Tokens(Uri tokens.TokenUrl, clientId, "not-the-secret", null, TimeSpan.FromSeconds 10.0, Secrets(), warn, null, clock)
              use refused = lean wrong
              match send refused $"{destination.Url}/x" with
              | Unreachable detail -> Expect.stringContains detail "refused the request (401 Unauthorized): invalid_client" "the endpoint's error"
              | other -> failtestf "wrong secret: expected unreachable, got %A" other
              // Back: the next attempt after the retry floor gets a token and is delivered.
              tokens.Mode <- TokenServer.Failing 500
              let before = tokens.Asked.Length
              use source = new OAuth2Tokens(Uri tokens.TokenUrl, clientId, clientSecret, null, TimeSpan.FromSeconds 10.0, Secrets(), warn, null, clock)
              use sender = lean source
              Expect.isTrue (Wait.until within (fun () -> tokens.Asked.Length > before)) "the first fetch was tried at start"
              match send sender $"{destination.Url}/x" with
              | Unreachable _ -> ()
              | other -> failtestf "still down: expected unreachable, got %A" other
              tokens.Mode <- TokenServer.Issue
              match send sender $"{destination.Url}/x" with
              | Unreachable detail -> Expect.stringContains detail "answered 500" "within a second of the failure the failure is not re-asked"
              | other -> failtestf "within the floor: expected unreachable, got %A" other
              clock.Advance(TimeSpan.FromSeconds 2.0)
              Expect.equal (statusOf (send sender $"{destination.Url}/x")) 201 "delivered once the endpoint is back"
          }

          test "replay run: a token endpoint down at start delays the records, dead-letters none, and no secret or token is printed" {
              let topic = "auth"
              use cluster = Broker.start topic 1
              use tokens = new TokenServer.Server(clientId, clientSecret, Mode = TokenServer.Failing 503)
              use destination = HttpRecorder.start tokens.Gate
              use dir = new Certificates.TempDir()
              let secretFile = dir.File "client-secret"
              File.WriteAllText(secretFile, clientSecret + "\n")
              Broker.produce cluster.BootstrapServers topic [ for i in 1..3 -> Broker.message $"doc-{i}" (envelope "telemetry" $"doc-{i}" "{}") ]
              let deadLetterFile = dir.File "dead.jsonl"
              use child =
                  ReplayProcess.spawn
                      [ "run"; "-b"; cluster.BootstrapServers; "-t"; topic; "-gid"; "auth"; "--from"; "earliest"; "--until-end"
                        "--dead-letter"; deadLetterFile; "--dest"; $"{destination.Url}/submit/{{namespace}}/%%k"
                        "--oauth2-token-url"; tokens.TokenUrl; "--oauth2-client-id"; clientId; "--oauth2-client-secret-file"; secretFile
                        "--oauth2-scope"; "ingest:write" ]
              Expect.isTrue (Wait.until within (fun () -> child.Stderr.Contains "the token endpoint")) $"the failure is reported: {child.Stderr}"
              Expect.isEmpty destination.Hits "nothing was sent without a token"
              tokens.Mode <- TokenServer.Issue
              let code = child.WaitForExit within
              Expect.equal code (Some 0) $"exits 0 once everything is delivered; stderr: {child.Stderr}"
              Expect.equal (destination.Accepted |> List.map (fun h -> h.Path) |> List.sort) [ for i in 1..3 -> $"/submit/telemetry/doc-{i}" ] "all delivered"
              Expect.isEmpty (deadLetters deadLetterFile) "no dead letter"
              let printed = child.Stdout + child.Stderr
              Expect.isNonEmpty tokens.Issued "a token was issued"
              for secret in clientSecret :: tokens.Issued do
                  Expect.isFalse (printed.Contains secret) $"'{secret}' must not be printed:\n{printed}"
          }

          test "replay run --dry-run shows that a bearer token would go out, never one, and asks no token endpoint" {
              let topic = "auth-dry"
              use cluster = Broker.start topic 1
              use tokens = new TokenServer.Server(clientId, clientSecret)
              use dir = new Certificates.TempDir()
              let secretFile = dir.File "client-secret"
              File.WriteAllText(secretFile, clientSecret)
              Broker.produce cluster.BootstrapServers topic [ Broker.message "doc-1" (envelope "telemetry" "doc-1" "{}") ]
              let code, stdout, stderr =
                  ReplayProcess.run
                      [ "run"; "-b"; cluster.BootstrapServers; "-t"; topic; "-gid"; "auth-dry"; "--from"; "earliest"; "--until-end"; "--dry-run"
                        "--dest"; "http://127.0.0.1:9/submit/{namespace}/%k"
                        "--oauth2-token-url"; tokens.TokenUrl; "--oauth2-client-id"; clientId; "--oauth2-client-secret-file"; secretFile ]
                      within
              Expect.equal code 0 $"exits 0; stderr: {stderr}"
              Expect.stringContains stdout $"Authorization: Bearer {Secrets.Mask}" "the header is shown, masked"
              Expect.isEmpty tokens.Asked "no token was asked for"
              Expect.isFalse ((stdout + stderr).Contains clientSecret) "never the secret"
          }

          test "bad credential flags exit 2 with a message that names the flag, on run and redrive" {
              use dir = new Certificates.TempDir()
              let empty = dir.File "empty"
              File.WriteAllText(empty, "")
              let secret = dir.File "secret"
              File.WriteAllText(secret, clientSecret)
              let token = dir.File "token"
              File.WriteAllText(token, "token-A")
              let run = [ "run"; "-t"; "x"; "-b"; "127.0.0.1:1"; "-gid"; "g"; "--dest"; "http://127.0.0.1:9/%k" ]
              let redrive = [ "redrive"; "--file"; empty; "--dest"; "http://127.0.0.1:9/%k" ]
              let url = "http://127.0.0.1:9/oauth2/token"
              let cases =
                  [ [ "--auth-bearer-file"; dir.File "missing" ], "--auth-bearer-file '" + dir.File "missing" + "' does not exist"
                    [ "--auth-bearer-file"; empty ], "holds no usable token: it is empty"
                    [ "--auth-bearer-file"; token; "--oauth2-token-url"; url ], "--auth-bearer-file and --oauth2-token-url both give the destination credentials"
                    [ "--oauth2-client-id"; clientId ], "--oauth2-client-id needs --oauth2-token-url URL"
                    [ "--oauth2-scope"; "s" ], "--oauth2-scope needs --oauth2-token-url URL"
                    [ "--oauth2-token-url"; url; "--oauth2-client-secret-file"; secret ], "--oauth2-token-url needs --oauth2-client-id ID"
                    [ "--oauth2-token-url"; url; "--oauth2-client-id"; clientId ], "--oauth2-token-url needs --oauth2-client-secret-file FILE"
                    [ "--oauth2-token-url"; url; "--oauth2-client-id"; clientId; "--oauth2-client-secret-file"; dir.File "nope" ], "--oauth2-client-secret-file '" + dir.File "nope" + "' does not exist"
                    [ "--oauth2-token-url"; url; "--oauth2-client-id"; clientId; "--oauth2-client-secret-file"; empty ], "is empty: put the client secret in it"
                    [ "--oauth2-token-url"; "idp.example/token"; "--oauth2-client-id"; clientId; "--oauth2-client-secret-file"; secret ], "is not an absolute http(s) URL"
                    [ "--oauth2-token-url"; "http://idp.example/token"; "--oauth2-client-id"; clientId; "--oauth2-client-secret-file"; secret ], "would send the client secret unencrypted" ]
              // Every case on run; redrive shares the validation, so two cases there show it is wired.
              for flags, expected in cases do
                  for command in (if flags.Head = "--oauth2-client-id" || flags.Length = 6 && flags[4] = "--oauth2-client-secret-file" && flags[5] = empty then [ run; redrive ] else [ run ]) do
                      let code, _, stderr = ReplayProcess.run (command @ flags) within
                      Expect.equal code 2 $"{command.Head} {flags} exits 2 ({stderr})"
                      Expect.stringContains stderr expected $"{command.Head} {flags} says what is wrong"
                      Expect.isFalse (stderr.Contains clientSecret) "never the secret"
          } ]
