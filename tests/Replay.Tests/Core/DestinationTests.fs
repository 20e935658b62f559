module Replay.Tests.DestinationTests

open Expecto

[<Tests>]
let tests = testList "Destination" []
