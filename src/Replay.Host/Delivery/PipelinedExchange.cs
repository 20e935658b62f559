// One request's place on a pipelined connection (PipelinedConnection): the wait for its
// answer, which ends once, and the watch on its caller's token.
using System.Threading.Tasks.Sources;

namespace Replay.Host.Delivery;

/// <summary>One request's wait for its answer. It ends once: with the answer, a failure, or
/// abandoned by its caller (whose answer is then read and dropped, keeping the order).</summary>
sealed class PipelinedExchange(PipelinedConnection owner, ResponseCapture capture, long deadline) : IValueTaskSource<PlainResponse>
{
    ManualResetValueTaskSourceCore<PlainResponse> _core;
    int _ended;

    public ResponseCapture Capture { get; } = capture;
    public long Deadline { get; } = deadline;
    /// <summary>Its caller's token, watched until it ends; guarded by the exchange itself, since it is
    /// set after the request was written and an answer may already have ended it.</summary>
    CancellationTokenRegistration _cancelled;
    public short Version => _core.Version;
    /// <summary>Its place among the connection's requests, from 0.</summary>
    public long Number;

    public void Answer(PlainResponse response)
    {
        if (!End()) return;
        _core.SetResult(response);
    }

    public void Fail(Exception failure)
    {
        if (!End()) return;
        _core.SetException(failure);
    }

    public void Abandon(CancellationToken token)
    {
        if (Interlocked.Exchange(ref _ended, 1) != 0) return;
        owner.Abandoned(this, () => _core.SetException(new OperationCanceledException(token)));
    }

    /// <summary>Abandons it when <paramref name="cancel"/> fires; a registration made after the
    /// exchange ended is disposed at once, so none lingers on a token that lives for hours.</summary>
    public void Watch(CancellationToken cancel)
    {
        var registration = cancel.UnsafeRegister(static (e, token) => ((PipelinedExchange)e!).Abandon(token), this);
        lock (this)
        {
            if (Volatile.Read(ref _ended) == 0)
            {
                _cancelled = registration;
                return;
            }
        }
        registration.Dispose();
    }

    bool End()
    {
        if (Interlocked.Exchange(ref _ended, 1) != 0) return false;
        CancellationTokenRegistration registration;
        lock (this)
        {
            registration = _cancelled;
            _cancelled = default;
        }
        registration.Dispose();
        return true;
    }

    public PlainResponse GetResult(short token) => _core.GetResult(token);
    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);
    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
