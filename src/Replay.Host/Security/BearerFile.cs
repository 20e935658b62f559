// --auth-bearer-file: the token is whatever the file holds (an agent or a cron job
// rotates it). The file is looked at again at most once a second, by the attempt that
// finds the last look too old (a stat; read only when its time or size changed), and
// at once when the destination answers 401. A file that is missing, empty or half
// written keeps the last good token in use, with one warning; only when there never
// was a good one does an attempt fail, as unreachable, naming the file.
namespace Replay.Host.Security;

public sealed class BearerFile : ITokenSource
{
    const long CheckEveryMs = 1000;

    readonly string _path;
    readonly Secrets _secrets;
    readonly Action<string> _warn;
    readonly object _gate = new();
    BearerToken? _token;
    long _checkedAt;
    (DateTime Written, long Length) _stamp;
    string? _warned;

    BearerFile(string path, Secrets secrets, Action<string> warn)
    {
        _path = path;
        _secrets = secrets;
        _warn = warn;
    }

    /// <summary>The source, once the file holds a usable token; otherwise what is wrong with it.</summary>
    /// <param name="warn">Told (once per problem) when a later look finds the file unusable.</param>
    public static Result<BearerFile> Open(string path, Secrets secrets, Action<string> warn)
    {
        var source = new BearerFile(path, secrets, warn);
        var problem = source.Look(force: true);
        return source._token is null
            ? Result<BearerFile>.Fail(problem ?? $"--auth-bearer-file '{path}' holds no token")
            : Result<BearerFile>.Ok(source);
    }

    public void Prefetch() { }

    public ValueTask<TokenResult> CurrentAsync(CancellationToken cancel)
    {
        if (Environment.TickCount64 - Volatile.Read(ref _checkedAt) >= CheckEveryMs) Look(force: false);
        return new(Result());
    }

    public ValueTask<TokenResult> RenewAsync(BearerToken rejected, CancellationToken cancel)
    {
        Look(force: true);
        return new(Result());
    }

    TokenResult Result() =>
        Volatile.Read(ref _token) is { } token
            ? TokenResult.Ok(token)
            : TokenResult.Failed($"--auth-bearer-file '{_path}' holds no usable token");

    /// <summary>Reads the file if it changed since the last look; null, or what is wrong with it.</summary>
    string? Look(bool force)
    {
        lock (_gate)
        {
            var now = Environment.TickCount64;
            if (!force && now - _checkedAt < CheckEveryMs) return null;
            Volatile.Write(ref _checkedAt, now);
            var problem = Read(force);
            if (problem is not null && _token is not null && problem != _warned)
            {
                _warned = problem;
                _warn($"{problem}; still sending the token it held before");
            }
            return problem;
        }
    }

    /// <summary>Under the lock: takes a changed file's token (any file's, when forced: a time stamp
    /// may not move between two quick writes). Null, or what is wrong with the file.</summary>
    string? Read(bool force)
    {
        try
        {
            var info = new FileInfo(_path);
            if (!info.Exists) return $"--auth-bearer-file '{_path}' does not exist";
            var stamp = (info.LastWriteTimeUtc, info.Length);
            if (!force && stamp == _stamp && _token is not null) return null;
            var text = File.ReadAllText(_path).Trim();
            // A file written for curl's -H may hold the header's value rather than the token.
            if (text.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) text = text[7..].TrimStart();
            var token = BearerToken.From(text);
            if (!token.IsOk) return $"--auth-bearer-file '{_path}' holds no usable token: {token.Error}";
            _stamp = stamp;
            _warned = null;
            if (_token?.Value != token.Value!.Value)
            {
                _secrets.Add(token.Value.Value);
                Volatile.Write(ref _token, token.Value);
            }
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"--auth-bearer-file '{_path}' cannot be read: {e.Message}";
        }
    }

    public void Dispose() { }
}
