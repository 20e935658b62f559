// Counters the rules engine bumps when it reloads a rules file, read by the metrics
// endpoint. Static because there is one rules file per process and the engine should
// not need the metrics layer to be wired in to count.
namespace Replay.Host.Operating;

public static class RuleMetrics
{
    static long _reloads, _reloadErrors;

    /// <summary>Rules reloaded successfully (the first load not counted).</summary>
    public static long Reloads => Interlocked.Read(ref _reloads);
    /// <summary>Reloads that failed; the previous rules stay in force.</summary>
    public static long ReloadErrors => Interlocked.Read(ref _reloadErrors);

    public static void Reloaded() => Interlocked.Increment(ref _reloads);
    public static void ReloadFailed() => Interlocked.Increment(ref _reloadErrors);
}
