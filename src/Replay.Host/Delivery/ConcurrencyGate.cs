// Carries out the core's adaptive concurrency limit (Replay.Core.ConcurrencyLimit) for one
// delivery service under --concurrency auto: a gate that lets as many senders through as the
// limit says, and tells the core when each attempt goes on the wire and what came back. The
// core decides the limit; this only counts permits. A decrease cannot take permits back from
// senders already through, so it is owed: the next permits returned are kept until it is paid.
// (The semaphore is never disposed: it holds no handle, and senders may return permits late.)
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

    /// <summary>Gives a permit back (the sender is done), unless a decrease is owed it.</summary>
    public void Release()
    {
        lock (_lock)
        {
            if (_owed > 0) _owed--;
            else _permits.Release();
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
            else if (after < before) _owed += before - after;
            Volatile.Write(ref _limit, after);
        }
    }
}
