/// HTTP/1.1 pipelining on the lean path (`--pipeline N`): up to N requests share a connection
/// before their answers come, and the requests begun while one connection's answers are handed
/// out leave on it together. This decides which connection takes a request, and what a broken
/// connection means for the requests still out on it.
///
/// Answers come in the order the requests went, so a slow or lost one holds up those behind it:
/// they are never answered on that connection. Nothing of their answers arrived, so they are
/// sent again, once, on another connection; the server may have acted on them already, which
/// the at-least-once contract allows (X-Replay-Id tells the copies apart).
module Replay.Core.Pipelining

/// How many connections carry `concurrency` requests at `depth` each.
let connections (concurrency: int) (depth: int) =
    if concurrency < 1 || depth < 1 then invalidArg "depth" "concurrency and depth are at least 1"
    (concurrency + depth - 1) / depth

/// Where the next request goes.
type Choice =
    /// On the open connection at this index.
    | Use of int
    /// On a new connection.
    | Open
    /// Nowhere yet: every connection allowed is still connecting.
    | WaitForOpening

/// The open connections as the host sees them: requests out on each, and which of them (if any)
/// is handing out answers on the choosing thread. A struct: the host asks once per request.
[<Struct>]
type Pool =
    { Loads: int array
      HandingOut: int voption
      /// Connections still being opened.
      Opening: int }

/// Which connection takes the next request, with at most `most` connections and `depth` requests
/// on each: the one handing out answers (so the request leaves with the others begun now), else an
/// idle one, else a new one while fewer than `most` are open, else the least loaded. Only when every
/// allowed connection is full does a connection take more than `depth`: requests sent again after
/// a broken connection may briefly outnumber the concurrency.
let choose (depth: int) (most: int) (pool: Pool) : Choice =
    match pool.HandingOut with
    | ValueSome i when pool.Loads[i] < depth -> Use i
    | _ ->
        let open' = pool.Loads.Length
        let least =
            if open' = 0 then None
            else Some(Array.findIndex ((=) (Array.min pool.Loads)) pool.Loads)
        match least with
        | Some i when pool.Loads[i] = 0 -> Use i
        | _ when open' + pool.Opening < most -> Open
        | Some i when pool.Loads[i] < depth || pool.Opening = 0 -> Use i
        | _ -> WaitForOpening

/// A request whose connection broke before any of its answer came may go once more on another;
/// one that broke after its answer began, or that was already sent again, has failed.
let sendAgain (nothingReceived: bool) (sentBefore: int) = nothingReceived && sentBefore = 0
