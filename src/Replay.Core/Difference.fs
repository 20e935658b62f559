/// One place where two answers to the same request disagree, as a comparison
/// reports it: where (a JSON path, or `status`, `header:NAME`, `body`), how, and a
/// short excerpt of each side. Everything here comes from servers we do not trust,
/// so every text is bounded and holds only well-formed UTF-16.
module Replay.Core.Difference

open System
open System.Text

/// How the second answer departs from the first at one place.
type Change =
    /// Both have a value there, and the values differ (kind, number, text, status, bytes).
    | Changed
    /// The first answer has a value there; the second has none.
    | Removed
    /// The second answer has a value there; the first has none.
    | Added
    /// One body is JSON and the other is not: reported once, at the root `$`.
    | NotJson

let changeName change =
    match change with
    | Changed -> "changed"
    | Removed -> "removed"
    | Added -> "added"
    | NotJson -> "not-json"

type Difference =
    { /// Where exactly: `$.items[3].price`, `status`, `header:content-type`, `body`.
      Path: string
      /// The path with array positions as `[*]`: what counts and noise are kept by,
      /// so that a changed price in every element of a list is one field, not one per index.
      Field: string
      Change: Change
      /// The first answer's value there (the primary's), cut to MaxExcerpt; empty when absent.
      Primary: string
      /// The second answer's value there (the candidate's, or the secondary's when
      /// noise is measured), cut to MaxExcerpt; empty when absent.
      Candidate: string }

/// How many characters of a value an excerpt keeps.
[<Literal>]
let MaxExcerpt = 256

/// How many characters of a path are kept: room for any sane path, not for a
/// megabyte member name a hostile server invented.
[<Literal>]
let MaxPath = 512

/// The text with lone surrogates (which no JSON or HTML writer accepts) replaced by U+FFFD.
let wellFormed (text: string) =
    let mutable clean = true
    let mutable i = 0
    while clean && i < text.Length do
        if Char.IsSurrogate text[i] then
            if Char.IsHighSurrogate text[i] && i + 1 < text.Length && Char.IsLowSurrogate text[i + 1] then i <- i + 2
            else clean <- false
        else
            i <- i + 1
    if clean then
        text
    else
        let builder = StringBuilder(text.Length)
        let mutable j = 0
        while j < text.Length do
            let c = text[j]
            if Char.IsHighSurrogate c && j + 1 < text.Length && Char.IsLowSurrogate text[j + 1] then
                builder.Append(c).Append(text[j + 1]) |> ignore
                j <- j + 2
            else
                builder.Append(if Char.IsSurrogate c then '\uFFFD' else c) |> ignore
                j <- j + 1
        builder.ToString()

/// A value from outside (an id, a route, a request line) as shown in a report:
/// one line, control characters escaped, cut after `limit` characters, well-formed.
let shown (limit: int) (text: string) = Printable.showUpTo limit (wellFormed text)

/// At most `limit` characters of `text`, never cut inside a surrogate pair; a cut
/// is marked with the total length the caller names (characters or bytes).
let cut (limit: int) (total: string) (text: string) =
    if text.Length <= limit then
        text
    else
        let keep = if Char.IsHighSurrogate text[limit - 1] then limit - 1 else limit
        text.Substring(0, keep) + $"… ({total})"

/// The start of some bytes as text for an excerpt: decoded as UTF-8 (invalid
/// sequences become U+FFFD, never an error), cut to MaxExcerpt characters.
let excerptOfBytes (bytes: ReadOnlySpan<byte>) =
    // Four bytes per character at most: decoding more than that would be thrown away.
    let decoded = Encoding.UTF8.GetString(bytes.Slice(0, min bytes.Length (4 * MaxExcerpt + 4)))
    cut MaxExcerpt $"{bytes.Length} bytes" decoded
