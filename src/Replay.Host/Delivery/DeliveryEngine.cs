// Sends requests concurrently while keeping Kafka order per document: every
// ordering key (document id) has at most one lane, a lane sends its requests one
// after another, and lanes run in parallel up to the concurrency limit. A fixed set
// of worker loops (one per unit of concurrency) takes ready lanes from one queue, so
// a record costs no task, no thread hop and no semaphore wait of its own while the
// destination keeps up. A failed attempt leaves its worker: the lane waits out its
// backoff on a timer, holding a permit only while it sends, so a failing id cannot
// starve the others. Retries are Polly's; what is retryable and how long to wait come
// from the core.
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.FSharp.Core;
using Polly;
using System.Threading.RateLimiting;
using Polly.Retry;
using Replay.Core;
using static Replay.Core.Outcome;
using static Replay.Core.Pipeline;

namespace Replay.Host.Delivery;

/// <summary>One consumed record on its way to the destination.</summary>
public sealed class Job
{
    public required Request Request { get; init; }
    public required RecordRef Source { get; init; }
    /// <summary>Set by the engine once the job is finished; read by the consume loop.</summary>
    public JobResult Result { get; internal set; }
    public int Attempts { get; internal set; }
    public int LastStatus { get; internal set; }
    public string? FailureReason { get; internal set; }
    /// <summary>The outcome of the latest attempt; null before the first one completed.</summary>
    internal Attempt? LastAttempt { get; set; }
    /// <summary>A failed first attempt waiting to be handed to the retry pipeline.</summary>
    internal Attempt? Pending { get; set; }
}

public enum JobResult { Pending, Delivered, DeadLettered, Abandoned }

/// <summary>Where a record came from: enough to checkpoint it and to dead-letter it.</summary>
public sealed class RecordRef
{
    public required string Topic { get; init; }
    public required int Partition { get; init; }
    public required long Offset { get; init; }
    public required int Bytes { get; init; }
    public byte[]? Key { get; init; }
    public required ReadOnlyMemory<byte> Value { get; init; }
    public Confluent.Kafka.Headers? Headers { get; init; }
    /// <summary>The assignment this record was consumed under; stale after a revoke.</summary>
    public required object Owner { get; init; }
}

public sealed record DeliveryOptions(
    int Concurrency,
    TimeSpan RetryBaseDelay,
    TimeSpan RetryMaxDelay,
    TimeSpan? MaxRetryDuration,
    /// <summary>Requests per second at most (every attempt counts); null: unlimited.</summary>
    double? MaxRate = null);

public sealed class DeliveryEngine : IDisposable
{
    readonly HttpSender _sender;
    readonly DeliveryOptions _options;
    readonly Action<Job> _finished;
    readonly ReplayStats _stats;
    readonly SemaphoreSlim _permits;
    /// <summary>Jobs waiting behind the one being sent, per ordering key; a key is present while its lane is busy.</summary>
    readonly Dictionary<string, Queue<Job>?> _lanes = new(StringComparer.Ordinal);
    /// <summary>The first job of each lane that no worker has taken yet.</summary>
    readonly Channel<Job> _ready = Channel.CreateUnbounded<Job>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });
    readonly ResiliencePipeline<Attempt> _retry;
    readonly CancellationToken _abandon;
    readonly RateLimiter? _rate;
    readonly Action<string>? _warn;
    long _lastWarn = long.MinValue / 2;
    const int WarnEveryMs = 10_000;
    int _inFlight;

    /// <param name="finished">Called once per job, from a worker thread, when it is
    /// delivered or has failed permanently; must be cheap and thread-safe.</param>
    /// <param name="warn">Told, at most every <see cref="WarnEveryMs"/> ms, why requests are being
    /// retried, so an unreachable or failing destination is named in the log, not only counted.</param>
    public DeliveryEngine(HttpSender sender, DeliveryOptions options, ReplayStats stats, Action<Job> finished, CancellationToken abandon,
        Action<string>? warn = null)
    {
        _warn = warn;
        _sender = sender;
        _options = options;
        _stats = stats;
        _finished = finished;
        _abandon = abandon;
        _permits = new SemaphoreSlim(options.Concurrency, options.Concurrency);
        _retry = BuildRetry(options, stats);
        _rate = options.MaxRate is { } rate ? BuildRateLimiter(rate) : null;
        for (var i = 0; i < Math.Max(1, options.Concurrency); i++) _ = Task.Run(WorkAsync);
    }

    /// <summary>Stops the workers once they are idle; jobs still in flight are the caller's to wait for or abandon.</summary>
    public void Dispose()
    {
        _ready.Writer.TryComplete();
        _rate?.Dispose();
    }

    /// <summary>A token bucket refilled in small steps, so the rate is smooth rather than bursty.</summary>
    static TokenBucketRateLimiter BuildRateLimiter(double perSecond)
    {
        var period = perSecond >= 20 ? TimeSpan.FromMilliseconds(50) : TimeSpan.FromSeconds(1 / perSecond);
        var tokens = Math.Max(1, (int)Math.Round(perSecond * period.TotalSeconds));
        return new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = tokens,
            TokensPerPeriod = tokens,
            ReplenishmentPeriod = period,
            QueueLimit = int.MaxValue,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            AutoReplenishment = true,
        });
    }

    public int InFlight => Volatile.Read(ref _inFlight);

    static ResiliencePipeline<Attempt> BuildRetry(DeliveryOptions options, ReplayStats stats)
    {
        return new ResiliencePipelineBuilder<Attempt>()
            .AddRetry(new RetryStrategyOptions<Attempt>
            {
                MaxRetryAttempts = int.MaxValue,
                ShouldHandle = args => ValueTask.FromResult(
                    args.Outcome.Result is { } attempt && classify(StatusPolicy.defaults, attempt).IsRetry),
                DelayGenerator = args =>
                {
                    var retryAfter = args.Outcome.Result is { } a && classify(StatusPolicy.defaults, a) is Verdict.Retry r
                        ? r.retryAfter
                        : FSharpOption<TimeSpan>.None;
                    var wait = RetrySchedule.backoff(new RetrySchedule.Settings(options.RetryBaseDelay, options.RetryMaxDelay, null, TimeSpan.MaxValue), args.AttemptNumber, Random.Shared.NextDouble(), retryAfter);
                    return ValueTask.FromResult<TimeSpan?>(wait);
                },
                OnRetry = _ => { stats.Retry(); return ValueTask.CompletedTask; },
            })
            .Build();
    }

    /// <summary>Queues a job behind earlier jobs of the same ordering key. Called from the consume thread.</summary>
    public void Submit(Job job)
    {
        Interlocked.Increment(ref _inFlight);
        var key = job.Request.OrderingKey;
        lock (_lanes)
        {
            if (_lanes.TryGetValue(key, out var waiting))
            {
                (waiting ??= _lanes[key] = new Queue<Job>()).Enqueue(job);
                return;
            }
            _lanes[key] = null;
        }
        _ready.Writer.TryWrite(job);
    }

    async Task WorkAsync()
    {
        var ready = _ready.Reader;
        while (await ready.WaitToReadAsync().ConfigureAwait(false))
            while (ready.TryRead(out var job))
            {
                try
                {
                    await RunLaneAsync(job).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    // A bug, not a delivery failure (those are outcomes): say so, and keep this
                    // worker serving the other lanes. The job stays unfinished, so uncommitted.
                    _warn?.Invoke($"delivery worker: unexpected failure for {job.Source.Topic}/{job.Source.Partition}/{job.Source.Offset}: {e}");
                }
            }
    }

    /// <summary>Sends a lane's jobs in order until it is empty or one of them must wait to be retried.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    async ValueTask RunLaneAsync(Job job)
    {
        for (Job? next = job; next is not null; next = NextInLane(next))
        {
            Attempt first;
            try
            {
                first = await AttemptAsync(next, _abandon).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_abandon.IsCancellationRequested)
            {
                next.Result = JobResult.Abandoned;
                await FinishAsync(next).ConfigureAwait(false);
                continue;
            }
            if (classify(StatusPolicy.defaults, first).IsRetry)
            {
                // The worker goes back to other lanes; this one continues after its retries.
                _ = RetryLaneAsync(next, first);
                return;
            }
            Conclude(next, first);
            await FinishAsync(next).ConfigureAwait(false);
        }
    }

    /// <summary>Retries a job through Polly (its failed first attempt is Polly's first outcome, so
    /// the backoff comes first), then hands the rest of its lane back to the workers.</summary>
    async Task RetryLaneAsync(Job job, Attempt first)
    {
        job.Pending = first;
        try
        {
            using var giveUp = _options.MaxRetryDuration is null ? null : CancellationTokenSource.CreateLinkedTokenSource(_abandon);
            if (_options.MaxRetryDuration is { } limit) giveUp!.CancelAfter(limit);
            await _retry.ExecuteAsync(
                static (state, token) => state.Engine.RetryAsync(state.Job, token),
                (Engine: this, Job: job),
                giveUp?.Token ?? _abandon).ConfigureAwait(false);
            Conclude(job, job.LastAttempt);
        }
        catch (OperationCanceledException) when (_abandon.IsCancellationRequested)
        {
            job.Result = JobResult.Abandoned;
        }
        catch (OperationCanceledException)
        {
            // --max-retry-duration ran out: the last attempt's verdict decides.
            Conclude(job, job.LastAttempt);
        }
        await FinishAsync(job).ConfigureAwait(false);
        if (NextInLane(job) is { } next) _ready.Writer.TryWrite(next);
    }

    async ValueTask FinishAsync(Job job)
    {
        // Writing a dead letter is file or Kafka I/O: not on a thread that may be serving sockets.
        if (job.Result == JobResult.DeadLettered) await Task.Yield();
        Interlocked.Decrement(ref _inFlight);
        _finished(job);
    }

    /// <summary>The job queued behind <paramref name="done"/> in its lane, or null after closing the empty lane.</summary>
    Job? NextInLane(Job done)
    {
        var key = done.Request.OrderingKey;
        lock (_lanes)
        {
            if (_lanes[key] is { } waiting && waiting.TryDequeue(out var next)) return next;
            _lanes.Remove(key);
            return null;
        }
    }

    ValueTask<Attempt> RetryAsync(Job job, CancellationToken token)
    {
        if (job.Pending is { } pending)
        {
            job.Pending = null;
            return ValueTask.FromResult(pending);
        }
        return AttemptAsync(job, token);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<Attempt> AttemptAsync(Job job, CancellationToken token)
    {
        using var lease = _rate is null ? null : await _rate.AcquireAsync(1, token).ConfigureAwait(false);
        await _permits.WaitAsync(token).ConfigureAwait(false);
        try
        {
            job.Attempts++;
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var attempt = await _sender.SendAsync(job.Request, token).ConfigureAwait(false);
            var elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(started);
            _stats.Latency.Record(elapsed);
            _stats.Answered(job.Request.Method, attempt, elapsed);
            job.LastAttempt = attempt;
            if (_warn is not null && classify(StatusPolicy.defaults, attempt).IsRetry) WarnRetrying(job.Request, attempt);
            return attempt;
        }
        finally { _permits.Release(); }
    }

    static void Conclude(Job job, Attempt? last)
    {
        if (last is Attempt.Answered answered) job.LastStatus = answered.Item.Status;
        var verdict = last is null ? null : classify(StatusPolicy.defaults, last);
        if (verdict is { IsDelivered: true })
        {
            job.Result = JobResult.Delivered;
            return;
        }
        job.Result = JobResult.DeadLettered;
        job.FailureReason = verdict switch
        {
            Verdict.Permanent p => p.reason,
            _ => $"still failing after --max-retry-duration ({Describe(last)})",
        };
    }

    void WarnRetrying(Request request, Attempt attempt)
    {
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastWarn);
        if (now - last < WarnEveryMs || Interlocked.CompareExchange(ref _lastWarn, now, last) != last) return;
        _warn!($"destination {request.Url.Scheme}://{request.Url.Authority} is failing ({Describe(attempt)}); retrying with backoff, "
            + "undelivered records stay uncommitted (see --max-retry-duration to dead-letter instead)");
    }

    static string Describe(Attempt? attempt) => attempt switch
    {
        Attempt.Answered a => $"last answer {a.Item.Status}",
        Attempt.Unreachable u => $"unreachable: {u.detail}",
        { IsTimedOut: true } => "last attempt timed out",
        _ => "no attempt completed",
    };
}
