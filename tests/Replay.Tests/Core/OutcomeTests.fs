module Replay.Tests.OutcomeTests

open Expecto

[<Tests>]
let tests = testList "Outcome" []
