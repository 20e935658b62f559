/// Which exchanges (one attempt and what came back) the responses log keeps
/// (`--responses`). An exchange is chosen by its record's replay id, the
/// `topic/partition/offset` of `X-Replay-Id`, as `--sample` chooses documents by
/// id: every member and every run choose the same records, every attempt and every
/// destination of a chosen record is kept, and raising the rate only adds records.
/// Every attempt that got no 2xx is kept too unless the operator says otherwise.
/// Choosing comes before the send, so that the sender can keep a chosen success's
/// body, which it does not keep for the others.
module Replay.Core.ExchangeSample

open System
open Replay.Core.Outcome

type Settings =
    { /// The fraction of records whose exchanges are all kept.
      Rate: Sampling.Rate
      /// Keep every attempt that got no 2xx answer (another status, a time-out, no connection).
      Errors: bool }

/// 1% of records, and every exchange that did not end in a 2xx.
let defaults =
    { Rate =
        match Sampling.Rate.create 0.01 with
        | Ok rate -> rate
        | Error e -> invalidOp e
      Errors = true }

/// True when the settings can keep nothing at all (rate 0 and errors off).
let keepsNothing (settings: Settings) =
    Sampling.Rate.value settings.Rate <= 0.0 && not settings.Errors

let inline private fnv (h: uint64) (b: byte) = (h ^^^ uint64 b) * 1099511628211UL

/// FNV-1a over a number's decimal digits, as `string` prints it.
let private digits (h: uint64) (n: int64) =
    let mutable h = h
    let magnitude = if n < 0L then uint64 (-(n + 1L)) + 1UL else uint64 n
    if n < 0L then h <- fnv h (byte '-')
    let mutable scale = 1UL
    while magnitude / scale >= 10UL do
        scale <- scale * 10UL
    while scale > 0UL do
        h <- fnv h (byte (48UL + (magnitude / scale) % 10UL))
        scale <- scale / 10UL
    h

/// Where a record's replay id falls in [0, 1): `Sampling.position` of
/// `topic/partition/offset`, computed without building the string (it runs per attempt).
let position (topic: string) (partition: int) (offset: int64) : float =
    let basis = 14695981039346656037UL
    let mutable h = basis
    let mutable ascii = true
    let mutable i = 0
    while ascii && i < topic.Length do
        let c = topic[i]
        if c < '\128' then
            h <- fnv h (byte c)
            i <- i + 1
        else
            ascii <- false
    // Topic names are ASCII in practice; anything else is hashed as its UTF-8 bytes, as --sample does.
    if not ascii then
        h <- basis
        for b in Text.Encoding.UTF8.GetBytes topic do
            h <- fnv h b
    h <- fnv h (byte '/')
    h <- digits h (int64 partition)
    h <- fnv h (byte '/')
    h <- digits h offset
    h <- (h ^^^ (h >>> 30)) * 0xbf58476d1ce4e5b9UL
    h <- (h ^^^ (h >>> 27)) * 0x94d049bb133111ebUL
    h <- h ^^^ (h >>> 31)
    float (h >>> 11) * (1.0 / 9007199254740992.0)

/// Whether the record's exchanges are chosen, decided before the send.
let chosen (settings: Settings) (topic: string) (partition: int) (offset: int64) =
    let r = Sampling.Rate.value settings.Rate
    if r >= 1.0 then true
    elif r <= 0.0 then false
    else position topic partition offset < r

/// True when the attempt got a 2xx answer.
let succeeded (attempt: Attempt) =
    match attempt with
    | Answered answer -> answer.Status >= 200 && answer.Status < 300
    | TimedOut
    | Unreachable _ -> false

/// Whether an attempt goes into the log: its record was chosen, or it got no 2xx and errors are kept.
let kept (settings: Settings) (wasChosen: bool) (attempt: Attempt) =
    wasChosen || (settings.Errors && not (succeeded attempt))

/// What happened, in one word: `answered`, `timeout` or `unreachable`.
let outcome (attempt: Attempt) =
    match attempt with
    | Answered _ -> "answered"
    | TimedOut -> "timeout"
    | Unreachable _ -> "unreachable"

/// Why there was no answer (the connection's failure), or null when there was one or a time-out.
let error (attempt: Attempt) : string | null =
    match attempt with
    | Unreachable detail -> detail
    | Answered _
    | TimedOut -> null
