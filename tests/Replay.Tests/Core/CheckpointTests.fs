/// The commit position of a partition, model-checked: generated consumption with
/// gapped offsets, completions in any order and revokes, against a reference model
/// that keeps every consumed offset with a finished flag.
module Replay.Tests.CheckpointTests

open Expecto
open Replay.Core
open Replay.Tests.Generators

/// What one partition's progress showed after a command.
type private Seen =
    { Committable: int64 option
      Open: int
      Idle: bool }

/// Runs the commands on a partition's progress as the host does (a revoke drops it, and
/// a later assignment starts afresh) and returns what it showed after each command.
let private run commands =
    let mutable partition = Checkpoint.create ()
    [ for command in commands do
          match command with
          | Consume offset -> Checkpoint.start offset partition
          | Finish offset -> Checkpoint.finish offset partition
          | Revoke -> partition <- Checkpoint.create ()
          yield
              { Committable = Checkpoint.committable partition
                Open = Checkpoint.openCount partition
                Idle = Checkpoint.isIdle partition } ]

/// The implementation's and the model's state after each command.
let private trace commands =
    let models = commands |> List.scan CheckpointModel.step { Consumed = []; Resume = 0L } |> List.tail
    List.zip3 commands (run commands) models

let private laws =
    testList
        "laws"
        [ property "committable = the reference model's, after every command" checkpointCommands (fun (commands, expected) ->
              let actual = run commands |> List.map _.Committable
              Expect.sequenceEqual actual expected "the whole trace")

          // Messages are built only on failure: formatting a command is slow enough to
          // dominate a property that checks every offset after every step.
          property "committable never exceeds an unfinished offset" checkpointCommands (fun (commands, _) ->
              for command, state, model in trace commands do
                  match state.Committable with
                  | None -> if not model.Consumed.IsEmpty then failtest $"nothing committable after {command}"
                  | Some position ->
                      for offset in CheckpointModel.unfinished model do
                          if position > offset then failtest $"committable {position} passes unfinished {offset}, after {command}")

          property "committable never moves back, as completions arrive and across revokes" checkpointCommands (fun (commands, _) ->
              let positions = run commands |> List.choose _.Committable
              for earlier, later in List.pairwise positions do
                  if later < earlier then failtest $"the commit position went back from {earlier} to {later}")

          property "open records are exactly the model's unfinished ones" checkpointCommands (fun (commands, _) ->
              for command, state, model in trace commands do
                  let unfinished = CheckpointModel.unfinished model
                  if state.Open <> unfinished.Length || state.Idle <> unfinished.IsEmpty then
                      failtest $"after {command}: {state.Open} open, the model has {unfinished}") ]

let private examples =
    let run commands =
        match run commands with
        | [] -> None
        | seen -> (List.last seen).Committable
    testList
        "examples"
        [ test "nothing consumed, nothing to commit" { Expect.isNone (run []) "empty" }

          test "an open record holds the position at itself" {
              Expect.equal (run [ Consume 5L ]) (Some 5L) "not yet finished"
          }

          test "all finished: one past the last consumed" {
              Expect.equal (run [ Consume 5L; Consume 6L; Finish 6L; Finish 5L ]) (Some 7L) "both done"
          }

          test "a later completion does not pass an earlier open record" {
              Expect.equal (run [ Consume 5L; Consume 10L; Finish 10L ]) (Some 5L) "5 still open"
          }

          test "gaps between offsets are stepped over" {
              Expect.equal (run [ Consume 5L; Consume 10L; Finish 5L ]) (Some 10L) "6..9 do not exist"
              Expect.equal (run [ Consume 5L; Consume 10L; Finish 5L; Finish 10L ]) (Some 11L) "all done"
          }

          test "a revoke forgets the partition" {
              Expect.isNone (run [ Consume 5L; Revoke ]) "fresh state"
          }

          test "a window of open records slides through the ring many times over" {
              let partition = Checkpoint.create ()
              for offset in 0L .. 9999L do
                  Checkpoint.start offset partition
                  if offset >= 40L then Checkpoint.finish (offset - 40L) partition
                  let expected = max 0L (offset - 39L)
                  if Checkpoint.committable partition <> Some expected then
                      failtest $"after consuming {offset}: {Checkpoint.committable partition}, expected {expected}"
              Expect.equal (Checkpoint.openCount partition) 40 "the window"
          }

          test "thousands open at once and finished out of order grow the ring" {
              let partition = Checkpoint.create ()
              for offset in 0L .. 4999L do
                  Checkpoint.start (offset * 2L) partition
              // Odd positions first, then even ones from the back: nothing moves until offset 0 is done.
              for offset in [ 1L .. 2L .. 4999L ] @ [ 4998L .. -2L .. 2L ] do
                  Checkpoint.finish (offset * 2L) partition
              Expect.equal (Checkpoint.committable partition) (Some 0L) "held at the first open record"
              Expect.equal (Checkpoint.openCount partition) 1 "one open"
              Checkpoint.finish 0L partition
              Expect.equal (Checkpoint.committable partition) (Some 9999L) "one past the last consumed"
              Expect.isTrue (Checkpoint.isIdle partition) "idle"
          }

          test "a repeated or unknown offset changes nothing" {
              let partition = Checkpoint.create ()
              Checkpoint.start 5L partition
              Checkpoint.start 5L partition
              Checkpoint.finish 7L partition
              Expect.equal (Checkpoint.openCount partition) 1 "5 counted once"
              Checkpoint.finish 5L partition
              Checkpoint.finish 5L partition
              Expect.equal (Checkpoint.committable partition) (Some 6L) "finished once"
          } ]

[<Tests>]
let tests = testList "Checkpoint" [ laws; examples ]
