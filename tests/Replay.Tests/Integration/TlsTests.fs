/// TLS to the destination, end to end with the real `replay run` program: an HTTPS
/// server on 127.0.0.1 whose certificate comes from a private CA made by the test.
/// Verification is on by default, so the run fails without --ca-file and works with
/// it; a TLS failure stops the run with a clear message (exit 3) instead of being
/// retried forever, and leaves the records uncommitted and not dead-lettered; mutual
/// TLS presents --client-cert; and TLS runs through a CONNECT proxy that wants Basic
/// credentials.
module Replay.Tests.TlsTests

open System
open Expecto
open Replay.Tests
open Replay.Tests.Certificates

let private within = TimeSpan.FromSeconds 60.0
let private topic = "secure"
let private documents = 5

/// A broker with `documents` envelopes on one partition, a temp dir and a CA.
type private Stage() =
    let cluster = Broker.start topic 1
    let dir = new TempDir()
    let ca = createCa "Replay Test CA"
    do
        Broker.produce
            cluster.BootstrapServers
            topic
            [ for i in 1..documents -> Broker.message $"doc-{i}" (ChildReplay.envelope "telemetry" $"doc-{i}" "{}") ]
    member _.Bootstrap = cluster.BootstrapServers
    member _.Dir = dir
    member _.Ca = ca
    member _.CaFile = writeCertificate (dir.File "ca.pem") ca
    member _.Committed = Broker.committed cluster.BootstrapServers "tls-replay" topic 1 |> Map.find 0
    /// `replay run` to the server's /submit/%k until the end of the topic, plus `extra` flags.
    member _.Run (serverUrl: string) (extra: string list) =
        let props = ChildReplay.properties (dir.File "kafka.properties") []
        ReplayProcess.run
            ([ "run"; "-b"; cluster.BootstrapServers; "-t"; topic; "-gid"; "tls-replay"; "-p"; props
               "--from"; "earliest"; "--until-end"; "--dead-letter"; dir.File "dead.jsonl"
               "--dest"; $"{serverUrl}/submit/%%k" ]
             @ extra)
            within
    member _.DeadLetters = ChildReplay.deadLetters (dir.File "dead.jsonl")
    interface IDisposable with
        member _.Dispose() =
            (dir :> IDisposable).Dispose()
            cluster.Dispose()

let private expectStoppedByTls (stage: Stage) (server: HttpsRecorder.Recorder) (code, _, stderr: string) (reason: string) =
    Expect.equal code 3 $"a TLS failure stops the run with exit 3; stderr: {stderr}"
    Expect.stringContains stderr $"TLS to {server.Url} failed" "the message names the destination"
    Expect.stringContains stderr reason "the message carries .NET's precise reason"
    Expect.isFalse (ChildReplay.hasStackTrace stderr) "a clear message, not a stack trace"
    Expect.isEmpty server.Hits "no request was completed"
    Expect.isEmpty stage.DeadLetters "a configuration error dead-letters nothing"
    Expect.isLessThanOrEqual stage.Committed 0L "nothing was committed: every record is read again after the fix"

[<Tests>]
let tests =
    testSequenced
    <| testList
        "TLS to the destination"
        [ test "an untrusted CA stops the run at once with a clear error; nothing is committed or dead-lettered" {
              use stage = new Stage()
              use server = HttpsRecorder.start (createServer stage.Ca)
              let outcome = stage.Run server.Url []
              // PartialChain or UntrustedRoot, depending on what the platform finds of the chain.
              expectStoppedByTls stage server outcome "errors in the certificate chain"
              let _, _, stderr = outcome
              Expect.stringContains stderr "--ca-file" "the message says how to fix it"
          }

          test "--ca-file with the private CA verifies the server and delivers every record" {
              use stage = new Stage()
              use server = HttpsRecorder.start (createServer stage.Ca)
              let code, _, stderr = stage.Run server.Url [ "--ca-file"; stage.CaFile ]
              Expect.equal code 0 $"until-end exits 0; stderr: {stderr}"
              Expect.equal
                  (server.Hits |> List.map _.Path |> Set.ofList)
                  (Set.ofList [ for i in 1..documents -> $"/submit/doc-{i}" ])
                  "every record arrived over TLS"
              Expect.equal stage.Committed (int64 documents) "all committed"
          }

          test "a certificate for another host name is refused even when its CA is trusted" {
              use stage = new Stage()
              use server = HttpsRecorder.start (createServerFor stage.Ca "elsewhere.example")
              let outcome = stage.Run server.Url [ "--ca-file"; stage.CaFile ]
              expectStoppedByTls stage server outcome "RemoteCertificateNameMismatch"
          }

          test "mutual TLS: --client-cert/--client-key are presented and accepted" {
              use stage = new Stage()
              let client = createClient stage.Ca "replay-client"
              use server = HttpsRecorder.startMutual (createServer stage.Ca) stage.Ca
              let code, _, stderr =
                  stage.Run
                      server.Url
                      [ "--ca-file"; stage.CaFile
                        "--client-cert"; writeCertificate (stage.Dir.File "client.pem") client
                        "--client-key"; writeKey (stage.Dir.File "client.key") client ]
              Expect.equal code 0 $"until-end exits 0; stderr: {stderr}"
              Expect.equal server.Hits.Length documents "every record arrived"
              Expect.allEqual (server.Hits |> List.map _.ClientSubject) (Some "CN=replay-client") "each request came with the client certificate"
          }

          test "mutual TLS without a client certificate is refused by the server and stops the run" {
              use stage = new Stage()
              use server = HttpsRecorder.startMutual (createServer stage.Ca) stage.Ca
              // Under TLS 1.3 the server's refusal comes after the client's handshake ends, and .NET
              // reports only that the response ended: the replay names the cause itself.
              let outcome = stage.Run server.Url [ "--ca-file"; stage.CaFile ]
              expectStoppedByTls stage server outcome "the server asked for a client certificate, none is configured"
          }

          test "through a CONNECT proxy: credentials answer its 407 challenge and TLS runs end to end in the tunnel" {
              use stage = new Stage()
              use server = HttpsRecorder.start (createServer stage.Ca)
              use proxy = ConnectProxy.start "replay" "s3cret:p@ss/word"
              let code, _, stderr = stage.Run server.Url [ "--ca-file"; stage.CaFile; "--proxy"; proxy.UrlWithCredentials ]
              Expect.equal code 0 $"until-end exits 0; stderr: {stderr}"
              Expect.equal server.Hits.Length documents "every record arrived through the tunnel"
              let connects = proxy.Connects
              Expect.allEqual (connects |> List.map _.Target) $"127.0.0.1:{server.Port}" "the proxy was asked for the destination only"
              Expect.exists connects (fun c -> c.Status = 407 && c.Authorization.IsNone) "the first CONNECT came without credentials and was challenged"
              Expect.exists connects (fun c -> c.Status = 200 && c.Authorization = Some proxy.ExpectedAuthorization) "the credentials from --proxy answered the challenge"
              Expect.isTrue (server.Hits |> List.forall (fun h -> not h.ProxyAuthorization)) "proxy credentials never reached the destination"
          }

          test "--insecure-skip-verify delivers to an untrusted server and warns loudly" {
              use stage = new Stage()
              use server = HttpsRecorder.start (createServer stage.Ca)
              let code, _, stderr = stage.Run server.Url [ "--insecure-skip-verify" ]
              Expect.equal code 0 $"until-end exits 0; stderr: {stderr}"
              Expect.equal server.Hits.Length documents "every record arrived"
              Expect.stringContains stderr "WARNING: --insecure-skip-verify" "the operator is warned"
          }

          test "TLS flags with missing or wrong files fail before consuming, naming the flag and file" {
              use dir = new TempDir()
              let ca = createCa "CA"
              let client = createClient ca "c"
              let other = createClient ca "other"
              let garbage = dir.File "garbage.pem"
              IO.File.WriteAllText(garbage, "not a certificate")
              let cases =
                  [ [ "--ca-file"; dir.File "missing.pem" ], "--ca-file", "does not exist"
                    [ "--ca-file"; garbage ], "--ca-file", "holds no PEM certificate"
                    [ "--client-key"; writeKey (dir.File "lonely.key") client ], "--client-key", "needs --client-cert"
                    [ "--client-cert"; writeCertificate (dir.File "c.pem") client ], "--client-cert", "no usable private key"
                    [ "--client-cert"; writeCertificate (dir.File "c2.pem") client; "--client-key"; writeKey (dir.File "other.key") other ],
                    "--client-key",
                    "no usable private key"
                    [ "--insecure-skip-verify"; "--ca-file"; writeCertificate (dir.File "ca.pem") ca ], "--insecure-skip-verify", "pick one" ]
              for flags, flag, says in cases do
                  let code, _, stderr =
                      ReplayProcess.run
                          ([ "run"; "-b"; "127.0.0.1:1"; "-t"; "t"; "-gid"; "g"; "--dest"; "https://127.0.0.1:1/%k" ] @ flags)
                          within
                  Expect.equal code 2 $"{flags}: a usage error; stderr: {stderr}"
                  Expect.stringContains stderr flag $"{flags}: names the flag"
                  Expect.stringContains stderr says $"{flags}: says what is wrong"
                  Expect.isFalse (ChildReplay.hasStackTrace stderr) $"{flags}: no stack trace"
          } ]
