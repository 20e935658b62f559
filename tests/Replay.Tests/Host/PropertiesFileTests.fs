module Replay.Tests.PropertiesFileTests

open Expecto

[<Tests>]
let tests = testList "PropertiesFile" []
