/// What one HTTP attempt means for its record: delivered, dropped by the status
/// policy, worth another try, or never going to succeed. How long to wait before
/// the next try is `RetrySchedule`'s to say.
module Replay.Core.Outcome

open System

/// What a destination answered, as far as a replay keeps it.
type Answer =
    { Status: int
      RetryAfter: TimeSpan option
      /// Response headers worth keeping (Content-Type, Retry-After, ...), as received.
      Headers: (string * string) list
      /// The start of the body, up to the capture limit; empty when nothing was kept.
      Body: byte[]
      /// The whole body's length in bytes, or -1 when it is not known.
      BodyLength: int64
      /// SHA-256 of the whole body, when it was longer than what was kept and a
      /// comparison asked for it; empty otherwise.
      BodyHash: byte[] }

module Answer =
    /// An answer of which only the status (and a wait) was kept.
    let status (status: int) (retryAfter: TimeSpan option) : Answer =
        { Status = status
          RetryAfter = retryAfter
          Headers = []
          Body = Array.Empty()
          BodyLength = -1L
          BodyHash = Array.Empty() }

/// What happened to one attempt.
type Attempt =
    | Answered of Answer
    | TimedOut
    /// Refused, reset, DNS failure, TLS failure, a response that broke HTTP: the
    /// request may or may not have arrived.
    | Unreachable of detail: string

type Verdict =
    | Delivered
    /// The status policy says this answer ends the record without delivery (`--drop-on`).
    | Dropped of status: int
    | Retry of retryAfter: TimeSpan option
    | Permanent of reason: string

let classify (policy: StatusPolicy.Policy) (attempt: Attempt) : Verdict =
    match attempt with
    | Answered answer ->
        match StatusPolicy.meaning policy answer.Status with
        | StatusPolicy.Success -> Delivered
        | StatusPolicy.Drop -> Dropped answer.Status
        | StatusPolicy.Retry -> Retry answer.RetryAfter
        | StatusPolicy.Fail -> Permanent $"the destination answered {answer.Status}"
    | TimedOut -> Retry None
    | Unreachable _ -> Retry None

/// The answer of an attempt that got one (the C# TryGet shape).
let tryAnswer (attempt: Attempt, [<Runtime.InteropServices.Out>] answer: byref<Answer>) : bool =
    match attempt with
    | Answered a ->
        answer <- a
        true
    | TimedOut
    | Unreachable _ -> false

/// The status an attempt got; 0 when it got no answer.
let status (attempt: Attempt) =
    match attempt with
    | Answered a -> a.Status
    | TimedOut
    | Unreachable _ -> 0

/// For metrics: the class of an attempt (2xx..5xx, timeout, unreachable) and its exact status.
let label (attempt: Attempt) : struct (string * string) =
    match attempt with
    | Answered a when a.Status >= 100 && a.Status < 600 -> struct ($"{a.Status / 100}xx", string a.Status)
    | Answered a -> struct ("other", string a.Status)
    | TimedOut -> struct ("timeout", "timeout")
    | Unreachable _ -> struct ("unreachable", "unreachable")

/// One line for logs and dead letters: what the last attempt got.
let describe (attempt: Attempt) =
    match attempt with
    | Answered answer -> $"last answer {answer.Status}"
    | Unreachable detail -> $"unreachable: {detail}"
    | TimedOut -> "last attempt timed out"
