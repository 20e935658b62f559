/// What the operator asked for one record: where it goes, at which sample rate,
/// with which headers. The defaults (from flags) are one route; a rules file
/// chooses among more, per record.
namespace Replay.Core

open System
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

/// A payload rewrite (a rules file's `body:`) bound to one record: the bytes to
/// send instead, or the rule whose code failed and why. Built by the router, run
/// only once the record is known to be sent, before any byte leaves the process.
type Rewrite = ReadOnlyMemory<byte> -> Result<ReadOnlyMemory<byte>, string * string>

[<NoEquality; NoComparison>]
type Route =
    { /// "defaults", or the name of the rule that matched.
      Name: string
      Target: Target
      /// More destinations each record of this route is also sent to (mirroring), in
      /// the order of the run's destinations after the first.
      Mirrors: Target list
      Sample: Sampling.Rate
      /// Replay DELETEs; off ignores them (Bagheera's `--delete false`).
      Deletes: bool
      /// Send the document id; off sends a fresh UUID instead (DELETEs keep the id).
      CopyKeys: bool
      /// Replaces the method the operation implies (POST or DELETE).
      Method: Method option
      Headers: (string * string) list
      /// What the destination's answers mean for these records (`--ok-on`, `on-status:`).
      StatusPolicy: StatusPolicy.Policy
      /// Keep the envelope's ip_addr off the request (`--drop-ip`, `drop-ip: true`):
      /// the request is built from the envelope with the address cleared.
      DropIp: bool
      /// Rewrites the payload before it is sent; None sends it as consumed.
      Body: Rewrite option }

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
          Mirrors = []
          Sample = sample
          Deletes = deletes
          CopyKeys = copyKeys
          Method = None
          Headers = []
          StatusPolicy = StatusPolicy.defaults
          DropIp = false
          Body = None }

    /// The route the command line alone gives: `defaults` plus the answers' meaning
    /// and `--drop-ip` (C#'s way to build it without F# record syntax).
    let ofFlags name target sample deletes copyKeys (policy: StatusPolicy.Policy) (dropIp: bool) =
        { defaults name target sample deletes copyKeys with
            StatusPolicy = policy
            DropIp = dropIp }

    /// The same route, also sent to `mirrors` (the run's further destinations, in order).
    let withMirrors (mirrors: Target list) (route: Route) = { route with Mirrors = mirrors }

    /// The same route, its body rewrite reporting each failure (rule, message) to
    /// `failed` before the record is rejected: the live rules count and log them.
    let observeBody (failed: Action<string, string>) (route: Route) : Route =
        match route.Body with
        | None -> route
        | Some rewrite ->
            let observed payload =
                match rewrite payload with
                | Error(rule, message) as failure ->
                    failed.Invoke(rule, message)
                    failure
                | ok -> ok
            { route with Body = Some observed }

    /// A router that sends everything by one route.
    let always (route: Route) : Router = fun _ _ -> Use route
