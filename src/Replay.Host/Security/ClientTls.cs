// TLS to the destination. Certificates are verified by default against the system's
// roots. --ca-file trusts exactly the CAs in a PEM file instead (a private CA; as
// with curl's --cacert, the system roots are then not used), --client-cert and
// --client-key present a certificate for mutual TLS, and --insecure-skip-verify
// turns verification off (the command warns loudly). The host name is always
// checked unless verification is off.
using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Replay.Host.Security;

public sealed class ClientTls
{
    /// <summary>The only roots trusted when set (--ca-file); null means the system's roots.</summary>
    public X509Certificate2Collection? TrustedRoots { get; private init; }
    /// <summary>The certificate presented for mutual TLS, with any intermediates from its file.</summary>
    public SslStreamCertificateContext? ClientCertificate { get; private init; }
    public bool SkipVerify { get; private init; }

    // A server that requires a client certificate and gets none closes the connection
    // right after a TLS 1.3 handshake, and .NET then reports only that the response
    // ended. Noting which hosts asked for a certificate lets that failure be named.
    readonly ConcurrentDictionary<string, bool> _askedForCertificate = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>True when the host asked for a client certificate and none was configured.</summary>
    public bool AskedForMissingCertificate(string host) => _askedForCertificate.ContainsKey(host);

    /// <summary>Reads and checks the files behind the TLS flags (none given: the system's
    /// defaults). Every failure names the flag and the file at fault.</summary>
    public static Result<ClientTls?> Load(string? caFile, string? clientCert, string? clientKey, bool skipVerify)
    {
        if (skipVerify && caFile is not null)
            return Result<ClientTls?>.Fail("--insecure-skip-verify and --ca-file contradict each other: verify against the CA file, or do not verify; pick one");
        if (clientKey is not null && clientCert is null)
            return Result<ClientTls?>.Fail($"--client-key '{clientKey}' needs --client-cert FILE, the certificate that goes with the key");

        X509Certificate2Collection? roots = null;
        if (caFile is not null)
        {
            var loaded = LoadCertificates("--ca-file", caFile);
            if (!loaded.IsOk) return Result<ClientTls?>.Fail(loaded.Error!);
            roots = loaded.Value;
        }

        SslStreamCertificateContext? identity = null;
        if (clientCert is not null)
        {
            var loaded = LoadIdentity(clientCert, clientKey);
            if (!loaded.IsOk) return Result<ClientTls?>.Fail(loaded.Error!);
            identity = loaded.Value;
        }
        return Result<ClientTls?>.Ok(new ClientTls { TrustedRoots = roots, ClientCertificate = identity, SkipVerify = skipVerify });
    }

    static Result<X509Certificate2Collection> LoadCertificates(string flag, string path)
    {
        if (!File.Exists(path))
            return Result<X509Certificate2Collection>.Fail($"{flag} '{path}' does not exist");
        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPemFile(path);
        }
        catch (CryptographicException e)
        {
            return Result<X509Certificate2Collection>.Fail($"{flag} '{path}' is not a readable PEM file: {e.Message}");
        }
        return certificates.Count == 0
            ? Result<X509Certificate2Collection>.Fail($"{flag} '{path}' holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
            : Result<X509Certificate2Collection>.Ok(certificates);
    }

    /// <summary>The client certificate (first in its file, intermediates after it) and its key
    /// (from --client-key, or from the certificate's file when that holds it too).</summary>
    static Result<SslStreamCertificateContext> LoadIdentity(string certPath, string? keyPath)
    {
        var chain = LoadCertificates("--client-cert", certPath);
        if (!chain.IsOk) return Result<SslStreamCertificateContext>.Fail(chain.Error!);
        if (keyPath is not null && !File.Exists(keyPath))
            return Result<SslStreamCertificateContext>.Fail($"--client-key '{keyPath}' does not exist");
        X509Certificate2 leaf;
        try
        {
            leaf = X509Certificate2.CreateFromPemFile(certPath, keyPath);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            // ArgumentException: a key that is not the certificate's.
            var where = keyPath is null ? $"--client-cert '{certPath}' (no --client-key given, so the key must be in that file)" : $"--client-key '{keyPath}'";
            return Result<SslStreamCertificateContext>.Fail($"{where}: no usable private key for the certificate: {e.Message}");
        }
        if (!leaf.HasPrivateKey)
            return Result<SslStreamCertificateContext>.Fail($"--client-cert '{certPath}': the certificate has no private key; pass --client-key FILE");
        var intermediates = new X509Certificate2Collection();
        for (var i = 1; i < chain.Value!.Count; i++) intermediates.Add(chain.Value[i]);
        return Result<SslStreamCertificateContext>.Ok(SslStreamCertificateContext.Create(leaf, intermediates, offline: true));
    }

    /// <summary>Configures the destination handler's TLS.</summary>
    public void Apply(SocketsHttpHandler handler)
    {
        var ssl = handler.SslOptions;
        if (ClientCertificate is not null)
            ssl.ClientCertificateContext = ClientCertificate;
        else
            ssl.LocalCertificateSelectionCallback = (_, host, _, _, _) =>
            {
                _askedForCertificate[host] = true;
                return null!; // no certificate to offer
            };
        if (SkipVerify)
        {
            ssl.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        }
        else if (TrustedRoots is not null)
        {
            // .NET validates the chain with this policy itself, so a failure carries
            // its precise reason (UntrustedRoot, NotTimeValid, name mismatch...).
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                // Private CAs rarely publish revocation lists; the handler's default is NoCheck too.
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(TrustedRoots);
            ssl.CertificateChainPolicy = policy;
        }
    }
}
