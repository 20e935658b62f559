/// Laws of rule routing, checked over generated rule sets. Each generated rule is
/// a plain function over the record plus a reference model of what it matches;
/// the model says what the router must answer, and the properties compare.
module Replay.Tests.RulesTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Envelope
open Replay.Core.Rules

type RuleModel =
    { Name: string
      /// Document ids this rule's predicate accepts.
      Matches: Set<string>
      Skip: bool
      Sample: float option
      /// Kafka header names copied into HTTP headers of the same name.
      Copies: string list
      /// The predicate throws (as a rule's code on a null lookup would).
      Throws: bool }

type RecordModel =
    { Id: string
      Headers: (string * string) list }

type Scenario =
    { Rules: RuleModel list
      DefaultSample: float
      DefaultCopies: string list
      Records: RecordModel list }

/// What the router must answer for a record, by the model.
type Expected =
    | ByDefaults
    | ByRule of RuleModel
    | SkippedBy of string
    | FailedIn of string

let private ids = [ for i in 0..7 -> $"doc-{i}" ]
/// Header names, with a case variant: Kafka lookups are exact, HTTP overrides are not.
let private headerNames = [ "channel"; "Channel"; "trace"; "x-b" ]

/// Header values .NET can send (printable ASCII): others are refused by the pipeline.
let private safeText = Gen.elements [ "nightly"; "beta"; "release"; "a b"; "unix"; ""; "x=1;y=2" ]

/// Any text a producer could put in a header (valid UTF-16, so it survives UTF-8).
let private anyText =
    ArbMap.defaults
    |> ArbMap.generate<string>
    |> Gen.map (fun s -> if isNull s then "" else String(s.ToCharArray() |> Array.filter (Char.IsSurrogate >> not)))

let private ruleGen index =
    gen {
        let! matches = Gen.subListOf ids
        let! skip = Gen.frequency [ 1, Gen.constant true; 3, Gen.constant false ]
        let! sample = Gen.elements [ None; Some 0.0; Some 1.0; Some 0.5 ]
        let! copies = Gen.subListOf headerNames
        let! throws = Gen.frequency [ 1, Gen.constant true; 12, Gen.constant false ]
        return
            { Name = $"rule {index}"
              Matches = Set.ofList matches
              Skip = skip
              Sample = sample
              Copies = copies
              Throws = throws }
    }

let private scenarioGen (values: Gen<string>) =
    gen {
        let! count = Gen.choose (0, 6)
        let! rules = [ for i in 1..count -> ruleGen i ] |> Gen.sequenceToList
        let! defaultSample = Gen.elements [ 0.0; 1.0; 0.3 ]
        let! defaultCopies = Gen.subListOf headerNames
        let record =
            gen {
                let! id = Gen.elements ("unmatched" :: ids)
                let! headers = Gen.listOf (Gen.zip (Gen.elements headerNames) values)
                return { Id = id; Headers = headers }
            }
        let! records = Gen.nonEmptyListOf record
        return
            { Rules = rules
              DefaultSample = defaultSample
              DefaultCopies = defaultCopies
              Records = records }
    }

let private scenarios = Arb.fromGen (scenarioGen safeText)

let private pattern text =
    match Destination.parse text with
    | Ok p -> p
    | Error e -> failwith e

let private defaultPattern = pattern "http://defaults.example/{namespace}/{id}"

let private rulePattern (name: string) =
    pattern $"http://rules.example/{Uri.EscapeDataString name}/{{id}}"

let private copies names =
    names |> List.map (fun name -> CopyHeader(name, KafkaHeader name))

/// The rule set the model describes, over a view that is just the record and envelope.
let private ruleSet (scenario: Scenario) : RuleSet<Record * Envelope> =
    { View = fun record envelope -> record, envelope
      Defaults =
        { Dest = DestPattern defaultPattern
          Mirrors = []
          Sample = Fixed scenario.DefaultSample
          Deletes = true
          CopyKeys = true
          Method = None
          Headers = copies scenario.DefaultCopies
          StatusPolicy = StatusPolicy.defaults
          DropIp = false
          Body = None }
      Rules =
        [ for model in scenario.Rules ->
              { Name = model.Name
                When =
                  fun (_, envelope) ->
                      if model.Throws then nullArg "lookup"
                      model.Matches.Contains envelope.Id
                Action =
                  if model.Skip then
                      Skip
                  else
                      Replay
                          { Settings.none with
                              Dest = Some(DestPattern(rulePattern model.Name))
                              Sample = model.Sample |> Option.map Fixed
                              Headers = copies model.Copies } } ] }

let private expected (scenario: Scenario) (record: RecordModel) =
    let rec go rules =
        match rules with
        | [] -> ByDefaults
        | rule :: _ when rule.Throws -> FailedIn rule.Name
        | rule :: _ when rule.Matches.Contains record.Id -> if rule.Skip then SkippedBy rule.Name else ByRule rule
        | _ :: rest -> go rest
    go scenario.Rules

let private envelopeOf id : Envelope =
    { Namespace = "telemetry"
      Id = id
      IpAddr = ReadOnlyMemory.Empty
      Payload = ReadOnlyMemory(Text.Encoding.UTF8.GetBytes "{}")
      Timestamp = 1L
      Operation = CreateUpdate
      ApiVersion = "1"
      Partitions = [] }

let private recordOf (offset: int) (model: RecordModel) : Record =
    { Topic = "t"
      Partition = 0
      Offset = int64 offset
      Key = Text.Encoding.UTF8.GetBytes model.Id
      Value = ReadOnlyMemory(encode (envelopeOf model.Id))
      Headers = [| for (name, value) in model.Headers -> { Name = name; Value = Text.Encoding.UTF8.GetBytes value } |]
      TimestampMs = 0L }

/// The last value of a Kafka header (exact name), as the consumer reads it.
let private lastHeader (model: RecordModel) name =
    model.Headers |> List.filter (fst >> (=) name) |> List.tryLast |> Option.map snd

let private route scenario (i, model) =
    Rules.route (ruleSet scenario) (recordOf i model) (envelopeOf model.Id)

let private settings mode : Pipeline.Settings =
    { Format = Pipeline.Bagheera
      SampleMode = mode
      ValidateJson = false
      Escaping = Destination.Segment
      MaxPayloadBytes = 1 <<< 20 }

let private entropy: Pipeline.Entropy =
    let random = Random(3)
    { NewKey = fun () -> Guid.NewGuid().ToString()
      Draw = fun () -> random.NextDouble() }

let private decide mode scenario (i, model) =
    Pipeline.decide (settings mode) (Rules.route (ruleSet scenario)) entropy (recordOf i model)

let private forAllRecords (scenario: Scenario) (law: int * RecordModel -> bool) =
    scenario.Records |> List.indexed |> List.forall law

let private config = { FsCheckConfig.defaultConfig with maxTest = 300 }

[<Tests>]
let tests =
    testList
        "Rules (core)"
        [ testPropertyWithConfig config "first match wins; a rule whose code throws fails the record with its name"
          <| Prop.forAll scenarios (fun scenario ->
              forAllRecords scenario (fun (i, model) ->
                  match expected scenario model, route scenario (i, model) with
                  | ByDefaults, Use route -> route.Name = DefaultsName
                  | ByRule rule, Use route -> route.Name = rule.Name
                  | SkippedBy name, SkipByRule rule -> rule = name
                  | FailedIn name, RuleFailed(rule, message) -> rule = name && message.Contains "ArgumentNullException"
                  | _ -> false))

          testPropertyWithConfig config "skip never sends"
          <| Prop.forAll scenarios (fun scenario ->
              forAllRecords scenario (fun (i, model) ->
                  match expected scenario model, decide Sampling.ByDocument scenario (i, model) with
                  | SkippedBy name, Pipeline.Skip(Pipeline.SkippedByRule rule) -> rule = name
                  | SkippedBy _, _ -> false
                  | _, Pipeline.Send request ->
                      scenario.Rules |> List.forall (fun rule -> not (rule.Skip && rule.Name = request.Route))
                  | _ -> true))

          testPropertyWithConfig config "no match gives the defaults: their destination, rate and headers"
          <| Prop.forAll scenarios (fun scenario ->
              forAllRecords scenario (fun (i, model) ->
                  match expected scenario model, route scenario (i, model) with
                  | ByDefaults, Use route ->
                      route.Target = Target.Pattern defaultPattern
                      && Sampling.Rate.value route.Sample = scenario.DefaultSample
                      && route.Deletes
                      && route.CopyKeys
                      && route.Headers
                         = (scenario.DefaultCopies |> List.choose (fun n -> lastHeader model n |> Option.map (fun v -> n, v)))
                  | ByDefaults, _ -> false
                  | _ -> true))

          testPropertyWithConfig config "a sample override of 0 never sends and of 1 always does, in both sampling modes"
          <| Prop.forAll scenarios (fun scenario ->
              [ Sampling.ByDocument; Sampling.Random ]
              |> List.forall (fun mode ->
                  forAllRecords scenario (fun (i, model) ->
                      match expected scenario model, decide mode scenario (i, model) with
                      | ByRule { Sample = Some 0.0; Name = name }, Pipeline.Skip(Pipeline.SampledOut route) -> route = name
                      | ByRule { Sample = Some 0.0 }, _ -> false
                      | ByRule { Sample = Some 1.0; Name = name }, Pipeline.Send request -> request.Route = name
                      | ByRule { Sample = Some 1.0 }, _ -> false
                      | _ -> true)))

          testPropertyWithConfig config "copied headers are exactly the named ones, values unchanged (a rule's names replace the defaults')"
          <| Prop.forAll (Arb.fromGen (scenarioGen anyText)) (fun scenario ->
              forAllRecords scenario (fun (i, model) ->
                  match expected scenario model, route scenario (i, model) with
                  | ByRule rule, Use route ->
                      let replaced (name: string) =
                          rule.Copies |> List.exists (fun own -> String.Equals(own, name, StringComparison.OrdinalIgnoreCase))
                      let names = (scenario.DefaultCopies |> List.filter (replaced >> not)) @ rule.Copies
                      route.Headers = (names |> List.choose (fun n -> lastHeader model n |> Option.map (fun v -> n, v)))
                  | ByRule _, _ -> false
                  | _ -> true))

          testPropertyWithConfig config "per-key destinations keep the key in its own path segment"
          <| Prop.forAll
              (Arb.fromGen (
                  anyText
                  // Ids the core lets into a URL at all (hostile ones are dead-lettered, see UrlSafetyTests).
                  |> Gen.filter (fun id ->
                      id <> "" && Text.Encoding.UTF8.GetByteCount id <= MaxIdBytes && (Destination.refuseValue id).IsNone)
              ))
              (fun id ->
                  let rules: RuleSet<Record * Envelope> =
                      { View = fun record envelope -> record, envelope
                        Defaults =
                          { Dest = DestPattern defaultPattern
                            Mirrors = []
                            Sample = Fixed 0.0
                            Deletes = true
                            CopyKeys = true
                            Method = None
                            Headers = []
                            StatusPolicy = StatusPolicy.defaults
                            DropIp = false
                            Body = None }
                        Rules =
                          [ { Name = "per key"
                              When = fun _ -> true
                              Action =
                                Replay
                                    { Settings.none with
                                        Dest = Some(DestPattern(pattern "http://keys.example/k/{id}/tail"))
                                        Sample = Some(Fixed 1.0) } } ] }
                  let model = { Id = id; Headers = [] }
                  match Pipeline.decide (settings Sampling.ByDocument) (Rules.route rules) entropy (recordOf 0 model) with
                  | Pipeline.Send request ->
                      let url = request.Url.OriginalString
                      let prefix, suffix = "http://keys.example/k/", "/tail"
                      let segment = url.Substring(prefix.Length, url.Length - prefix.Length - suffix.Length)
                      url.StartsWith prefix
                      && url.EndsWith suffix
                      && not (segment.Contains '/')
                      && not (segment.Contains '?')
                      && not (segment.Contains '#')
                      && segment <> "."
                      && segment <> ".."
                      && Uri.UnescapeDataString segment = id
                  | _ -> false)

          test "computed values: a null header is not sent, a null destination or an out-of-range sample fails the rule" {
              let record = recordOf 0 { Id = "doc-1"; Headers = [] }
              let envelope = envelopeOf "doc-1"
              let one (settings: Settings<unit>) =
                  Rules.route
                      { View = fun _ _ -> ()
                        Defaults =
                          { Dest = DestPattern defaultPattern
                            Mirrors = []
                            Sample = Fixed 1.0
                            Deletes = true
                            CopyKeys = true
                            Method = None
                            Headers = []
                            StatusPolicy = StatusPolicy.defaults
                            DropIp = false
                            Body = None }
                        Rules = [ { Name = "computed"; When = (fun () -> true); Action = Replay settings } ] }
                      record
                      envelope
              match one { Settings.none with Headers = [ SetHeader("X-Gone", Code(fun () -> null)); SetHeader("X-Here", Code(fun () -> "v")) ] } with
              | Use route -> Expect.equal route.Headers [ "X-Here", "v" ] "a null header value sends no header"
              | other -> failtestf "expected a route, got %A" other
              match one { Settings.none with Dest = Some(DestCode(fun () -> null)) } with
              | RuleFailed("computed", message) -> Expect.stringContains message "null" "says the destination was null"
              | other -> failtestf "expected a failure, got %A" other
              match one { Settings.none with Sample = Some(Code(fun () -> 1.5)) } with
              | RuleFailed("computed", message) -> Expect.stringContains message "outside [0, 1]" "says the rate is out of range"
              | other -> failtestf "expected a failure, got %A" other
              match one { Settings.none with Dest = Some(DestCode(fun () -> "http://computed.example/x")); Method = Some Put } with
              | Use { Target = Url "http://computed.example/x"; Method = Some Put } -> ()
              | other -> failtestf "expected the computed URL and PUT, got %A" other
          } ]
