/// What an HTTP status means for the record that received it. Replay's defaults
/// are a delivery's usual reading (2xx done; 408, 429 and 5xx worth another try;
/// anything else never going to succeed); an operator layers over them what a
/// prototype's answers mean: `--ok-on 409`, `--drop-on 404`, `--retry-on 423`,
/// and per rule `on-status: {404: drop}`. The narrowest matching entry wins, so
/// `--retry-on 5xx --ok-on 501` reads 501 as done.
module Replay.Core.StatusPolicy

open System

/// What one status means.
type Meaning =
    /// Finished: the destination has it.
    | Success
    /// Worth another attempt, with backoff.
    | Retry
    /// Finished without delivery: counted, not dead-lettered.
    | Drop
    /// Never going to succeed: a dead letter.
    | Fail

/// Statuses from Low to High, both included.
type StatusRange = { Low: int; High: int }

type Entry = { Range: StatusRange; Meaning: Meaning }

/// Entries narrowest first; what none of them names keeps the defaults.
type Policy = private { Entries: Entry list }

let private width entry = entry.Range.High - entry.Range.Low

/// Replay's reading of a status when nothing overrides it.
let builtIn (status: int) : Meaning =
    if status >= 200 && status < 300 then Success
    elif status = 408 || status = 429 || status >= 500 then Retry
    else Fail

/// No overrides: every status keeps its built-in meaning.
let defaults: Policy = { Entries = [] }

let meaning (policy: Policy) (status: int) : Meaning =
    let rec find entries =
        match entries with
        | [] -> builtIn status
        | entry :: rest -> if status >= entry.Range.Low && status <= entry.Range.High then entry.Meaning else find rest
    find policy.Entries

let meaningName meaning =
    match meaning with
    | Success -> "ok"
    | Retry -> "retry"
    | Drop -> "drop"
    | Fail -> "fail"

let parseMeaning (text: string) : Result<Meaning, string> =
    match text.Trim().ToLowerInvariant() with
    | "ok"
    | "success" -> Ok Success
    | "retry" -> Ok Retry
    | "drop" -> Ok Drop
    | "fail"
    | "dead-letter" -> Ok Fail
    | other -> Error $"'{other}' is not a status meaning; use ok, retry, drop or fail"

let describeRange range =
    if range.Low = range.High then string range.Low
    elif range.Low % 100 = 0 && range.High = range.Low + 99 then $"{range.Low / 100}xx"
    else $"{range.Low}-{range.High}"

/// One status (`404`), a class (`4xx`) or a range (`500-503`), within 100-599.
let parseRange (text: string) : Result<StatusRange, string> =
    let t = text.Trim().ToLowerInvariant()
    let code (s: string) =
        match Int32.TryParse(s, Globalization.NumberStyles.None, Globalization.CultureInfo.InvariantCulture) with
        | true, n when n >= 100 && n <= 599 -> Some n
        | _ -> None
    let usage = $"'{Printable.show text}' is not a status: write 404, 4xx or 500-503 (statuses 100-599)"
    if t.Length = 3 && t.EndsWith "xx" && t[0] >= '1' && t[0] <= '5' then
        let low = (int t[0] - int '0') * 100
        Ok { Low = low; High = low + 99 }
    else
        match t.Split '-' with
        | [| single |] ->
            match code single with
            | Some n -> Ok { Low = n; High = n }
            | None -> Error usage
        | [| low; high |] ->
            match code low, code high with
            | Some l, Some h when l <= h -> Ok { Low = l; High = h }
            | _ -> Error usage
        | _ -> Error usage

/// A comma-separated list of statuses, as `--ok-on 404,409,5xx` takes it.
let parseList (text: string) : Result<StatusRange list, string> =
    let parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
    if parts.Length = 0 then
        Error "no status given; write e.g. 404,409 or 5xx"
    else
        let parsed = parts |> Array.map parseRange
        match parsed |> Array.tryPick (function Error e -> Some e | Ok _ -> None) with
        | Some e -> Error e
        | None -> Ok [ for p in parsed do match p with Ok r -> yield r | Error _ -> () ]

/// A policy from (range, meaning) pairs. Two meanings for the same range are a
/// mistake the operator must hear about; overlapping ranges of different widths
/// are how exceptions are written (`5xx: retry`, `501: ok`).
let create (entries: (StatusRange * Meaning) list) : Result<Policy, string> =
    let clash =
        entries
        |> List.groupBy fst
        |> List.tryPick (fun (range, group) ->
            match group |> List.map snd |> List.distinct with
            | [ _ ] -> None
            | meanings ->
                let names = meanings |> List.map meaningName |> String.concat " and "
                Some $"status {describeRange range} is given two meanings ({names})")
    match clash with
    | Some problem -> Error problem
    | None ->
        let distinct = entries |> List.distinct |> List.map (fun (range, meaning) -> { Range = range; Meaning = meaning })
        Ok { Entries = distinct |> List.sortBy width }

/// `over` wins wherever it says something; `under` (and the defaults) elsewhere.
/// A rule's `on-status` is layered over the flags this way.
let layer (over: Policy) (under: Policy) : Policy =
    if over.Entries.IsEmpty then under
    elif under.Entries.IsEmpty then over
    else { Entries = over.Entries @ under.Entries }

/// The overrides, narrowest first, for the start-up banner and `rules test`.
let describe (policy: Policy) : string =
    if policy.Entries.IsEmpty then
        "defaults (2xx ok; 408, 429, 5xx retry; other fail)"
    else
        policy.Entries
        |> List.map (fun e -> $"{describeRange e.Range}: {meaningName e.Meaning}")
        |> String.concat ", "
