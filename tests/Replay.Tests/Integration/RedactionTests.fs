/// Secrets never printed, with the real `replay run` program: passwords in the
/// properties file, proxy credentials, an API key in the destination's query and an
/// Authorization header on a record must appear in no output and no file the run
/// writes, while the run really uses them (the proxy checks its credentials) and the
/// places that would show them show the mask instead.
module Replay.Tests.RedactionTests

open System
open System.IO
open Expecto
open Replay.Host.Security
open Replay.Tests
open Replay.Tests.ChildReplay

let private within = TimeSpan.FromSeconds 60.0
let private topic = "secrets"

let private saslPassword = "Sasl-Pa55word-7f3a"
let private keyPassword = "Key-Pa55word-91c2"
let private oauthSecret = "Oauth-Secret-55d1"
let private proxyPassword = "Proxy-Pa55:w@rd-c0de"
let private apiKey = "Query-Api-Key-3e8b"
let private bearer = "Header-Token-b1a4"

/// Every form a secret could be printed in: as written, URL-escaped, and the proxy's Basic credential.
let private forms =
    [ saslPassword; keyPassword; oauthSecret; proxyPassword; Uri.EscapeDataString proxyPassword; apiKey; bearer
      Convert.ToBase64String(Text.Encoding.UTF8.GetBytes $"replay:{proxyPassword}") ]

let private expectNoSecret (where: string) (text: string) =
    for secret in forms do
        Expect.isFalse (text.Contains secret) $"{where} must not contain '{secret}':\n{text}"

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Redaction end to end"
        [ test "passwords, proxy credentials, a query API key and Authorization headers appear in no output or file" {
              use cluster = Broker.start topic 1
              use dir = new Certificates.TempDir()
              let ca = Certificates.createCa "Redaction CA"
              let caFile = Certificates.writeCertificate (dir.File "ca.pem") ca
              use server = HttpsRecorder.start (Certificates.createServer ca)
              use proxy = ConnectProxy.start "replay" proxyPassword
              // The properties file lives outside the run's directory: it is the one place the secrets belong.
              use config = new Certificates.TempDir()
              let props =
                  properties
                      (config.File "kafka.properties")
                      [ $"sasl.password={saslPassword}"; $"ssl.key.password={keyPassword}"; $"sasl.oauthbearer.client.secret={oauthSecret}" ]
              let withAuthorization key value =
                  { Broker.message key value with Headers = [ "Authorization", $"Bearer {bearer}"; "X-Trace", "t-1" ] }
              Broker.produce
                  cluster.BootstrapServers
                  topic
                  [ Broker.message "doc-1" (envelope "telemetry" "doc-1" "{}")
                    withAuthorization "doc-2" (envelope "telemetry" "doc-2" "{}")
                    // Dead-lettered with its URL (which carries the API key) and its headers.
                    withAuthorization "hostile" (envelope "telemetry" "../../admin" "{}")
                    Broker.message "doc-3" (envelope "telemetry" "doc-3" "{}") ]
              let deadLetterFile = dir.File "dead.jsonl"
              let code, stdout, stderr =
                  ReplayProcess.run
                      [ "run"; "-b"; cluster.BootstrapServers; "-t"; topic; "-gid"; "redaction"; "-p"; props
                        "--from"; "earliest"; "--until-end"; "--dead-letter"; deadLetterFile; "--ca-file"; caFile
                        "--proxy"; proxy.UrlWithCredentials
                        "--dest"; $"{server.Url}/submit/{{namespace}}/%%k?api_key={apiKey}" ]
                      within
              Expect.equal code 0 $"until-end exits 0; stderr: {stderr}"
              Expect.equal server.Hits.Length 3 "the good records were delivered"
              Expect.exists proxy.Connects (fun c -> c.Status = 200 && c.Authorization = Some proxy.ExpectedAuthorization) "the proxy credentials were really used"

              expectNoSecret "stdout" stdout
              expectNoSecret "stderr" stderr
              for path, text in filesUnder dir.Path do
                  expectNoSecret path text

              let letter = deadLetters deadLetterFile |> List.exactlyOne
              Expect.stringContains letter.Reason $"api_key={Secrets.Mask}" "the dead letter's reason quotes the URL with the mask where the key was"
              Expect.equal letter.Headers["Authorization"] Secrets.Mask "the record's Authorization header is masked"
              Expect.equal letter.Headers["X-Trace"] "t-1" "other headers are kept"
          }

          test "a usage error that quotes the destination does not print its password" {
              let destPassword = "Dest-Pa55word-a9d0"
              let code, stdout, stderr =
                  ReplayProcess.run
                      [ "run"; "-b"; "127.0.0.1:1"; "-t"; "t"; "-gid"; "g"
                        "--dest"; $"http://replay:{destPassword}@{{namespace}}.example/%%k" ]
                      within
              Expect.equal code 2 "a usage error"
              Expect.stringContains stderr "--dest" "the message names the flag"
              Expect.stringContains stderr Secrets.Mask "the password's place shows the mask"
              Expect.isFalse ((stdout + stderr).Contains destPassword) $"the password is not printed: {stderr}"
          }

          test "a malformed proxy URL is reported without its password" {
              let code, _, stderr =
                  ReplayProcess.run
                      [ "run"; "-b"; "127.0.0.1:1"; "-t"; "t"; "-gid"; "g"; "--dest"; "http://127.0.0.1:1/%k"
                        "--proxy"; "socks5://replay:Socks-Pa55word@127.0.0.1:1080" ]
                      within
              Expect.equal code 2 "a usage error"
              Expect.stringContains stderr "--proxy" "the message names the flag"
              Expect.isFalse (stderr.Contains "Socks-Pa55word") $"the password is not printed: {stderr}"
          } ]
