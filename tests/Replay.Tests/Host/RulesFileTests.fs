/// Rules files through the real parser, the real Roslyn compile and the real
/// `replay rules` program: errors land on the YAML line and column the operator
/// wrote, the helpers rules use read the record correctly, unsafe permissions are
/// refused, and the worked examples in rules/ compile and route as documented.
module Replay.Tests.RulesFileTests

open System
open System.IO
open Expecto
open Microsoft.FSharp.Core
open Replay.Core
open Replay.Host.Rules
open Replay.Tests

let private path = "rules/x.yaml"

let private load (text: string) = RulesLoader.FromText(path, text, RuleBase.Flags, 1)

/// The diagnostics of a file that must not load, as printed.
let private errorsOf (text: string) =
    let struct (generation, diagnostics) = load text
    Expect.isNull generation "a file with errors yields no generation"
    diagnostics |> Seq.map string |> List.ofSeq

let private loaded (text: string) =
    let struct (generation, diagnostics) = load text
    match generation with
    | null -> failtestf "the rules did not load:\n%s" (String.Join("\n", diagnostics))
    | generation -> generation

let private routeOf (generation: RuleGeneration) (sample: SampleRecord) =
    let record = sample.ToRecord()
    match Envelope.decode record.Value with
    | Ok envelope -> generation.Router.Route record envelope
    | Error e -> failtestf "sample does not decode: %A" e

let private sample (configure: SampleRecord -> unit) =
    let s = SampleRecord()
    configure s
    s

let private hasError (expected: string) (errors: string list) =
    let all = String.Join("\n  ", errors)
    Expect.exists errors (fun e -> e = expected) $"expected the diagnostic\n  {expected}\namong\n  {all}"

let private compileErrors =
    """defaults:
  dest: http://d.example/{id}
rules:
  - name: typo
    when: Nmespace == "telemetry"
  - name: block
    when: |
      Namespace == "x"
        && Headr("c") == null
  - name: header
    when: true
    headers:
      X-A: '"v" + Topc'
"""

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Rules file"
        [ test "compile errors point at the YAML line and column of the snippet (plain, block and quoted)" {
              let errors = errorsOf compileErrors
              errors |> hasError "rules/x.yaml(5,11): error CS0103: The name 'Nmespace' does not exist in the current context"
              errors |> hasError "rules/x.yaml(9,12): error CS0103: The name 'Headr' does not exist in the current context"
              errors |> hasError "rules/x.yaml(13,19): error CS0103: The name 'Topc' does not exist in the current context"
              Expect.hasLength errors 3 "every error, and only those"
          }

          test "type errors and bad imports are positioned too" {
              let errors =
                  errorsOf
                      """imports: [System.Nope]
defaults:
  dest: http://d.example/{id}
  sample: 'Namespace'
rules:
  - name: not a bool
    when: PayloadSize
"""
              errors |> hasError "rules/x.yaml(1,18): error CS0234: The type or namespace name 'Nope' does not exist in the namespace 'System' (are you missing an assembly reference?)"
              errors |> hasError "rules/x.yaml(4,12): error CS0029: Cannot implicitly convert type 'string' to 'double'"
              errors |> hasError "rules/x.yaml(7,11): error CS0029: Cannot implicitly convert type 'int' to 'bool'"
          }

          test "schema mistakes are reported together, each at its line, with a hint" {
              let errors =
                  errorsOf
                      """defaults:
  dest: http://d.example/{nope}
  sample: 1.5
rules:
  - name: a
    when: true
    desst: http://x.example/
  - name: a
    when: true
  - name: no condition
    dest: http://x.example/{id}
  - name: skipper
    when: true
    action: skip
    sample: 1
  - when: true
"""
              errors |> hasError "rules/x.yaml(2,9): error: dest: unknown placeholder '{nope}' in destination 'http://d.example/{nope}'; known: %k, {id}, {key}, {namespace}, {topic}, {partition}, {offset}, {api_version}, {partitions}"
              errors |> hasError "rules/x.yaml(3,11): error: sample 1.5 is outside [0, 1]; write e.g. 0.01 for 1%"
              errors |> hasError "rules/x.yaml(7,5): error: unknown key 'desst' in a rule; did you mean 'dest'? known keys: name, when, action, dest, dest-expr, sample, deletes, copy-keys, method, headers, copy-headers, on-status, drop-ip, body"
              errors |> hasError "rules/x.yaml(8,5): error: a rule named 'a' already exists (line 5); names must be unique so logs and dead letters name one rule"
              errors |> hasError "rules/x.yaml(10,5): error: rule 'no condition' has no `when:`; write `when: true` to match every record"
              errors |> hasError "rules/x.yaml(14,13): error: rule 'skipper' skips its records, so it sends nothing: remove its dest, sample, headers, body and other settings"
              errors |> hasError "rules/x.yaml(16,5): error: this rule has no `name:`; names appear in logs, skip counts and dead letters"
          }

          test "YAML syntax errors name the line and say how to quote C#" {
              match errorsOf "defaults:\n  dest: http://d.example/{id}\nrules:\n  - name: q\n    when: \"nightly\" == Header(\"channel\")\n" with
              | [ error ] ->
                  Expect.stringStarts error "rules/x.yaml(5," "the error is on line 5"
                  Expect.stringContains error "must be quoted as a whole" "with the quoting hint"
              | errors -> failtestf "expected one error, got %A" errors
          }

          test "without a destination from the file or the flags, loading says where to put one" {
              match errorsOf "rules:\n  - name: a\n    when: true\n" with
              | [ error ] -> Expect.stringContains error "set `dest:` under `defaults:`, or pass --dest" "names both places"
              | errors -> failtestf "expected one error, got %A" errors
          }

          test "rules read the record: namespace, headers, JSON fields, size, partitions, deletes; headers take any value" {
              let generation =
                  loaded
                      """defaults:
  dest: http://d.example/{namespace}/{id}
  sample: 1
rules:
  - name: json
    when: Json("environment.build.version") == "120.0" && JsonNumber("sessions") > 2 && Json("items.1.name") == "b"
    headers:
      X-Count: JsonNumber("sessions")
      X-Channel: Header("channel")
      X-Missing: Header("absent")
  - name: big
    when: PayloadSize >= 5000 && !IsJson
    dest-expr: '"http://big.example/" + Uri.EscapeDataString(Id) + "?size=" + PayloadSize'
  - name: partitioned
    when: Partitions.Count == 2 && Partitions[1] == "de" && HasHeader("trace") && Key == Id
    method: PUT
  - name: deletes
    when: IsDelete && Topic == "t2" && Partition == 3 && Offset == 9 && ApiVersion == "2" && Timestamp == 42
"""
              let json =
                  sample (fun s ->
                      s.Payload <- """{"environment":{"build":{"version":"120.0"}},"sessions":3,"items":[{"name":"a"},{"name":"b"}]}"""
                      s.Headers.Add(("channel", "beta")))
              match routeOf generation json with
              | Use route ->
                  Expect.equal route.Name "json" "the JSON rule matched"
                  Expect.equal route.Headers [ "X-Count", "3"; "X-Channel", "beta" ] "numbers as invariant text; a null header is not sent"
              | other -> failtestf "expected the JSON rule, got %A" other
              match routeOf generation (sample (fun s -> s.Id <- "a/b"; s.Payload <- String('x', 6000))) with
              | Use { Name = "big"; Target = Url url } -> Expect.equal url "http://big.example/a%2Fb?size=6000" "dest-expr computed the URL"
              | other -> failtestf "expected the big rule, got %A" other
              match routeOf generation (sample (fun s -> s.Partitions.AddRange [ "eu"; "de" ]; s.Headers.Add(("trace", "")))) with
              | Use { Name = "partitioned"; Method = Some Put } -> ()
              | other -> failtestf "expected the partitioned rule with PUT, got %A" other
              match routeOf generation (sample (fun s -> s.Delete <- true; s.Topic <- "t2"; s.Partition <- 3; s.Offset <- 9; s.ApiVersion <- "2"; s.Timestamp <- 42L)) with
              | Use { Name = "deletes" } -> ()
              | other -> failtestf "expected the deletes rule, got %A" other
              match routeOf generation (sample ignore) with
              | Use route -> Expect.equal route.Name Rules.DefaultsName "nothing matched: defaults"
              | other -> failtestf "expected the defaults, got %A" other
              generation.Unload()
          }

          test "a rule that throws fails the record with the rule's name and the exception" {
              let generation =
                  loaded "defaults:\n  dest: http://d.example/{id}\nrules:\n  - name: fragile\n    when: Json(\"a.b\").Length > 3\n"
              match routeOf generation (sample ignore) with
              | RuleFailed("fragile", message) -> Expect.stringStarts message "NullReferenceException" "names the exception"
              | other -> failtestf "expected a rule failure, got %A" other
              generation.Unload()
          }

          test "files writable by group or others, or in a directory others can write, are refused (as ssh does)" {
              use dir = new RulesFiles.Directory()
              let file = dir.File "open.yaml"
              RulesFiles.write file "defaults:\n  dest: http://d.example/{id}\n"
              let loadsFine () =
                  let struct (generation, diagnostics) = RulesLoader.Load(file, RuleBase.Flags, 1)
                  if not (isNull generation) then generation.Unload()
                  generation, diagnostics |> Seq.map string |> List.ofSeq
              Expect.isNotNull (fst (loadsFine ())) "mode 0600 loads"
              File.SetUnixFileMode(file, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.GroupRead ||| UnixFileMode.GroupWrite)
              match loadsFine () with
              | null, [ error ] ->
                  Expect.stringContains error "is writable by its group (mode 0660)" "says who can write"
                  Expect.stringContains error $"chmod go-w {file}" "says how to fix it"
              | other -> failtestf "expected a refusal, got %A" other
              File.SetUnixFileMode(file, UnixFileMode.UserRead ||| UnixFileMode.UserWrite)
              let everyone = enum<UnixFileMode> 0o777
              File.SetUnixFileMode(dir.Path, everyone)
              match loadsFine () with
              | null, [ error ] -> Expect.stringContains error "so others could replace the rules file" "the directory is refused"
              | other -> failtestf "expected a refusal, got %A" other
              File.SetUnixFileMode(dir.Path, everyone ||| UnixFileMode.StickyBit)
              Expect.isNotNull (fst (loadsFine ())) "a sticky directory (like /tmp) is fine: others cannot replace our file"
              File.SetUnixFileMode(dir.Path, enum<UnixFileMode> 0o700)
          }

          test "every worked example in rules/ compiles cleanly" {
              use dir = new RulesFiles.Directory()
              let examples = Directory.GetFiles(RulesFiles.examples.Value, "*.yaml")
              Expect.isGreaterThanOrEqual examples.Length 3 "the examples are there"
              // As their comments run them: with --scrub-key-file where a body hashes.
              let key = Replay.Host.Security.ScrubKey.FromBytes(Text.Encoding.UTF8.GetBytes "an example key of 32 bytes......")
              let flags = RuleBase(Unchecked.defaultof<Destination.Pattern>, Sampling.Rate.all, true, true, ScrubKey = key)
              for example in examples do
                  let copy = RulesFiles.copyExample dir (Path.GetFileName example)
                  let struct (generation, diagnostics) = RulesLoader.Load(copy, flags, 1)
                  Expect.isEmpty diagnostics $"{Path.GetFileName example} has no diagnostics"
                  Expect.isNotNull generation $"{Path.GetFileName example} loads"
                  generation.Unload()
          }

          test "`replay rules check` exits 0 when clean, 1 on errors (printing them) and on unsafe permissions" {
              use dir = new RulesFiles.Directory()
              let clean = RulesFiles.copyExample dir "example.yaml"
              let code, stdout, stderr = ReplayProcess.run [ "rules"; "check"; clean ] (TimeSpan.FromSeconds 60.0)
              Expect.equal code 0 $"clean file exits 0 (stdout: {stdout}, stderr: {stderr})"
              Expect.stringContains stdout "OK, 2 rules" "says it is fine"
              let broken = dir.File "broken.yaml"
              RulesFiles.write broken compileErrors
              let code, stdout, _ = ReplayProcess.run [ "rules"; "check"; broken ] (TimeSpan.FromSeconds 60.0)
              Expect.equal code 1 "errors exit 1"
              Expect.stringContains stdout $"{broken}(5,11): error CS0103: The name 'Nmespace' does not exist in the current context" "prints the positioned error"
              Expect.stringContains stdout "3 errors" "counts them"
              File.SetUnixFileMode(clean, enum<UnixFileMode> 0o666)
              let code, stdout, _ = ReplayProcess.run [ "rules"; "check"; clean ] (TimeSpan.FromSeconds 60.0)
              Expect.equal code 1 "unsafe permissions exit 1"
              Expect.stringContains stdout "is writable by its group and other users" "explains the refusal"
          }

          test "`replay rules test` routes the issue's example as written and prints each decision" {
              use dir = new RulesFiles.Directory()
              let example = RulesFiles.copyExample dir "example.yaml"
              let records = dir.File "records.jsonl"
              File.WriteAllLines(
                  records,
                  [ """{"namespace": "telemetry", "id": "n1", "headers": {"channel": "nightly"}}"""
                    """{"namespace": "telemetry", "id": "big", "payload_size": 2000000}"""
                    """{"namespace": "telemetry", "id": "r1", "headers": {"channel": "release"}, "delete": true}""" ]
              )
              let code, stdout, stderr = ReplayProcess.run [ "rules"; "test"; example; "--records"; records ] (TimeSpan.FromSeconds 60.0)
              Expect.equal code 0 $"exit 0 (stderr: {stderr})"
              let expected =
                  [ "#1 telemetry/n1 (telemetry[0]@0): send by 'nightly, all of it, to staging': POST http://staging.example/submit/telemetry/n1"
                    "    X-Replay-Id: telemetry/0/0"
                    "    channel: nightly"
                    "    X-Replay-Source: prod-telemetry"
                    "  answers: defaults (2xx ok; 408, 429, 5xx retry; other fail)"
                    "  body (unchanged): {}"
                    "#2 telemetry/big (telemetry[0]@1): skip: skipped by rule 'drop oversized'"
                    "#3 telemetry/r1 (telemetry[0]@2): skip: delete ignored: deletes are off (defaults)" ]
              Expect.equal (stdout.TrimEnd().Split('\n') |> Array.map _.TrimEnd() |> List.ofArray) expected "one decision per record"
              let code, stdout, stderr =
                  ReplayProcess.run
                      [ "rules"; "test"; example; "--id"; "a/b"; "--header"; "channel=nightly"; "--topic"; "prod"; "--offset"; "5" ]
                      (TimeSpan.FromSeconds 60.0)
              Expect.equal code 0 $"exit 0 (stderr: {stderr})"
              Expect.stringStarts
                  stdout
                  "#1 telemetry/a/b (prod[0]@5): send by 'nightly, all of it, to staging': POST http://staging.example/submit/telemetry/a%2Fb\n    X-Replay-Id: prod/0/5\n    channel: nightly\n    X-Replay-Source: prod-prod"
                  "one record from the flags"
          } ]
