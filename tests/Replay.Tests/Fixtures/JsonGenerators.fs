/// JSON documents as plain data for the comparison laws: a model that serializes
/// to bytes, edits with known effects (numbers moved within a tolerance, arrays
/// reordered), and the member names hostile servers like (duplicates, quotes,
/// empty, `*`, non-ASCII).
module Replay.Tests.JsonGenerators

open System
open System.Globalization
open System.Text
open System.Text.Json
open FsCheck
open FsCheck.FSharp

type Json =
    | JNull
    | JBool of bool
    /// A number as it is written (decimal text, at most 4 fraction digits).
    | JNumber of decimal
    | JString of string
    | JArray of Json list
    /// Members in order; a name may repeat, as hostile servers send it.
    | JObject of (string * Json) list

let rec private write (out: StringBuilder) json =
    match json with
    | JNull -> out.Append "null" |> ignore
    | JBool b -> out.Append(if b then "true" else "false") |> ignore
    | JNumber d -> out.Append(d.ToString(CultureInfo.InvariantCulture)) |> ignore
    | JString s -> out.Append(JsonSerializer.Serialize s) |> ignore
    | JArray items ->
        out.Append '[' |> ignore
        items
        |> List.iteri (fun i item ->
            if i > 0 then out.Append ',' |> ignore
            write out item)
        out.Append ']' |> ignore
    | JObject members ->
        out.Append '{' |> ignore
        members
        |> List.iteri (fun i (name, value) ->
            if i > 0 then out.Append ',' |> ignore
            out.Append(JsonSerializer.Serialize name).Append(':') |> ignore
            write out value)
        out.Append '}' |> ignore

let text json =
    let out = StringBuilder()
    write out json
    out.ToString()

let bytes json = Encoding.UTF8.GetBytes(text json)

/// Member names: a small pool so that objects share and repeat them.
let memberName: Gen<string> =
    Gen.elements [ "a"; "b"; "id"; "items"; "price"; "x-y"; "名前"; ""; "*"; "it's"; "back\\slash"; "line\nbreak"; "requestId" ]

let private number: Gen<decimal> =
    Gen.frequency
        [ 3, Gen.choose (-1000, 1000) |> Gen.map decimal
          2, Gen.choose (-10_000_000, 10_000_000) |> Gen.map (fun n -> decimal n / 10000m)
          1, Gen.elements [ 0m; 1m; -1m; 79228162514264m; 0.0001m ] ]

let private leaf: Gen<Json> =
    Gen.frequency
        [ 1, Gen.constant JNull
          1, Gen.elements [ JBool true; JBool false ]
          3, number |> Gen.map JNumber
          3, Gen.elements [ ""; "x"; "y"; "héllo"; "😀"; "</script>" ] |> Gen.map JString ]

/// Any JSON value, nested a few levels.
let json: Gen<Json> =
    let rec tree depth =
        if depth = 0 then
            leaf
        else
            Gen.frequency
                [ 3, leaf
                  2, gen {
                      let! count = Gen.choose (0, 4)
                      let! items = Gen.listOfLength count (tree (depth - 1))
                      return JArray items
                  }
                  3, gen {
                      let! count = Gen.choose (0, 4)
                      let! members = Gen.listOfLength count (Gen.zip memberName (tree (depth - 1)))
                      return JObject members
                  } ]
    Gen.sized (fun size -> tree (min 4 (1 + size / 20)))

/// Two values: independent, or the second an edit of the first (so that they share most structure).
let jsonPair: Gen<Json * Json> =
    let rec edit json =
        gen {
            match json with
            | JObject members when not members.IsEmpty ->
                let! i = Gen.choose (0, members.Length - 1)
                let! action = Gen.choose (0, 2)
                match action with
                | 0 -> return JObject(members |> List.removeAt i)
                | 1 ->
                    let name, value = members[i]
                    let! changed = edit value
                    return JObject(members |> List.updateAt i (name, changed))
                | _ ->
                    let! extra = Gen.zip memberName leaf
                    return JObject(members @ [ extra ])
            | JArray items when not items.IsEmpty ->
                let! i = Gen.choose (0, items.Length - 1)
                let! action = Gen.choose (0, 2)
                match action with
                | 0 -> return JArray(items |> List.removeAt i)
                | 1 ->
                    let! changed = edit items[i]
                    return JArray(items |> List.updateAt i changed)
                | _ -> return JArray(List.rev items)
            | _ -> return! leaf
        }
    Gen.oneof
        [ Gen.zip json json
          gen {
              let! a = json
              let! b = edit a
              let! twice = Gen.elements [ false; true ]
              let! b = if twice then edit b else Gen.constant b
              return a, b
          } ]

/// Every number moved by at most `tolerance` (exactly representable: 4 fraction digits).
let rec nudge (tolerance: decimal) (json: Json) : Gen<Json> =
    gen {
        match json with
        | JNumber n ->
            let steps = int (tolerance * 10000m)
            let! step = Gen.choose (-steps, steps)
            return JNumber(n + decimal step / 10000m)
        | JArray items ->
            let! items = items |> List.map (nudge tolerance) |> Gen.sequenceToList
            return JArray items
        | JObject members ->
            let! values = members |> List.map (snd >> nudge tolerance) |> Gen.sequenceToList
            return JObject(List.zip (List.map fst members) values)
        | other -> return other
    }

/// The items shuffled.
let shuffled (items: 'a list) : Gen<'a list> =
    gen {
        let! keys = Gen.listOfLength items.Length (Gen.choose (0, Int32.MaxValue))
        return List.zip keys items |> List.sortBy fst |> List.map snd
    }
