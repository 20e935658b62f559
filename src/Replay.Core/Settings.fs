/// The parameters of one replay: validated once where the command line is read,
/// immutable afterwards. Each default is stated here and nowhere else; the flags'
/// help shows these values.
namespace Replay.Core

open System
open System.Collections.Generic

/// How many requests may be on the wire at once (order is kept per document id either way).
type Concurrency =
    /// `--concurrency N`: at most N, always.
    | Fixed of int
    /// `--concurrency auto`: between 1 and the settings' Max, as the destination's
    /// round trips and push backs say (ConcurrencyLimit).
    | Adaptive of ConcurrencyLimit.Settings

    /// The most requests ever on the wire at once: the senders to start and the connections to pool.
    member this.Most =
        match this with
        | Fixed n -> n
        | Adaptive limit -> limit.Max

/// How records are sent: how many at once, how long an attempt may take, when to retry.
type DeliverySettings =
    { Concurrency: Concurrency
      /// One attempt's time limit, connecting included.
      RequestTimeout: TimeSpan
      Retry: RetrySchedule.Settings
      /// Requests per second at most, retries included; None: unlimited.
      MaxRate: float option
      /// On a stop signal (or a revoke), how long requests already out may take to finish.
      ShutdownTimeout: TimeSpan
      /// `--pipeline N`: requests one connection carries before their answers come (HTTP/1.1
      /// pipelining, see Pipelining), on the lean path (http://, no proxy); 1: one at a time.
      Pipelining: int }

/// One of the run's destinations. Where its records go is the routes' business (the
/// first URL of a route, then its mirrors in order); this says what it is called in
/// metrics, dead letters and the banner, and whether it may hold a record back.
type DestinationSlot =
    { Name: string
      /// A best-effort destination never holds a record's commit: after its retries it
      /// counts a drop and moves on, and while its budget is full it is skipped.
      BestEffort: bool }

[<NoEquality; NoComparison>]
type RunSettings =
    { /// A topic name, or a regex when it starts with '^'.
      Topic: string
      /// librdkafka settings, bootstrap.servers and group.id included.
      Kafka: IReadOnlyDictionary<string, string>
      Pipeline: Pipeline.Settings
      Budget: Backpressure.Budget
      Delivery: DeliverySettings
      /// The destinations every record may go to, required ones first; each has its own
      /// lanes, retries, budget and counters.
      Destinations: DestinationSlot list
      /// Stop once every partition reached the high-water mark it had when the run started.
      UntilEnd: bool
      /// Stop after this many records; 0: no limit.
      MaxRecords: int64
      /// Print requests instead of sending them; store and commit nothing.
      DryRun: bool
      /// `--max-dead-letter-ratio`: hold consuming when too many records become dead letters; None: never.
      DeadLetterBrake: DeadLetterBrake.Settings option
      /// --until: records stamped at or after this (Unix milliseconds) are not replayed;
      /// each partition ends at the first of them, and the run stops once all have.
      Until: int64 voption
      /// --speed: the pace of the records, by their timestamps (see Pacing).
      Speed: Pacing.Speed }

module Settings =
    let delivery: DeliverySettings =
        { Concurrency = Fixed 64
          RequestTimeout = TimeSpan.FromSeconds 30.0
          Retry = RetrySchedule.defaults
          MaxRate = None
          ShutdownTimeout = TimeSpan.FromSeconds 30.0
          Pipelining = 1 }

    let pipeline: Pipeline.Settings =
        { Format = Pipeline.Bagheera
          SampleMode = Sampling.ByDocument
          ValidateJson = false
          Escaping = Destination.Segment
          MaxPayloadBytes = 8 <<< 20 }

    /// One required destination, the usual case.
    let single: DestinationSlot list = [ { Name = "destination"; BestEffort = false } ]

    /// A replay of `topic` with every other parameter at its default.
    let run (topic: string) (kafka: IReadOnlyDictionary<string, string>) : RunSettings =
        { Topic = topic
          Kafka = kafka
          Pipeline = pipeline
          Budget = Backpressure.defaults
          Delivery = delivery
          Destinations = single
          UntilEnd = false
          MaxRecords = 0L
          DryRun = false
          DeadLetterBrake = None
          Until = ValueNone
          Speed = Pacing.Max }

    /// The same run, giving up on a record after `limit` unless a limit is already set.
    let withDefaultRetryLimit (limit: TimeSpan) (settings: RunSettings) =
        match settings.Delivery.Retry.MaxRetryDuration with
        | Some _ -> settings
        | None -> { settings with Delivery = { settings.Delivery with Retry = { settings.Delivery.Retry with MaxRetryDuration = Some limit } } }

    /// The longest a duration from outside (a flag) may be: timers refuse more than ~49.7 days.
    let MaxDuration = TimeSpan.FromDays 30.0

    /// The most requests `--pipeline` lets one connection carry: past a few, answers only wait
    /// longer behind each other.
    let MaxPipelining = 64

    /// Why the settings cannot run, or None: the checks the flags' parsing cannot make alone.
    let problem (settings: RunSettings) : string option =
        let d = settings.Delivery
        let tooLong (value: TimeSpan) = value > MaxDuration
        let concurrency =
            match d.Concurrency with
            | Fixed n when n < 1 -> Some $"--concurrency {n}: must be at least 1, or auto"
            | Fixed _ -> None
            | Adaptive limit -> ConcurrencyLimit.problem limit
        if concurrency.IsSome then concurrency
        elif d.Pipelining < 1 || d.Pipelining > MaxPipelining then Some $"--pipeline {d.Pipelining}: must be between 1 (one request at a time) and {MaxPipelining}"
        elif d.RequestTimeout <= TimeSpan.Zero || tooLong d.RequestTimeout then Some "--request-timeout must be between 1ms and 30d"
        elif d.ShutdownTimeout < TimeSpan.Zero || tooLong d.ShutdownTimeout then Some "--shutdown-timeout must be between 0 and 30d"
        elif d.Retry.MaxBackoff <= TimeSpan.Zero || d.Retry.MaxBackoff > RetrySchedule.MaxWait then Some "--max-backoff must be between 1ms and 1d"
        elif d.Retry.PoisonAfter <= TimeSpan.Zero || tooLong d.Retry.PoisonAfter then Some "--poison-after must be between 1ms and 30d"
        elif d.Retry.MaxRetryDuration |> Option.exists (fun t -> t < TimeSpan.Zero || tooLong t) then Some "--max-retry-duration must be between 0 and 30d"
        elif d.MaxRate |> Option.exists (fun r -> not (r > 0.0) || Double.IsInfinity r) then Some "--max-rate must be a positive number of requests per second"
        elif settings.Budget.MaxInFlightRecords < 1 then Some "--max-in-flight-records must be at least 1"
        elif settings.Budget.MaxInFlightBytes < 1L then Some "--max-in-flight-bytes must be at least 1"
        elif settings.MaxRecords < 0L then Some "--max-records must be at least 1"
        elif settings.Destinations |> List.forall (fun d -> d.BestEffort) then Some "every destination is best-effort: give at least one with --dest, whose deliveries the commits wait for"
        elif settings.Destinations |> List.skipWhile (fun d -> not d.BestEffort) |> List.exists (fun d -> not d.BestEffort) then
            Some "required destinations come first, best-effort ones after them"
        elif settings.DeadLetterBrake |> Option.exists (fun b -> (DeadLetterBrake.problem b.MaxRatio).IsSome) then
            settings.DeadLetterBrake |> Option.bind (fun b -> DeadLetterBrake.problem b.MaxRatio)
        else Pacing.problem settings.Speed
