module Replay.Tests.PipelineTests

open Expecto

[<Tests>]
let tests = testList "Pipeline" []
