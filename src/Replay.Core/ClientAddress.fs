/// Which address a submission came from. The connection's peer is the client
/// unless the peer is a proxy the operator trusts; then `X-Forwarded-For` is read
/// from the right, each trusted hop passing the question to the address it names,
/// until an address that is not a trusted proxy. Anyone can write the header, so
/// an untrusted peer's header is ignored: it cannot choose the address stored.
module Replay.Core.ClientAddress

open System
open System.Net

/// IPv4 clients of a dual-stack socket arrive as `::ffff:a.b.c.d`; store them as IPv4.
let normalize (address: IPAddress) =
    if address.IsIPv4MappedToIPv6 then address.MapToIPv4() else address

let private tryParseAddress (text: string) : IPAddress option =
    match IPAddress.TryParse text with
    | true, address ->
        match address with
        | null -> None
        | address -> Some(normalize address)
    | _ -> None

/// Parses `--trusted-proxies`: addresses and CIDR ranges, comma-separated.
let parseTrusted (text: string) : Result<IPNetwork list, string> =
    let entries =
        text.Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
        |> List.ofArray
    let parseOne (entry: string) =
        if entry.Contains '/' then
            match IPNetwork.TryParse entry with
            | true, network -> Ok network
            | _ -> Error $"'{entry}' is not a CIDR range; write e.g. 10.0.0.0/8 or fd00::/8"
        else
            match tryParseAddress entry with
            | Some address ->
                let bits = if address.AddressFamily = Sockets.AddressFamily.InterNetwork then 32 else 128
                Ok(IPNetwork(address, bits))
            | None -> Error $"'{entry}' is not an IP address; write e.g. 127.0.0.1, ::1 or 10.0.0.0/8"
    List.foldBack
        (fun entry acc ->
            match parseOne entry, acc with
            | Ok network, Ok networks -> Ok(network :: networks)
            | Error e, _
            | _, Error e -> Error e)
        entries
        (Ok [])

/// One `X-Forwarded-For` entry: an address, possibly `[v6]:port` or `v4:port`.
let parseEntry (entry: string) : IPAddress option =
    let entry = entry.Trim()
    let unbracketed =
        if entry.StartsWith '[' then
            match entry.IndexOf ']' with
            | -1 -> entry
            | close -> entry.Substring(1, close - 1)
        elif entry.IndexOf ':' > 0 && entry.IndexOf ':' = entry.LastIndexOf ':' then
            entry.Substring(0, entry.IndexOf ':')
        else
            entry
    tryParseAddress unbracketed

let private isTrusted (trusted: IPNetwork list) (address: IPAddress) =
    trusted |> List.exists (fun network -> network.Contains address)

/// The client's address, given the connection's peer and every `X-Forwarded-For`
/// header value in order. A hop the trusted proxy names but that is not an address
/// (`unknown`, garbage) ends the walk at that proxy.
let resolve (trusted: IPNetwork list) (peer: IPAddress) (forwardedFor: string seq) : IPAddress =
    let hops =
        forwardedFor
        |> Seq.collect (fun value -> value.Split ',')
        |> Seq.filter (fun hop -> hop.Trim() <> "")
        |> Array.ofSeq
    let rec walk (current: IPAddress) (index: int) =
        if index < 0 || not (isTrusted trusted current) then
            current
        else
            match parseEntry hops[index] with
            | Some previous -> walk previous (index - 1)
            | None -> current
    walk (normalize peer) (hops.Length - 1)
