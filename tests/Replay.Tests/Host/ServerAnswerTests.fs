/// What people are shown of an answer in dead letters and the responses log: bodies
/// that are text, binary, huge, cut inside a character or inside a secret; headers
/// that carry credentials; no answer at all.
module Replay.Tests.ServerAnswerTests

open System
open System.Text
open Expecto
open Replay.Core.Outcome
open Replay.Host.Delivery
open Replay.Host.Security

let private secret = "Echoed-Secret-7c1e"

let private secrets () =
    let s = Secrets()
    s.Add secret
    s

let private answer status (headers: (string * string) list) (body: byte[]) (length: int64) =
    Answered
        { Status = status
          RetryAfter = None
          Headers = headers
          Body = body
          BodyLength = length
          BodyHash = [||] }

let private shown attempt = (ServerAnswer.Of attempt).Redacted(secrets ())

[<Tests>]
let tests =
    testList
        "Answers shown"
        [ test "a JSON body is shown as text with its headers and whole length; a secret in it and in a header is masked" {
              let body = Encoding.UTF8.GetBytes $"{{\"error\":\"token {secret} refused\"}}"
              let a =
                  shown (answer 400 [ "Content-Type", "application/json"; "Location", $"/retry?token={secret}" ] body body.LongLength)
              Expect.equal a.Outcome "answered" "an answer"
              Expect.equal a.Status (Nullable 400) "its status"
              Expect.equal a.Body $"{{\"error\":\"token {Secrets.Mask} refused\"}}" "the body, the secret masked"
              Expect.isNull a.BodyBase64 "text, not base64"
              Expect.equal a.BodyLength (Nullable body.LongLength) "the whole length"
              Expect.equal a.BodyTruncated (Nullable false) "not cut"
              Expect.equal a.Headers["Content-Type"] "application/json" "a header that matters"
              Expect.equal a.Headers["Location"] $"/retry?token={Secrets.Mask}" "a secret in a header value masked"
          }

          test "Authorization-like response headers are hidden whatever their value" {
              let a = shown (answer 401 [ "Set-Cookie", "session=abc"; "WWW-Authenticate", "Bearer" ] [||] 0L)
              Expect.equal a.Headers["Set-Cookie"] Secrets.Mask "a cookie"
              Expect.equal a.Headers["WWW-Authenticate"] "Bearer" "not a credential"
          }

          test "a binary body is base64, with a secret's bytes masked inside it" {
              let body = Array.concat [ [| 0uy; 0xFFuy; 0xFEuy |]; Encoding.UTF8.GetBytes secret; [| 0xC3uy; 0x28uy |] ]
              let a = shown (answer 500 [ "Content-Type", "application/octet-stream" ] body body.LongLength)
              Expect.isNull a.Body "not text"
              Expect.equal
                  (Convert.FromBase64String a.BodyBase64)
                  (Array.concat [ [| 0uy; 0xFFuy; 0xFEuy |]; Encoding.ASCII.GetBytes Secrets.Mask; [| 0xC3uy; 0x28uy |] ])
                  "the bytes, the secret masked"
          }

          test "a huge body: the first 4 KiB, the whole length, and that it was cut" {
              // A comparison keeps up to 1 MiB; what people are shown is 4 KiB of it.
              let body = Array.init (1 <<< 20) (fun i -> byte ('a' + char (i % 26)))
              let a = shown (answer 502 [] body (8L <<< 20))
              Expect.equal a.Body.Length ResponseCapture.ExcerptBytes "4 KiB shown"
              Expect.equal a.BodyLength (Nullable(8L <<< 20)) "the whole length the server sent"
              Expect.equal a.BodyTruncated (Nullable true) "cut"
          }

          test "a body cut inside a character stays text, without the half character" {
              // 4095 ASCII bytes, then 'é' (2 bytes): the excerpt ends after its first byte.
              let body = Array.append (Array.create 4095 (byte 'x')) (Encoding.UTF8.GetBytes "é and more")
              let a = shown (answer 400 [] body body.LongLength)
              Expect.isNull a.BodyBase64 "still text"
              Expect.equal a.Body (String('x', 4095)) "up to the last whole character"
              Expect.equal a.BodyTruncated (Nullable true) "cut"
          }

          test "a secret cut in two by the excerpt has its start masked" {
              let body = Array.append (Array.create 4090 (byte ' ')) (Encoding.UTF8.GetBytes secret)
              let a = shown (answer 400 [] body body.LongLength)
              Expect.isFalse (a.Body.Contains(secret.Substring(0, 6))) $"no start of the secret: {a.Body.Substring 4080}"
              Expect.stringEnds a.Body Secrets.Mask "the cut secret's place shows the mask"
          }

          test "no answer: what happened instead, the reason redacted" {
              let timedOut = shown TimedOut
              Expect.equal timedOut.Outcome "timeout" "a time-out"
              Expect.isFalse timedOut.Status.HasValue "no status"
              let refused = shown (Unreachable $"connection refused (via proxy user:{secret})")
              Expect.equal refused.Outcome "unreachable" "no connection"
              Expect.equal refused.Error $"connection refused (via proxy user:{Secrets.Mask})" "the reason, redacted"
          } ]
