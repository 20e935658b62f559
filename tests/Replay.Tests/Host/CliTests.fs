module Replay.Tests.CliTests

open Expecto

[<Tests>]
let tests = testList "Cli" []
