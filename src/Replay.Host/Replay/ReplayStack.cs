// The one composition root of a replay's sending side, for `run` and `redrive`
// alike: the per-record decision (pipeline, router, entropy), the HTTP sender (with
// the TLS watch) and the delivery service around the core engine.
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

    public DeliveryService Delivery { get; }

    /// <param name="finished">Told of each finished job (under the engine's lock: hand it on).</param>
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
        HttpMessageHandler handler = services.Handler is { } given
            ? new PassThroughHandler(given)
            : HttpSender.CreateHandler(delivery.Concurrency.Most, services.Proxy, services.Tls);
        var sender = new HttpSender(new Security.TlsFailureWatch(handler, services.Tls, tlsFailure), delivery.RequestTimeout,
            PlainHttp.For(services.Handler, services.Proxy));
        Delivery = new DeliveryService(delivery, giveUpOnDeadLetters, sender, services.DeadLetters, stats, finished, fatal,
            services.Log.WriteLine);
        Sender = sender;
    }

    HttpSender Sender { get; }

    /// <summary>The whole per-record decision, with the router in force now.</summary>
    public Pipeline.Decision Decide(Record record) =>
        Pipeline.decide(_settings.Pipeline, _services.Router().Route, _entropy, record);

    public void Dispose()
    {
        Delivery.Dispose();
        Sender.Dispose();
    }

    /// <summary>Wraps a caller-owned handler so that disposing the sender leaves it alive.</summary>
    sealed class PassThroughHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override void Dispose(bool disposing) { }
    }
}
