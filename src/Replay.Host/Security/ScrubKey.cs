// The secret behind `Json.Hash`: an HMAC-SHA256 key the operator keeps in a file
// (--scrub-key-file, or scrub-key-file: in the rules file). A hash without a secret
// is no protection for ids, which can be guessed and hashed until one matches; with
// the key it is a stable pseudonym that only the key's holders can reproduce. The
// key is registered with the run's redactor so no output can show it.
using System.Security.Cryptography;
using System.Text;

namespace Replay.Host.Security;

public sealed class ScrubKey
{
    /// <summary>Fewer bytes than this can be guessed; 32 random bytes is the usual choice.</summary>
    public const int MinimumBytes = 16;
    /// <summary>A key file holds one short secret; anything longer is probably the wrong file.</summary>
    public const int MaximumBytes = 4096;

    readonly byte[] _key;

    ScrubKey(byte[] key) => _key = key;

    /// <summary>A key from bytes already in hand (tests, and keys checked by <see cref="Load"/>).</summary>
    public static ScrubKey FromBytes(byte[] key)
    {
        if (key.Length < MinimumBytes) throw new ArgumentException($"a scrub key needs at least {MinimumBytes} bytes", nameof(key));
        return new ScrubKey((byte[])key.Clone());
    }

    /// <summary>Reads a key file: its bytes, trailing line breaks removed (as `openssl rand -hex 32 &gt; FILE`
    /// writes one). Every form the key could be printed in is added to <paramref name="secrets"/>.
    /// <paramref name="warning"/> is set when others may read the file.</summary>
    public static Result<ScrubKey> Load(string path, Secrets? secrets, out string? warning)
    {
        warning = null;
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (Directory.Exists(path))
                return Result<ScrubKey>.Fail($"scrub key file {path} is a directory; name the file that holds the key");
            if (!info.Exists)
                return Result<ScrubKey>.Fail($"scrub key file {path} does not exist; create one with `openssl rand -hex 32 > {path}` and chmod 600 it");
            if (info.Length > MaximumBytes + 2)
                return Result<ScrubKey>.Fail($"scrub key file {path} holds {info.Length} bytes; a key file holds one short secret (at most {MaximumBytes} bytes): is it the right file?");
            bytes = File.ReadAllBytes(path);
            if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead)) != 0)
                warning = $"scrub key file {path} can be read by other users; anyone who reads it can reverse Json.Hash by hashing candidate ids (chmod 600 {path})";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Result<ScrubKey>.Fail($"cannot read scrub key file {path}: {e.Message}");
        }
        var length = bytes.Length;
        while (length > 0 && bytes[length - 1] is (byte)'\n' or (byte)'\r') length--;
        var key = bytes[..length];
        if (key.Length < MinimumBytes)
            return Result<ScrubKey>.Fail($"scrub key file {path} holds a {key.Length}-byte key; use at least {MinimumBytes} random bytes, e.g. `openssl rand -hex 32 > {path}`");
        if (secrets is not null)
        {
            if (System.Text.Unicode.Utf8.IsValid(key)) secrets.Add(Encoding.UTF8.GetString(key));
            secrets.Add(Convert.ToHexStringLower(key));
            secrets.Add(Convert.ToHexString(key));
            secrets.Add(Convert.ToBase64String(key));
        }
        return Result<ScrubKey>.Ok(new ScrubKey(key));
    }

    /// <summary>The lower-case hex HMAC-SHA256 of the text's UTF-8 bytes.</summary>
    public string Hash(string text) => Convert.ToHexStringLower(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(text)));
}
