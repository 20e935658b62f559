/// Certificates made on the fly for TLS tests: a private CA, server certificates for
/// 127.0.0.1/localhost (or a wrong name) signed by it, and a client certificate for
/// mutual TLS, written as PEM files into a temporary directory. Nothing is installed
/// in any system store, so the CA is trusted only where a test passes its file.
module Replay.Tests.Certificates

open System
open System.IO
open System.Net
open System.Security.Cryptography
open System.Security.Cryptography.X509Certificates

let private serverAuth = Oid "1.3.6.1.5.5.7.3.1"
let private clientAuth = Oid "1.3.6.1.5.5.7.3.2"

/// One validity window for the whole test run; leaves end an hour before their CA.
let private created = DateTimeOffset.UtcNow
let private caValidity () = created.AddDays -1.0, created.AddDays 2.0
let private leafValidity () = created.AddDays -1.0, created.AddDays(2.0).AddHours -1.0

let private serial () = RandomNumberGenerator.GetBytes 12

/// A self-signed CA with its key.
let createCa (name: string) =
    let key = ECDsa.Create ECCurve.NamedCurves.nistP256
    let request = CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256)
    request.CertificateExtensions.Add(X509BasicConstraintsExtension(true, false, 0, true))
    request.CertificateExtensions.Add(X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign ||| X509KeyUsageFlags.CrlSign, true))
    request.CertificateExtensions.Add(X509SubjectKeyIdentifierExtension(request.PublicKey, false))
    let notBefore, notAfter = caValidity ()
    request.CreateSelfSigned(notBefore, notAfter)

/// A leaf certificate signed by `ca`, with its private key attached.
let private issue (ca: X509Certificate2) (subject: string) (usage: Oid) (names: SubjectAlternativeNameBuilder option) =
    let key = ECDsa.Create ECCurve.NamedCurves.nistP256
    let request = CertificateRequest($"CN={subject}", key, HashAlgorithmName.SHA256)
    request.CertificateExtensions.Add(X509BasicConstraintsExtension(false, false, 0, true))
    request.CertificateExtensions.Add(X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true))
    let usages = OidCollection()
    usages.Add usage |> ignore
    request.CertificateExtensions.Add(X509EnhancedKeyUsageExtension(usages, false))
    names |> Option.iter (fun n -> request.CertificateExtensions.Add(n.Build()))
    let notBefore, notAfter = leafValidity ()
    use issued = request.Create(ca, notBefore, notAfter, serial ())
    issued.CopyWithPrivateKey key

/// A server certificate valid for 127.0.0.1 and localhost.
let createServer (ca: X509Certificate2) =
    let names = SubjectAlternativeNameBuilder()
    names.AddIpAddress IPAddress.Loopback
    names.AddDnsName "localhost"
    issue ca "127.0.0.1" serverAuth (Some names)

/// A server certificate for another host: valid chain, wrong name for 127.0.0.1.
let createServerFor (ca: X509Certificate2) (host: string) =
    let names = SubjectAlternativeNameBuilder()
    names.AddDnsName host
    issue ca host serverAuth (Some names)

let createClient (ca: X509Certificate2) (name: string) = issue ca name clientAuth None

/// A fresh temporary directory, removed on dispose.
type TempDir() =
    let path = Directory.CreateTempSubdirectory("replay-test-").FullName
    member _.Path = path
    member _.File(name: string) = Path.Combine(path, name)
    interface IDisposable with
        member _.Dispose() =
            try Directory.Delete(path, true) with :? IOException -> ()

/// Writes a certificate as PEM; returns the path.
let writeCertificate (path: string) (certificate: X509Certificate2) =
    File.WriteAllText(path, certificate.ExportCertificatePem())
    path

/// Writes a certificate's private key as PKCS#8 PEM; returns the path.
let writeKey (path: string) (certificate: X509Certificate2) =
    use key = certificate.GetECDsaPrivateKey()
    File.WriteAllText(path, key.ExportPkcs8PrivateKeyPem())
    path

/// True when `certificate` chains to `ca` (used by servers to check client certificates).
let chainsTo (ca: X509Certificate2) (certificate: X509Certificate2) =
    use chain = new X509Chain()
    chain.ChainPolicy.TrustMode <- X509ChainTrustMode.CustomRootTrust
    chain.ChainPolicy.CustomTrustStore.Add ca |> ignore
    chain.ChainPolicy.RevocationMode <- X509RevocationMode.NoCheck
    chain.Build certificate
