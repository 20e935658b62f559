/// `on-status:`, `drop-ip:`, `body:` and `scrub-key-file:` in a real rules file,
/// through the real parser, Roslyn and the `replay rules` program: what they do to
/// a record's route and request, and every mistake reported at its YAML line.
module Replay.Tests.RulesPerRouteFileTests

open System
open System.IO
open System.Text
open Expecto
open Microsoft.FSharp.Core
open Replay.Core
open Replay.Core.Outcome
open Replay.Host.Rules
open Replay.Host.Security
open Replay.Tests

let private path = "rules/x.yaml"

let private key = ScrubKey.FromBytes(Encoding.UTF8.GetBytes "0123456789abcdef0123456789abcdef")

/// No --dest: the files below name their own.
let private noDest = Unchecked.defaultof<Destination.Pattern>

/// The flags' base with Json.Hash's key, as --scrub-key-file gives it.
let private keyed = RuleBase(noDest, Sampling.Rate.all, true, true, ScrubKey = key)

let private loadWith (flags: RuleBase) (text: string) = RulesLoader.FromText(path, text, flags, 1)

let private errorsWith flags (text: string) =
    let struct (generation, diagnostics) = loadWith flags text
    Expect.isNull generation "a file with errors yields no generation"
    diagnostics |> Seq.filter _.IsError |> Seq.map string |> List.ofSeq

let private errorsOf = errorsWith RuleBase.Flags

let private loadedWith flags (text: string) =
    let struct (generation, diagnostics) = loadWith flags text
    match generation with
    | null -> failtestf "the rules did not load:\n%s" (String.Join("\n", diagnostics))
    | generation -> generation

let private hasError (expected: string) (errors: string list) =
    Expect.exists errors (fun e -> e = expected) $"expected\n  {expected}\namong\n  {String.Join('\n', errors)}"

let private settings: Pipeline.Settings =
    { Format = Pipeline.Bagheera
      SampleMode = Sampling.ByDocument
      ValidateJson = false
      Escaping = Destination.Segment
      MaxPayloadBytes = 1 <<< 20 }

let private entropy: Pipeline.Entropy = { NewKey = (fun () -> "k"); Draw = (fun () -> 0.5) }

let private decide (generation: RuleGeneration) (configure: SampleRecord -> unit) =
    let sample = SampleRecord()
    configure sample
    Pipeline.decide settings generation.Router.Route entropy (sample.ToRecord())

let private request decision =
    match decision with
    | Pipeline.Send request -> request
    | other -> failtestf "expected a request, got %A" other

let private verdict (request: Pipeline.Request) status = classify request.StatusPolicy (Answered(Answer.status status None))

let private policyOf (entries: (string * StatusPolicy.Meaning) list) =
    entries
    |> List.map (fun (text, meaning) -> Result.defaultWith failwith (StatusPolicy.parseRange text), meaning)
    |> StatusPolicy.create
    |> Result.defaultWith failwith

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Rules file per route"
        [ test "on-status refines the flags' policy for the defaults and per rule" {
              let flags = RuleBase(noDest, Sampling.Rate.all, true, true, StatusPolicy = policyOf [ "404", StatusPolicy.Drop ])
              let generation =
                  loadedWith
                      flags
                      """defaults:
  dest: http://d.example/{id}
  on-status: {409: ok, 5xx: retry, 501: fail}
rules:
  - name: v2
    when: Namespace == "v2"
    on-status:
      404: ok
      "500-503": drop
"""
              let plain = request (decide generation ignore)
              Expect.equal (verdict plain 404) (Dropped 404) "--drop-on 404 holds where the file says nothing"
              Expect.equal (verdict plain 409) Delivered "409: ok"
              Expect.isTrue (verdict plain 501).IsPermanent "501: fail, narrower than 5xx"
              let v2 = request (decide generation (fun s -> s.Namespace <- "v2"))
              Expect.equal (verdict v2 404) Delivered "the rule's 404: ok"
              Expect.equal (verdict v2 502) (Dropped 502) "the rule's range"
              Expect.equal (verdict v2 409) Delivered "inherited from the defaults"
              Expect.equal (verdict v2 504) (Retry None) "inherited 5xx: retry"
              generation.Unload()
          }

          test "on-status, drop-ip and body mistakes are reported at their lines" {
              let errors =
                  errorsOf
                      """defaults:
  dest: http://d.example/{id}
  on-status: {4o4: drop, 409: maybe}
  drop-ip: false
rules:
  - name: clash
    when: true
    on-status: {4xx: ok, 400-499: drop}
  - name: shape
    when: true
    on-status: drop
  - name: skipper
    when: true
    action: skip
    body: Json.Remove("a")
"""
              errors |> hasError "rules/x.yaml(3,15): error: on-status: '4o4' is not a status: write 404, 4xx or 500-503 (statuses 100-599)"
              errors |> hasError "rules/x.yaml(3,31): error: on-status: 'maybe' is not a status meaning; use ok, retry, drop or fail"
              errors
              |> hasError
                  "rules/x.yaml(4,12): error: `drop-ip:` can only be true: once the address is dropped (by --drop-ip, the defaults or a rule) nothing sends it again; leave the key out instead"
              errors |> hasError "rules/x.yaml(8,16): error: on-status: status 4xx is given two meanings (ok and drop)"
              errors
              |> hasError
                  "rules/x.yaml(11,16): error: `on-status:` maps statuses to what they mean, e.g. {404: drop, 409: ok, 5xx: retry}; meanings are ok, retry, drop and fail"
              errors
              |> hasError "rules/x.yaml(14,13): error: rule 'skipper' skips its records, so it sends nothing: remove its dest, sample, headers, body and other settings"
              Expect.hasLength errors 6 "every mistake, and only those"
          }

          test "a body's path constants and type are checked at its line; Json.Hash without a key is refused where it is called" {
              let errors =
                  errorsOf
                      """defaults:
  dest: http://d.example/{id}
  body: Json.Remove("meta..ip")
rules:
  - name: number
    when: true
    body: PayloadSize + 1
  - name: hashing
    when: true
    body: |
      Json.Keep("a", "items[*].id")
          .Hash("clientId")
"""
              errors
              |> hasError
                  "rules/x.yaml(3,21): error: Json.Remove: \"meta..ip\" is not a JSON path: it has an empty name (two dots, or a dot at an end) (write e.g. meta.ip, items[*].email, items[0].id, [\"odd.key\"])"
              errors
              |> hasError "rules/x.yaml(7,11): error: body: gives a int; give Json (after its edits, e.g. Json.Remove(\"clientId\")), a JsonNode, a string or bytes"
              Expect.hasLength errors 2 "the Hash check waits until the file compiles cleanly"
              let hashing = "defaults:\n  dest: http://d.example/{id}\nrules:\n  - name: hashing\n    when: true\n    body: |\n      Json.Keep(\"a\")\n          .Hash(\"clientId\")\n"
              match errorsOf hashing with
              | [ error ] ->
                  Expect.stringStarts error "rules/x.yaml(8,12): error: Json.Hash needs a secret key" "at the call, in the block"
                  Expect.stringContains error "--scrub-key-file FILE or set scrub-key-file:" "says where a key comes from"
              | other -> failtestf "expected one error, got %A" other
              (loadedWith keyed hashing).Unload()
              match errorsOf "defaults:\n  dest: http://d.example/{id}\n  body: Json(\"a\")\n" with
              | [ error ] ->
                  Expect.stringStarts error "rules/x.yaml(3,9): error CS0149: Method name expected" "Roslyn's error, at the body"
                  Expect.stringContains error "in a body, Json is the helper" "explained"
              | other -> failtestf "expected one error, got %A" other
          }

          test "a body rewrites what is sent: Remove, Set, Hash with the key, Keep; Json in a body is the helper" {
              let generation =
                  loadedWith
                      keyed
                      """defaults:
  dest: http://d.example/{id}
  body: Json.Remove("clientId").Set("meta.ip", null)
rules:
  - name: pseudonyms
    when: Namespace == "p"
    body: Json.Hash("user")
  - name: minimal
    when: Namespace == "m"
    body: 'Json.Keep("a", "items[*].id").ToString() + (Payload.Length > 0 ? "" : "!")'
"""
              let payload = """{"clientId":"c-1","user":"u-1","meta":{"ip":"10.0.0.1","v":2},"a":1,"items":[{"id":1,"email":"e"}]}"""
              let body ns =
                  Encoding.UTF8.GetString((request (decide generation (fun s -> s.Namespace <- ns; s.Payload <- payload))).Body.Span)
              Expect.equal (body "other") """{"user":"u-1","meta":{"ip":null,"v":2},"a":1,"items":[{"id":1,"email":"e"}]}""" "the defaults' scrub"
              Expect.equal (body "p") $"""{{"user":"{key.Hash "u-1"}","meta":{{"ip":null,"v":2}},"a":1,"items":[{{"id":1,"email":"e"}}]}}""" "the rule's hash, after the defaults' scrub"
              Expect.equal (body "m") """{"a":1,"items":[{"id":1}]}""" "the rule's keep, on what the defaults left"
              generation.Unload()
          }

          test "a body that fails dead-letters the record with the reason, never the payload unscrubbed" {
              let generation =
                  loadedWith
                      RuleBase.Flags
                      """defaults:
  dest: http://d.example/{id}
rules:
  - name: scrub
    when: true
    body: Json.Remove("clientId")
"""
              for payload, reason in
                  [ "not json, clientId=secret-1", "the payload is not JSON"
                    """{"clientId":"secret-1","clientId":"secret-2"}""", "a member name repeats" ] do
                  match decide generation (fun s -> s.Payload <- payload) with
                  | Pipeline.Reject(Pipeline.RuleError("scrub", message)) ->
                      Expect.stringContains message reason "says why"
                      Expect.isFalse (message.Contains "secret") "without quoting the payload"
                  | other -> failtestf "expected a dead letter, got %A" other
              generation.Unload()
          }

          test "scrub-key-file: relative to the rules file; a missing or short key is an error at its line" {
              use dir = new RulesFiles.Directory()
              let rules = dir.File "scrub.yaml"
              let text keyFile =
                  $"scrub-key-file: {keyFile}\ndefaults:\n  dest: http://d.example/{{id}}\n  body: Json.Hash(\"id\")\n"
              File.WriteAllText(dir.File "good.key", "0123456789abcdef0123456789abcdef\n")
              File.SetUnixFileMode(dir.File "good.key", UnixFileMode.UserRead ||| UnixFileMode.UserWrite)
              File.WriteAllText(dir.File "short.key", "abc\n")
              let secrets = Secrets()
              RulesFiles.write rules (text "good.key")
              let struct (generation, diagnostics) = RulesLoader.Load(rules, RuleBase(noDest, Sampling.Rate.all, true, true, Secrets = secrets), 1)
              Expect.isNotNull generation $"loads: {String.Join('\n', diagnostics)}"
              Expect.isEmpty diagnostics "no warning for a private key file"
              Expect.equal (secrets.Redact "key=0123456789abcdef0123456789abcdef") "key=[redacted]" "the key is a secret from now on"
              let sent = request (decide generation (fun s -> s.Payload <- """{"id":"x"}"""))
              Expect.equal (Encoding.UTF8.GetString sent.Body.Span) $"""{{"id":"{key.Hash "x"}"}}""" "hashed with the file's key"
              generation.Unload()
              for keyFile, says in [ "missing.key", "does not exist"; "short.key", "holds a 3-byte key; use at least 16 random bytes" ] do
                  RulesFiles.write rules (text keyFile)
                  let struct (generation, diagnostics) = RulesLoader.Load(rules, RuleBase.Flags, 1)
                  Expect.isNull generation $"{keyFile} is refused"
                  match diagnostics |> Seq.map string |> List.ofSeq with
                  | [ error ] ->
                      Expect.stringStarts error $"{rules}(1,17): error: scrub-key-file: " "at the key's line"
                      Expect.stringContains error says "says what is wrong"
                  | other -> failtestf "expected one error, got %A" other
          }

          test "`replay rules check` judges Json.Hash with --scrub-key-file; `rules test` shows answers and the body before and after" {
              use dir = new RulesFiles.Directory()
              let rules = dir.File "scrub.yaml"
              RulesFiles.write
                  rules
                  "defaults:\n  dest: http://d.example/{id}\n  on-status: {409: ok}\nrules:\n  - name: scrub\n    when: true\n    body: Json.Remove(\"clientId\").Hash(\"user\")\n"
              let keyFile = dir.File "scrub.key"
              File.WriteAllText(keyFile, "0123456789abcdef0123456789abcdef")
              File.SetUnixFileMode(keyFile, UnixFileMode.UserRead ||| UnixFileMode.UserWrite)
              let code, stdout, _ = ReplayProcess.run [ "rules"; "check"; rules ] (TimeSpan.FromSeconds 60.0)
              Expect.equal code 1 "without a key: exit 1"
              Expect.stringContains stdout $"{rules}(7,35): error: Json.Hash needs a secret key" "at the call"
              let code, stdout, stderr = ReplayProcess.run [ "rules"; "check"; rules; "--scrub-key-file"; keyFile ] (TimeSpan.FromSeconds 60.0)
              Expect.equal code 0 $"with a key: exit 0 ({stdout}{stderr})"
              let code, stdout, stderr =
                  ReplayProcess.run
                      [ "rules"; "test"; rules; "--scrub-key-file"; keyFile; "--drop-on"; "404"
                        "--payload"; """{"clientId":"c-1","user":"u-1","n":1}""" ]
                      (TimeSpan.FromSeconds 60.0)
              Expect.equal code 0 $"exit 0 ({stderr})"
              Expect.stringContains stdout "\n  answers: 409: ok, 404: drop\n" "the record's policy: the file's over the flags'"
              Expect.stringContains stdout """  body before: {"clientId":"c-1","user":"u-1","n":1}""" "the body as consumed"
              Expect.stringContains stdout $"""  body after:  {{"user":"{key.Hash "u-1"}","n":1}}""" "and as it would be sent"
              Expect.isFalse (stdout.Contains "0123456789abcdef") "the key is never printed"
          } ]
