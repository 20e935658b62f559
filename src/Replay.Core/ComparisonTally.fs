/// The running account of a comparison run, as plain data: per route, how many
/// records were compared and how they came out; per route and field, how often
/// the candidate differed from the primary, how often the secondary differed from
/// the primary (noise), and the first few examples.
///
/// Noise, as in Diffy: a field that ever differed between primary and secondary on
/// a route is noise there, and the candidate's differences on it are counted apart
/// as noisy rather than as regressions. Because noise is a property of the route
/// over the whole run, not of the moment a record came, records are kept by the
/// set of fields they differed in (their signature) and sorted into different or
/// noisy whenever a summary is made: the verdicts do not depend on arrival order.
///
/// Bounded whatever the traffic: at most Limits.Routes routes, FieldsPerRoute fields
/// each, ExamplesPerField examples a field, Signatures signatures a route; what
/// comes beyond is counted under OtherRoutes / OtherFields, or by the verdict it
/// had when it came. Every text kept is cut (about 1.5k characters an example), so
/// the defaults hold a few tens of MB at the very worst.
module Replay.Core.ComparisonTally

open Replay.Core.Difference

type Limits =
    { Routes: int
      FieldsPerRoute: int
      ExamplesPerField: int
      Signatures: int
      FailuresPerRoute: int }

let defaultLimits =
    { Routes = 50
      FieldsPerRoute = 100
      ExamplesPerField = 3
      Signatures = 64
      FailuresPerRoute = 5 }

/// Where routes beyond Limits.Routes are counted.
[<Literal>]
let OtherRoutes = "(other routes)"

/// Where fields beyond Limits.FieldsPerRoute are counted.
[<Literal>]
let OtherFields = "(other paths)"

[<Literal>]
let private MaxRoute = 200

[<Literal>]
let private MaxReplayId = 256

[<Literal>]
let private MaxRequest = 256

/// One record's difference at a field, kept to show what the difference looks like.
type Example =
    { ReplayId: string
      Request: string
      /// The exact path (with its array positions).
      Path: string
      Change: Change
      Primary: string
      Candidate: string }

/// A record whose answers could not be compared, and why.
type Failure =
    { ReplayId: string
      Request: string
      Reason: string }

type FieldTally =
    { /// Records whose candidate differed from the primary here.
      Differences: int64
      /// Records whose secondary differed from the primary here.
      Noise: int64
      /// The first examples, oldest first.
      Examples: Example list }

type RouteTally =
    { Compared: int64
      Equal: int64
      Failed: int64
      Fields: Map<string, FieldTally>
      /// Records that differed, counted by the sorted fields they differed in.
      Signatures: Map<string list, int64>
      /// Records beyond the Signatures limit, sorted by the verdict they had when they came.
      UnsignedDifferent: int64
      UnsignedNoisy: int64
      /// The first failures, oldest first.
      Failures: Failure list }

type Tally =
    { Limits: Limits
      Routes: Map<string, RouteTally> }

/// What one record's comparison came to.
type Verdict =
    | Equal
    /// The candidate differed where primary and secondary never did.
    | Different
    /// The candidate differed only in fields that are noise on its route.
    | Noisy

/// One record's answers, compared.
type Observation =
    { Route: string
      ReplayId: string
      /// The request as a line: method and target.
      Request: string
      /// Primary against candidate.
      Differences: Difference list
      /// Primary against secondary, when a secondary answered.
      Noise: Difference list option }

let empty (limits: Limits) = { Limits = limits; Routes = Map.empty }

let private emptyRoute =
    { Compared = 0L
      Equal = 0L
      Failed = 0L
      Fields = Map.empty
      Signatures = Map.empty
      UnsignedDifferent = 0L
      UnsignedNoisy = 0L
      Failures = [] }

let private emptyField = { Differences = 0L; Noise = 0L; Examples = [] }

/// The key a route is counted under: its bounded text, or OtherRoutes once the table is full.
let private routeKey (tally: Tally) (route: string) =
    let key = shown MaxRoute route
    let named = tally.Routes.Count - (if tally.Routes.ContainsKey OtherRoutes then 1 else 0)
    if tally.Routes.ContainsKey key || named < tally.Limits.Routes then key else OtherRoutes

let private fieldKey (limits: Limits) (route: RouteTally) (field: string) =
    let named = route.Fields.Count - (if route.Fields.ContainsKey OtherFields then 1 else 0)
    if route.Fields.ContainsKey field || named < limits.FieldsPerRoute then field else OtherFields

let private updateField key (change: FieldTally -> FieldTally) (route: RouteTally) =
    let current = route.Fields |> Map.tryFind key |> Option.defaultValue emptyField
    { route with Fields = route.Fields |> Map.add key (change current) }

let private isNoise (route: RouteTally) field =
    match route.Fields.TryFind field with
    | Some f -> f.Noise > 0L
    | None -> false

/// Counts one record's comparison; also says what it came to as far as is known now.
let observe (observation: Observation) (tally: Tally) : Tally * Verdict =
    let limits = tally.Limits
    let key = routeKey tally observation.Route
    let route = tally.Routes |> Map.tryFind key |> Option.defaultValue emptyRoute
    let noiseFields =
        observation.Noise |> Option.defaultValue [] |> List.map _.Field |> List.distinct
    let route =
        noiseFields
        |> List.fold (fun r field -> updateField (fieldKey limits r field) (fun f -> { f with Noise = f.Noise + 1L }) r) route
    // The first difference of each field in this record, so that a field counts a record once.
    let firsts = observation.Differences |> List.distinctBy _.Field
    let route, fields =
        firsts
        |> List.fold
            (fun (r, keys) (d: Difference) ->
                let k = fieldKey limits r d.Field
                if List.contains k keys then
                    r, keys // several fields overflowed into OtherFields
                else
                    let example =
                        { ReplayId = shown MaxReplayId observation.ReplayId
                          Request = shown MaxRequest observation.Request
                          Path = d.Path
                          Change = d.Change
                          Primary = d.Primary
                          Candidate = d.Candidate }
                    let add f =
                        { f with
                            Differences = f.Differences + 1L
                            Examples = if List.length f.Examples < limits.ExamplesPerField then f.Examples @ [ example ] else f.Examples }
                    updateField k add r, k :: keys)
            (route, [])
    let verdict =
        if fields.IsEmpty then Equal
        elif fields |> List.forall (isNoise route) then Noisy
        else Different
    let signature = List.sort fields
    let route = { route with Compared = route.Compared + 1L }
    let route =
        match verdict with
        | Equal -> { route with Equal = route.Equal + 1L }
        | _ when route.Signatures.ContainsKey signature || route.Signatures.Count < limits.Signatures ->
            let count = route.Signatures |> Map.tryFind signature |> Option.defaultValue 0L
            { route with Signatures = route.Signatures |> Map.add signature (count + 1L) }
        | Different -> { route with UnsignedDifferent = route.UnsignedDifferent + 1L }
        | Noisy -> { route with UnsignedNoisy = route.UnsignedNoisy + 1L }
    { tally with Routes = tally.Routes |> Map.add key route }, verdict

/// True when `field` is noise on `route` as far as is known now.
let isNoiseOn (route: string) (field: string) (tally: Tally) =
    match tally.Routes.TryFind(routeKey tally route) with
    | Some r -> isNoise r (fieldKey tally.Limits r field)
    | None -> false

/// Counts a record whose answers could not be compared (a server unreachable).
let fail (route: string) (replayId: string) (request: string) (reason: string) (tally: Tally) : Tally =
    let key = routeKey tally route
    let r = tally.Routes |> Map.tryFind key |> Option.defaultValue emptyRoute
    let failure =
        { ReplayId = shown MaxReplayId replayId
          Request = shown MaxRequest request
          Reason = shown MaxExcerpt reason }
    let r =
        { r with
            Failed = r.Failed + 1L
            Failures = if List.length r.Failures < tally.Limits.FailuresPerRoute then r.Failures @ [ failure ] else r.Failures }
    { tally with Routes = tally.Routes |> Map.add key r }

type Counts =
    { /// Records whose answers were compared (equal + different + noisy).
      Compared: int64
      Equal: int64
      Different: int64
      Noisy: int64
      /// Records whose answers could not be compared.
      Failed: int64 }

type FieldSummary =
    { Field: string
      Differences: int64
      Noise: int64
      /// The field differed between primary and secondary: its differences are noise.
      IsNoise: bool
      Examples: Example array }

type RouteSummary =
    { Route: string
      Counts: Counts
      /// Regressions first, then noise; each by count, most first.
      Fields: FieldSummary array
      Failures: Failure array }

let private summarizeRoute (name: string) (route: RouteTally) =
    let different, noisy =
        route.Signatures
        |> Map.fold
            (fun (d, n) signature count -> if signature |> List.forall (isNoise route) then d, n + count else d + count, n)
            (route.UnsignedDifferent, route.UnsignedNoisy)
    let fields =
        route.Fields
        |> Map.toArray
        |> Array.map (fun (field, f) ->
            { Field = field
              Differences = f.Differences
              Noise = f.Noise
              IsNoise = f.Noise > 0L
              Examples = Array.ofList f.Examples })
        |> Array.sortBy (fun f -> f.IsNoise, -f.Differences, -f.Noise, f.Field)
    { Route = name
      Counts =
        { Compared = route.Compared
          Equal = route.Equal
          Different = different
          Noisy = noisy
          Failed = route.Failed }
      Fields = fields
      Failures = Array.ofList route.Failures }

/// Every route's counts and fields as of now, routes by name.
let summarize (tally: Tally) : RouteSummary array =
    tally.Routes |> Map.toArray |> Array.map (fun (name, route) -> summarizeRoute name route)

/// The counts of all routes together.
let total (routes: RouteSummary array) : Counts =
    routes
    |> Array.fold
        (fun (t: Counts) r ->
            { Compared = t.Compared + r.Counts.Compared
              Equal = t.Equal + r.Counts.Equal
              Different = t.Different + r.Counts.Different
              Noisy = t.Noisy + r.Counts.Noisy
              Failed = t.Failed + r.Counts.Failed })
        { Compared = 0L
          Equal = 0L
          Different = 0L
          Noisy = 0L
          Failed = 0L }
