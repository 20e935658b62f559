// What /readyz answers: ready while this member owns partitions and keeps moving.
// "Stuck" is either the consume loop not turning (a rebalance handler or the broker
// holding it) or records in flight with none finishing (the destination not taking
// them); both for longer than --stuck-after.
using Replay.Host.Replay;

namespace Replay.Host.Operating;

public static class Readiness
{
    /// <summary>Null when ready; otherwise why not, in words an operator can act on.</summary>
    public static string? Problem(ReplayConsumer consumer, TimeSpan stuckAfter)
    {
        if (!consumer.Observer.IsRunning) return "not consuming: the replay has not started or has stopped";
        if (consumer.Observer.AssignedCount == 0) return "no partitions assigned: waiting for the consumer group (or more members than partitions)";
        if (consumer.Observer.Held is { } held) return $"{held} (--max-dead-letter-ratio); consuming resumes for a probe after the pause";
        if (consumer.Observer.SinceLastTurn > stuckAfter)
            return $"stuck: the consume loop has not turned for {consumer.Observer.SinceLastTurn.TotalSeconds:F0} s (rebalance or broker trouble)";
        if (consumer.Observer.InFlight > 0 && consumer.Observer.SinceLastProgress > stuckAfter)
            return $"stuck: {consumer.Observer.InFlight} records in flight and none finished for {consumer.Observer.SinceLastProgress.TotalSeconds:F0} s (is the destination answering?)";
        return null;
    }
}
