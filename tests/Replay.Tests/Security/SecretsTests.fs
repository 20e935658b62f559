/// The redaction machinery on its own: which secrets a run learns (properties keys,
/// URL credentials), how output is masked even when a secret arrives split over
/// several writes, and how dead letters mask Authorization-like headers.
module Replay.Tests.SecretsTests

open System
open System.IO
open System.Text
open Expecto
open Replay.Host.Delivery
open Replay.Host.Kafka
open Replay.Host.Security

/// A dead-letter sink that keeps what it is given.
type private Kept() =
    member val Letters = Collections.Generic.List<DeadLetter>()
    interface IDeadLetterSink with
        member this.Write letter = this.Letters.Add letter
        member _.Dispose() = ()

let private letter reason url headers =
    DeadLetter("t", 0, 1L, "id", "POST", url, reason, Nullable(), 0, DateTimeOffset.UnixEpoch, null, "", headers)

[<Tests>]
let tests =
    testList
        "Secrets and redaction"
        [ test "properties keys that hold secrets are recognised, others are not" {
              for key in
                  [ "sasl.password"; "ssl.key.password"; "ssl.keystore.password"; "sasl.oauthbearer.client.secret"
                    "ssl.key.pem"; "sasl.oauthbearer.config"; "sasl.oauthbearer.assertion.private.key.passphrase" ] do
                  Expect.isTrue (PropertiesFile.IsSecret key) $"{key} is secret"
              for key in [ "bootstrap.servers"; "sasl.username"; "ssl.ca.location"; "security.protocol"; "ssl.key.location" ] do
                  Expect.isFalse (PropertiesFile.IsSecret key) $"{key} is not secret"
          }

          test "a URL's password and secret-looking query values are learnt in every printed form" {
              let secrets = Secrets()
              secrets.AddUrlCredentials "http://replay:p%40ss%3Aword@proxy.example:3128/?api_key=K3y%2Bvalue&page=2"
              let basic = Convert.ToBase64String(Encoding.UTF8.GetBytes "replay:p@ss:word")
              let text = $"escaped p%%40ss%%3Aword, plain p@ss:word, basic {basic}, key K3y%%2Bvalue and K3y+value, page=2, user replay"
              let redacted = secrets.Redact text
              for leaked in [ "p%40ss%3Aword"; "p@ss:word"; basic; "K3y%2Bvalue"; "K3y+value" ] do
                  Expect.isFalse (redacted.Contains leaked) $"{leaked} is masked in: {redacted}"
              Expect.stringContains redacted "page=2" "ordinary query values stay"
              Expect.stringContains redacted "user replay" "the user name stays"
              let pattern = Secrets()
              pattern.AddUrlCredentials "https://replay:Pattern-Pa55@{namespace}.example/%k?token={id}&api_key=K2"
              Expect.equal (pattern.Redact "Pattern-Pa55 K2 {id}") $"{Secrets.Mask} {Secrets.Mask} {{id}}" "a destination pattern, not yet a URL, is taken apart too"
          }

          test "output is masked even when a secret arrives split over several writes" {
              let secrets = Secrets()
              secrets.Add "hunter2-Secret"
              use inner = new StringWriter()
              use writer = new RedactingWriter(inner, secrets)
              writer.Write "password is hun"
              writer.Write 't'
              writer.Write "er2-Se"
              writer.Write("cret; done".ToCharArray(), 0, 10)
              writer.WriteLine()
              writer.WriteLine "again: hunter2-Secret"
              writer.Write "unfinished hunter2-Secret"
              writer.Flush()
              let text = inner.ToString()
              Expect.isFalse (text.Contains "hunter2") $"no trace of the secret in: {text}"
              Expect.stringContains text $"password is {Secrets.Mask}; done" "the line reads naturally"
              Expect.stringContains text $"unfinished {Secrets.Mask}" "a trailing partial line is masked when flushed"
          }

          test "a multi-line secret (a PEM key) is masked line by line" {
              let secrets = Secrets()
              secrets.Add "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n-----END PRIVATE KEY-----"
              Expect.isFalse ((secrets.Redact "oops: MIGHAgEAMBMGByqGSM49AgEGCCqGSM49").Contains "MIGHAgEA") "a line of the key alone is masked"
          }

          test "dead letters mask Authorization-like headers and known secrets, and keep the rest" {
              let secrets = Secrets()
              secrets.Add "Query-Secret-1"
              let kept = new Kept()
              use sink = new RedactingDeadLetters(kept, secrets)
              let headers =
                  dict
                      [ "Authorization", "Bearer abc.def"
                        "proxy-authorization", "Basic cmVwbGF5OnNlY3JldA=="
                        "Cookie", "session=1"
                        "X-Api-Key", "k-123"
                        "X-Auth-Token", "t-456"
                        "X-Trace", "trace Query-Secret-1"
                        "Content-Type", "application/json" ]
              (sink :> IDeadLetterSink).Write(letter "failed at https://h/x?token=Query-Secret-1" "https://h/x?token=Query-Secret-1" (Collections.Generic.Dictionary headers))
              let written = kept.Letters |> Seq.exactlyOne
              for name in [ "Authorization"; "proxy-authorization"; "Cookie"; "X-Api-Key"; "X-Auth-Token" ] do
                  Expect.equal written.Headers[name] Secrets.Mask $"{name} is masked"
              Expect.equal written.Headers["X-Trace"] $"trace {Secrets.Mask}" "a known secret inside another header is masked"
              Expect.equal written.Headers["Content-Type"] "application/json" "ordinary headers are kept"
              Expect.isFalse (written.Reason.Contains "Query-Secret-1" || written.Url.Contains "Query-Secret-1") "reason and URL are masked"
          } ]
