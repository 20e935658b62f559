// Sends requests concurrently while keeping Kafka order per document: every
// ordering key (document id) has at most one lane, a lane sends its requests one
// after another, and lanes run in parallel up to the concurrency limit. A permit is
// held only for the duration of one attempt, never while backing off, so a failing
// id cannot starve the others. Retries are Polly's; what is retryable and how long
// to wait come from the core.
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

public sealed class DeliveryEngine
{
    readonly HttpSender _sender;
    readonly DeliveryOptions _options;
    readonly Action<Job> _finished;
    readonly ReplayStats _stats;
    readonly SemaphoreSlim _permits;
    readonly Dictionary<string, Queue<Job>> _lanes = new(StringComparer.Ordinal);
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
                    args.Outcome.Result is { } attempt && classify(attempt).IsRetry),
                DelayGenerator = args =>
                {
                    var retryAfter = args.Outcome.Result is { } a && classify(a) is Verdict.Retry r
                        ? r.retryAfter
                        : FSharpOption<TimeSpan>.None;
                    var wait = backoff(options.RetryBaseDelay, options.RetryMaxDelay, args.AttemptNumber, Random.Shared.NextDouble(), retryAfter);
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
            if (_lanes.TryGetValue(key, out var lane))
            {
                lane.Enqueue(job);
                return;
            }
            _lanes[key] = new Queue<Job>();
        }
        _ = RunLaneAsync(key, job);
    }

    async Task RunLaneAsync(string key, Job first)
    {
        // Off the consume thread at once: that one thread feeds every lane, so the work of
        // sending must not be done on it (measured: it became the bottleneck at ~17k records/s).
        await Task.Yield();
        var job = first;
        while (true)
        {
            await DeliverAsync(job).ConfigureAwait(false);
            Interlocked.Decrement(ref _inFlight);
            _finished(job);
            lock (_lanes)
            {
                var lane = _lanes[key];
                if (!lane.TryDequeue(out var next))
                {
                    _lanes.Remove(key);
                    return;
                }
                job = next!;
            }
        }
    }

    /// <summary>The first attempt runs on its own; only an attempt worth retrying enters
    /// the retry pipeline, which is handed that failed attempt as its first outcome so
    /// that Polly waits its backoff before the next one.</summary>
    async Task DeliverAsync(Job job)
    {
        try
        {
            var first = await AttemptAsync(job, _abandon).ConfigureAwait(false);
            if (classify(first).IsRetry)
            {
                job.Pending = first;
                using var giveUp = _options.MaxRetryDuration is null ? null : CancellationTokenSource.CreateLinkedTokenSource(_abandon);
                if (_options.MaxRetryDuration is { } limit) giveUp!.CancelAfter(limit);
                await _retry.ExecuteAsync(
                    static (state, token) => state.Engine.RetryAsync(state.Job, token),
                    (Engine: this, Job: job),
                    giveUp?.Token ?? _abandon).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_abandon.IsCancellationRequested)
        {
            job.Result = JobResult.Abandoned;
            return;
        }
        catch (OperationCanceledException)
        {
            // --max-retry-duration ran out: the last attempt's verdict decides below.
        }
        Conclude(job, job.LastAttempt);
    }

    ValueTask<Attempt> RetryAsync(Job job, CancellationToken token)
    {
        if (job.Pending is { } pending)
        {
            job.Pending = null;
            return ValueTask.FromResult(pending);
        }
        return new ValueTask<Attempt>(AttemptAsync(job, token));
    }

    async Task<Attempt> AttemptAsync(Job job, CancellationToken token)
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
            if (_warn is not null && classify(attempt).IsRetry) WarnRetrying(job.Request, attempt);
            return attempt;
        }
        finally { _permits.Release(); }
    }

    static void Conclude(Job job, Attempt? last)
    {
        if (last is Attempt.Answered answered) job.LastStatus = answered.status;
        var verdict = last is null ? null : classify(last);
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
        Attempt.Answered a => $"last answer {a.status}",
        Attempt.Unreachable u => $"unreachable: {u.detail}",
        { IsTimedOut: true } => "last attempt timed out",
        _ => "no attempt completed",
    };
}
