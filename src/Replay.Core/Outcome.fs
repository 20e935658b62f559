/// What one HTTP attempt means for its record: delivered, worth another try, or
/// never going to succeed. The retry machinery lives in the host (Polly); the
/// rules for what is retryable and how long to wait live here.
module Replay.Core.Outcome

open System

/// What happened to one attempt.
type Attempt =
    | Answered of status: int * retryAfter: TimeSpan option
    | TimedOut
    /// Refused, reset, DNS failure, TLS failure: the request may not have arrived.
    | Unreachable of detail: string

type Verdict =
    | Delivered
    | Retry of retryAfter: TimeSpan option
    | Permanent of reason: string

let classify (attempt: Attempt) : Verdict =
    match attempt with
    | Answered(status, _) when status >= 200 && status < 300 -> Delivered
    | Answered((408 | 429), retryAfter) -> Retry retryAfter
    | Answered(status, retryAfter) when status >= 500 -> Retry retryAfter
    | Answered(status, _) -> Permanent $"the destination answered {status}"
    | TimedOut -> Retry None
    | Unreachable _ -> Retry None

/// Exponential backoff with full jitter: a uniform wait in [0, min(cap, base·2^n)).
/// `draw` is uniform in [0, 1). A `Retry-After` from the server wins when longer,
/// uncapped: the destination knows its own recovery; `--max-retry-duration` still bounds the total.
let backoff (baseDelay: TimeSpan) (cap: TimeSpan) (attempt: int) (draw: float) (retryAfter: TimeSpan option) =
    let exponent = min attempt 30
    let ceiling = min cap.TotalMilliseconds (baseDelay.TotalMilliseconds * Math.Pow(2.0, float exponent))
    let jittered = TimeSpan.FromMilliseconds(ceiling * draw)
    match retryAfter with
    | Some wait when wait > jittered -> wait
    | _ -> jittered
