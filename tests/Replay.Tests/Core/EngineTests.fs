/// The core's delivery decisions one at a time, against a recording host: what a
/// lease may commit, when consuming pauses, and how the engine treats revokes,
/// dead letters, poison records and shutdown. The simulation (SimulationTests)
/// checks the same pieces together under generated faults.
module Replay.Tests.EngineTests

open System
open System.Collections.Generic
open Expecto
open FsCheck.FSharp
open Replay.Core
open Replay.Core.Outcome
open Replay.Tests.Generators

/// Records what the engine asks of its host.
type Recorder() =
    member val Ready = List<Job>()
    member val Backoffs = List<Job * TimeSpan>()
    member val DeadLetters = List<Job>()
    member val DeadLetterBackoffs = List<Job * TimeSpan>()
    member val Finished = List<Job>()
    member val Fatal = List<string>()

    interface IDeliveryEffects with
        member this.Ready job = this.Ready.Add job
        member this.Backoff(job, wait) = this.Backoffs.Add(job, wait)
        member this.WriteDeadLetter job = this.DeadLetters.Add job
        member this.DeadLetterBackoff(job, wait) = this.DeadLetterBackoffs.Add(job, wait)
        member this.Finished job = this.Finished.Add job
        member this.Fatal reason = this.Fatal.Add reason

let private schedule = { RetrySchedule.defaults with PoisonAfter = TimeSpan.FromMinutes 10.0 }

let private newEngine (giveUp: TimeSpan option) =
    let recorder = Recorder()
    DeliveryEngine(schedule, giveUp, recorder), recorder

let private request (id: string) : Pipeline.Request =
    { Method = Method.Post
      Url = Uri $"http://dest.example/{id}"
      Headers = []
      Body = ReadOnlyMemory.Empty
      OrderingKey = id
      Route = "defaults"
      StatusPolicy = StatusPolicy.defaults
      Destination = 0 }

let private job lease offset id = Job(ValueSome(request id), lease, offset, 10L, obj ())
let private answer status = Answered(Answer.status status None)
let private minutes (m: float) = int64 (TimeSpan.FromMinutes m).TotalMilliseconds

/// Begins and completes one attempt of the job.
let private attempt (engine: DeliveryEngine) (job: Job) (result: Attempt) (now: int64) =
    Expect.isTrue (engine.Begin job) $"{job} may be sent"
    engine.Complete(job, result, now, 0.5)

let private lanes =
    testList
        "engine"
        [ test "only a lane's head goes out; the next moves up when it finishes, in Kafka order" {
              let engine, host = newEngine None
              let lease = Lease.create "t" 0 -1L
              let a1, a2, b1 = job lease 0L "a", job lease 1L "a", job lease 2L "b"
              for j in [ a1; a2; b1 ] do
                  engine.Submit j
              Expect.equal (List.ofSeq host.Ready) [ a1; b1 ] "one head per id"
              attempt engine a1 (answer 201) 0L
              Expect.equal (List.ofSeq host.Ready) [ a1; b1; a2 ] "a2 moves up after a1"
              Expect.equal a1.Result JobResult.Delivered "delivered"
          }

          test "a record that keeps failing waits out its backoff holding only its lane" {
              let engine, host = newEngine None
              let lease = Lease.create "t" 0 -1L
              let stuck, other = job lease 0L "stuck", job lease 1L "other"
              engine.Submit stuck
              engine.Submit other
              attempt engine stuck (answer 503) 0L
              Expect.equal stuck.Phase BackingOff "backing off"
              Expect.equal host.Backoffs.Count 1 "a timer was asked for"
              attempt engine other (answer 201) 1L
              Expect.equal other.Result JobResult.Delivered "another id is not held up"
              engine.Due stuck
              Expect.equal stuck.Phase Ready "ready again after the backoff"
          }

          test "poison: failing while others succeed, for --poison-after, makes a dead letter; an outage never does" {
              let engine, host = newEngine None
              let lease = Lease.create "t" 0 -1L
              let poison = job lease 0L "poison"
              engine.Submit poison
              let mutable now = 0L
              let mutable n = 1L
              while poison.Phase <> DeadLettering && now < minutes 30.0 do
                  attempt engine poison (answer 500) now
                  if poison.Phase = BackingOff then
                      // Others to the same destination are delivered meanwhile.
                      let fine = job lease n $"fine-{n}"
                      n <- n + 1L
                      engine.Submit fine
                      attempt engine fine (answer 201) (now + 1L)
                      now <- now + minutes 1.0
                      engine.Due poison
              Expect.equal poison.Phase DeadLettering "given up"
              Expect.stringContains poison.Reason "poison" "the reason says poison"
              Expect.stringContains poison.Reason "500" "and what the last answer was"
              Expect.isLessThanOrEqual now (minutes 12.0) "after about --poison-after"

              let quiet, _ = newEngine None
              let outage = job lease 100L "outage"
              quiet.Submit outage
              for minute in 0..120 do
                  attempt quiet outage (answer 503) (minutes (float minute))
                  Expect.equal outage.Phase BackingOff $"still waiting at minute {minute}"
                  quiet.Due outage
              Expect.isEmpty host.Fatal "nothing fatal"
          }

          test "a poison record that fails slowly, its span full behind it before its first failure, is still given up" {
              let engine, _ = newEngine None
              let lease = Lease.create "t" 0 -1L
              let slow = job lease 0L "slow"
              engine.Submit slow
              Expect.isTrue (engine.Begin slow) "sent first"
              // While it hangs (a request time-out), the records behind it are answered and fill the span.
              for n in 1L..20L do
                  let fine = job lease n $"behind-{n}"
                  engine.Submit fine
                  attempt engine fine (answer 201) n
              engine.Complete(slow, TimedOut, 30_000L, 0.5)
              // Nothing else is answered from now on: the partition waits on this record alone.
              let mutable now = 30_000L
              while slow.Phase = BackingOff && now < minutes 60.0 do
                  now <- now + minutes 1.0
                  engine.Due slow
                  attempt engine slow TimedOut now
              Expect.equal slow.Phase DeadLettering "given up as poison"
              Expect.stringContains slow.Reason "poison" "as poison, not an outage"
              Expect.isLessThanOrEqual now (minutes 12.0) "after about --poison-after"
          }

          test "a record failing alone after the destination went down is an outage, not poison, until others are answered again" {
              let engine, host = newEngine None
              let lease = Lease.create "t" 0 -1L
              // Traffic flowed, then the destination went down with one record in flight on a quiet topic.
              for n in 0L..9L do
                  let fine = job lease n $"before-{n}"
                  engine.Submit fine
                  attempt engine fine (answer 201) n
              let lone = job lease 10L "lone"
              engine.Submit lone
              for minute in 1..120 do
                  attempt engine lone (answer 500) (minutes (float minute))
                  Expect.equal lone.Phase BackingOff $"an outage: still waiting at minute {minute}"
                  engine.Due lone
              // The destination serves again, but not this record: from now on it is poison.
              let mutable now = minutes 121.0
              let mutable n = 11L
              while lone.Phase <> DeadLettering && now < minutes 200.0 do
                  let fine = job lease n $"after-{n}"
                  n <- n + 1L
                  engine.Submit fine
                  attempt engine fine (answer 201) now
                  attempt engine lone (answer 500) (now + 1L)
                  now <- now + minutes 1.0
                  if lone.Phase = BackingOff then engine.Due lone
              Expect.equal lone.Phase DeadLettering "given up once others were answered for --poison-after"
              Expect.isGreaterThanOrEqual now (minutes 131.0) "not before --poison-after of others being answered"
              Expect.isLessThanOrEqual now (minutes 133.0) "and about then"
              Expect.stringContains lone.Reason "poison" "as poison"
              Expect.isEmpty host.Fatal "nothing fatal"
          }

          test "each dead letter carries its class: a permanent answer, poison, the retry limit, a rejection's reason" {
              let limited = DeliveryEngine({ schedule with MaxRetryDuration = Some(TimeSpan.FromMinutes 1.0) }, None, Recorder())
              let engine, _ = newEngine None
              let lease = Lease.create "t" 0 -1L
              let refused, poison, slow = job lease 0L "refused", job lease 1L "poison", job lease 2L "slow"
              engine.Submit refused
              attempt engine refused (answer 400) 0L
              Expect.equal refused.Cause PermanentStatus "a 400 is a permanent status"
              // Poison: failing for --poison-after while another record is accepted each minute.
              engine.Submit poison
              for minute in 0..11 do
                  if poison.Phase = Ready then
                      attempt engine poison (answer 500) (minutes (float minute))
                      let other = job lease (100L + int64 minute) $"other-{minute}"
                      engine.Submit other
                      attempt engine other (answer 201) (minutes (float minute) + 1L)
                      engine.Due poison
              Expect.equal poison.Phase DeadLettering "given up"
              Expect.equal poison.Cause Poison "as poison"
              limited.Submit slow
              for minute in 0..2 do
                  if slow.Phase = Ready then
                      attempt limited slow (answer 503) (minutes (float minute))
                      limited.Due slow
              Expect.equal slow.Phase DeadLettering "given up"
              Expect.equal slow.Cause MaxRetryDuration "at the retry limit"
              let rejected = Job(ValueNone, lease, 9L, 5L, obj ())
              engine.SubmitRejected(rejected, TooLarge, "too large")
              Expect.equal rejected.Cause TooLarge "a rejection keeps the class it was given"
          }

          test "every reason a record is refused maps to its class; labels are distinct and stable" {
              let cases =
                  [ Pipeline.Undecodable(Envelope.Truncated "value"), Undecodable
                    Pipeline.RuleError("r", "boom"), RuleError
                    Pipeline.PayloadTooLarge(10, 5), TooLarge
                    Pipeline.UnsafeHeader "X-A", UnsafeHeader
                    Pipeline.BadUrl("http://x/\n", "control character"), UnsafeUrl ]
              for reason, cause in cases do
                  Expect.equal (DeadLetterCause.ofReject reason) cause $"{reason}"
              let labels = DeadLetterCause.all |> List.map DeadLetterCause.label
              Expect.equal labels [ "permanent_status"; "poison"; "max_retry_duration"; "undecodable"; "rule_error"; "too_large"; "unsafe_url"; "unsafe_header" ] "the labels"
              Expect.equal (DeadLetterCause.all |> List.map DeadLetterCause.index) [ 0 .. labels.Length - 1 ] "indexes number them in order"
          }

          test "a rejected record holds its partition until its dead letter is written, retried when the sink fails" {
              let engine, host = newEngine None
              let lease = Lease.create "t" 0 -1L
              Checkpoint.start 0L lease.Progress
              let rejected = Job(ValueNone, lease, 0L, 5L, obj ())
              engine.SubmitRejected(rejected, Undecodable, "undecodable")
              Expect.equal (List.ofSeq host.DeadLetters) [ rejected ] "its dead letter is asked for"
              engine.DeadLetterFailed(rejected, 0L, 0.5)
              Expect.equal host.DeadLetterBackoffs.Count 1 "a backoff before trying again"
              engine.DeadLetterDue rejected
              Expect.equal host.DeadLetters.Count 2 "asked again after the backoff"
              engine.DeadLetterFailed(rejected, 1_000L, 0.5)
              Expect.equal host.DeadLetterBackoffs.Count 2 "and again"
              Expect.equal lease.Unfinished 1 "still holding its partition"
              engine.DeadLetterDue rejected
              engine.DeadLetterWritten rejected
              Expect.equal rejected.Result DeadLettered "finished once written"
              Consuming.finished rejected |> ignore
              Expect.equal (Lease.storable lease) (ValueSome 1L) "its partition may commit past it"
          }

          test "with a limit, dead letters unwritable for longer stop the run with the cause" {
              let engine, host = newEngine (Some(TimeSpan.FromSeconds 30.0))
              let lease = Lease.create "t" 0 -1L
              let rejected = Job(ValueNone, lease, 0L, 5L, obj ())
              engine.SubmitRejected(rejected, Undecodable, "undecodable")
              engine.DeadLetterFailed(rejected, 0L, 0.5)
              engine.DeadLetterDue rejected
              engine.DeadLetterFailed(rejected, 31_000L, 0.5)
              Expect.equal host.Fatal.Count 1 "fatal"
              Expect.stringContains host.Fatal[0] "dead letters could not be written" "with the cause"
          }

          test "a revoke abandons queued and backing-off work at once; what is on the wire may still deliver; nothing starts after" {
              let engine, host = newEngine None
              let lease = Lease.create "t" 0 -1L
              let sending, queued, waiting, waitingNext = job lease 0L "a", job lease 1L "a", job lease 2L "b", job lease 3L "b"
              for j in [ sending; queued; waiting; waitingNext ] do
                  engine.Submit j
              Expect.isTrue (engine.Begin sending) "a goes out"
              attempt engine waiting (answer 503) 0L
              Expect.equal (engine.Revoke lease) 1 "one request on the wire"
              for j in [ queued; waiting; waitingNext ] do
                  Expect.equal j.Result Abandoned $"{j} abandoned"
              engine.Due waiting
              Expect.isFalse (host.Ready.Contains waitingNext) "nothing of it becomes ready"
              engine.Complete(sending, answer 201, 1L, 0.5)
              Expect.equal sending.Result JobResult.Delivered "a success on the wire counts while draining"
              engine.Release lease
              Expect.equal lease.Unfinished 0 "settled"
          }

          test "a request on the wire that fails while draining is abandoned, never retried or dead-lettered" {
              let engine, host = newEngine None
              let lease = Lease.create "t" 0 -1L
              let a = job lease 0L "a"
              engine.Submit a
              Expect.isTrue (engine.Begin a) "out"
              engine.Revoke lease |> ignore
              engine.Complete(a, answer 500, 1L, 0.5)
              Expect.equal a.Result Abandoned "abandoned"
              Expect.isEmpty host.Backoffs "no retry"
              Expect.isEmpty host.DeadLetters "no dead letter"
          }

          test "stop abandons what is not on the wire at once, and what is on the wire unless it succeeds" {
              let engine, _ = newEngine None
              let lease = Lease.create "t" 0 -1L
              let onWire, failing, queued = job lease 0L "a", job lease 1L "b", job lease 2L "a"
              for j in [ onWire; failing; queued ] do
                  engine.Submit j
              Expect.isTrue (engine.Begin onWire) "out"
              attempt engine failing (answer 503) 0L
              engine.Stop()
              Expect.equal failing.Result Abandoned "backing off: abandoned"
              Expect.equal queued.Result Abandoned "queued: abandoned"
              engine.Complete(onWire, answer 201, 1L, 0.5)
              Expect.equal onWire.Result JobResult.Delivered "a success still counts"
              Expect.equal engine.InFlight 0 "nothing left"
          } ]

/// A lease's offsets: consumed (possibly with gaps) and the order completions come in.
let private progress =
    gen {
        let! start = Gen.choose (0, 1000)
        let! gaps = Gen.listOfLength 30 (Gen.frequency [ 5, Gen.constant 1; 1, Gen.choose (2, 5) ])
        let offsets = gaps |> List.scan (+) start |> List.map int64
        let! finished = Gen.subListOf offsets
        return offsets, finished
    }

let private lease =
    testList
        "lease"
        [ property "what may be stored is never past an open record" progress (fun (offsets, finished) ->
              let lease = Lease.create "t" 0 -1L
              for o in offsets do
                  Lease.intake o 0L lease |> ignore
              for o in finished do
                  Lease.finish o lease
              let openOffsets = set offsets - set finished
              match Lease.storable lease with
              | ValueSome position when not openOffsets.IsEmpty -> Expect.equal position openOffsets.MinimumElement "the lowest open offset"
              | ValueSome position -> Expect.equal position (List.last offsets + 1L) "one past the last when all finished"
              | ValueNone -> failtest "something is storable")

          property "--until-end never stores below where the partition already stood" (Gen.zip (Gen.choose (0, 100)) (Gen.choose (0, 100)))
          <| fun (mark, committed) ->
              // The group had committed `committed`; this run's mark is `mark`.
              let lease = Lease.create "t" 0 -1L
              lease.End <- ValueSome(int64 mark)
              Lease.intake (int64 committed) 0L lease |> ignore
              if committed >= mark then
                  Expect.isTrue lease.ReachedEnd "at or past the mark"
                  Expect.equal (Lease.storable lease) (ValueSome(int64 committed)) "stays where the group was"
              else
                  Expect.isFalse lease.ReachedEnd "before the mark"

          test "a gone lease stores nothing and counts nothing; a draining one still does" {
              let lease = Lease.create "t" 0 -1L
              Lease.intake 5L 0L lease |> ignore
              lease.State <- Draining
              Lease.finish 5L lease
              Expect.equal (Lease.storable lease) (ValueSome 6L) "draining: what finished counts"
              Lease.intake 6L 0L lease |> ignore
              lease.State <- Gone
              Lease.finish 6L lease
              Expect.equal (Lease.storable lease) ValueNone "gone: nothing"
          } ]

let private backpressure =
    let budget = { Backpressure.defaults with MaxInFlightRecords = 100; MaxInFlightBytes = 1000L; PauseAfterFullMs = 1000L }
    testList
        "backpressure"
        [ property "never consume while full; pause only after the budget stayed full; resume only at half"
              (Gen.listOfLength 60 (Gen.zip (Gen.choose (0, 120)) (Gen.choose (0, 400))))
          <| fun loads ->
              let mutable mode = Backpressure.Flowing
              let mutable now = 0L
              let mutable fullSince = None
              for inFlight, elapsed in loads do
                  now <- now + int64 elapsed
                  let full = inFlight >= 100
                  // The model: when the budget last became full, for as long as it stays full.
                  fullSince <- (if full then Some(defaultArg fullSince now) else None)
                  let struct (next, decision) = Backpressure.step budget mode inFlight 0L now
                  match decision with
                  | Backpressure.Decision.Consume -> Expect.isFalse full "consumes only with room"
                  | Backpressure.Decision.PauseAll ->
                      Expect.isTrue full "pauses only when full"
                      Expect.isGreaterThanOrEqual (now - Option.get fullSince) 1000L "after a second full"
                  | Backpressure.Decision.ResumeAll -> Expect.isLessThanOrEqual inFlight 50 "resumes at half"
                  | _ -> ()
                  mode <- next

          test "a partition's span pauses it past the limit and frees it at half" {
              let budget = { Backpressure.defaults with MaxSpanPerPartition = 10 }
              Expect.isFalse (Backpressure.spanFull budget false 10) "at the limit"
              Expect.isTrue (Backpressure.spanFull budget false 11) "past it"
              Expect.isTrue (Backpressure.spanFull budget true 6) "still full above half"
              Expect.isFalse (Backpressure.spanFull budget true 5) "free at half"
          } ]

[<Tests>]
let tests = testList "Contract" [ lanes; lease; backpressure ]
