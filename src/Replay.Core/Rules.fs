/// Routing by a rules file, as a pure function over a rule set of plain functions.
/// The host compiles the file's C# snippets into delegates and hands them over as
/// functions of a per-record `'view`; this module only decides: the first rule
/// whose predicate holds wins, a `skip` rule drops the record, no match means the
/// defaults, and whatever a rule leaves unset it inherits from the defaults. Code
/// supplied by the operator may throw: that becomes `RuleFailed` naming the rule,
/// so one bad record is dead-lettered instead of stopping the replay. A `body:`
/// rewrite is handed to the pipeline still unrun, so records that are sampled out
/// never pay for it; when it runs, its failures name their rule the same way.
module Replay.Core.Rules

open System
open Replay.Core.Envelope

/// A setting written in the file, or computed per record by the rule's code.
type Value<'view, 'a> =
    | Fixed of 'a
    | Code of ('view -> 'a)

/// Where a route sends its records.
type Dest<'view> =
    /// A pattern filled from the record by the pipeline (`{id}`, `%k`, ...).
    | DestPattern of Destination.Pattern
    /// A URL computed by the rule's code; null is a failure of the rule.
    | DestCode of ('view -> string | null)

/// Record and envelope values that `copy-headers` can put into an HTTP header.
type Field =
    | Namespace
    | Id
    | Topic
    | Partition
    | Offset
    | Timestamp
    | ApiVersion
    | Partitions

let fieldNames =
    [ "namespace", Namespace
      "id", Id
      "topic", Topic
      "partition", Partition
      "offset", Offset
      "timestamp", Timestamp
      "api_version", ApiVersion
      "partitions", Partitions ]

type CopySource =
    /// A Kafka record header (the last one of that name); absent or null sends nothing.
    | KafkaHeader of name: string
    | EnvelopeField of Field

/// One HTTP header of a route.
type Header<'view> =
    /// A value from the rule's code; null sends no header.
    | SetHeader of name: string * value: Value<'view, string | null>
    | CopyHeader of name: string * source: CopySource

/// A `body:` snippet: the payload as it stands in, the payload to send out.
type Body<'view> = 'view -> ReadOnlyMemory<byte> -> ReadOnlyMemory<byte>

/// What a rule (or the defaults) sets; None inherits from the defaults.
type Settings<'view> =
    { Dest: Dest<'view> option
      /// More destinations (a `dest:` list after its first); None inherits the defaults'
      /// unless `Dest` is set: a rule naming its destination names all of them.
      Mirrors: Destination.Pattern list option
      Sample: Value<'view, float> option
      Deletes: bool option
      CopyKeys: bool option
      Method: Method option
      /// Applied after the defaults' headers; a name set here replaces the default's.
      Headers: Header<'view> list
      /// `on-status:`, layered over the defaults' policy (the rule's entries win).
      OnStatus: StatusPolicy.Policy option
      /// `drop-ip: true`. Adds to the defaults' setting; nothing takes it back.
      DropIp: bool
      /// `body:`, run after the defaults' body, on what that body made.
      Body: Body<'view> option }

module Settings =
    let none: Settings<'view> =
        { Dest = None
          Mirrors = None
          Sample = None
          Deletes = None
          CopyKeys = None
          Method = None
          Headers = []
          OnStatus = None
          DropIp = false
          Body = None }

type Action<'view> =
    | Replay of Settings<'view>
    | Skip

type Rule<'view> =
    { Name: string
      When: 'view -> bool
      Action: Action<'view> }

/// The settings of records no rule matched, and the base every rule inherits.
type Defaults<'view> =
    { Dest: Dest<'view>
      /// Where every record is also sent (mirroring); [] for one destination.
      Mirrors: Destination.Pattern list
      Sample: Value<'view, float>
      Deletes: bool
      CopyKeys: bool
      Method: Method option
      Headers: Header<'view> list
      /// What answers mean for every route: the flags' policy with the file's `on-status:` over it.
      StatusPolicy: StatusPolicy.Policy
      DropIp: bool
      /// A scrubbing `body:` every replayed record goes through, rules' records included.
      Body: Body<'view> option }

/// A rule set over a per-record view: `View` is built once per record and every
/// predicate and selector reads that same view.
type RuleSet<'view> =
    { View: Record -> Envelope -> 'view
      Defaults: Defaults<'view>
      Rules: Rule<'view> list }

/// The name routes from the defaults carry in logs, skips and dead letters.
[<Literal>]
let DefaultsName = "defaults"

/// A rule's settings merged with the defaults, once, when the rule set is built.
type private Resolved<'view> =
    { Name: string
      Dest: Dest<'view>
      Mirrors: Target list
      Sample: Value<'view, float>
      Deletes: bool
      CopyKeys: bool
      Method: Method option
      Headers: Header<'view>[]
      StatusPolicy: StatusPolicy.Policy
      DropIp: bool
      /// The body rewrites in the order they run, each with the name its failures carry.
      Bodies: (string * Body<'view>)[]
      /// The whole route when nothing in it depends on the record: built once, not per record.
      Constant: Route option }

let private headerName header =
    match header with
    | SetHeader(name, _)
    | CopyHeader(name, _) -> name

/// The defaults' headers not replaced by the rule's (HTTP names are case-insensitive), then the rule's.
let mergeHeaders (defaults: Header<'view> list) (own: Header<'view> list) =
    let replaced =
        own |> List.map (fun h -> (headerName h).ToLowerInvariant()) |> Set.ofList
    (defaults |> List.filter (fun h -> not (replaced.Contains((headerName h).ToLowerInvariant()))))
    @ own

let private fixedHeaders (headers: Header<'view> list) =
    let rec go acc headers =
        match headers with
        | [] -> Some(List.rev acc)
        | SetHeader(_, Fixed null) :: rest -> go acc rest
        | SetHeader(name, Fixed(NonNull value)) :: rest -> go ((name, value) :: acc) rest
        | _ -> None
    go [] headers

let private resolve (defaults: Defaults<'view>) (name: string) (settings: Settings<'view>) : Resolved<'view> =
    let dest = defaultArg settings.Dest defaults.Dest
    let mirrors =
        match settings.Mirrors, settings.Dest with
        | Some own, _ -> own
        | None, Some _ -> []
        | None, None -> defaults.Mirrors
        |> List.map Target.Pattern
    let sample = defaultArg settings.Sample defaults.Sample
    let headers = mergeHeaders defaults.Headers settings.Headers
    let deletes = defaultArg settings.Deletes defaults.Deletes
    let copyKeys = defaultArg settings.CopyKeys defaults.CopyKeys
    let methodOverride = settings.Method |> Option.orElse defaults.Method
    let policy =
        match settings.OnStatus with
        | Some own -> StatusPolicy.layer own defaults.StatusPolicy
        | None -> defaults.StatusPolicy
    let dropIp = defaults.DropIp || settings.DropIp
    // The defaults' body is the file's scrubbing floor: a rule's body runs after it, never instead.
    let bodies =
        [| match defaults.Body with
           | Some body -> yield DefaultsName, body
           | None -> ()
           match settings.Body with
           | Some body -> yield name, body
           | None -> () |]
    let constant =
        match dest, sample, fixedHeaders headers with
        | DestPattern pattern, Fixed value, Some fixedHeaders when bodies.Length = 0 ->
            match Sampling.Rate.create value with
            | Ok rate ->
                Some
                    { Route.defaults name (Target.Pattern pattern) rate deletes copyKeys with
                        Mirrors = mirrors
                        Method = methodOverride
                        Headers = fixedHeaders
                        StatusPolicy = policy
                        DropIp = dropIp }
            | Error _ -> None
        | _ -> None
    { Name = name
      Dest = dest
      Mirrors = mirrors
      Sample = sample
      Deletes = deletes
      CopyKeys = copyKeys
      Method = methodOverride
      Headers = Array.ofList headers
      StatusPolicy = policy
      DropIp = dropIp
      Bodies = bodies
      Constant = constant }

let fieldValue (field: Field) (record: Record) (envelope: Envelope) : string =
    match field with
    | Namespace -> envelope.Namespace
    | Id -> envelope.Id
    | Topic -> record.Topic
    | Partition -> string record.Partition
    | Offset -> string record.Offset
    | Timestamp -> string envelope.Timestamp
    | ApiVersion -> envelope.ApiVersion
    | Partitions -> String.Join("/", envelope.Partitions)

/// The body rewrites bound to one record's view: each runs on what the one before
/// made, and an exception stops the chain naming the rule whose code threw.
let private rewrite (bodies: (string * Body<'view>)[]) (view: 'view) : Rewrite option =
    if bodies.Length = 0 then
        None
    else
        Some(fun payload ->
            let mutable current = Ok payload
            let mutable i = 0
            while i < bodies.Length && Result.isOk current do
                let stage, body = bodies[i]
                current <-
                    match current with
                    | Ok input ->
                        try
                            Ok(body view input)
                        with error ->
                            Error(stage, $"{error.GetType().Name}: {error.Message}")
                    | failed -> failed
                i <- i + 1
            current)

/// The route one rule gives one record, or why its values are unusable (a null
/// URL, a rate outside [0, 1]). Exceptions from the rule's code pass through, to
/// be caught by `route` with the rule's name.
let private build (resolved: Resolved<'view>) (view: 'view) (record: Record) (envelope: Envelope) : Result<Route, string> =
    match resolved.Constant with
    | Some route -> Ok route
    | None ->
        let target =
            match resolved.Dest with
            | DestPattern pattern -> Ok(Target.Pattern pattern)
            | DestCode code ->
                match code view with
                | null -> Error "its destination expression returned null"
                | url -> Ok(Url url)
        let sample =
            match resolved.Sample with
            | Fixed value -> Sampling.Rate.create value
            | Code code -> Sampling.Rate.create (code view)
        match target, sample with
        | Error why, _
        | _, Error why -> Error why
        | Ok target, Ok sample ->
            let headers =
                resolved.Headers
                |> Array.choose (fun header ->
                    let value =
                        match header with
                        | SetHeader(_, Fixed text) -> text
                        | SetHeader(_, Code code) -> code view
                        | CopyHeader(_, KafkaHeader kafkaName) -> Record.header kafkaName record
                        | CopyHeader(_, EnvelopeField field) -> fieldValue field record envelope
                    match value with
                    | null -> None
                    | text -> Some(headerName header, text))
                |> List.ofArray
            Ok
                { Name = resolved.Name
                  Target = target
                  Mirrors = resolved.Mirrors
                  Sample = sample
                  Deletes = resolved.Deletes
                  CopyKeys = resolved.CopyKeys
                  Method = resolved.Method
                  Headers = headers
                  StatusPolicy = resolved.StatusPolicy
                  DropIp = resolved.DropIp
                  Body = rewrite resolved.Bodies view }

/// What a matching rule does.
type private Outcome<'view> =
    | Skips of Choice
    | Replays of Resolved<'view>

/// The router of a rule set. Rules are tried in order; the first whose `When`
/// holds decides. Any exception from the rule set's code (view, predicate or
/// selector) fails the record with the name of the rule being evaluated. With
/// `drop-ip` in the defaults no code sees the envelope's address at all; with it
/// in a rule, the rule's values are computed over a view without the address.
let route (rules: RuleSet<'view>) : Router =
    let defaults = resolve rules.Defaults DefaultsName Settings.none
    let dropEverywhere = rules.Defaults.DropIp
    let names = rules.Rules |> List.map (fun rule -> rule.Name) |> Array.ofList
    let predicates = rules.Rules |> List.map (fun rule -> rule.When) |> Array.ofList
    let outcomes =
        rules.Rules
        |> List.map (fun rule ->
            match rule.Action with
            | Skip -> Skips(SkipByRule rule.Name)
            | Replay settings -> Replays(resolve rules.Defaults rule.Name settings))
        |> Array.ofList
    fun record envelope ->
        let mutable stage = DefaultsName
        let envelope = if dropEverywhere then Envelope.withoutIpAddr envelope else envelope
        try
            let view = rules.View record envelope
            let mutable chosen = -1
            let mutable i = 0
            while chosen < 0 && i < predicates.Length do
                stage <- names[i]
                if predicates[i] view then chosen <- i
                i <- i + 1
            let resolved =
                if chosen < 0 then
                    stage <- DefaultsName
                    Replays defaults
                else
                    outcomes[chosen]
            match resolved with
            | Skips skip -> skip
            | Replays rule ->
                // The predicates only chose; what the rule computes next may reach the request.
                let view, envelope =
                    if rule.DropIp && not dropEverywhere && rule.Constant.IsNone && not envelope.IpAddr.IsEmpty then
                        let stripped = Envelope.withoutIpAddr envelope
                        rules.View record stripped, stripped
                    else
                        view, envelope
                match build rule view record envelope with
                | Ok route -> Use route
                | Error why -> RuleFailed(stage, why)
        with error ->
            // The operator's code threw: this record fails, the replay goes on.
            RuleFailed(stage, $"{error.GetType().Name}: {error.Message}")
