/// The commit position of a partition, model-checked: generated consumption with
/// gapped offsets, completions in any order and revokes, against a reference model
/// that keeps every consumed offset with a finished flag.
module Replay.Tests.CheckpointTests

open Expecto
open Replay.Core
open Replay.Tests.Generators

let private step (partition: Checkpoint.Partition) command =
    match command with
    | Consume offset -> Checkpoint.start offset partition
    | Finish offset -> Checkpoint.finish offset partition
    // The host drops a revoked partition's progress; a later assignment starts afresh.
    | Revoke -> Checkpoint.empty

/// The implementation's and the model's state after each command.
let private trace commands =
    let states = commands |> List.scan step Checkpoint.empty |> List.tail
    let models = commands |> List.scan CheckpointModel.step { Consumed = []; Resume = 0L } |> List.tail
    List.zip3 commands states models

let private laws =
    testList
        "laws"
        [ property "committable = the reference model's, after every command" checkpointCommands (fun (commands, expected) ->
              let actual = commands |> List.scan step Checkpoint.empty |> List.tail |> List.map Checkpoint.committable
              Expect.sequenceEqual actual expected "the whole trace")

          // Messages are built only on failure: formatting a command is slow enough to
          // dominate a property that checks every offset after every step.
          property "committable never exceeds an unfinished offset" checkpointCommands (fun (commands, _) ->
              for command, state, model in trace commands do
                  match Checkpoint.committable state with
                  | None -> if not model.Consumed.IsEmpty then failtest $"nothing committable after {command}"
                  | Some position ->
                      for offset in CheckpointModel.unfinished model do
                          if position > offset then failtest $"committable {position} passes unfinished {offset}, after {command}")

          property "committable never moves back, as completions arrive and across revokes" checkpointCommands (fun (commands, _) ->
              let positions =
                  commands |> List.scan step Checkpoint.empty |> List.tail |> List.choose Checkpoint.committable
              for earlier, later in List.pairwise positions do
                  if later < earlier then failtest $"the commit position went back from {earlier} to {later}")

          property "open records are exactly the model's unfinished ones" checkpointCommands (fun (commands, _) ->
              for command, state, model in trace commands do
                  let unfinished = CheckpointModel.unfinished model
                  if Checkpoint.openCount state <> unfinished.Length || Checkpoint.isIdle state <> unfinished.IsEmpty then
                      failtest $"after {command}: {Checkpoint.openCount state} open, the model has {unfinished}") ]

let private examples =
    let run commands = commands |> List.fold step Checkpoint.empty |> Checkpoint.committable
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
          } ]

[<Tests>]
let tests = testList "Checkpoint" [ laws; examples ]
