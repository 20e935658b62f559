/// Why a record became a dead letter, as a small fixed set of classes: what metrics
/// are labelled with and what an operator filters on. The free-text reason beside it
/// names ids, URLs and statuses, which would make a label per record; this never does.
namespace Replay.Core

type DeadLetterCause =
    /// The destination answered a status its policy fails (a 400, `--fail-on`).
    | PermanentStatus
    /// Kept failing for `--poison-after` while the destination accepted other records.
    | Poison
    /// Still failing after `--max-retry-duration`, outage or not.
    | MaxRetryDuration
    /// The record is not an envelope (or a raw key) that can be read.
    | Undecodable
    /// A rule's code threw or gave an unusable value, a `body:` included.
    | RuleError
    /// Over `--max-payload-bytes`.
    | TooLarge
    /// The destination URL built for it is not usable or not safe to send.
    | UnsafeUrl
    /// A header would carry a control or non-ASCII character.
    | UnsafeHeader

module DeadLetterCause =
    /// Every class, in a fixed order (a metric shows each, at 0 until it happens).
    let all =
        [ PermanentStatus; Poison; MaxRetryDuration; Undecodable; RuleError; TooLarge; UnsafeUrl; UnsafeHeader ]

    /// The metric label and dead-letter field: lower case, underscores.
    let label (cause: DeadLetterCause) =
        match cause with
        | PermanentStatus -> "permanent_status"
        | Poison -> "poison"
        | MaxRetryDuration -> "max_retry_duration"
        | Undecodable -> "undecodable"
        | RuleError -> "rule_error"
        | TooLarge -> "too_large"
        | UnsafeUrl -> "unsafe_url"
        | UnsafeHeader -> "unsafe_header"

    /// The class of a record refused before any request was made.
    let ofReject (reason: Pipeline.RejectReason) =
        match reason with
        | Pipeline.Undecodable _ -> Undecodable
        | Pipeline.RuleError _ -> RuleError
        | Pipeline.PayloadTooLarge _ -> TooLarge
        | Pipeline.UnsafeHeader _ -> UnsafeHeader
        | Pipeline.BadUrl _ -> UnsafeUrl

    /// A small number per class (0 .. all.Length - 1), for counters kept in an array.
    let index (cause: DeadLetterCause) =
        match cause with
        | PermanentStatus -> 0
        | Poison -> 1
        | MaxRetryDuration -> 2
        | Undecodable -> 3
        | RuleError -> 4
        | TooLarge -> 5
        | UnsafeUrl -> 6
        | UnsafeHeader -> 7
