/// Whether a reloaded rules generation may stay in force. A rules file that compiles
/// can still be wrong for the records it meets — a null dereference the compiler only
/// warned about (CS8602) once dead-lettered 4,439 of 10,000 records — so for its first
/// minute a new generation is on probation: if its rules fail on clearly more of the
/// records it routes than the generation before did on its own, it is rolled back to
/// that generation.
///
/// A failure is a record on which one of the generation's rules threw or gave an
/// unusable value (`when`, a computed value, `dest-expr`, `body:`): the records
/// routed to a `rule_error` dead letter. Records the destination refuses are not
/// counted: the destination's state is not the rules' doing, and rolling back cannot
/// mend it (`--max-dead-letter-ratio` is the brake for that). The previous
/// generation's own failure ratio is the baseline, so that a body which cannot scrub
/// a share of the payloads (they are dead letters by design) does not make every
/// reload look broken.
module Replay.Core.RulesProbation

type Settings =
    { /// How long a new generation is on probation.
      WindowMs: int64
      /// Failures it takes before a generation is judged at all: a handful can be chance.
      MinFailures: int64
      /// How far its failure ratio may exceed the previous generation's (0.1: ten points).
      Margin: float }

let defaults =
    { WindowMs = 60_000L
      MinFailures = 10L
      Margin = 0.1 }

/// What a generation did: records its rules routed, and those its rules failed on.
[<Struct>]
type Counts = { Routed: int64; Failed: int64 }

/// The verdict on a generation on probation (an enum: the host switches on it).
type Verdict =
    /// Still on probation: keep it, keep watching.
    | OnProbation = 0
    /// Its probation is over: it stays, and the previous generation may go.
    | Passed = 1
    /// Put the previous generation back.
    | RollBack = 2

/// The share of routed records the rules failed on; 0 when none were routed.
let ratio (counts: Counts) =
    if counts.Routed <= 0L then 0.0 else float counts.Failed / float counts.Routed

/// Judges a generation `elapsedMs` after it came into force, from its counts and those
/// of the generation before it (over that generation's whole life).
let judge (settings: Settings) (previous: Counts) (counts: Counts) (elapsedMs: int64) : Verdict =
    if elapsedMs >= settings.WindowMs then Verdict.Passed
    elif counts.Failed >= settings.MinFailures && ratio counts > ratio previous + settings.Margin then Verdict.RollBack
    else Verdict.OnProbation
