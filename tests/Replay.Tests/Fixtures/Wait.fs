/// Waiting on a condition with a deadline: the only way tests synchronise.
module Replay.Tests.Wait

open System
open System.Threading

/// Polls `condition` until it holds or `timeout` passes; true when it held.
let until (timeout: TimeSpan) (condition: unit -> bool) =
    let deadline = DateTime.UtcNow + timeout
    let mutable ok = condition ()
    while not ok && DateTime.UtcNow < deadline do
        Thread.Sleep 20
        ok <- condition ()
    ok
