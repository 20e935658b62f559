module Replay.Tests.CheckpointTests

open Expecto

[<Tests>]
let tests = testList "Checkpoint" []
