/// Where two JSON values differ, by path: a structural walk of two parsed
/// documents. Objects are compared by member name whatever their order; arrays
/// position by position, or as multisets where a pattern says `--unordered`;
/// numbers by value, within `--tolerance`; strings by their unescaped text.
/// Ignored places (`--ignore`) and everything below them are never looked at.
///
/// Hostile input is data: a duplicate member name is compared occurrence by
/// occurrence, a string with an invalid escape or invalid UTF-8 by its raw bytes,
/// a number beyond double range by its text. Depth is bounded by the parser
/// (AnswerComparison parses with MaxDepth), and the number of differences one walk
/// reports by `MaxDifferences`, after which it stops and says it was truncated.
module Replay.Core.JsonDiff

open System
open System.Collections.Generic
open System.Globalization
open System.Runtime.InteropServices
open System.Text
open System.Text.Json
open Replay.Core.Difference
open Replay.Core.JsonPath

type Options =
    { /// Numbers whose difference is at most this are equal (0: exactly equal values).
      Tolerance: float
      Ignored: Pattern list
      Unordered: Pattern list
      /// A walk stops after this many differences.
      MaxDifferences: int }

type Outcome =
    { Differences: Difference list
      /// True when the walk stopped at MaxDifferences: there may be more.
      Truncated: bool }

let private raw (e: JsonElement) = JsonMarshal.GetRawUtf8Value e

let private sameRaw (a: JsonElement) (b: JsonElement) = (raw a).SequenceEqual(raw b)

/// The text of a string value, or None when it cannot be unescaped to valid UTF-16
/// (a lone surrogate escape, invalid UTF-8): such strings are compared by raw bytes.
let private text (e: JsonElement) =
    try
        Some(e.GetString())
    with :? InvalidOperationException ->
        None

/// A member's name, or its raw (still escaped) text when it cannot be unescaped.
let private name (p: JsonProperty) =
    try
        p.Name
    with :? InvalidOperationException ->
        Encoding.UTF8.GetString(JsonMarshal.GetRawUtf8PropertyName p)

/// The value of a number as decimal and as double, where each can hold it.
let private decimalOf (e: JsonElement) =
    match e.TryGetDecimal() with
    | true, d -> ValueSome d
    | _ -> ValueNone

let private doubleOf (e: JsonElement) =
    match e.TryGetDouble() with
    | true, d when Double.IsFinite d -> ValueSome d
    | _ -> ValueNone

/// Equal numbers: with no tolerance, the same value (1.0 = 1 = 1e0) in both
/// decimal's 28 digits and double's range, so that neither a 20-digit id nor
/// 1e-30 is rounded into another; a number neither holds (1e400) equals only its
/// own text. With a tolerance, values at most that far apart: decimal arithmetic
/// where it is exact (0.3 - 0.1 is 0.2, not 0.19999999999999998), doubles elsewhere.
let private numbersEqual (tolerance: float) (a: JsonElement) (b: JsonElement) =
    if sameRaw a b then
        true
    elif tolerance = 0.0 then
        match decimalOf a, decimalOf b, doubleOf a, doubleOf b with
        | ValueSome x, ValueSome y, ValueSome p, ValueSome q -> x = y && p = q
        | _ -> false
    else
        match decimalOf a, decimalOf b with
        | ValueSome x, ValueSome y when tolerance >= 1e-20 && tolerance < 1e27 && abs x < 1e27m && abs y < 1e27m ->
            abs (x - y) <= decimal tolerance
        | _ ->
            match doubleOf a, doubleOf b with
            | ValueSome p, ValueSome q -> abs (p - q) <= tolerance
            | _ -> false

let private stringsEqual (a: JsonElement) (b: JsonElement) =
    sameRaw a b
    || (match text a, text b with
        | Some x, Some y -> String.Equals(x, y, StringComparison.Ordinal)
        | _ -> false)

let private excerpt (e: JsonElement) = excerptOfBytes (raw e)

/// The members of an object by name, each with its occurrences in order, and the
/// names in the order they first appear.
let private members (e: JsonElement) =
    let order = ResizeArray<string>()
    let byName = Dictionary<string, ResizeArray<JsonElement>>(StringComparer.Ordinal)
    for p in e.EnumerateObject() do
        let n = name p
        match byName.TryGetValue n with
        | true, list -> list.Add p.Value
        | _ ->
            order.Add n
            byName[n] <- ResizeArray [ p.Value ]
    order, byName

/// The patterns of a walk, ready to test paths against.
type private Matchers = { Ignored: Matcher; Unordered: Matcher }

/// A text equal for two values exactly when they are equal with no tolerance,
/// ignored places left out and unordered arrays sorted: what unordered elements
/// are matched by.
let rec private canonical (matchers: Matchers) (path: Segment list) (e: JsonElement) (out: StringBuilder) =
    if names matchers.Ignored path then
        out.Append '~' |> ignore
    else
        match e.ValueKind with
        | JsonValueKind.Object ->
            let order, byName = members e
            out.Append '{' |> ignore
            for n in order |> Seq.sortWith (fun x y -> String.CompareOrdinal(x, y)) do
                let inner = Member n :: path
                // An ignored member is left out, so that an object without it matches too.
                if not (names matchers.Ignored inner) then
                    for value in byName[n] do
                        out.Append(JsonSerializer.Serialize n).Append(':') |> ignore
                        canonical matchers inner value out
                        out.Append ',' |> ignore
            out.Append '}' |> ignore
        | JsonValueKind.Array ->
            out.Append '[' |> ignore
            if names matchers.Unordered path then
                let inner = Element :: path
                for item in e.EnumerateArray() |> Seq.map (fun item -> canonicalText matchers inner item) |> Seq.sortWith (fun x y -> String.CompareOrdinal(x, y)) do
                    out.Append(item).Append(',') |> ignore
            else
                e.EnumerateArray()
                |> Seq.iteri (fun i item ->
                    canonical matchers (Index i :: path) item out
                    out.Append ',' |> ignore)
            out.Append ']' |> ignore
        | JsonValueKind.Number ->
            // The same rule as numbersEqual with no tolerance.
            match decimalOf e, doubleOf e with
            | ValueSome d, ValueSome p ->
                out.Append(d.ToString("G29", CultureInfo.InvariantCulture)).Append('|').Append(p.ToString("R", CultureInfo.InvariantCulture)) |> ignore
            | _ -> out.Append(Encoding.UTF8.GetString(raw e)) |> ignore
        | JsonValueKind.String ->
            match text e with
            | Some s -> out.Append(JsonSerializer.Serialize s) |> ignore
            | None -> out.Append('~').Append(Convert.ToHexString(raw e)) |> ignore
        | kind -> out.Append(int kind) |> ignore

and private canonicalText matchers path e =
    let out = StringBuilder()
    canonical matchers path e out
    out.ToString()

/// The differences between two JSON values, first against second.
let diff (options: Options) (first: JsonElement) (second: JsonElement) : Outcome =
    let found = ResizeArray<Difference>()
    let mutable truncated = false
    let full () = found.Count >= options.MaxDifferences
    let matchers =
        { Ignored = matcher options.Ignored
          Unordered = matcher options.Unordered }
    let ignored path = names matchers.Ignored path

    let report path change (a: string) (b: string) =
        if not (ignored path) then
            if full () then
                truncated <- true
            else
                found.Add
                    { Path = render path
                      Field = field path
                      Change = change
                      Primary = a
                      Candidate = b }

    let rec walk (path: Segment list) (a: JsonElement) (b: JsonElement) =
        if full () then
            truncated <- true
        elif not (ignored path) then
            match a.ValueKind, b.ValueKind with
            | JsonValueKind.Object, JsonValueKind.Object -> objects path a b
            | JsonValueKind.Array, JsonValueKind.Array ->
                if names matchers.Unordered path then unordered path a b else ordered path a b
            | JsonValueKind.Number, JsonValueKind.Number ->
                if not (numbersEqual options.Tolerance a b) then report path Changed (excerpt a) (excerpt b)
            | JsonValueKind.String, JsonValueKind.String ->
                if not (stringsEqual a b) then report path Changed (excerpt a) (excerpt b)
            | ka, kb when ka = kb -> () // true, false, null
            | _ -> report path Changed (excerpt a) (excerpt b)

    and objects path a b =
        let orderA, byNameA = members a
        let orderB, byNameB = members b
        let names = Seq.append orderA (orderB |> Seq.filter (fun n -> not (byNameA.ContainsKey n)))
        for n in names do
            let inner = Member n :: path
            let valuesA = match byNameA.TryGetValue n with | true, l -> l | _ -> ResizeArray()
            let valuesB = match byNameB.TryGetValue n with | true, l -> l | _ -> ResizeArray()
            pairs inner valuesA valuesB

    /// Occurrences compared in order; the surplus on either side is removed or added.
    and pairs path (xs: ResizeArray<JsonElement>) (ys: ResizeArray<JsonElement>) =
        for i in 0 .. max xs.Count ys.Count - 1 do
            if i < xs.Count && i < ys.Count then walk path xs[i] ys[i]
            elif i < xs.Count then report path Removed (excerpt xs[i]) ""
            else report path Added "" (excerpt ys[i])

    and ordered path a b =
        let xs = a.EnumerateArray() |> Array.ofSeq
        let ys = b.EnumerateArray() |> Array.ofSeq
        for i in 0 .. max xs.Length ys.Length - 1 do
            let inner = Index i :: path
            if i < xs.Length && i < ys.Length then walk inner xs[i] ys[i]
            elif i < xs.Length then report inner Removed (excerpt xs[i]) ""
            else report inner Added "" (excerpt ys[i])

    /// Elements equal as canonical texts cancel out whatever their positions; the
    /// rest are paired in order and compared (so a changed field of one element is
    /// reported as that field), the surplus removed or added.
    and unordered path a b =
        let inner = Element :: path
        let xs = a.EnumerateArray() |> Array.ofSeq
        let ys = b.EnumerateArray() |> Array.ofSeq
        let pool = Dictionary<string, Queue<int>>(StringComparer.Ordinal)
        ys
        |> Array.iteri (fun j y ->
            let key = canonicalText matchers inner y
            match pool.TryGetValue key with
            | true, q -> q.Enqueue j
            | _ -> pool[key] <- Queue [ j ])
        let leftA = ResizeArray<JsonElement>()
        for x in xs do
            match pool.TryGetValue(canonicalText matchers inner x) with
            | true, q when q.Count > 0 -> q.Dequeue() |> ignore
            | _ -> leftA.Add x
        let leftB = ResizeArray(pool.Values |> Seq.collect id |> Seq.sort |> Seq.map (fun j -> ys[j]))
        pairs inner leftA leftB

    walk [] first second
    { Differences = List.ofSeq found
      Truncated = truncated }
