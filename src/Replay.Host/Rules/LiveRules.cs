// The rules in force during a run, reloaded when the file changes. A watcher (with
// a slow poll as a safety net for missed events) wakes a background worker, which
// lets the editor's writes settle, compiles the new text off the consume thread
// and swaps the whole generation in with one reference write. The consumer reads
// the router once per record, so every record is routed by exactly one generation,
// consuming never pauses, and nothing is lost or sent twice by a swap. A broken
// edit keeps the running generation and logs the diagnostics; the replaced
// generation's code is unloaded. Records on which a rule throws are counted here,
// including those whose `body:` fails later, when the pipeline runs it.
//
// A reload that compiles may still fail on the records it meets: for its first minute a new
// generation is on probation, the one it replaced stays loaded, and when the core
// (RulesProbation) says its rules fail on clearly more records than that one's did, the
// previous generation is put back — logged, counted — and the file is not loaded again
// until it changes.
using System.Collections.Concurrent;
using Microsoft.FSharp.Core;
using Replay.Core;
using Replay.Host.Replay;
using Envelope = Replay.Core.Envelope.Envelope;

namespace Replay.Host.Rules;

public sealed class LiveRules : IDisposable
{
    /// <summary>How long a file must stay quiet after a change before it is compiled:
    /// editors save in several writes, and one save should make one generation.</summary>
    static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(100);
    /// <summary>File events can be missed (inotify limits, network file systems); a
    /// cheap stat on this interval catches what they miss.</summary>
    static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(2);

    /// <summary>When a new generation is rolled back (the core's RulesProbation.defaults unless a test says otherwise).</summary>
    public RulesProbation.Settings Probation { get; }

    readonly string _path;
    readonly RuleBase _flags;
    readonly TextWriter _log;
    readonly object _reloadGate = new();
    readonly object _attemptGate = new();
    readonly ConcurrentDictionary<string, long> _failuresByRule = new(StringComparer.Ordinal);
    readonly SemaphoreSlim _changed = new(0);
    readonly CancellationTokenSource _stop = new();
    volatile ActiveGeneration _active;
    string _lastText;
    volatile FileStamp _stamp;
    IReadOnlyList<RuleDiagnostic> _lastErrors = [];
    int _attempts;
    int _rollbacks;
    /// <summary>The highest generation number given so far: numbers are never reused, a rolled-back one's neither.</summary>
    int _highest;
    long _failures;
    FileSystemWatcher? _watcher;
    Timer? _poll;
    /// <summary>Judges the generation on probation once its window is over, so that the previous one
    /// is let go even when no record comes to ask.</summary>
    Timer? _probationEnd;
    Task? _worker;

    LiveRules(string path, RuleBase flags, TextWriter log, RuleGeneration first, string text, RulesProbation.Settings probation)
    {
        Probation = probation;
        _path = path;
        _flags = flags;
        _log = log;
        _lastText = text;
        _stamp = Stamp();
        _highest = first.Number;
        _active = Wrap(first, fallback: null);
    }

    /// <summary>Loads the file as generation 1 and, with <paramref name="watch"/>, follows its changes.</summary>
    public static Result<LiveRules> Start(string path, RuleBase flags, TextWriter log, bool watch = true, RulesProbation.Settings? probation = null)
    {
        var (text, unreadable) = RulesLoader.Read(path);
        if (text is null) return Result<LiveRules>.Fail(unreadable!.Message);
        var (generation, diagnostics) = RulesLoader.FromText(path, text, flags, 1);
        if (generation is null)
            return Result<LiveRules>.Fail($"the rules file has errors:\n  {string.Join("\n  ", diagnostics)}");
        foreach (var warning in diagnostics) log.WriteLine($"rules: {warning}");
        // The run's destinations are fixed from here on: later generations are held to them.
        var live = new LiveRules(path, flags with { Destinations = generation.Destinations }, log, generation, text, probation ?? RulesProbation.defaults);
        live.LogLoaded(generation);
        if (watch) live.Watch();
        return Result<LiveRules>.Ok(live);
    }

    /// <summary>How many destinations the run has: fixed by --dest or by the first generation's `defaults: dest:`.</summary>
    public int Destinations => _flags.Destinations;

    /// <summary>The router of the generation in force; read it once per record.</summary>
    public FSharpRouter Router() => _active.Router;
    public RuleGeneration Current => _active.Generation;
    /// <summary>The number of the generation in force: 1 at start, +1 per successful reload.</summary>
    public int Generation => _active.Generation.Number;
    /// <summary>Reloads tried since the start, successful or not.</summary>
    public int Attempts => Volatile.Read(ref _attempts);
    /// <summary>The diagnostics of the last failed reload (empty after a successful one).</summary>
    public IReadOnlyList<RuleDiagnostic> LastErrors => Volatile.Read(ref _lastErrors);
    /// <summary>New generations rolled back because their rules failed on too many records.</summary>
    public int Rollbacks => Volatile.Read(ref _rollbacks);
    /// <summary>True while the generation in force is on probation (the previous one kept to go back to).</summary>
    public bool OnProbation => _active.Fallback is not null;
    /// <summary>Records dead-lettered because a rule's code threw or gave an unusable value.</summary>
    public long Failures => Interlocked.Read(ref _failures);
    public IReadOnlyDictionary<string, long> FailuresByRule => _failuresByRule;

    /// <summary>Reads and compiles the file now and swaps the result in; a file that fails
    /// keeps the generation in force. With <paramref name="force"/> unchanged text is
    /// compiled again too. Returns true when a new generation is in force.</summary>
    public bool Reload(bool force = true)
    {
        lock (_reloadGate)
        {
            _stamp = Stamp();
            var (text, unreadable) = RulesLoader.Read(_path);
            if (!force && text == _lastText) return false;
            var next = _highest + 1;
            var (generation, diagnostics) = text is null
                ? (null, [unreadable!])
                : RulesLoader.FromText(_path, text, _flags, next);
            _lastText = text ?? _lastText;
            if (generation is null)
            {
                Volatile.Write(ref _lastErrors, diagnostics);
                _log.WriteLine($"rules: {_path} not reloaded; generation {_active.Generation.Number} stays in force:\n  {string.Join("\n  ", diagnostics)}");
                Operating.RuleMetrics.ReloadFailed();
                Attempted();
                return false;
            }
            foreach (var warning in diagnostics) _log.WriteLine($"rules: {warning}");
            _highest = generation.Number;
            var previous = _active;
            // What the new generation falls back to: the last one that passed its probation.
            // One that is still on probation itself is dropped; it never proved itself.
            var fallback = previous.Fallback ?? previous;
            var active = _active = Wrap(generation, fallback);
            if (!ReferenceEquals(fallback, previous)) previous.Generation.Unload();
            _probationEnd?.Dispose();
            _probationEnd = new Timer(_ =>
            {
                try { Judge(active); }
                catch (Exception e) { _log.WriteLine($"rules: judging generation {active.Generation.Number} failed unexpectedly ({e.GetType().Name}: {e.Message})"); }
            }, null, TimeSpan.FromMilliseconds(Probation.WindowMs + 100), Timeout.InfiniteTimeSpan);
            Volatile.Write(ref _lastErrors, []);
            LogLoaded(generation);
            Operating.RuleMetrics.Reloaded();
            Attempted();
            return true;
        }
    }

    void Attempted()
    {
        lock (_attemptGate)
        {
            _attempts++;
            Monitor.PulseAll(_attemptGate);
        }
    }

    /// <summary>Waits until at least <paramref name="count"/> reloads were tried since the
    /// start; false when <paramref name="timeout"/> passes first.</summary>
    public bool WaitForAttempts(int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        lock (_attemptGate)
        {
            while (_attempts < count)
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero || !Monitor.Wait(_attemptGate, left)) return _attempts >= count;
            }
            return true;
        }
    }

    void LogLoaded(RuleGeneration generation) =>
        _log.WriteLine($"rules: generation {generation.Number} in force: {generation.RuleCount} rule{(generation.RuleCount == 1 ? "" : "s")} "
            + $"from {_path} (compiled in {generation.CompileTime.TotalMilliseconds:0} ms)");

    ActiveGeneration Wrap(RuleGeneration generation, ActiveGeneration? fallback) =>
        new(generation, fallback, Count, Judge);

    void Count(ActiveGeneration active, string rule, string message, Record record)
    {
        Interlocked.Increment(ref _failures);
        _failuresByRule.AddOrUpdate(rule, 1, (_, n) => n + 1);
        Operating.RuleMetrics.RuleFailed(rule);
        // One line per rule and generation: a rule failing on every record must not flood the log.
        if (active.Reported.TryAdd(rule, true))
            _log.WriteLine($"rules: rule '{rule}' (generation {active.Generation.Number}) failed on {RecordModule.replayId(record)}: "
                + $"{message}; such records are dead-lettered and counted (further failures of this rule are not logged)");
    }

    /// <summary>Asks the core whether a generation on probation stays, and carries out its answer.
    /// Called on the consume thread: it never waits for a reload that is compiling (that reload
    /// replaces the generation anyway), the next record asks again.</summary>
    void Judge(ActiveGeneration active)
    {
        if (active.Fallback is not { } fallback) return;
        var verdict = RulesProbation.judge(Probation, fallback.Counts, active.Counts, Environment.TickCount64 - active.Since);
        if (verdict == RulesProbation.Verdict.OnProbation || !Monitor.TryEnter(_reloadGate)) return;
        try
        {
            if (!ReferenceEquals(_active, active) || !ReferenceEquals(active.Fallback, fallback)) return;
            if (verdict == RulesProbation.Verdict.Passed)
            {
                active.Fallback = null;
                fallback.Generation.Unload();
                return;
            }
            RollBack(active, fallback);
        }
        finally { Monitor.Exit(_reloadGate); }
    }

    /// <summary>Puts <paramref name="fallback"/> back in force in place of <paramref name="failing"/>.
    /// The file's text stays the last one read, so it is not loaded again until it changes.</summary>
    void RollBack(ActiveGeneration failing, ActiveGeneration fallback)
    {
        _active = fallback;
        failing.Fallback = null;
        failing.Generation.Unload();
        Interlocked.Increment(ref _rollbacks);
        Operating.RuleMetrics.RolledBack();
        var counts = failing.Counts;
        var seconds = (Environment.TickCount64 - failing.Since) / 1000.0;
        _log.WriteLine($"rules: generation {failing.Generation.Number} rolled back after {seconds:0.#} s: its rules failed on {counts.Failed} of "
            + $"{counts.Routed} records ({100 * RulesProbation.ratio(counts):0.#}%; generation {fallback.Generation.Number} failed on "
            + $"{100 * RulesProbation.ratio(fallback.Counts):0.#}%); generation {fallback.Generation.Number} is in force again. Those records are dead "
            + $"letters (reason rule_error), to redrive once fixed; fix {_path} and save it to try again (it is not reloaded until it changes)");
    }

    /// <summary>A one-line account for the end of a run.</summary>
    public string Summary()
    {
        var byRule = _failuresByRule.IsEmpty ? "" : " (" + string.Join(", ", _failuresByRule.OrderBy(kv => kv.Key).Select(kv => $"'{kv.Key}': {kv.Value}")) + ")";
        var rolledBack = Rollbacks == 0 ? "" : $", {Rollbacks} rolled back";
        return $"rules: generation {Generation} in force, {Attempts} reload{(Attempts == 1 ? "" : "s")} tried{rolledBack}, {Failures} record{(Failures == 1 ? "" : "s")} failed in rules{byRule}";
    }

    void Watch()
    {
        var full = Path.GetFullPath(_path);
        _worker = Task.Run(WorkAsync);
        try
        {
            _watcher = new FileSystemWatcher(Path.GetDirectoryName(full)!, Path.GetFileName(full))
            {
                NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
            };
            _watcher.Changed += (_, _) => Poke();
            _watcher.Created += (_, _) => Poke();
            _watcher.Renamed += (_, _) => Poke();
            _watcher.Error += (_, e) => _log.WriteLine($"rules: watching {_path} failed ({e.GetException().Message}); changes are still seen within {PollInterval.TotalSeconds:0} s");
            _watcher.EnableRaisingEvents = true;
        }
        catch (Exception e) when (e is IOException or ArgumentException or PlatformNotSupportedException)
        {
            _log.WriteLine($"rules: cannot watch {_path} ({e.Message}); changes are still seen within {PollInterval.TotalSeconds:0} s");
        }
        _poll = new Timer(_ =>
        {
            if (Stamp() != _stamp) Poke();
        }, null, PollInterval, PollInterval);
    }

    void Poke() => _changed.Release();

    sealed record FileStamp(DateTime Written, long Length);

    FileStamp Stamp()
    {
        try
        {
            var info = new FileInfo(_path);
            return info.Exists ? new(info.LastWriteTimeUtc, info.Length) : new(DateTime.MinValue, -1);
        }
        catch (IOException)
        {
            return new(DateTime.MinValue, -1);
        }
    }

    async Task WorkAsync()
    {
        var stop = _stop.Token;
        try
        {
            while (true)
            {
                await _changed.WaitAsync(stop).ConfigureAwait(false);
                while (await _changed.WaitAsync(Settle, stop).ConfigureAwait(false)) { }
                try
                {
                    Reload(force: false);
                }
                catch (Exception e)
                {
                    // A reload must never take the replay down; the generation in force stays.
                    _log.WriteLine($"rules: reloading {_path} failed unexpectedly ({e.GetType().Name}: {e.Message}); generation {Generation} stays in force");
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    public void Dispose()
    {
        _watcher?.Dispose();
        _poll?.Dispose();
        lock (_reloadGate) _probationEnd?.Dispose();
        _stop.Cancel();
        try { _worker?.Wait(TimeSpan.FromSeconds(10)); }
        catch (AggregateException) { }
        _active.Fallback?.Generation.Unload();
        _active.Generation.Unload();
    }
}
