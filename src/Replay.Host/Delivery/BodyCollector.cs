// The part of an answer's body that is kept: its start up to a limit, its length, and
// when asked the SHA-256 of a body longer than that start. Both senders feed it the
// body's bytes as they arrive; with nothing to keep it only counts.
using System.Security.Cryptography;

namespace Replay.Host.Delivery;

struct BodyCollector
{
    byte[]? _kept;
    int _keptLength;
    readonly int _limit;
    readonly bool _hashBeyond;
    readonly long _expected;
    IncrementalHash? _hash;

    /// <param name="expected">The body's announced length, or -1; sizes the first buffer.</param>
    public BodyCollector(int limit, bool hashBeyond, long expected)
    {
        _limit = limit;
        _hashBeyond = hashBeyond;
        _expected = expected;
    }

    /// <summary>Body bytes seen so far.</summary>
    public long Seen { get; private set; }

    /// <summary>The bytes kept are all there is to keep, and nothing asks for the rest.</summary>
    public readonly bool Full => !_hashBeyond && Seen >= _limit;

    public void Take(ReadOnlySpan<byte> bytes)
    {
        Seen += bytes.Length;
        if (_keptLength < _limit)
        {
            var room = _limit - _keptLength;
            var into = bytes[..Math.Min(room, bytes.Length)];
            Reserve(into.Length);
            into.CopyTo(_kept.AsSpan(_keptLength));
            _keptLength += into.Length;
            bytes = bytes[into.Length..];
        }
        if (bytes.IsEmpty || !_hashBeyond) return;
        if (_hash is null)
        {
            _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            _hash.AppendData(_kept.AsSpan(0, _keptLength));
        }
        _hash.AppendData(bytes);
    }

    void Reserve(int more)
    {
        var needed = _keptLength + more;
        if (_kept is not null && _kept.Length >= needed) return;
        // The announced length when there is one; otherwise grow by doubling, so a short body
        // under a large limit costs what it is.
        var size = _expected >= 0 ? (int)Math.Min(_limit, Math.Max(_expected, needed)) : Math.Min(_limit, Math.Max(needed, Math.Max(4096, 2 * (_kept?.Length ?? 0))));
        Array.Resize(ref _kept, size);
    }

    /// <summary>The kept start of the body and the hash of the whole (empty unless the body was
    /// longer than what was kept and hashing was asked for).</summary>
    public (byte[] Body, byte[] Hash) Finish()
    {
        var body = _kept is null ? [] : _kept.Length == _keptLength ? _kept : _kept[.._keptLength];
        byte[] hash = [];
        if (_hash is not null)
        {
            hash = _hash.GetHashAndReset();
            _hash.Dispose();
            _hash = null;
        }
        return (body, hash);
    }

    /// <summary>Releases the hash when the body was not read to its end.</summary>
    public void Abandon()
    {
        _hash?.Dispose();
        _hash = null;
    }
}
