module Replay.Tests.SamplingTests

open Expecto

[<Tests>]
let tests = testList "Sampling" []
