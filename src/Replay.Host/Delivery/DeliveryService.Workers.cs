// The sending workers of a DeliveryService: each takes a ready job, begins it with the engine,
// sends it and completes it, all under the engines' lock except the attempt itself. See
// DeliveryService.cs for what the service carries out, and ReadyJobs for the queue.
using System.Runtime.CompilerServices;
using Replay.Core;
using static Replay.Core.Outcome;

namespace Replay.Host.Delivery;

public sealed partial class DeliveryService
{
    /// <summary>A worker under a fixed --concurrency. It finishes one job and begins the next under
    /// one hold of the lock: the consuming thread takes the same lock per record, and at tens of
    /// thousands of records a second every extra hold is contention on both sides.</summary>
    async Task WorkAsync()
    {
        try
        {
            Job? job = null;
            while (!_disposed.IsCancellationRequested)
            {
                if (job is null)
                {
                    var (begun, wait) = BeginNext();
                    if (begun is null)
                    {
                        if (wait is null) return;
                        await wait.WaitAsync(_disposed.Token).ConfigureAwait(false);
                        continue;
                    }
                    job = begun;
                }
                job = await SendBegunAsync(job, takeNext: true).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_disposed.IsCancellationRequested) { }
    }

    /// <summary>A worker under --concurrency auto: it holds a permit of the gate while it takes and
    /// sends jobs, and gives it up only when the limit falls, so no more attempts than the limit are
    /// ever out and a steady limit costs nothing per request.</summary>
    async Task WorkGatedAsync(ConcurrencyGate gate)
    {
        try
        {
            await gate.WaitAsync(_disposed.Token).ConfigureAwait(false);
            while (!_disposed.IsCancellationRequested)
            {
                var (job, wait) = BeginNext();
                if (job is null)
                {
                    if (wait is null) return;
                    await wait.WaitAsync(_disposed.Token).ConfigureAwait(false);
                    continue;
                }
                await SendBegunAsync(job, takeNext: false).ConfigureAwait(false);
                if (!gate.Keep()) await gate.WaitAsync(_disposed.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_disposed.IsCancellationRequested) { }
    }

    /// <summary>Begins the next ready job the engine still wants sent; or none, with what to wait on
    /// (null once the service is closed).</summary>
    (Job? Job, Task? Wait) BeginNext()
    {
        try
        {
            lock (_gate)
            {
                while (true)
                {
                    var job = _ready.Take(out var wait);
                    if (job is null) return (null, wait);
                    if (_engine.Begin(job)) return (job, null);
                }
            }
        }
        catch (Exception e)
        {
            _fatal($"internal error beginning a delivery: {e}");
            return (null, null);
        }
    }

    /// <summary>Sends a begun job and completes it; with <paramref name="takeNext"/>, begins the next
    /// ready one under the same hold of the lock and returns it (null when none is).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<Job?> SendBegunAsync(Job job, bool takeNext)
    {
        try
        {
            var attempt = await AttemptAsync(job).ConfigureAwait(false);
            Job? next = null;
            lock (_gate)
            {
                _engine.Complete(job, attempt, Environment.TickCount64, Random.Shared.NextDouble());
                while (takeNext && next is null && _ready.TryTake(out var candidate))
                    if (_engine.Begin(candidate)) next = candidate;
            }
            WarnOfRetries(job, attempt);
            return next;
        }
        catch (Exception e)
        {
            // The engine itself failed: its state can no longer be trusted, so the run stops
            // and commits nothing past this record.
            _fatal($"internal error delivering {job}: {e}");
            return null;
        }
    }

    void WarnOfRetries(Job job, Attempt attempt)
    {
        if (job.Phase.IsBackingOff && _retrying.Due())
            _log($"destination {job.Request.Url.Scheme}://{job.Request.Url.Authority} is failing ({describe(attempt)}); retrying with backoff, " +
                 "undelivered records stay uncommitted (a record failing while others succeed becomes a dead letter after --poison-after)");
    }
}
