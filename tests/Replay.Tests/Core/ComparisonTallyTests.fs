/// The comparison tally: counts per route and field against a reference model
/// that keeps every event, noise sorted out whatever the arrival order, and
/// memory bounded by the limits however many routes, fields and records come.
module Replay.Tests.ComparisonTallyTests

open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Difference
open Replay.Tests.Generators

type private Event =
    | Seen of route: string * candidate: string list * noise: string list option
    | Failed of route: string

let private events (routes: string list) (fields: string list) : Gen<Event list> =
    let field = Gen.elements fields
    let event =
        Gen.frequency
            [ 8,
              gen {
                  let! route = Gen.elements routes
                  let! candidate = Gen.frequency [ 2, Gen.constant []; 3, Gen.listOf field |> Gen.map (List.truncate 5) ]
                  let! noise = Gen.frequency [ 1, Gen.constant None; 2, Gen.listOf field |> Gen.map (List.truncate 3 >> Some) ]
                  return Seen(route, candidate, noise)
              }
              1, Gen.elements routes |> Gen.map Failed ]
    Gen.listOf event

let private difference field : Difference =
    { Path = field
      Field = field
      Change = Changed
      Primary = "1"
      Candidate = "2" }

let private run (limits: ComparisonTally.Limits) (events: Event list) =
    events
    |> List.fold
        (fun tally e ->
            match e with
            | Seen(route, candidate, noise) ->
                let observation: ComparisonTally.Observation =
                    { Route = route
                      ReplayId = "t/0/1"
                      Request = "POST /x"
                      Differences = candidate |> List.map difference
                      Noise = noise |> Option.map (List.map difference) }
                fst (ComparisonTally.observe observation tally)
            | Failed route -> ComparisonTally.fail route "t/0/2" "POST /y" "refused" tally)
        (ComparisonTally.empty limits)

/// The reference model: every event kept, the counts worked out at the end.
let private model (events: Event list) =
    let routes = events |> List.map (fun e -> match e with Seen(r, _, _) | Failed r -> r) |> List.distinct |> List.sort
    [ for route in routes ->
          let seen = events |> List.choose (fun e -> match e with Seen(r, c, n) when r = route -> Some(c, n) | _ -> None)
          let failed = events |> List.filter (fun e -> e = Failed route) |> List.length
          let noise = seen |> List.collect (fun (_, n) -> defaultArg n []) |> Set.ofList
          let different = seen |> List.filter (fun (c, _) -> c |> List.exists (fun f -> not (noise.Contains f))) |> List.length
          let noisy = seen |> List.filter (fun (c, _) -> not c.IsEmpty && c |> List.forall noise.Contains) |> List.length
          let fields =
              seen
              |> List.collect (fun (c, n) -> c @ defaultArg n [])
              |> List.distinct
              |> List.map (fun f ->
                  f,
                  (seen |> List.filter (fun (c, _) -> List.contains f c) |> List.length |> int64,
                   seen |> List.filter (fun (_, n) -> List.contains f (defaultArg n [])) |> List.length |> int64))
              |> Map.ofList
          route,
          ({ Compared = int64 seen.Length
             Equal = seen |> List.filter (fun (c, _) -> c.IsEmpty) |> List.length |> int64
             Different = int64 different
             Noisy = int64 noisy
             Failed = int64 failed }: ComparisonTally.Counts),
          fields ]

[<Tests>]
let tests =
    testList
        "Comparison tally"
        [ property "counts per route and field equal the reference model's, whatever the arrival order"
              (events [ "GET /a"; "POST /b"; "PUT /c" ] [ "status"; "$.a"; "$.b[*]"; "$.time"; "$.requestId" ])
          <| fun events ->
              let summary = ComparisonTally.summarize (run ComparisonTally.defaultLimits events)
              let actual =
                  [ for r in summary ->
                        r.Route, r.Counts, r.Fields |> Array.map (fun f -> f.Field, (f.Differences, f.Noise)) |> Map.ofArray ]
              Expect.equal actual (model events) "per route"
              for r in summary do
                  for f in r.Fields do
                      Expect.equal f.IsNoise (f.Noise > 0L) $"{f.Field} is noise exactly when primary and secondary differed there"

          property "memory is bounded: routes, fields, examples, signatures and failures stay within the limits; no record is lost"
              (events [ for i in 1..8 -> $"route {i}" ] [ for i in 1..12 -> $"$.f{i}" ])
          <| fun events ->
              let limits: ComparisonTally.Limits =
                  { Routes = 3
                    FieldsPerRoute = 4
                    ExamplesPerField = 2
                    Signatures = 3
                    FailuresPerRoute = 2 }
              let tally = run limits events
              Expect.isLessThanOrEqual tally.Routes.Count (limits.Routes + 1) "routes, OtherRoutes included"
              for KeyValue(_, route) in tally.Routes do
                  Expect.isLessThanOrEqual route.Fields.Count (limits.FieldsPerRoute + 1) "fields, OtherFields included"
                  Expect.isLessThanOrEqual route.Signatures.Count limits.Signatures "signatures"
                  Expect.isLessThanOrEqual route.Failures.Length limits.FailuresPerRoute "failures"
                  for KeyValue(_, field) in route.Fields do
                      Expect.isLessThanOrEqual field.Examples.Length limits.ExamplesPerField "examples"
              let total = ComparisonTally.total (ComparisonTally.summarize tally)
              let seen = events |> List.filter (fun e -> match e with Seen _ -> true | Failed _ -> false) |> List.length
              Expect.equal total.Compared (int64 seen) "every comparison counted"
              Expect.equal (total.Equal + total.Different + total.Noisy) total.Compared "each one equal, different or noisy"
              Expect.equal total.Failed (int64 (events.Length - seen)) "every failure counted"

          test "a field seen differing between primary and secondary later still makes earlier records noisy" {
              let tally =
                  run
                      ComparisonTally.defaultLimits
                      [ Seen("r", [ "$.time" ], Some []); Seen("r", [ "$.time"; "$.price" ], None); Seen("r", [], Some [ "$.time" ]) ]
              let route = (ComparisonTally.summarize tally)[0]
              Expect.equal (route.Counts.Noisy, route.Counts.Different, route.Counts.Equal) (1L, 1L, 1L) "counts"
              Expect.equal (route.Fields |> Array.map (fun f -> f.Field, f.IsNoise)) [| "$.price", false; "$.time", true |] "regressions first"
          } ]
