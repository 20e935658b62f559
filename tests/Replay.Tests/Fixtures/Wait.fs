/// Waiting on a condition with a deadline: the only way tests synchronise.
module Replay.Tests.Wait

open System
open System.Threading

/// Waits until `condition` holds or `timeout` passes; true when it held.
let until (timeout: TimeSpan) (condition: unit -> bool) =
    SpinWait.SpinUntil(Func<bool> condition, timeout)
