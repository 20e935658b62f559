// The responses log in Prometheus: lines written, dropped because writing could not
// keep up, and unwritable (a full disk, a topic that does not acknowledge). Read from
// the log's counters just before each scrape, so logging pays nothing for metrics.
using Prometheus;
using Replay.Host.Delivery;

namespace Replay.Host.Operating;

public static class ResponsesMetrics
{
    /// <summary>Adds replay_responses_log_lines_total{outcome} to <paramref name="registry"/>.</summary>
    public static void Register(CollectorRegistry registry, ExchangeLog log)
    {
        var lines = Metrics.WithCustomRegistry(registry).CreateCounter(
            "replay_responses_log_lines_total",
            "Exchanges for the responses log (--responses, --responses-topic) by outcome: written, dropped (the queue was full: writing could not keep up), unwritable (the file or topic failed). Delivery never waits for them.",
            "outcome");
        registry.AddBeforeCollectCallback(() =>
        {
            lines.WithLabels("written").IncTo(log.Written);
            lines.WithLabels("dropped").IncTo(log.Dropped);
            lines.WithLabels("unwritable").IncTo(log.Unwritable);
        });
    }
}
