// Counters the rules engine bumps when it reloads a rules file, read by the metrics
// endpoint. Static because there is one rules file per process and the engine should
// not need the metrics layer to be wired in to count.
namespace Replay.Host.Operating;

public static class RuleMetrics
{
    static long _reloads, _reloadErrors, _rollbacks;
    static readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _failures = new(StringComparer.Ordinal);

    /// <summary>Rules reloaded successfully (the first load not counted).</summary>
    public static long Reloads => Interlocked.Read(ref _reloads);
    /// <summary>Reloads that failed; the previous rules stay in force.</summary>
    public static long ReloadErrors => Interlocked.Read(ref _reloadErrors);

    /// <summary>New generations rolled back because their rules failed on too many records.</summary>
    public static long Rollbacks => Interlocked.Read(ref _rollbacks);
    /// <summary>Records a rule's code failed on (threw or gave an unusable value), per rule.</summary>
    public static IReadOnlyDictionary<string, long> FailuresByRule => _failures;

    public static void Reloaded() => Interlocked.Increment(ref _reloads);
    public static void RolledBack() => Interlocked.Increment(ref _rollbacks);
    public static void RuleFailed(string rule) => _failures.AddOrUpdate(rule, 1, static (_, n) => n + 1);
    public static void ReloadFailed() => Interlocked.Increment(ref _reloadErrors);
}
