// Carries out the core's adaptive concurrency limit (Replay.Core.ConcurrencyLimit) for one
// delivery service under --concurrency auto: a gate that lets as many senders through as the
// limit says, and tells the core when each attempt goes on the wire and what came back. The
// core decides the limit; this only counts permits. A sender keeps its permit from one job to
// the next, so a steady limit costs no semaphore wait per request; a decrease cannot take
// permits back from senders already through, so it is owed, and the next senders to finish a
// job pay it by giving theirs up. (The semaphore is never disposed: it holds no handle, and
// senders may still wait on it as delivery stops.)
using System.Diagnostics;
using Replay.Core;

namespace Replay.Host.Delivery;

public sealed class ConcurrencyGate
{
    readonly ConcurrencyLimit.Settings _settings;
    readonly SemaphoreSlim _permits;
    readonly Lock _lock = new();
    readonly long _origin = Stopwatch.GetTimestamp();
    ConcurrencyLimit.State _state = ConcurrencyLimit.initial;
    int _owed;
    int _limit;

    public ConcurrencyGate(ConcurrencyLimit.Settings settings)
    {
        _settings = settings;
        _limit = _state.Limit;
        _permits = new SemaphoreSlim(_limit, int.MaxValue);
    }

    /// <summary>Attempts allowed on the wire at once now.</summary>
    public int Limit => Volatile.Read(ref _limit);

    /// <summary>Waits for a permit: one more sender may send.</summary>
    public Task WaitAsync(CancellationToken cancel) => _permits.WaitAsync(cancel);

    /// <summary>After a job: true when the sender may keep its permit for the next one; false when
    /// a decrease took it (the sender must wait for a permit again).</summary>
    public bool Keep()
    {
        if (Volatile.Read(ref _owed) == 0) return true;
        lock (_lock)
        {
            if (_owed == 0) return true;
            _owed--;
            return false;
        }
    }

    /// <summary>An attempt goes on the wire.</summary>
    public void Started()
    {
        lock (_lock) _state = ConcurrencyLimit.started(_state);
    }

    /// <summary>An attempt came back saying <paramref name="signal"/>; the core may move the limit.</summary>
    public void Finished(ConcurrencyLimit.Signal signal)
    {
        lock (_lock)
        {
            var before = _state.Limit;
            _state = ConcurrencyLimit.finished(_settings, signal, Stopwatch.GetElapsedTime(_origin), _state);
            var after = _state.Limit;
            if (after > before)
            {
                var repaid = Math.Min(_owed, after - before);
                _owed -= repaid;
                if (after - before > repaid) _permits.Release(after - before - repaid);
            }
            else if (after < before) Volatile.Write(ref _owed, _owed + before - after);
            Volatile.Write(ref _limit, after);
        }
    }
}
