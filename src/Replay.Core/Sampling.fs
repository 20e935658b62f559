/// Which records are replayed. By default a document is kept iff a stable hash of
/// its id falls below the rate: every run and every instance agrees, a DELETE
/// follows its document, and raising the rate only adds documents. Bagheera's
/// per-record coin flip stays available as `Random`.
module Replay.Core.Sampling

open System

/// A sampling rate in [0, 1].
[<Struct>]
type Rate = private Rate of float

module Rate =
    let all = Rate 1.0
    let none = Rate 0.0

    let create (value: float) : Result<Rate, string> =
        if Double.IsNaN value || value < 0.0 || value > 1.0 then
            Error $"sample rate {value} is outside [0, 1]; use e.g. 0.01 for 1%%"
        else
            Ok(Rate value)

    let value (Rate r) = r

type Mode =
    /// Kept iff the document id hashes below the rate.
    | ByDocument
    /// An independent draw per record, as Bagheera did.
    | Random

let parseMode (text: string) : Result<Mode, string> =
    match text.ToLowerInvariant() with
    | "document"
    | "deterministic" -> Ok ByDocument
    | "random" -> Ok Random
    | other -> Error $"unknown sample mode '{other}'; use 'document' (default, deterministic by id) or 'random'"

/// 64-bit FNV-1a over the id's UTF-8 bytes, finished with SplitMix64's mixer so
/// that ids differing in one character spread over the whole range.
let stableHash (id: string) : uint64 =
    let bytes = Text.Encoding.UTF8.GetBytes id
    let mutable h = 14695981039346656037UL
    for b in bytes do
        h <- (h ^^^ uint64 b) * 1099511628211UL
    h <- (h ^^^ (h >>> 30)) * 0xbf58476d1ce4e5b9UL
    h <- (h ^^^ (h >>> 27)) * 0x94d049bb133111ebUL
    h ^^^ (h >>> 31)

/// Where the id falls in [0, 1).
let position (id: string) =
    float (stableHash id >>> 11) * (1.0 / 9007199254740992.0)

/// The sampling decision for one record. `draw` gives a uniform number in [0, 1)
/// and is called only in `Random` mode.
let keep (mode: Mode) (rate: Rate) (id: string) (draw: unit -> float) =
    let r = Rate.value rate
    if r >= 1.0 then true
    elif r <= 0.0 then false
    else
        match mode with
        | ByDocument -> position id < r
        | Random -> draw () < r
