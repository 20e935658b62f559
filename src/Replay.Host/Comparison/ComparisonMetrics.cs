// The comparison's counts in Prometheus, per route: records compared, equal,
// different, noisy and failed. Gauges rather than counters, because a record's
// verdict between different and noisy can change when its route later turns out to
// be noisy on a path (ComparisonTally sorts them over the whole run). Read from the
// report just before each scrape, so comparing pays nothing for metrics.
using Prometheus;

namespace Replay.Host.Comparison;

public static class ComparisonMetrics
{
    /// <summary>Adds replay_compare_records{route, outcome} to <paramref name="registry"/>.</summary>
    public static void Register(CollectorRegistry registry, ComparisonReport report)
    {
        var records = Metrics.WithCustomRegistry(registry).CreateGauge(
            "replay_compare_records",
            "Records by route and comparison outcome: compared (= equal + different + noisy), equal, different, noisy, failed (could not be compared).",
            "route", "outcome");
        registry.AddBeforeCollectCallback(() =>
        {
            foreach (var r in report.Routes())
            {
                records.WithLabels(r.Route, "compared").Set(r.Compared);
                records.WithLabels(r.Route, "equal").Set(r.Equal);
                records.WithLabels(r.Route, "different").Set(r.Different);
                records.WithLabels(r.Route, "noisy").Set(r.Noisy);
                records.WithLabels(r.Route, "failed").Set(r.Failed);
            }
        });
    }
}
