/// The lean HTTP path's response parsing, rule by rule from tables: status lines,
/// Content-Length and Transfer-Encoding variants, chunk sizes (overflowing ones
/// included), trailers, interim responses, and whole responses fed to the reader
/// split at every byte. Every violation must be a PlainHttpException that says what
/// came back, never another exception and never a wrong answer.
module Replay.Tests.ResponseParsingTests

open System
open System.Collections.Generic
open System.Security.Cryptography
open System.Text
open System.Threading
open System.Threading.Tasks
open Expecto
open Replay.Host.Delivery

let private latin1 (text: string) = Encoding.Latin1.GetBytes text

let private parseWith capture (head: string) =
    ResponseHeadParser.Parse(ReadOnlySpan(latin1 head), capture)

let private parse = parseWith ResponseCapture.Default

/// The message of the PlainHttpException `f` throws; fails on any other outcome.
let private violation (what: string) (f: unit -> 'a) =
    try
        let result = f ()
        failtestf "%s: expected a PlainHttpException, got %A" what result
    with
    | :? PlainHttpException as e -> e.Message
    | :? AssertException -> reraise ()
    | e -> failtestf "%s: expected a PlainHttpException, got %s: %s" what (e.GetType().Name) e.Message

let private chunkSize (line: string) = ResponseHeadParser.ParseChunkSize(ReadOnlySpan(latin1 line))

/// A byte source that hands out the given pieces one per receive, then the end of the stream.
type private Pieces(pieces: byte[] list) =
    let queue = Queue<byte[]>(pieces |> List.filter (fun p -> p.Length > 0))
    let mutable current: byte[] = [||]
    let mutable offset = 0
    interface IByteSource with
        member _.ReceiveAsync(into: Memory<byte>, _cancel: CancellationToken) =
            if offset = current.Length && queue.Count > 0 then
                current <- queue.Dequeue()
                offset <- 0
            let n = min into.Length (current.Length - offset)
            current.AsSpan(offset, n).CopyTo(into.Span)
            offset <- offset + n
            ValueTask<int>(n)

/// What a test compares of a response read.
type private Read =
    { Status: int
      RetryAfter: TimeSpan option
      Length: int64
      Body: string option
      Headers: (string * string) list option
      Hash: string
      Reusable: bool }

let private summary (response: PlainResponse) =
    { Status = response.Status
      RetryAfter = response.RetryAfter |> Option.ofObj |> Option.bind (fun r -> Option.ofNullable r.Delta)
      Length = response.BodyLength
      Body = response.Body |> Option.ofObj |> Option.map Encoding.Latin1.GetString
      Headers = response.Headers |> Option.ofObj |> Option.map (fun hs -> [ for h in hs -> h.Key, h.Value ])
      Hash = response.BodyHash |> Option.ofObj |> Option.map Convert.ToHexString |> Option.defaultValue ""
      Reusable = response.Reusable }

let private readWith capture (pieces: byte[] list) =
    let reader = ResponseReader(Pieces pieces)
    let response = reader.ReadAsync(capture, CancellationToken.None).AsTask().GetAwaiter().GetResult()
    summary response, reader

let private read capture text = fst (readWith capture [ latin1 text ])

/// Every way of cutting `text` in two, and byte by byte.
let private splits (text: string) =
    let bytes = latin1 text
    [ for k in 1 .. bytes.Length - 1 -> $"split at {k}", [ bytes[.. k - 1]; bytes[k..] ] ]
    @ [ "byte by byte", [ for b in bytes -> [| b |] ] ]

let private statusOnly status length reusable =
    { Status = status; RetryAfter = None; Length = length; Body = None; Headers = None; Hash = ""; Reusable = reusable }

let private kept = ResponseCapture(16, 16, false, [ "X-Custom" ])

[<Tests>]
let tests =
    testList
        "Response parsing"
        [ test "status lines: HTTP/1.x, three digits, an optional reason" {
              for line, status, keepAlive in
                  [ "HTTP/1.1 200 OK", 200, true
                    "HTTP/1.1 201", 201, true
                    "HTTP/1.1 201 ", 201, true
                    "HTTP/1.1 599 A reason: with spaces", 599, true
                    "HTTP/1.1 999 Unknown but three digits", 999, true
                    "HTTP/1.0 200 OK", 200, false
                    "HTTP/1.1 100 Continue", 100, true ] do
                  let head = parse (line + "\r\nContent-Length: 0")
                  Expect.equal head.Status status line
                  Expect.equal head.KeepAlive keepAlive $"{line}: keep-alive"
          }

          test "malformed status lines are violations that quote what came back" {
              for line in
                  [ ""; "HTTP/1.1 20 OK"; "HTTP/1.1 2000 OK"; "HTTP/1.1 200OK"; "HTTP/1.1 099 Low"; "HTTP/1.1 +20 OK"
                    "HTTP/1.1 2a0 OK"; "HTTP/1.1  200 OK"; "HTTP/2 200 OK"; "HTTP/2.0 200 OK"; "http/1.1 200 OK"
                    "HTTP/1.x 200 OK"; "SSH-2.0-OpenSSH_9.6"; "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c" ] do
                  let message = violation line (fun () -> parse line)
                  Expect.stringContains message "not an HTTP/1.x status line" line
          }

          test "Content-Length: digits only, equal duplicates accepted, bounded before any arithmetic" {
              for headers, expected in
                  [ [ "Content-Length: 0" ], 0L
                    [ "Content-Length: 42" ], 42L
                    [ "content-length:42" ], 42L
                    [ "CONTENT-LENGTH: \t42 \t" ], 42L
                    [ "Content-Length: 42"; "Content-Length: 42" ], 42L
                    [ "Content-Length: 42, 42" ], 42L
                    [ "Content-Length: 0000042" ], 42L
                    [ "Content-Length: 1099511627776" ], 1099511627776L ] do
                  let head = parse (String.Join("\r\n", "HTTP/1.1 200 OK" :: headers))
                  Expect.equal head.Framing BodyFraming.ContentLength $"{headers}"
                  Expect.equal head.ContentLength expected $"{headers}"
              for headers, says in
                  [ [ "Content-Length: 42"; "Content-Length: 43" ], "two different Content-Lengths"
                    [ "Content-Length: 42, 43" ], "two different Content-Lengths"
                    [ "Content-Length: 1099511627777" ], "over the limit"
                    [ "Content-Length: 9223372036854775807" ], "over the limit"
                    [ "Content-Length: 9223372036854775808" ], "over the limit"
                    [ "Content-Length: 99999999999999999999999999999999" ], "over the limit"
                    [ "Content-Length: -1" ], "not a number"
                    [ "Content-Length: +5" ], "not a number"
                    [ "Content-Length: 0x10" ], "not a number"
                    [ "Content-Length: 1e3" ], "not a number"
                    [ "Content-Length: 4 2" ], "not a number"
                    [ "Content-Length: 42;" ], "not a number"
                    [ "Content-Length: 42," ], "not a number"
                    [ "Content-Length:" ], "not a number"
                    [ "Content-Length: 99999999999999999999x" ], "not a number" ] do
                  let message = violation $"{headers}" (fun () -> parse (String.Join("\r\n", "HTTP/1.1 200 OK" :: headers)))
                  Expect.stringContains message says $"{headers}"
          }

          test "Transfer-Encoding: the last coding frames the body; with Content-Length the connection is not reused" {
              for headers, framing, keepAlive in
                  [ [ "Transfer-Encoding: chunked" ], BodyFraming.Chunked, true
                    [ "transfer-encoding: CHUNKED" ], BodyFraming.Chunked, true
                    [ "Transfer-Encoding: gzip, chunked" ], BodyFraming.Chunked, true
                    [ "Transfer-Encoding: gzip"; "Transfer-Encoding: chunked" ], BodyFraming.Chunked, true
                    [ "Transfer-Encoding: chunked, gzip" ], BodyFraming.UntilClose, false
                    [ "Transfer-Encoding: gzip" ], BodyFraming.UntilClose, false
                    [ "Transfer-Encoding: identity"; "Content-Length: 5" ], BodyFraming.UntilClose, false
                    [ "Transfer-Encoding: chunked"; "Content-Length: 5" ], BodyFraming.Chunked, false
                    [ "Content-Length: 5"; "Transfer-Encoding: chunked" ], BodyFraming.Chunked, false ] do
                  let head = parse (String.Join("\r\n", "HTTP/1.1 200 OK" :: headers))
                  Expect.equal head.Framing framing $"{headers}"
                  Expect.equal head.KeepAlive keepAlive $"{headers}: keep-alive"
                  Expect.equal head.ContentLength -1L $"{headers}: no length is believed beside a coding"
              for value in [ ""; "chunked,"; " , " ] do
                  let message = violation value (fun () -> parse $"HTTP/1.1 200 OK\r\nTransfer-Encoding: {value}")
                  Expect.stringContains message "Transfer-Encoding" value
          }

          test "which statuses have a body, and what ends it" {
              for head, framing, keepAlive in
                  [ "HTTP/1.1 204 No Content\r\nContent-Length: 5", BodyFraming.None, true
                    "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked", BodyFraming.None, true
                    "HTTP/1.1 100 Continue", BodyFraming.None, true
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade", BodyFraming.None, true
                    "HTTP/1.1 200 OK", BodyFraming.UntilClose, false
                    "HTTP/1.1 500 Oops\r\nConnection: keep-alive", BodyFraming.UntilClose, false
                    "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1", BodyFraming.ContentLength, true
                    "HTTP/1.1 200 OK\r\nConnection: Upgrade, close\r\nContent-Length: 1", BodyFraming.ContentLength, false ] do
                  let parsed = parse head
                  Expect.equal parsed.Framing framing head
                  Expect.equal parsed.KeepAlive keepAlive $"{head}: keep-alive"
          }

          test "header lines: a name is a token, folding a framing header is refused, Retry-After read in both forms" {
              for head, says in
                  [ "HTTP/1.1 200 OK\r\nno colon here", "no name"
                    "HTTP/1.1 200 OK\r\n: empty name", "no name"
                    "HTTP/1.1 200 OK\r\nContent-Length : 5", "not a token"
                    "HTTP/1.1 200 OK\r\nBad Name: x", "not a token"
                    "HTTP/1.1 200 OK\r\nX-\x00: x", "not a token"
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n 6", "folded"
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\t, chunked", "folded" ] do
                  Expect.stringContains (violation head (fun () -> parse head)) says head
              let folded = parse "HTTP/1.1 200 OK\r\nX-Other: a\r\n b\r\nContent-Length: 3"
              Expect.equal folded.ContentLength 3L "a folded header of no consequence is passed over"
              Expect.equal (parse "HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 0").RetryAfter.Delta (Nullable(TimeSpan.FromSeconds 7.0)) "seconds"
              let date = parse "HTTP/1.1 503 Busy\r\nRetry-After: Wed, 21 Oct 2037 07:28:00 GMT\r\nContent-Length: 0"
              Expect.equal date.RetryAfter.Date (Nullable(DateTimeOffset(2037, 10, 21, 7, 28, 0, TimeSpan.Zero))) "a date"
              Expect.isNull (parse "HTTP/1.1 503 Busy\r\nRetry-After: soon\r\nContent-Length: 0").RetryAfter "unreadable: none"
          }

          test "kept headers: only for answers kept in full, the standard names and the capture's, values as received" {
              let head =
                  "\r\nContent-Type: text/plain\r\nlocation: /there\r\nX-Custom: one\r\nSet-Cookie: s=1\r\nX-Custom: two\r\n folded\r\nContent-Length: 0"
              Expect.isNull (parse ("HTTP/1.1 201 Created" + head)).Headers "a 2xx under the default capture keeps no header"
              let failure = parse ("HTTP/1.1 400 Bad" + head)
              Expect.equal
                  [ for h in failure.Headers -> h.Key, h.Value ]
                  [ "Content-Type", "text/plain"; "Location", "/there"; "Content-Length", "0" ]
                  "the standard ones, in order, named as the capture spells them"
              let chosen = parseWith kept ("HTTP/1.1 201 Created" + head)
              Expect.equal
                  [ for h in chosen.Headers -> h.Key, h.Value ]
                  [ "Content-Type", "text/plain"; "Location", "/there"; "X-Custom", "one"; "X-Custom", "two folded"; "Content-Length", "0" ]
                  "and those the capture names, each occurrence, a fold joined"
          }

          test "chunk sizes: hexadecimal, extensions allowed, bounded before any arithmetic" {
              for line, expected in
                  [ "0", 0L; "5", 5L; "a", 10L; "A", 10L; "ff", 255L; "FFFFFFFF", 4294967295L; "10000000000", 1099511627776L
                    "00000000000000000000000000005", 5L; "5;ext=1", 5L; "5 ; name=\"quoted;value\"", 5L; "5;", 5L; "5\t", 5L; "0;last" , 0L ] do
                  Expect.equal (chunkSize line) expected line
              for line, says in
                  [ "10000000001", "over the limit"
                    "7fffffffffffffff", "over the limit"
                    "7ffffffffffffffe", "over the limit"
                    "ffffffffffffffff", "over the limit"
                    "10000000000000000", "over the limit"
                    "fffffffffffffffffffffffffffffffffff", "over the limit"
                    "", "not a hexadecimal number"
                    "0x5", "not a hexadecimal number"
                    "-5", "not a hexadecimal number"
                    "+5", "not a hexadecimal number"
                    " 5", "not a hexadecimal number"
                    "5 6", "not a hexadecimal number"
                    "g", "not a hexadecimal number"
                    "5=ext", "not a hexadecimal number" ] do
                  Expect.stringContains (violation line (fun () -> chunkSize line)) says line
          }

          test "whole responses read the same whether they arrive at once, split anywhere, or byte by byte" {
              let gzipBody = [| 0x1fuy; 0x8buy; 0x08uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0uy; 0xffuy; 0x0duy; 0x0auy; 0x30uy |]
              let gzipText = Encoding.Latin1.GetString gzipBody
              let cases =
                  [ ResponseCapture.Default,
                    "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
                    statusOnly 200 11L true
                    ResponseCapture.Default,
                    "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
                    statusOnly 201 11L true
                    ResponseCapture.Default,
                    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok",
                    statusOnly 202 2L true
                    ResponseCapture.Default, "HTTP/1.1 204 No Content\r\n\r\n", statusOnly 204 0L true
                    ResponseCapture.Default, "HTTP/1.1 200 OK\r\n\r\nuntil the end", statusOnly 200 13L false
                    ResponseCapture.Default, "HTTP/1.0 201 Created\r\nContent-Length: 0\r\n\r\n", statusOnly 201 0L false
                    ResponseCapture.Default,
                    "HTTP/1.1 503 Busy\r\nRetry-After: 7\r\ncontent-length: 4\r\n\r\nbusy",
                    { statusOnly 503 4L true with
                        RetryAfter = Some(TimeSpan.FromSeconds 7.0)
                        Body = Some "busy"
                        Headers = Some [ "Retry-After", "7"; "Content-Length", "4" ] }
                    // Chunked and gzip-encoded: the chunks' data, still compressed, and its length.
                    ResponseCapture.Default,
                    $"HTTP/1.1 502 Bad Gateway\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{gzipText[..3]}\r\n9\r\n{gzipText[4..]}\r\n0\r\n\r\n",
                    { statusOnly 502 13L true with
                        Body = Some gzipText
                        Headers = Some [ "Content-Encoding", "gzip" ] }
                    kept,
                    "HTTP/1.1 200 OK\r\nX-Custom: c\r\nContent-Length: 20\r\n\r\n0123456789abcdefWXYZ",
                    { statusOnly 200 20L true with Body = Some "0123456789abcdef"; Headers = Some [ "X-Custom", "c"; "Content-Length", "20" ] } ]
              for capture, text, expected in cases do
                  Expect.equal (read capture text) expected text
                  for how, pieces in splits text do
                      Expect.equal (fst (readWith capture pieces)) expected $"{text}: {how}"
          }

          test "a body longer than what is kept is hashed whole when asked, whatever its framing" {
              let body = String.init 5000 (fun i -> string (char (97 + i % 26)))
              let hash = Convert.ToHexString(SHA256.HashData(latin1 body))
              let hashing = ResponseCapture(8, 8, true)
              let chunked = String.Join("", [ for piece in Seq.chunkBySize 700 body -> $"{piece.Length:x}\r\n{String(piece)}\r\n" ])
              for text in
                  [ $"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\n\r\n{body}"
                    $"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}0\r\n\r\n"
                    $"HTTP/1.1 200 OK\r\n\r\n{body}" ] do
                  let got = read hashing text
                  Expect.equal got.Body (Some(body.Substring(0, 8))) "the first 8 bytes"
                  Expect.equal got.Length 5000L "the whole length"
                  Expect.equal got.Hash hash "SHA-256 of the whole body"
              Expect.equal (read hashing "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n12345678").Hash "" "no hash when all of it was kept"
              Expect.equal (read (ResponseCapture(8, 8, false)) $"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\n\r\n{body}").Hash "" "no hash unless asked"
          }

          test "a body nobody wants beyond the drain allowance is left unread and the connection closed" {
              let large = ResponseReader.DrainBytes + 10
              let bytes = Array.create large (byte 'x')
              let head = latin1 $"HTTP/1.1 201 Created\r\nContent-Length: {large}\r\n\r\n"
              let got, _ = readWith ResponseCapture.Default [ head; bytes ]
              Expect.equal got (statusOnly 201 (int64 large) false) "the answer stands, its length as announced"
              let chunkedHead = latin1 $"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n{large:x}\r\n"
              let got, _ = readWith ResponseCapture.Default [ chunkedHead; bytes ]
              Expect.equal got (statusOnly 201 -1L false) "a chunked one: length unknown"
              let got, _ = readWith ResponseCapture.Default [ latin1 "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffff\r\n"; bytes ]
              Expect.equal got (statusOnly 201 -1L false) "a chunk of 512 GB is not waited for"
          }

          test "bytes after a complete response make the connection unusable" {
              let got, reader = readWith ResponseCapture.Default [ latin1 "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n" ]
              Expect.equal got (statusOnly 201 0L false) "the first answer, but not reusable"
              Expect.isTrue reader.HasUnread "the second is still there"
          }

          test "broken responses are violations with a reason, cut anywhere" {
              let interims = String.replicate 17 "HTTP/1.1 100 Continue\r\n\r\n"
              for text, says in
                  [ "", "closed before a response"
                    "HTTP/1.1 200 OK\r\nContent-Le", "closed in the middle of the response head"
                    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed in the middle of the response body"
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "closed in the middle of the response body"
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello", "closed in the middle of a chunk"
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello, world\r\n0\r\n\r\n", "longer than its size said"
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nx", "over the limit"
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", "not a hexadecimal number"
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: t", "closed in the middle of the trailer line"
                    interims + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "more than 16 interim (1xx) responses"
                    "HTTP/1.1 200 OK\r\nX-Big: " + String('a', 70 * 1024) + "\r\n\r\n", "response head is longer than 64 KB"
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + String('1', 9000) + "\r\n", "chunk size line is longer than 8 KB"
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + String.replicate 100 ("X-T: " + String('t', 1000) + "\r\n") + "\r\n", "trailers are longer than 64 KB" ] do
                  let shown = if text.Length > 80 then text.Substring(0, 80) + "..." else text
                  Expect.stringContains (violation shown (fun () -> read ResponseCapture.Default text)) says shown
                  if text.Length < 200 then
                      for how, pieces in splits text do
                          Expect.stringContains (violation $"{shown}: {how}" (fun () -> readWith ResponseCapture.Default pieces)) says $"{shown}: {how}"
          }

          test "the capture setting is checked when made" {
              Expect.throwsT<ArgumentOutOfRangeException> (fun () -> ResponseCapture(-1, 0, false) |> ignore) "negative"
              Expect.throwsT<ArgumentOutOfRangeException> (fun () -> ResponseCapture(0, ResponseCapture.MaxBodyBytes + 1, false) |> ignore) "too large"
              Expect.throwsT<ArgumentException> (fun () -> ResponseCapture(0, 0, false, [ "Bad Name" ]) |> ignore) "not a header name"
              Expect.equal (ResponseCapture.Default.BodyBytesFor 201, ResponseCapture.Default.BodyBytesFor 404, ResponseCapture.Default.HashBeyond) (0, 4096, false) "the defaults"
          } ]
