// The comparison half of `replay compare`: it receives each record's answers from
// the primary, the optional secondary and the candidate, has the core compare them
// (AnswerComparison) and count them (ComparisonTally), and reports: counts for
// metrics and the progress line, differences.jsonl as it goes, report.html now and
// then and at the end. It sends nothing itself. Thread-safe: the comparison runs on
// the caller's thread; only swapping the immutable tally takes a lock, so a report
// is rendered from a snapshot without holding anyone up.
//
// Wiring (one instance per run):
//   var opened = ComparisonReport.Open(options, secrets);   // bad flags, unwritable DIR: an error now
//   report.Observe(route, replayId, requestLine, primary, secondary, candidate);  // per record
//   report.Failed(route, replayId, requestLine, reason);   // a primary or candidate unreachable
//   report.Progress() / report.Routes() / ComparisonMetrics.Register(registry, report);
//   var problem = report.Finish();                          // final report.html; null when all was written
using System.Globalization;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Replay.Core;
using Replay.Host.Security;
using static Replay.Core.Outcome;

namespace Replay.Host.Comparison;

/// <summary>What one record's comparison came to.</summary>
public enum ComparisonVerdict { Equal, Different, Noisy, Failed }

/// <summary>One route's counts (or all routes' together).</summary>
public sealed record RouteCounts(string Route, long Compared, long Equal, long Different, long Noisy, long Failed);

public sealed class ComparisonReport : IDisposable
{
    readonly ComparisonOptions _options;
    readonly AnswerComparison.Settings _settings;
    readonly Secrets _secrets;
    readonly ReportFiles? _files;
    readonly DifferenceLog? _log;
    readonly Timer? _timer;
    readonly Lock _gate = new();
    readonly Lock _writing = new();
    ComparisonTally.Tally _tally = ComparisonTally.empty(ComparisonTally.defaultLimits);
    long _version, _writtenVersion = -1;
    string? _reportProblem;
    bool _finished;

    ComparisonReport(ComparisonOptions options, AnswerComparison.Settings settings, Secrets secrets, ReportFiles? files, DifferenceLog? log)
    {
        (_options, _settings, _secrets, _files, _log) = (options, settings, secrets, files, log);
        if (files is not null && options.ReportInterval != Timeout.InfiniteTimeSpan)
            _timer = new Timer(_ => WriteIfChanged(), null, options.ReportInterval, options.ReportInterval);
    }

    /// <summary>Validates the options and, with a report directory, creates it and both files,
    /// so that a directory that cannot be written is an error at start rather than mid-run.</summary>
    public static Result<ComparisonReport> Open(ComparisonOptions options, Secrets secrets)
    {
        var settings = options.Validate();
        if (!settings.IsOk) return Result<ComparisonReport>.Fail(settings.Error!);
        if (options.ReportDirectory is null)
            return Result<ComparisonReport>.Ok(new ComparisonReport(options, settings.Value!, secrets, null, null));

        var files = ReportFiles.Prepare(options.ReportDirectory);
        if (!files.IsOk) return Result<ComparisonReport>.Fail(files.Error!);
        var log = DifferenceLog.Create(files.Value!.DifferencesPath);
        if (!log.IsOk) return Result<ComparisonReport>.Fail($"--report {log.Error}");
        var report = new ComparisonReport(options, settings.Value!, secrets, files.Value, log.Value);
        // The first page doubles as the check that report.html can be written.
        var written = report.WriteReport();
        if (written is not null)
        {
            report.Dispose();
            return Result<ComparisonReport>.Fail($"--report {written}");
        }
        return Result<ComparisonReport>.Ok(report);
    }

    /// <summary>Compares one record's answers and counts the result. <paramref name="secondary"/> is
    /// null when there is no secondary (or it did not answer): then nothing is learnt about noise.
    /// Never throws for what servers send; a comparison that fails anyway counts as failed.</summary>
    public ComparisonVerdict Observe(string route, string replayId, string requestLine, Answer primary, Answer? secondary, Answer candidate)
    {
        AnswerComparison.RecordComparison compared;
        try
        {
            compared = AnswerComparison.compareRecord(_settings, primary,
                secondary is null ? FSharpOption<Answer>.None : FSharpOption<Answer>.Some(secondary), candidate);
        }
        catch (Exception e)
        {
            // A bug, not bad input; counted and shown rather than taking the run down.
            Failed(route, replayId, requestLine, $"the comparison itself failed: {e.GetType().Name}: {e.Message}");
            return ComparisonVerdict.Failed;
        }

        var noise = compared.Noise is { } n ? FSharpOption<FSharpList<Difference.Difference>>.Some(n.Value.Differences) : null;
        var observation = new ComparisonTally.Observation(route, replayId, requestLine, compared.Candidate.Differences, noise);
        ComparisonTally.Verdict verdict;
        ComparisonTally.Tally tally;
        lock (_gate)
        {
            (tally, verdict) = ComparisonTally.observe(observation, _tally);
            _tally = tally;
            _version++;
        }
        if (verdict.IsEqual) return ComparisonVerdict.Equal;

        _log?.Write(new DifferenceLine(
            Redact(replayId), Redact(route), Redact(requestLine),
            verdict.IsNoisy ? "noisy" : "different", null,
            compared.Candidate.Differences.Select(d => new DifferenceAt(
                d.Path, d.Field, Difference.changeName(d.Change), ComparisonTally.isNoiseOn(route, d.Field, tally),
                _secrets.Redact(d.Primary), _secrets.Redact(d.Candidate))).ToList(),
            compared.Candidate.Truncated ? true : null,
            DifferenceLog.Excerpt(primary, _options.ExcerptBytes, _secrets),
            secondary is null ? null : DifferenceLog.Excerpt(secondary, _options.ExcerptBytes, _secrets),
            DifferenceLog.Excerpt(candidate, _options.ExcerptBytes, _secrets),
            DateTimeOffset.UtcNow));
        return verdict.IsNoisy ? ComparisonVerdict.Noisy : ComparisonVerdict.Different;
    }

    /// <summary>Counts a record whose answers could not be compared: the primary or the candidate
    /// was unreachable, timed out or broke HTTP. <paramref name="reason"/> says which and how.</summary>
    public void Failed(string route, string replayId, string requestLine, string reason)
    {
        lock (_gate)
        {
            _tally = ComparisonTally.fail(route, replayId, requestLine, reason, _tally);
            _version++;
        }
        _log?.Write(new DifferenceLine(Redact(replayId), Redact(route), Redact(requestLine), "failed", _secrets.Redact(Difference.shown(Difference.MaxExcerpt, reason)),
            null, null, null, null, null, DateTimeOffset.UtcNow));
    }

    string Redact(string text) => _secrets.Redact(Difference.shown(Printable.MaxUrlShown, text));

    ComparisonTally.RouteSummary[] Summaries()
    {
        ComparisonTally.Tally tally;
        lock (_gate) tally = _tally;
        return ComparisonTally.summarize(tally);
    }

    /// <summary>Every route's counts, paths (regressions first, then noise) and examples as of now, by route name.</summary>
    public IReadOnlyList<ComparisonTally.RouteSummary> Summary() => Summaries();

    /// <summary>Every route's counts as of now, by route name.</summary>
    public IReadOnlyList<RouteCounts> Routes() =>
        Summaries().Select(r => Counts(r.Route, r.Counts)).ToList();

    /// <summary>All routes' counts together.</summary>
    public RouteCounts Totals() => Counts("", ComparisonTally.total(Summaries()));

    static RouteCounts Counts(string route, ComparisonTally.Counts c) =>
        new(route, c.Compared, c.Equal, c.Different, c.Noisy, c.Failed);

    /// <summary>A short summary for the progress line: "compared 1.2k  equal 1.1k  different 87 (7.1%)  noisy 12  failed 0".</summary>
    public string Progress()
    {
        var t = Totals();
        var rate = t.Compared == 0 ? 0 : 100.0 * t.Different / t.Compared;
        return string.Create(CultureInfo.InvariantCulture,
            $"compared {Short(t.Compared)}  equal {Short(t.Equal)}  different {Short(t.Different)} ({rate:0.#}%)  " +
            $"noisy {Short(t.Noisy)}  failed {Short(t.Failed)}{(Problem is null ? "" : "  (report: write failed)")}");
    }

    static string Short(long n) => n switch
    {
        >= 10_000_000 => string.Create(CultureInfo.InvariantCulture, $"{n / 1_000_000}M"),
        >= 10_000 => string.Create(CultureInfo.InvariantCulture, $"{n / 1_000}k"),
        >= 1_000 => string.Create(CultureInfo.InvariantCulture, $"{n / 1000.0:0.0}k"),
        _ => n.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>Where report.html and differences.jsonl are written; null without --report.</summary>
    public string? HtmlPath => _files?.HtmlPath;
    public string? DifferencesPath => _files?.DifferencesPath;

    /// <summary>What went wrong writing the report files (a full disk), or null.</summary>
    public string? Problem => _log?.Problem ?? Volatile.Read(ref _reportProblem);

    /// <summary>Writes report.html now (a complete new file replaces the old one, so a reader never sees
    /// half a page). Returns what went wrong, or null; without --report there is nothing to write.</summary>
    public string? WriteReport()
    {
        if (_files is null) return null;
        lock (_writing)
        {
            long version;
            lock (_gate) version = _version;
            var routes = Summaries();
            var problem = _files.WriteHtml(w => HtmlReport.Write(w, routes, _options, _secrets, DateTimeOffset.UtcNow, _log?.Problem));
            Volatile.Write(ref _reportProblem, problem);
            if (problem is null) _writtenVersion = version;
            return problem;
        }
    }

    void WriteIfChanged()
    {
        try
        {
            bool changed;
            lock (_gate) changed = _version != Volatile.Read(ref _writtenVersion);
            if (changed) WriteReport();
        }
        catch (Exception e)
        {
            // A timer callback's exception would end the process; keep the reason instead.
            Volatile.Write(ref _reportProblem, $"writing the report failed: {e.Message}");
        }
    }

    /// <summary>Stops the periodic writes, writes the final report.html and closes differences.jsonl.
    /// Returns what could not be written during the run, or null when everything was.</summary>
    public string? Finish()
    {
        lock (_writing)
        {
            if (_finished) return Problem;
            _finished = true;
        }
        _timer?.Dispose();
        WriteReport();
        _log?.Dispose();
        return Problem;
    }

    public void Dispose() => Finish();
}
