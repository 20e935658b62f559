/// Which records a run replays in time (--until: where each partition ends) and at
/// what pace (--speed: when each record is due), as laws over generated timestamps,
/// offsets and clocks. The whole consuming side, faults included, is in SimulationTests.
module Replay.Tests.WindowTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Core
open Replay.Tests.Generators

let private factors = Gen.elements [ 0.001; 0.25; 0.5; 1.0; 2.0; 4.0; 10.0; 123.4; 1_000_000.0 ]

let private schedules =
    gen {
        let! factor = factors
        let! start = Gen.choose (0, Int32.MaxValue) |> Gen.map (fun s -> 1_700_000_000_000L + int64 s)
        let! origin = Gen.choose (0, Int32.MaxValue) |> Gen.map int64
        return { Pacing.Factor = factor; Pacing.WindowStartMs = start; Pacing.OriginMs = origin }
    }

/// Two stamps at or after the window's beginning, in order.
let private stampPairs =
    gen {
        let! schedule = schedules
        let! a = Gen.choose (0, 100_000_000)
        let! gap = Gen.choose (0, 100_000_000)
        return schedule, schedule.WindowStartMs + int64 a, schedule.WindowStartMs + int64 a + int64 gap
    }

/// A partition's records: offsets from `first`, stamps that mostly rise (and sometimes
/// step back, as a producer's clock may), an until-time among or around them, and the
/// order in which their deliveries finish.
let private partitions =
    gen {
        let! first = Gen.choose (0, 1_000)
        let! steps = Gen.listOfLength 30 (Gen.frequency [ 8, Gen.choose (0, 1_000); 1, Gen.choose (-2_000, 0) ])
        let stamps = steps |> List.scan (+) 1_000_000 |> List.tail |> List.map int64
        let! until = Gen.oneof [ Gen.elements stamps; Gen.choose (999_000, 1_040_000) |> Gen.map int64 ]
        let! order = Gen.shuffle [ 0..29 ]
        return int64 first, stamps, until, List.ofArray order
    }

/// The first record stamped at or after `until`: where offsets-for-times places it.
let private endOf (first: int64) (stamps: int64 list) (until: int64) =
    match List.tryFindIndex (fun s -> s >= until) stamps with
    | Some i -> first + int64 i
    | None -> first + int64 stamps.Length

let private leaseUntil (until: int64) =
    let lease = Lease.create "t" 0 -1L
    lease.Until <- until
    lease

let private unpaced = Pacing.Pacer Pacing.Max

let private pacing =
    testList
        "pacing"
        [ property "due times never go back as timestamps rise" stampPairs (fun (schedule, a, b) ->
              Expect.isLessThanOrEqual (Pacing.dueAt schedule a) (Pacing.dueAt schedule b) "later stamp, later or equal due time")

          property "--speed k divides the original gaps by k (to the millisecond)" stampPairs (fun (schedule, a, b) ->
              let gap = float (Pacing.dueAt schedule b - Pacing.dueAt schedule a)
              let expected = float (b - a) / schedule.Factor
              Expect.isLessThanOrEqual (abs (gap - expected)) 1.0 $"gap {gap} ms against {expected} ms at {schedule.Factor}x")

          property "nothing is due before its time; the window's beginning is due at the origin" stampPairs (fun (schedule, a, _) ->
              let due = Pacing.dueAt schedule a
              let exact = float schedule.OriginMs + float (a - schedule.WindowStartMs) / schedule.Factor
              Expect.isGreaterThanOrEqual (float due) exact "never early"
              Expect.equal (Pacing.dueAt schedule schedule.WindowStartMs) schedule.OriginMs "the beginning falls on the origin"
              Expect.equal (Pacing.dueAt schedule (schedule.WindowStartMs - 5_000L)) schedule.OriginMs "what is older is due at once")

          property "a record is taken when due, kept within the lead, left in Kafka beyond it; its partition waits until then"
              (Gen.zip3 factors (Gen.choose (0, 100_000)) (Gen.choose (0, 100_000)))
          <| fun (factor, offsetMs, readAtMs) ->
              let pacer = Pacing.Pacer(Pacing.Times factor)
              let first = Lease.create "t" 0 -1L
              // The first record starts the schedule: stamped 1_000_000 at clock 500.
              Expect.equal (pacer.Pace(first, 1_000_000L, 500L)) Pacing.Pace.Now "the first record is due at once"
              let schedule = pacer.Schedule.Value
              Expect.equal (schedule.WindowStartMs, schedule.OriginMs) (1_000_000L, 500L) "the schedule starts with it"
              let lease = Lease.create "t" 1 -1L
              let stamp = 1_000_000L + int64 offsetMs
              let now = 500L + int64 readAtMs
              let due = Pacing.dueAt schedule stamp
              match pacer.Pace(lease, stamp, now) with
              | Pacing.Pace.Now ->
                  Expect.isGreaterThanOrEqual now due "taken only when due"
                  Expect.equal pacer.BehindMs (now - due) "behind by how late it was taken"
                  Expect.isFalse (Backpressure.wantsPause Backpressure.Flowing Backpressure.Free lease now) "its partition flows"
              | Pacing.Pace.Hold ->
                  Expect.isTrue (due > now && due - now <= Pacing.leadMs) "kept only within the lead"
                  Expect.equal lease.PacedUntil due "until it is due"
                  Expect.isTrue (Backpressure.wantsPause Backpressure.Flowing Backpressure.Free lease (due + 1L)) "its partition stays paused while it is kept"
                  Expect.isFalse (Consuming.heldIsDue Backpressure.Flowing Backpressure.Free lease (due - 1L)) "not handed on early"
                  Expect.isTrue (Consuming.heldIsDue Backpressure.Flowing Backpressure.Free lease due) "handed on when due"
                  Expect.isFalse (Consuming.heldIsDue Backpressure.Paused Backpressure.Free lease due) "unless the budget pauses everything"
                  Expect.isFalse (Consuming.heldIsDue Backpressure.Flowing Backpressure.DeadLetterRatio lease due) "or the dead-letter brake holds"
              | _ ->
                  Expect.isGreaterThan (due - now) Pacing.leadMs "left in Kafka only beyond the lead"
                  Expect.equal lease.PacedUntil (due - Pacing.leadMs) "fetched again the lead before it is due"
                  Expect.isTrue (Backpressure.wantsPause Backpressure.Flowing Backpressure.Free lease (due - Pacing.leadMs - 1L)) "paused until then"
                  Expect.isFalse (Backpressure.wantsPause Backpressure.Flowing Backpressure.Free lease (due - Pacing.leadMs)) "resumed then"

          test "records of different partitions interleave on one clock; a late run says how late" {
              let pacer = Pacing.Pacer(Pacing.Times 2.0)
              let a, b = Lease.create "t" 0 -1L, Lease.create "t" 1 -1L
              Expect.equal (pacer.Pace(a, 10_000L, 0L)) Pacing.Pace.Now "a's first record starts the clock"
              Expect.equal (pacer.Pace(b, 9_000L, 0L)) Pacing.Pace.Now "b's older record is due at once"
              Expect.equal (pacer.Pace(b, 11_000L, 0L)) Pacing.Pace.Hold "b's next is due at 500 ms, on the same clock"
              Expect.equal (pacer.Pace(a, 14_000L, 0L)) Pacing.Pace.Defer "a's next at 2 s: left in Kafka"
              Expect.equal a.PacedUntil 1_000L "a resumes the lead before 2 s"
              Expect.equal (pacer.Pace(b, 11_000L, 700L)) Pacing.Pace.Now "b's record, read again after its time"
              Expect.equal pacer.BehindMs 200L "200 ms late"
          }

          test "max never waits and never starts a schedule; records without a timestamp are due at once" {
              let lease = Lease.create "t" 0 -1L
              Expect.equal (unpaced.Pace(lease, Int64.MaxValue, 0L)) Pacing.Pace.Now "max"
              Expect.isTrue unpaced.Schedule.IsNone "no schedule"
              let paced = Pacing.Pacer(Pacing.Times 1.0)
              Expect.equal (paced.Pace(lease, -1L, 0L)) Pacing.Pace.Now "no timestamp"
              Expect.isTrue paced.Schedule.IsNone "and it does not start the schedule"
              Expect.equal (paced.Pace(lease, 5_000L, 10L)) Pacing.Pace.Now "the first stamped record does"
              Expect.equal (paced.Pace(lease, Int64.MaxValue, 10L)) Pacing.Pace.Defer "a bogus stamp far ahead waits, without overflowing"
              Expect.isGreaterThan lease.PacedUntil 10L "into the future"
          }

          test "--speed reads max and factors, and says what to write otherwise" {
              Expect.equal (Pacing.parse "max") (Ok Pacing.Max) "max"
              Expect.equal (Pacing.parse " MAX ") (Ok Pacing.Max) "any case"
              Expect.equal (Pacing.parse "1") (Ok(Pacing.Times 1.0)) "1"
              Expect.equal (Pacing.parse "10x") (Ok(Pacing.Times 10.0)) "10x"
              Expect.equal (Pacing.parse "0.5") (Ok(Pacing.Times 0.5)) "0.5"
              Expect.equal (Pacing.describe (Pacing.Times 4.0)) "4x" "written back"
              for text in [ "0"; "-1"; "fast"; ""; "NaN"; "Infinity"; "1e9"; "0.0001"; "x" ] do
                  match Pacing.parse text with
                  | Ok speed -> failtestf "'%s' was read as %A" text speed
                  | Error message -> Expect.stringContains message "max" $"'{text}': says what to write"
          } ]

let private window =
    testList
        "until"
        [ property "a window takes exactly the records before the first stamped at or after --until, commits never pass an open record, and ends committed at that record"
              partitions
          <| fun (first, stamps, until, order) ->
              let lease = leaseUntil until
              let stop = endOf first stamps until
              let taken = Collections.Generic.List<int64>()
              for i, stamp in List.indexed stamps do
                  let offset = first + int64 i
                  if not lease.ReachedEnd then
                      match Consuming.admit unpaced lease offset stamp 0L with
                      | Consuming.Admission.Take -> taken.Add offset
                      | Consuming.Admission.PastEnd -> ()
                      | other -> failtestf "unpaced admission %A" other
              if stop = first + int64 stamps.Length then
                  // No record at or after --until: Kafka's end of partition, long after the until-time.
                  Lease.caughtUp stop (until + Lease.untilGraceMs) lease
              Expect.sequenceEqual taken [ first .. stop - 1L ] "exactly the records of the window"
              Expect.isTrue lease.ReachedEnd "the partition is at its end"
              let mutable stored = -1L
              let finished = Collections.Generic.HashSet<int64>()
              for i in order do
                  let offset = first + int64 i
                  if offset < stop then
                      Lease.finish offset lease
                      finished.Add offset |> ignore
                  match Lease.storable lease with
                  | ValueSome position ->
                      let openBelow = [ first .. position - 1L ] |> List.filter (fun o -> o < stop && not (finished.Contains o))
                      Expect.isEmpty openBelow $"storing {position} never passes an open record"
                      Expect.isGreaterThan position stored "never backwards"
                      Lease.stored position lease
                      stored <- position
                  | ValueNone -> ()
                  Expect.equal (Lease.isDone lease) (finished.Count = int (stop - first)) "done exactly when every record of the window finished"
              Expect.equal stored stop "committed exactly to the window's end"
              Expect.isTrue (Lease.isDone lease) "done"

          property "a group already committed past --until stays where it was" (Gen.zip (Gen.choose (0, 1_000)) (Gen.choose (0, 500)))
          <| fun (committed, late) ->
              // The run resumes at the group's commit; the record there is already past the until-time.
              let lease = leaseUntil 1_000L
              let offset = int64 committed
              Expect.equal (Consuming.admit unpaced lease offset (1_000L + int64 late) 0L) Consuming.Admission.PastEnd "past the end at once"
              Expect.equal (Lease.storable lease) (ValueSome offset) "committed where the group stood, never below"
              Expect.isTrue (Lease.isDone lease) "and done"

          test "a quiet partition (nothing at or after --until yet) ends where it was read to its end, once the until-time's grace has passed" {
              let until = 1_000_000L
              let lease = leaseUntil until
              Consuming.admit unpaced lease 0L (until - 10L) 0L |> ignore
              Lease.finish 0L lease
              // Read to its end before the until-time: a record produced before it may still come.
              Lease.caughtUp 1L (until - 1_000L) lease
              Expect.isFalse lease.ReachedEnd "not the end before the until-time"
              Expect.equal (Lease.awaitsConfirmation (until + Lease.untilGraceMs - 1L) lease) ValueNone "nothing to confirm within the grace"
              Expect.equal (Lease.awaitsConfirmation (until + Lease.untilGraceMs) lease) (ValueSome 1L) "after it, the host confirms the end"
              // The broker says a record came meanwhile: not the end; Kafka will say so again.
              Lease.movedOn lease
              Expect.equal (Lease.awaitsConfirmation (until + Lease.untilGraceMs) lease) ValueNone "nothing to confirm"
              Expect.equal (Consuming.admit unpaced lease 1L (until - 1L) 0L) Consuming.Admission.Take "the late record belongs to the window"
              Lease.caughtUp 2L (until + Lease.untilGraceMs) lease
              Expect.isTrue lease.ReachedEnd "read to its end after the grace: the end"
              Expect.isFalse (Lease.isDone lease) "but not done while that record is open"
              Lease.finish 1L lease
              Expect.isTrue (Lease.isDone lease) "done"
              Expect.equal (Lease.storable lease) (ValueSome 2L) "committed to where it ended"
          }

          test "a partition whose next record waits for its time is not at its end, whatever Kafka says" {
              let lease = leaseUntil 10_000L
              let pacer = Pacing.Pacer(Pacing.Times 1.0)
              Expect.equal (Consuming.admit pacer lease 0L 0L 0L) Consuming.Admission.Take "the first starts the schedule"
              Lease.finish 0L lease
              Expect.equal (Consuming.admit pacer lease 1L 500L 0L) Consuming.Admission.Hold "the next is kept"
              Lease.caughtUp 2L 1_000_000L lease
              Expect.isFalse lease.ReachedEnd "an end reported behind a kept record is not the end"
              Expect.equal (Consuming.admit pacer lease 1L 500L 500L) Consuming.Admission.Take "taken when due"
              Lease.finish 1L lease
              Expect.equal (Consuming.admit pacer lease 2L 5_000L 600L) Consuming.Admission.Defer "the next, due in 4.4 s, stays in Kafka"
              Lease.caughtUp 3L 1_000_000L lease
              Expect.isFalse lease.ReachedEnd "an end reported behind a record left in Kafka is not the end"
              Expect.equal (Lease.storable lease) (ValueSome 2L) "nothing past the record left in Kafka is committed"
              Expect.equal (Consuming.admit pacer lease 2L 5_000L 5_000L) Consuming.Admission.Take "read again, and taken when due"
              Expect.equal (Consuming.admit pacer lease 3L 10_000L 5_100L) Consuming.Admission.PastEnd "a record at the until-time ends it, due or not"
          }

          test "without --until nothing ends by time" {
              let lease = Lease.create "t" 0 -1L
              Expect.equal (Consuming.admit unpaced lease 0L Int64.MaxValue 0L) Consuming.Admission.Take "any stamp"
              Lease.caughtUp 1L Int64.MaxValue lease
              Expect.isFalse lease.ReachedEnd "Kafka's end is not the end"
          } ]

[<Tests>]
let tests = testList "Window" [ pacing; window ]
