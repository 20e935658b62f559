/// A deterministic simulation of the whole delivery contract, in the manner of
/// FoundationDB's simulation testing: the core's real policy (Lease, Backpressure,
/// Consuming, DeliveryEngine, RetrySchedule, Checkpoint, DeadLetterBrake) driven by a fake Kafka
/// (partitions, a group of members, commits), a fake destination and a fake
/// dead-letter sink, on a virtual clock. FsCheck generates the story — consume,
/// send, answers of every kind (2xx, 4xx, 5xx, a 49-day Retry-After, time-outs,
/// broken connections), time passing, dead-letter sinks failing, revokes, lost
/// partitions, crashes and restarts — and the invariants are checked after every
/// step. Records carry Kafka timestamps (mostly rising, sometimes not): a story may
/// replay a window (--until) and pace it (--speed), so records are also held and
/// left in Kafka until due. Then the faults clear and the world must drain: every
/// record of the window finished, none after it touched, every partition committed
/// to the window's end.
///
/// A failure prints FsCheck's seed; `REPLAY_FSCHECK_SEED` replays it exactly (see
/// Fixtures/Generators.fs), and shrinking hands over the shortest failing story.
module Replay.Tests.SimulationTests

open System
open System.Collections.Generic
open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Outcome

/// One record of the fake topic.
type Op =
    | Store
    | Remove
    /// Undecodable: its only way out is a dead letter.
    | Garbage
    /// Sampled out: finished at once.
    | Skipped

/// `Stamp` is the Kafka timestamp (ms); -1 when the record has none.
type SimRecord = { Id: string; Op: Op; Stamp: int64 }

/// How the destination answers one attempt.
type Answer =
    | Ok201
    | Refused400
    | Busy503
    /// 503 with a Retry-After far past what a .NET timer accepts.
    | HugeRetryAfter
    | TimedOut
    | Broken

/// One step of the story. Numbers pick among what exists when the step runs, so
/// every step applies to any state (and shrinking keeps stories valid).
type Step =
    | Consume of replica: int * partition: int
    | Send of replica: int
    | Respond of attempt: int * Answer
    | Advance of milliseconds: int
    | WriteDeadLetter of replica: int
    | SinkFailing of bool
    | Drain of replica: int
    | Commit of replica: int
    /// Revoke a partition; true: its requests on the wire finish within the bounded wait.
    | Revoke of partition: int * finishInTime: bool
    | Lose of partition: int
    | Crash of replica: int
    | Join

/// What a destination applied, in order: which lease generation sent it.
type Applied = { Destination: int; Id: string; Partition: int; Offset: int64; Op: Op; Generation: int }

let private budget: Backpressure.Budget =
    { MaxInFlightRecords = 8
      MaxInFlightBytes = 1_000_000L
      PauseAfterFullMs = 1000L
      MaxSpanPerPartition = 12 }

let private schedule: RetrySchedule.Settings =
    { BaseDelay = TimeSpan.FromMilliseconds 100.0
      MaxBackoff = TimeSpan.FromMinutes 5.0
      MaxRetryDuration = None
      PoisonAfter = TimeSpan.FromMinutes 10.0 }

/// The dead-letter brake, small enough that stories trip it: over 30% of the last 4-6
/// finished records, judged from 3 on; holds of 1 s doubling up to 8 s.
let private brake: DeadLetterBrake.Settings =
    { MaxRatio = 0.3
      BucketSize = 2
      Buckets = 3
      MinRecords = 3
      HoldMs = 1_000L
      MaxHoldMs = 8_000L }

/// A request on the wire.
type InFlight = { Member: int; Job: Job; Generation: int }

type Timer = { At: int64; Member: int; Job: Job; DeadLetter: bool }

/// Which destination a job goes to (a rejected record's dead letter goes through the first).
let slotOf (job: Job) = if job.HasRequest then job.Request.Destination else 0

/// One replay member: a real engine per destination, its leases, its consuming thread's queues,
/// its own schedule (each member paces on its own clock) and the records it keeps.
type Member(id: int, world: World) as this =
    let ready = Queue<Job>()
    let deadLetters = Queue<Job>()
    let completions = Queue<Job>()
    let engines = Array.init world.BestEffort.Length (fun _ -> DeliveryEngine(schedule, None, this))
    member val Leases = Dictionary<int, Lease * int>() with get
    member val Positions = Dictionary<int, int64>() with get
    member val Mode = Backpressure.Mode.Flowing with get, set
    member val Brake = DeadLetterBrake.initial brake with get, set
    member val Window = DeadLetterBrake.Window(brake) with get
    member val Pacer = Pacing.Pacer(world.Speed) with get
    /// Per partition, the offset of the one record kept until it is due.
    member val Held = Dictionary<int, int64>() with get
    member val Fatal: string option = None with get, set
    member _.Id = id
    member _.World = world
    member _.Engines = engines
    member _.EngineOf(job: Job) = engines[slotOf job]
    /// The fullest required destination: what the budget judges.
    member _.Load =
        Array.zip engines world.BestEffort
        |> Array.filter (fun (_, bestEffort) -> not bestEffort)
        |> Array.fold (fun (records, bytes) (e, _) -> max records e.InFlight, max bytes e.InFlightBytes) (0, 0L)
    member _.Ready = ready
    member _.DeadLetterQueue = deadLetters
    member _.Completions = completions

    interface IDeliveryEffects with
        member _.Ready job = ready.Enqueue job
        member _.Backoff(job, wait: TimeSpan) = world.Timers.Add { At = world.Now + int64 wait.TotalMilliseconds; Member = id; Job = job; DeadLetter = false }
        member _.WriteDeadLetter job = deadLetters.Enqueue job
        member _.DeadLetterBackoff(job, wait: TimeSpan) = world.Timers.Add { At = world.Now + int64 wait.TotalMilliseconds; Member = id; Job = job; DeadLetter = true }
        member _.Finished job = completions.Enqueue job
        member this.Fatal reason = (this :> obj :?> Member).Fatal <- Some reason

and World(log: SimRecord[][], seed: int, bestEffort: bool[], until: int64 voption, speed: Pacing.Speed) =
    let random = Random seed
    /// One flag per destination: best-effort ones never hold a record.
    member _.BestEffort: bool[] = bestEffort
    member val Now: int64 = 1_000_000L with get, set
    member _.Log = log
    member _.Until = until
    member _.Speed = speed
    /// Where this run's part of each partition ends: the first record stamped at or after
    /// --until (where offsets-for-times would place it), else the partition's end.
    member val EndOf =
        log
        |> Array.map (fun records ->
            match until with
            | ValueSome t ->
                match Array.tryFindIndex (fun (r: SimRecord) -> r.Stamp >= t) records with
                | Some i -> int64 i
                | None -> int64 records.Length
            | ValueNone -> int64 records.Length) with get
    member _.Draw() = random.NextDouble()
    member val Timers: List<Timer> = List<Timer>() with get
    member val Members: List<Member> = List<Member>() with get
    member val NextMember = 0 with get, set
    member val Committed = Array.create log.Length 0L with get
    member val Generation = 0 with get, set
    /// The lease generation that owns each partition now.
    member val Current = Array.create log.Length 0 with get
    member val Owner = Array.create log.Length -1 with get
    member val Wire = List<InFlight>() with get
    member val Applied = List<Applied>() with get
    /// Records a destination finished somewhere (delivered, dropped, dead-lettered), per destination and partition.
    member val Done: HashSet<int64>[][] = Array.init bestEffort.Length (fun _ -> Array.init log.Length (fun _ -> HashSet<int64>())) with get
    /// Records finished for every destination at once: skipped, or dead-lettered before any was tried.
    member val DoneForAll = Array.init log.Length (fun _ -> HashSet<int64>()) with get
    member val SinkFails = false with get, set
    member val Steps = 0 with get, set
    /// How often the dead-letter brake held consuming.
    member val BrakeHolds = 0 with get, set
    /// How often each admission happened, to show the stories reach every path.
    member val Admissions = Dictionary<Consuming.Admission, int>() with get

/// A stable hash (string.GetHashCode differs per process), so that a seed replays the same story anywhere.
let private partitionOf (partitions: int) (id: string) =
    (id |> Seq.fold (fun hash c -> (hash * 31 + int c) &&& 0x7fffffff) 17) % partitions

let private request (id: string) (op: Op) (destination: int) : Pipeline.Request =
    { Method = (if op = Remove then Method.Delete else Method.Post)
      Url = Uri($"http://dest-{destination}.example/submit/{id}")
      Headers = []
      Body = ReadOnlyMemory.Empty
      OrderingKey = id
      Route = "defaults"
      StatusPolicy = StatusPolicy.defaults
      Destination = destination }

let private fail (world: World) (message: string) =
    failwith $"step {world.Steps}: {message}"

/// The partition's next owner: the member with the fewest partitions (or none yet).
let private assign (world: World) (partition: int) =
    if world.Members.Count > 0 then
        let heir = world.Members |> Seq.minBy (fun m -> m.Leases.Count, m.Id)
        world.Generation <- world.Generation + 1
        let lease = Lease.create "t" partition -1L
        match world.Until with
        | ValueSome t -> lease.Until <- t
        | ValueNone -> ()
        heir.Leases[partition] <- (lease, world.Generation)
        heir.Positions[partition] <- world.Committed[partition]
        world.Owner[partition] <- heir.Id
        world.Current[partition] <- world.Generation

let private memberOf (world: World) (id: int) = world.Members |> Seq.tryFind (fun m -> m.Id = id)

/// The consuming thread takes what finished into its checkpoints and the brake's window,
/// and turns the brake.
let private drain (m: Member) =
    while m.Completions.Count > 0 do
        let job = m.Completions.Dequeue()
        match Consuming.finished job with
        | ValueSome ended -> DeadLetterBrake.observe m.Window ended.Conclusion
        | ValueNone -> ()
    Consuming.updateSpans budget (m.Leases.Values |> Seq.map fst)
    let struct (state, decision) = DeadLetterBrake.step brake m.Brake m.Window.Finished m.Window.DeadLettered m.World.Now
    if decision = DeadLetterBrake.Decision.Release then m.Window.Clear()
    if decision = DeadLetterBrake.Decision.Hold then m.World.BrakeHolds <- m.World.BrakeHolds + 1
    m.Brake <- state

/// Stores and commits each lease's position (what librdkafka would commit).
let private commit (world: World) (m: Member) =
    drain m
    for KeyValue(partition, (lease, _)) in m.Leases do
        match Lease.storable lease with
        | ValueSome position -> Lease.stored position lease
        | ValueNone -> ()
        if lease.Stored >= 0L then
            if lease.Stored < world.Committed[partition] then
                fail world $"commit of p{partition} moves back from {world.Committed[partition]} to {lease.Stored}"
            world.Committed[partition] <- lease.Stored

/// A request the destination answered: applied when it says so.
let private arrive (world: World) (flight: InFlight) (answer: Answer) =
    let job = flight.Job
    let record = world.Log[job.Lease.Partition][int job.Offset]
    // The fence: once a partition has moved on, nothing of its old owner may land.
    if flight.Generation <> world.Current[job.Lease.Partition] then
        fail world $"{job} of a revoked owner reached the destination after the partition moved on"
    if answer = Ok201 then
        world.Applied.Add
            { Destination = slotOf job
              Id = record.Id
              Partition = job.Lease.Partition
              Offset = job.Offset
              Op = record.Op
              Generation = flight.Generation }
        let doneHere = world.Done[slotOf job]
        doneHere[job.Lease.Partition].Add job.Offset |> ignore

let private attempt answer : Attempt =
    match answer with
    | Ok201 -> Answered(Answer.status 201 None)
    | Refused400 -> Answered(Answer.status 400 None)
    | Busy503 -> Answered(Answer.status 503 None)
    | HugeRetryAfter -> Answered(Answer.status 503 (Some(TimeSpan.FromSeconds 4294968.0)))
    | TimedOut -> Attempt.TimedOut
    | Broken -> Unreachable "connection reset"

let private respond (world: World) (index: int) (answer: Answer) =
    let flight = world.Wire[index]
    world.Wire.RemoveAt index
    arrive world flight answer
    match memberOf world flight.Member with
    | Some m -> m.EngineOf(flight.Job).Complete(flight.Job, attempt answer, world.Now, world.Draw())
    | None -> ()

/// Requests of these jobs are aborted: they never reach the destination.
let private abort (world: World) (belongs: InFlight -> bool) =
    for flight in List.ofSeq world.Wire do
        if belongs flight then
            world.Wire.Remove flight |> ignore
            match memberOf world flight.Member with
            | Some m -> m.EngineOf(flight.Job).Complete(flight.Job, Unreachable "aborted", world.Now, world.Draw())
            | None -> ()

/// The consuming thread admits the record at `offset` (Consuming.admit) and carries
/// out what the core says: past the end, keep it, seek back to it, or take it.
let private admit (world: World) (m: Member) (lease: Lease) (partition: int) (offset: int64) =
    let record = world.Log[partition][int offset]
    let admission = Consuming.admit m.Pacer lease offset record.Stamp world.Now
    world.Admissions[admission] <- (match world.Admissions.TryGetValue admission with | true, n -> n + 1 | _ -> 1)
    match admission with
    | Consuming.Admission.PastEnd ->
        if offset <> world.EndOf[partition] then
            fail world $"p{partition} ended at {offset}, but the window ends at {world.EndOf[partition]}"
    | Consuming.Admission.Hold -> m.Held[partition] <- offset
    // Left in Kafka: the partition is sought back to it.
    | Consuming.Admission.Defer -> m.Positions[partition] <- offset
    | _ ->
        if offset >= world.EndOf[partition] then
            fail world $"p{partition} took offset {offset}, past the window's end {world.EndOf[partition]}"
        match m.Pacer.Schedule with
        | ValueSome schedule when record.Stamp >= 0L && Pacing.dueAt schedule record.Stamp > world.Now ->
            fail world $"p{partition} took offset {offset} at {world.Now}, before it was due at {Pacing.dueAt schedule record.Stamp}"
        | _ -> ()
        let decision =
            match record.Op with
            | Garbage -> Pipeline.Reject(Pipeline.Undecodable(Envelope.Truncated "value"))
            | Skipped -> Pipeline.Skip(Pipeline.SampledOut "defaults")
            | op when world.BestEffort.Length = 1 -> Pipeline.Send(request record.Id op 0)
            | op -> Pipeline.Mirror [ for slot in 0 .. world.BestEffort.Length - 1 -> request record.Id op slot ]
        match Consuming.take m.Engines world.BestEffort budget lease offset 1L decision (obj ()) with
        | Consuming.Skipped _ -> world.DoneForAll[partition].Add offset |> ignore
        | _ -> ()

let private consume (world: World) (m: Member) (partition: int) =
    match m.Leases.TryGetValue partition with
    | true, (lease, _) when lease.State = Live ->
        let records, bytes = m.Load
        let struct (mode, decision) = Backpressure.step budget m.Mode records bytes world.Now
        m.Mode <- mode
        let position = m.Positions[partition]
        if decision <> Backpressure.Decision.WaitForRoom then
            let hold = DeadLetterBrake.hold m.Brake
            match m.Held.TryGetValue partition with
            | true, held ->
                if Consuming.heldIsDue m.Mode hold lease world.Now then
                    m.Held.Remove partition |> ignore
                    admit world m lease partition held
            | _ when Backpressure.wantsPause m.Mode hold lease world.Now -> ()
            | _ when position < int64 world.Log[partition].Length ->
                m.Positions[partition] <- position + 1L
                admit world m lease partition position
            // Kafka's end of partition.
            | _ -> Lease.caughtUp position world.Now lease
    | _ -> ()

let private send (world: World) (m: Member) =
    if m.Ready.Count > 0 then
        let job = m.Ready.Dequeue()
        if m.EngineOf(job).Begin job then
            match m.Leases.TryGetValue job.Lease.Partition with
            | true, (lease, generation) when Object.ReferenceEquals(lease, job.Lease) ->
                world.Wire.Add { Member = m.Id; Job = job; Generation = generation }
            | _ -> fail world $"member {m.Id} began {job} of a lease it no longer holds"

let private writeDeadLetter (world: World) (m: Member) =
    if m.DeadLetterQueue.Count > 0 then
        let job = m.DeadLetterQueue.Dequeue()
        if world.SinkFails then
            m.EngineOf(job).DeadLetterFailed(job, world.Now, world.Draw())
        else
            if job.HasRequest then
                let doneHere = world.Done[slotOf job]
                doneHere[job.Lease.Partition].Add job.Offset |> ignore
            else world.DoneForAll[job.Lease.Partition].Add job.Offset |> ignore
            m.EngineOf(job).DeadLetterWritten job

let private advance (world: World) (milliseconds: int) =
    world.Now <- world.Now + int64 milliseconds
    let due = world.Timers |> Seq.filter (fun t -> t.At <= world.Now) |> Seq.sortBy (fun t -> t.At) |> List.ofSeq
    for timer in due do
        world.Timers.Remove timer |> ignore
        match memberOf world timer.Member with
        | Some m -> if timer.DeadLetter then m.EngineOf(timer.Job).DeadLetterDue timer.Job else m.EngineOf(timer.Job).Due timer.Job
        | None -> ()

/// The revoke handler: fence, bounded wait, commit what finished, release.
let private revoke (world: World) (partition: int) (finishInTime: bool) =
    match memberOf world world.Owner[partition] with
    | None -> ()
    | Some m ->
        let lease, _ = m.Leases[partition]
        for engine in m.Engines do
            engine.Revoke lease |> ignore
        let ours (flight: InFlight) = flight.Member = m.Id && Object.ReferenceEquals(flight.Job.Lease, lease)
        if finishInTime then
            for flight in List.ofSeq world.Wire do
                if ours flight then respond world (world.Wire.IndexOf flight) Ok201
        commit world m
        for engine in m.Engines do
            engine.Release lease
        abort world ours
        drain m
        m.Leases.Remove partition |> ignore
        m.Positions.Remove partition |> ignore
        m.Held.Remove partition |> ignore
        world.Owner[partition] <- -1
        assign world partition

let private lose (world: World) (partition: int) =
    match memberOf world world.Owner[partition] with
    | None -> ()
    | Some m ->
        let lease, _ = m.Leases[partition]
        for engine in m.Engines do
            engine.Release lease
        abort world (fun flight -> flight.Member = m.Id && Object.ReferenceEquals(flight.Job.Lease, lease))
        drain m
        m.Leases.Remove partition |> ignore
        m.Positions.Remove partition |> ignore
        m.Held.Remove partition |> ignore
        world.Owner[partition] <- -1
        assign world partition

let private crash (world: World) (m: Member) =
    world.Members.Remove m |> ignore
    world.Wire.RemoveAll(fun flight -> flight.Member = m.Id) |> ignore
    world.Timers.RemoveAll(fun t -> t.Member = m.Id) |> ignore
    for partition in List.ofSeq m.Leases.Keys do
        world.Owner[partition] <- -1
        assign world partition

let private join (world: World) =
    let m = Member(world.NextMember, world)
    world.NextMember <- world.NextMember + 1
    world.Members.Add m
    for partition in 0 .. world.Log.Length - 1 do
        if world.Owner[partition] < 0 then assign world partition

/// A member whose engine gave up (it cannot here: no dead-letter limit) would stop.
let private pick (items: IReadOnlyList<'a>) (n: int) = if items.Count = 0 then None else Some items[abs n % items.Count]

let private apply (world: World) (step: Step) =
    let members = world.Members :> IReadOnlyList<Member>
    match step with
    | Consume(m, p) -> pick members m |> Option.iter (fun m -> consume world m (abs p % world.Log.Length))
    | Send m -> pick members m |> Option.iter (send world)
    | Respond(i, answer) -> if world.Wire.Count > 0 then respond world (abs i % world.Wire.Count) answer
    | Advance ms -> advance world ms
    | WriteDeadLetter m -> pick members m |> Option.iter (writeDeadLetter world)
    | SinkFailing failing -> world.SinkFails <- failing
    | Drain m -> pick members m |> Option.iter drain
    | Commit m -> pick members m |> Option.iter (commit world)
    | Revoke(p, inTime) -> if world.Members.Count > 1 then revoke world (abs p % world.Log.Length) inTime
    | Lose p -> if world.Members.Count > 1 then lose world (abs p % world.Log.Length)
    | Crash m -> if world.Members.Count > 1 then pick members m |> Option.iter (crash world)
    | Join -> if world.Members.Count < 3 then join world

/// Invariants that hold after every step.
let private check (world: World) =
    for p in 0 .. world.Log.Length - 1 do
        // Nothing committed past a record that some required destination has not finished.
        for offset in 0L .. world.Committed[p] - 1L do
            if not (world.DoneForAll[p].Contains offset) then
                for slot in 0 .. world.BestEffort.Length - 1 do
                    let doneHere = world.Done[slot]
                    if not world.BestEffort[slot] && not (doneHere[p].Contains offset) then
                        fail world $"p{p} committed {world.Committed[p]} but record {offset} never finished at destination {slot}"
        // Nothing of a partition past its window's end, neither committed nor replayed.
        if world.Committed[p] > world.EndOf[p] then
            fail world $"p{p} committed {world.Committed[p]}, past the window's end {world.EndOf[p]}"
        for finished in world.DoneForAll[p] :: [ for doneHere in world.Done -> doneHere[p] ] do
            for offset in finished do
                if offset >= world.EndOf[p] then fail world $"p{p} finished {offset}, past the window's end {world.EndOf[p]}"
    for m in world.Members do
        for engine in m.Engines do
            if engine.InFlight > budget.MaxInFlightRecords then
                fail world $"member {m.Id} holds {engine.InFlight} records at a destination, over the budget of {budget.MaxInFlightRecords}"
        for KeyValue(p, (lease, _)) in m.Leases do
            if lease.Holding <> m.Held.ContainsKey p then
                fail world $"member {m.Id}: p{p} holding {lease.Holding}, but {m.Held.Count} records kept"
            if Checkpoint.span lease.Progress > budget.MaxSpanPerPartition + 1 then
                fail world $"member {m.Id} holds a span of {Checkpoint.span lease.Progress} on p{p}"
            match Checkpoint.committable lease.Progress with
            | Some lowest when lease.Stored > lowest && not (Checkpoint.isIdle lease.Progress) ->
                fail world $"p{p} stored {lease.Stored} past its open record {lowest}"
            | _ -> ()
        for flight in world.Wire do
            if flight.Member = m.Id && flight.Job.Lease.State = Gone then
                fail world $"a request of a gone lease is on the wire ({flight.Job})"

/// Per document: an owner applies its records in Kafka order, and owners follow
/// one another (an older one never lands after a newer one: see `arrive`).
let private checkOrder (world: World) =
    let last = Dictionary<struct (int * string), int * int64>()
    for applied in world.Applied do
        let key = struct (applied.Destination, applied.Id)
        match last.TryGetValue key with
        | true, (generation, offset) when generation = applied.Generation && applied.Offset <= offset ->
            fail world $"{applied.Id}: offset {applied.Offset} applied after {offset} by the same owner"
        | true, (generation, _) when generation > applied.Generation ->
            fail world $"{applied.Id}: an older owner applied offset {applied.Offset} after a newer one"
        | _ -> last[key] <- (applied.Generation, applied.Offset)

/// The faults clear: the sink works, the destination answers 201, time passes.
/// Everything must finish and every partition be committed to its end.
let private heal (world: World) =
    world.SinkFails <- false
    if world.Members.Count = 0 then join world
    let mutable rounds = 0
    let finished () =
        world.Members |> Seq.forall (fun m -> m.Engines |> Array.forall (fun e -> e.InFlight = 0))
        && Array.forall2 (fun (committed: int64) (endOf: int64) -> committed = endOf) world.Committed world.EndOf
        // A window's partitions know they are at its end (so the run can stop).
        && (world.Until.IsNone
            || world.Members |> Seq.forall (fun m -> m.Leases.Count = 0 || Consuming.allDone (m.Leases.Values |> Seq.map fst)))
    while not (finished ()) do
        rounds <- rounds + 1
        if rounds > 10_000 then
            let stuck =
                [ for m in world.Members -> $"member {m.Id}: {m.Engines |> Array.sumBy (fun e -> e.InFlight)} in flight, {m.Ready.Count} ready, {m.DeadLetterQueue.Count} dead letters" ]
                |> String.concat "; "
            fail world $"stuck after the faults cleared: committed {world.Committed |> Array.toList}, {stuck}, {world.Timers.Count} timers"
        for m in List.ofSeq world.Members do
            for p in List.ofSeq m.Leases.Keys do
                consume world m p
            while m.Ready.Count > 0 do
                send world m
            while m.DeadLetterQueue.Count > 0 do
                writeDeadLetter world m
        while world.Wire.Count > 0 do
            respond world 0 Ok201
        for m in world.Members do
            commit world m
        // The next thing that happens by itself: a timer, the end of a member's brake hold,
        // or a record of the schedule coming due.
        let wakes =
            [ for t in world.Timers -> t.At
              for m in world.Members do
                  match m.Brake with
                  | DeadLetterBrake.Holding(since, hold) -> yield since + hold
                  | _ -> ()
                  for lease, _ in m.Leases.Values do
                      if lease.PacedUntil > world.Now then yield lease.PacedUntil ]
        if wakes.IsEmpty then advance world 1 else advance world (int (List.min wakes - world.Now |> max 1L))
        check world
    checkOrder world
    // At least once: every record of the window finished at every required destination.
    for p in 0 .. world.Log.Length - 1 do
        for offset in 0L .. world.EndOf[p] - 1L do
            if not (world.DoneForAll[p].Contains offset) then
                for slot in 0 .. world.BestEffort.Length - 1 do
                    let doneHere = world.Done[slot]
                    if not world.BestEffort[slot] && not (doneHere[p].Contains offset) then
                        fail world $"p{p} record {offset} never finished at destination {slot}"

let private answers =
    Gen.frequency
        [ 6, Gen.constant Ok201
          1, Gen.constant Refused400
          4, Gen.constant Busy503
          1, Gen.constant HugeRetryAfter
          1, Gen.constant TimedOut
          1, Gen.constant Broken ]

let private steps =
    let n = Gen.choose (0, 9)
    Gen.frequency
        [ 12, Gen.map2 (fun m p -> Consume(m, p)) n n
          10, Gen.map Send n
          10, Gen.map2 (fun i a -> Respond(i, a)) n answers
          6, Gen.elements [ 1; 50; 200; 1_000; 30_000; 300_000; 900_000 ] |> Gen.map Advance
          4, Gen.map WriteDeadLetter n
          1, Gen.elements [ true; false ] |> Gen.map SinkFailing
          5, Gen.map Drain n
          4, Gen.map Commit n
          1, Gen.map2 (fun p t -> Revoke(p, t)) n (Gen.elements [ true; false ])
          1, Gen.map Lose n
          1, Gen.map Crash n
          1, Gen.constant Join ]

/// A topic of 1-3 partitions with records of a few documents, so per-id order matters.
/// Timestamps mostly rise by up to 2 s (more than the pacing lead, so records are both
/// kept and left in Kafka), sometimes step back (a producer's clock), rarely are absent.
let private topic =
    gen {
        let! partitions = Gen.choose (1, 3)
        let! count = Gen.choose (1, 40)
        let! records =
            Gen.listOfLength count (
                Gen.zip3
                    (Gen.choose (0, 5))
                    (Gen.frequency [ 8, Gen.constant Store; 3, Gen.constant Remove; 1, Gen.constant Garbage; 1, Gen.constant Skipped ])
                    (Gen.frequency [ 12, Gen.choose (0, 2_000); 2, Gen.choose (-3_000, 0); 1, Gen.constant Int32.MinValue ])
            )
        let log = Array.init partitions (fun _ -> List<SimRecord>())
        let mutable clock = 10_000L
        for idNumber, op, step in records do
            let id = $"doc-{idNumber}"
            let stamp =
                if step = Int32.MinValue then -1L
                else
                    clock <- max 0L (clock + int64 step)
                    clock
            log[partitionOf partitions id].Add { Id = id; Op = op; Stamp = stamp }
        return log |> Array.map (fun l -> l.ToArray())
    }

type Story =
    { Log: SimRecord[][]
      /// One flag per destination (the first is always required): best-effort ones never hold a record.
      Destinations: bool list
      Members: int
      Steps: Step list
      Seed: int
      /// --until, in the past of the simulated clock (as a window replayed later is).
      Until: int64 voption
      Speed: Pacing.Speed }

let private stories =
    gen {
        let! log = topic
        let! members = Gen.choose (1, 3)
        let! count = Gen.choose (0, 300)
        let! story = Gen.listOfLength count steps
        let! seed = Gen.choose (0, Int32.MaxValue)
        let! destinations = Gen.frequency [ 3, Gen.constant [ false ]; 1, Gen.constant [ false; false ]; 1, Gen.constant [ false; true ]; 1, Gen.constant [ false; false; true ] ]
        let stamps = log |> Array.collect (Array.map _.Stamp) |> Array.filter (fun t -> t >= 0L)
        let latest = if stamps.Length = 0 then 10_000L else Array.max stamps
        // Sometimes exactly a record's stamp: the window ends at that record, not after it.
        let exactly = if stamps.Length = 0 then Gen.constant 10_000L else Gen.elements stamps
        let! until =
            Gen.frequency
                [ 2, Gen.constant ValueNone
                  1, Gen.choose (10_000, int latest + 1_000) |> Gen.map (int64 >> ValueSome)
                  1, exactly |> Gen.map ValueSome ]
        let! speed =
            Gen.frequency
                [ 3, Gen.constant Pacing.Max
                  1, Gen.constant (Pacing.Times 1.0)
                  1, Gen.constant (Pacing.Times 4.0)
                  1, Gen.constant (Pacing.Times 0.5) ]
        return
            { Log = log
              Destinations = destinations
              Members = members
              Steps = story
              Seed = seed
              Until = until
              Speed = speed }
    }

let private simulationConfig =
    { Generators.config with
        maxTest = 2_000
        endSize = 100 }

/// Runs one story to the end; returns the world it left.
let run (story: Story) =
    let world = World(story.Log, story.Seed, Array.ofList story.Destinations, story.Until, story.Speed)
    for _ in 1 .. story.Members do
        join world
    for step in story.Steps do
        world.Steps <- world.Steps + 1
        apply world step
        check world
    checkOrder world
    heal world
    world

[<Tests>]
let tests =
    testList
        "Simulation"
        [ testPropertyWithConfig simulationConfig "no loss, no commit past an open record, per-id order across owners, bounded, windows end where they should, nothing taken before it is due, drains once faults clear (the dead-letter brake included)"
          <| Prop.forAll (Arb.fromGen stories) (run >> ignore)

          test "a fixed corpus of 500 stories (the figures for the closing note)" {
              let corpus = Gen.sampleWithSeed (Rnd 20261201UL) 60 500 stories
              let worlds = corpus |> Array.map run
              let steps = worlds |> Array.sumBy _.Steps
              let holds = worlds |> Array.sumBy _.BrakeHolds
              let admitted kind =
                  worlds |> Array.sumBy (fun w -> match w.Admissions.TryGetValue kind with | true, n -> n | _ -> 0)
              let counts = [ for kind in Enum.GetValues<Consuming.Admission>() -> kind, admitted kind ]
              printfn "simulation corpus: %d stories, %d steps checked, %d dead-letter brake holds; admissions %A" corpus.Length steps holds counts
              Expect.isGreaterThan holds 100 "the brake is exercised"
              Expect.isGreaterThan steps 10_000 "the stories are long enough to mean something"
              for kind, n in counts do
                  Expect.isGreaterThan n 100 $"the stories reach {kind} often"
          } ]
