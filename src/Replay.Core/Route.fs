/// What the operator asked for one record: where it goes, at which sample rate,
/// with which headers. The defaults (from flags) are one route; a rules file
/// chooses among more, per record.
namespace Replay.Core

open Replay.Core.Envelope

type Method =
    | Post
    | Put
    | Delete

module Method =
    let name method =
        match method with
        | Post -> "POST"
        | Put -> "PUT"
        | Delete -> "DELETE"

    let parse (text: string) : Result<Method, string> =
        match text.ToUpperInvariant() with
        | "POST" -> Ok Post
        | "PUT" -> Ok Put
        | "DELETE" -> Ok Delete
        | other -> Error $"unknown method '{other}'; use POST, PUT or DELETE"

/// A destination: a pattern filled from the record, or a URL a rule computed.
type Target =
    | Pattern of Destination.Pattern
    | Url of string

[<NoEquality; NoComparison>]
type Route =
    { /// "defaults", or the name of the rule that matched.
      Name: string
      Target: Target
      Sample: Sampling.Rate
      /// Replay DELETEs; off ignores them (Bagheera's `--delete false`).
      Deletes: bool
      /// Send the document id; off sends a fresh UUID instead (DELETEs keep the id).
      CopyKeys: bool
      /// Replaces the method the operation implies (POST or DELETE).
      Method: Method option
      Headers: (string * string) list }

/// A router's answer for one record.
[<NoEquality; NoComparison>]
type Choice =
    | Use of Route
    | SkipByRule of rule: string
    /// The rule's own code failed on this record; the record is dead-lettered.
    | RuleFailed of rule: string * message: string

/// Chooses the route of one record. The defaults router always answers the same;
/// the rules engine supplies one built from compiled rules.
type Router = Record -> Envelope -> Choice

module Route =
    let defaults name target sample deletes copyKeys =
        { Name = name
          Target = target
          Sample = sample
          Deletes = deletes
          CopyKeys = copyKeys
          Method = None
          Headers = [] }

    /// A router that sends everything by one route.
    let always (route: Route) : Router = fun _ _ -> Use route
