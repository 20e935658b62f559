// The one composition root of a replay's sending side, for `run` and `redrive`
// alike: the per-record decision (pipeline, router, entropy), and for each of the
// run's destinations an HTTP sender (with the TLS watch) and a delivery service around
// its own core engine. The engines share one lock: a partition's lease is theirs together.
using Microsoft.FSharp.Core;
using Replay.Core;
using Replay.Host.Delivery;

namespace Replay.Host.Replay;

public sealed class ReplayStack : IDisposable
{
    readonly RunSettings _settings;
    readonly ReplayServices _services;
    readonly Pipeline.Entropy _entropy = new(
        FuncConvert.FromFunc(() => Guid.NewGuid().ToString()),
        FuncConvert.FromFunc(() => Random.Shared.NextDouble()));
    readonly Lock _gate = new();
    readonly HttpSender[] _senders;
    readonly DeliveryEngine[] _engines;
    readonly bool[] _bestEffort;
    readonly Consuming.ICounters _counters;

    /// <summary>One per destination of the run, in the order of RunSettings.Destinations.</summary>
    public DeliveryService[] Deliveries { get; }

    /// <param name="finished">Told of each finished job (under the engines' lock: hand it on).</param>
    /// <param name="tlsFailure">Told when a TLS setting cannot work: no retry can succeed.</param>
    /// <param name="fatal">Told when the run cannot go on otherwise: dead letters that cannot be
    /// written past the limit, a bug in the engine.</param>
    /// <param name="giveUpOnDeadLetters">How long dead letters may stay unwritable before the run
    /// stops (one-off runs); null: retry for as long as the run lasts.</param>
    public ReplayStack(RunSettings settings, ReplayServices services, ReplayStats stats, Action<Job> finished,
        Action<string> tlsFailure, Action<string> fatal, TimeSpan? giveUpOnDeadLetters)
    {
        _settings = settings;
        _services = services;
        var delivery = settings.Delivery;
        var destinations = settings.Destinations.ToArray();
        _senders = new HttpSender[destinations.Length];
        Deliveries = new DeliveryService[destinations.Length];
        for (var i = 0; i < destinations.Length; i++)
        {
            HttpMessageHandler handler = services.Handler is { } given
                ? new PassThroughHandler(given)
                : HttpSender.CreateHandler(delivery.Concurrency.Most, services.Proxy, services.Tls);
            _senders[i] = new HttpSender(new Security.TlsFailureWatch(handler, services.Tls, tlsFailure), delivery.RequestTimeout,
                PlainHttp.For(services.Handler, services.Proxy, delivery.Pipelining, delivery.Concurrency.Most), services.Capture, services.Tokens);
            var destination = stats.AddDestination(destinations[i].Name, destinations[i].BestEffort);
            Deliveries[i] = new DeliveryService(_gate, destination, delivery, giveUpOnDeadLetters, _senders[i], services.DeadLetters, stats,
                finished, fatal, services.Log.WriteLine, services.Exchanges);
        }
        _engines = Deliveries.Select(d => d.Engine).ToArray();
        _bestEffort = destinations.Select(d => d.BestEffort).ToArray();
        _counters = new Counters(stats, Deliveries);
    }

    /// <summary>The whole per-record decision, with the router in force now.</summary>
    public Pipeline.Decision Decide(Record record) =>
        Pipeline.decide(_settings.Pipeline, _services.Router().Route, _entropy, record);

    /// <summary>Hands a decided record to the engines (Consuming.take) and counts it; true when it
    /// finishes later, through the engines (false: skipped, finished now).</summary>
    public bool Take(Lease lease, long offset, long bytes, Pipeline.Decision decision, RecordRef source)
    {
        Consuming.Taken taken;
        lock (_gate) taken = Consuming.take(_engines, _bestEffort, _settings.Budget, lease, offset, bytes, decision, source);
        return Consuming.count(_counters, taken);
    }

    /// <summary>Where taken records are counted: skips and decode errors for the run, sheds per destination.</summary>
    sealed class Counters(ReplayStats stats, DeliveryService[] deliveries) : Consuming.ICounters
    {
        public void Skipped(Pipeline.SkipKind kind, string? rule) => stats.Skip(kind, rule);
        public void Undecodable() => stats.DecodeError();
        public void Shed(int destination) => deliveries[destination].Destination.ShedOne();
    }

    /// <summary>Records in flight at the fullest required destination: what the budget judges.</summary>
    public (int Records, long Bytes) Load()
    {
        int records = 0;
        long bytes = 0;
        for (var i = 0; i < Deliveries.Length; i++)
        {
            if (_bestEffort[i]) continue;
            records = Math.Max(records, Deliveries[i].InFlight);
            bytes = Math.Max(bytes, Deliveries[i].InFlightBytes);
        }
        return (records, bytes);
    }

    /// <summary>Unfinished copies at the destinations that hold records (best-effort ones never do).</summary>
    public int RequiredInFlight
    {
        get
        {
            var sum = 0;
            for (var i = 0; i < Deliveries.Length; i++)
                if (!_bestEffort[i]) sum += Deliveries[i].InFlight;
            return sum;
        }
    }

    /// <summary>Every unfinished job of the run, every destination.</summary>
    public int InFlight
    {
        get
        {
            var sum = 0;
            foreach (var d in Deliveries) sum += d.InFlight;
            return sum;
        }
    }

    public long InFlightBytes
    {
        get
        {
            var sum = 0L;
            foreach (var d in Deliveries) sum += d.InFlightBytes;
            return sum;
        }
    }

    /// <summary>Fences a revoked partition at every destination.</summary>
    public void Revoke(Lease lease) { foreach (var d in Deliveries) d.Revoke(lease); }

    public void Release(Lease lease) { foreach (var d in Deliveries) d.Release(lease); }

    /// <summary>Every job of the lease is finished, at every destination.</summary>
    public bool IsSettled(Lease lease) { lock (_gate) return lease.Unfinished == 0; }

    public void Stop() { foreach (var d in Deliveries) d.Stop(); }

    public void Dispose()
    {
        foreach (var d in Deliveries) d.Dispose();
        foreach (var s in _senders) s.Dispose();
    }

    /// <summary>Wraps a caller-owned handler so that disposing the sender leaves it alive.</summary>
    sealed class PassThroughHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override void Dispose(bool disposing) { }
    }
}
