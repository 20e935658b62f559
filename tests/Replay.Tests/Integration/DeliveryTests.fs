module Replay.Tests.DeliveryTests

open Expecto

[<Tests>]
let tests = testList "Delivery" []
