module Replay.Tests.EnvelopeTests

open Expecto

[<Tests>]
let tests = testList "Envelope" []
