// Carries out the core delivery engine's decisions (Replay.Core.DeliveryEngine): a
// fixed pool of workers sends the jobs the engine makes ready, timers end backoffs,
// one writer stores dead letters, and every outcome goes back to the engine under
// one lock. The engine decides what is sent, retried, dead-lettered or abandoned;
// nothing here does. A worker never waits out a backoff, so a failing id holds no
// worker, and a worker that meets an unexpected exception reports it as a failed
// attempt of that record rather than leaving the record stranded.
//
// How many attempts are on the wire at once: with --concurrency N, N workers, each sending one
// job at a time. With --concurrency auto, --max-concurrency workers behind a gate whose size the
// core's ConcurrencyLimit sets from each attempt's round trip and answer. Retries and backoffs
// stay the engine's either way: the gate only decides how many attempts go out together.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using System.Threading.RateLimiting;
using Replay.Core;
using static Replay.Core.Outcome;

namespace Replay.Host.Delivery;

public sealed partial class DeliveryService : IDeliveryEffects, IDisposable
{
    readonly DeliveryEngine _engine;
    /// <summary>The lock of every engine of the run: a lease's state and counts are shared by them.</summary>
    readonly Lock _gate;
    readonly HttpSender _sender;
    readonly IDeadLetterSink _deadLetters;
    readonly ReplayStats _stats;
    readonly Action<Job> _finished;
    readonly Action<string> _fatal;
    readonly Action<string> _log;
    /// <summary>Jobs the engine made ready; touched only under the lock.</summary>
    readonly ReadyJobs _ready = new();
    readonly Channel<Job> _toWrite = Channel.CreateUnbounded<Job>(new UnboundedChannelOptions { SingleReader = true });
    readonly CancellationTokenSource _disposed = new();
    readonly RateLimiter? _rate;
    readonly ConcurrencyGate? _wire;
    readonly int _fixedConcurrency;
    readonly Throttled _retrying = new(TimeSpan.FromSeconds(10));
    readonly Throttled _unwritable = new(TimeSpan.FromSeconds(10));
    readonly Throttled _bugs = new(TimeSpan.FromSeconds(10));
    /// <summary>--responses: told of each attempt; null without it.</summary>
    readonly ExchangeLog? _exchanges;

    /// <param name="gate">The lock shared by every destination's engine of the run.</param>
    /// <param name="finished">Told of every finished job, under the engine's lock: must only hand it on.</param>
    /// <param name="fatal">Told once the run cannot go on (dead letters unwritable past the limit, a bug in the engine).</param>
    /// <param name="exchanges">The responses log, told of every attempt; null: none.</param>
    public DeliveryService(Lock gate, DestinationStats destination, DeliverySettings settings, TimeSpan? giveUpOnDeadLetters,
        HttpSender sender, IDeadLetterSink deadLetters, ReplayStats stats, Action<Job> finished, Action<string> fatal, Action<string> log,
        ExchangeLog? exchanges = null)
    {
        _exchanges = exchanges;
        _gate = gate;
        Destination = destination;
        _sender = sender;
        _deadLetters = deadLetters;
        _stats = stats;
        _finished = finished;
        _fatal = fatal;
        _log = log;
        _engine = new DeliveryEngine(settings.Retry,
            giveUpOnDeadLetters is { } limit ? Microsoft.FSharp.Core.FSharpOption<TimeSpan>.Some(limit) : null, this);
        _fixedConcurrency = settings.Concurrency.Most;
        _rate = settings.MaxRate is { } rate ? BuildRateLimiter(rate.Value) : null;
        if (settings.Concurrency is Concurrency.Adaptive adaptive)
        {
            var wire = _wire = new ConcurrencyGate(adaptive.Item);
            for (var i = 0; i < adaptive.Item.Max; i++) _ = Task.Run(() => WorkGatedAsync(wire));
        }
        else
            for (var i = 0; i < settings.Concurrency.Most; i++) _ = Task.Run(WorkAsync);
        new Thread(WriteDeadLetters) { IsBackground = true, Name = "dead letters" }.Start();
    }

    public DestinationStats Destination { get; }

    /// <summary>The core engine this service carries out; touch it only under <see cref="Gate"/>.</summary>
    public DeliveryEngine Engine => _engine;

    public Lock Gate => _gate;

    /// <summary>Records handed in and not finished.</summary>
    public int InFlight => _engine.InFlight;

    public long InFlightBytes => _engine.InFlightBytes;

    /// <summary>Attempts allowed on the wire at once now: the adaptive limit, or the fixed concurrency.</summary>
    public int WireLimit => _wire?.Limit ?? _fixedConcurrency;

    /// <summary>True when the limit adapts (--concurrency auto).</summary>
    public bool AdaptsConcurrency => _wire is not null;

    /// <summary>Fences a revoked partition: its waiting work is abandoned now. Returns the jobs still on the wire.</summary>
    public int Revoke(Lease lease) { lock (_gate) return _engine.Revoke(lease); }

    /// <summary>The partition is gone: nothing of it is sent or counted any more.</summary>
    public void Release(Lease lease) { lock (_gate) _engine.Release(lease); }

    /// <summary>Gives up on everything that is not finished (shutdown past its timeout).</summary>
    public void Stop() { lock (_gate) _engine.Stop(); }

    /// <summary>One attempt; never throws. An unexpected exception is a failed attempt (retried,
    /// and a dead letter if it persists while others succeed), logged with its record.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    async ValueTask<Attempt> AttemptAsync(Job job)
    {
        var abort = ((RecordRef)job.Source).Abort;
        // Under --concurrency auto, the gate hears of every attempt that went on the wire; an
        // attempt that ends in an exception (abandoned, a bug) says nothing about the destination.
        var gate = _wire;
        var onWire = false;
        try
        {
            using var lease = _rate is null ? null : await _rate.AcquireAsync(1, abort).ConfigureAwait(false);
            // A record the responses log samples keeps a body excerpt even of a 2xx.
            var logged = _exchanges?.Chooses(job) ?? false;
            var started = Stopwatch.GetTimestamp();
            if (gate is not null)
            {
                gate.Started();
                onWire = true;
            }
            var attempt = await _sender.SendAsync(job.Request, logged, abort).ConfigureAwait(false);
            var elapsed = Stopwatch.GetElapsedTime(started);
            if (onWire)
            {
                onWire = false;
                gate!.Finished(global::Replay.Core.ConcurrencyLimit.signal(attempt, elapsed));
            }
            _stats.Latency.Record(elapsed);
            _stats.Answered(Destination.Name, job.Request, attempt, elapsed);
            _exchanges?.Attempted(Destination.Name, job, attempt, elapsed, logged);
            return attempt;
        }
        catch (OperationCanceledException) when (abort.IsCancellationRequested)
        {
            return Attempt.NewUnreachable("abandoned: the partition was revoked or the run stopped");
        }
        catch (Exception e)
        {
            if (_bugs.Due()) _log($"delivery: unexpected failure sending {job}: {e}");
            return Attempt.NewUnreachable($"internal error: {e.GetType().Name}: {e.Message}");
        }
        finally
        {
            if (onWire) gate!.Finished(global::Replay.Core.ConcurrencyLimit.Signal.Silent);
        }
    }

    /// <summary>The dead-letter writer: one thread, since a write blocks until it is durable.</summary>
    void WriteDeadLetters()
    {
        var reader = _toWrite.Reader;
        try
        {
            while (reader.WaitToReadAsync(_disposed.Token).AsTask().GetAwaiter().GetResult())
                while (reader.TryRead(out var job))
                {
                    bool written;
                    try
                    {
                        _deadLetters.Write(Letters.Of(job, Destination.Name));
                        written = true;
                    }
                    catch (Exception e)
                    {
                        written = false;
                        _stats.DeadLetterWriteFailed();
                        if (_unwritable.Due())
                            _log($"dead letters cannot be written ({e.Message}); record {job} and those after it stay uncommitted, " +
                                 "and writing is tried again with backoff");
                    }
                    try
                    {
                        lock (_gate)
                        {
                            if (written) _engine.DeadLetterWritten(job);
                            else _engine.DeadLetterFailed(job, Environment.TickCount64, Random.Shared.NextDouble());
                        }
                    }
                    catch (Exception e) { _fatal($"internal error after the dead letter of {job}: {e}"); }
                }
        }
        catch (OperationCanceledException) when (_disposed.IsCancellationRequested) { }
    }

    /// <summary>Runs <paramref name="then"/> under the engine's lock after <paramref name="wait"/>
    /// (at most a day: the core bounds every wait).</summary>
    void After(TimeSpan wait, Job job, Action<DeliveryEngine, Job> then) =>
        Task.Delay(wait, _disposed.Token).ContinueWith((delay, state) =>
        {
            if (delay.IsCanceled) return;
            var (self, job, then) = ((DeliveryService, Job, Action<DeliveryEngine, Job>))state!;
            try
            {
                lock (self._gate) then(self._engine, job);
            }
            catch (Exception e) { self._fatal($"internal error after a backoff of {job}: {e}"); }
        }, (this, job, then), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);

    void IDeliveryEffects.Ready(Job job) => _ready.Add(job);

    void IDeliveryEffects.Backoff(Job job, TimeSpan wait)
    {
        _stats.Retry();
        After(wait, job, static (engine, j) => engine.Due(j));
    }

    void IDeliveryEffects.WriteDeadLetter(Job job) => _toWrite.Writer.TryWrite(job);

    void IDeliveryEffects.DeadLetterBackoff(Job job, TimeSpan wait) => After(wait, job, static (engine, j) => engine.DeadLetterDue(j));

    void IDeliveryEffects.Finished(Job job)
    {
        switch (job.Conclusion)
        {
            case Conclusion.Delivered: Destination.Send(); break;
            case Conclusion.Dropped: Destination.Drop(); break;
            case Conclusion.DeadLettered: Destination.DeadLetter(); break;
            case Conclusion.Abandoned: Destination.Abandon(); break;
        }
        _finished(job);
    }

    void IDeliveryEffects.Fatal(string reason) => _fatal(reason);

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

    /// <summary>Stops the workers, the timers and the writer; jobs not finished stay so (uncommitted).</summary>
    public void Dispose()
    {
        _disposed.Cancel();
        lock (_gate) _ready.Close();
        _toWrite.Writer.TryComplete();
        _rate?.Dispose();
    }

    /// <summary>At most one log line per interval for a condition that may repeat per record.</summary>
    sealed class Throttled(TimeSpan every)
    {
        long _last = long.MinValue / 2;

        public bool Due()
        {
            var now = Environment.TickCount64;
            var last = Interlocked.Read(ref _last);
            return now - last >= (long)every.TotalMilliseconds && Interlocked.CompareExchange(ref _last, now, last) == last;
        }
    }
}
