// What a comparison run was asked for (`replay compare` flags), as one immutable
// record validated once. Defaults are the core's (AnswerComparison.defaults), so each
// is stated in one place.
using Replay.Core;

namespace Replay.Host.Comparison;

public sealed record ComparisonOptions
{
    /// <summary>--tolerance: numbers at most this far apart are equal.</summary>
    public double Tolerance { get; init; } = AnswerComparison.defaults.Tolerance;
    /// <summary>--ignore PATH (repeatable): places known to differ; see JsonPath for the syntax.</summary>
    public IReadOnlyList<string> Ignore { get; init; } = [];
    /// <summary>--unordered PATH (repeatable): arrays compared as multisets.</summary>
    public IReadOnlyList<string> Unordered { get; init; } = [];
    /// <summary>--compare-header NAME (repeatable): response headers compared.</summary>
    public IReadOnlyList<string> Headers { get; init; } = [.. AnswerComparison.defaults.Headers];
    /// <summary>--compare-max-bytes: larger bodies are compared by length and hash only.</summary>
    public long MaxBodyBytes { get; init; } = AnswerComparison.DefaultMaxBodyBytes;
    /// <summary>--report DIR: where differences.jsonl and report.html go; null: counts only.</summary>
    public string? ReportDirectory { get; init; }
    /// <summary>How often report.html is rewritten while the run goes on (also written at the end).
    /// Infinite: only when asked and at the end.</summary>
    public TimeSpan ReportInterval { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>How much of each body differences.jsonl keeps.</summary>
    public int ExcerptBytes { get; init; } = 2048;

    /// <summary>The core's settings, or what is wrong with the flags.</summary>
    public Result<AnswerComparison.Settings> Validate()
    {
        if (ReportInterval <= TimeSpan.Zero && ReportInterval != Timeout.InfiniteTimeSpan)
            return Result<AnswerComparison.Settings>.Fail($"the report interval {ReportInterval} must be positive");
        if (ExcerptBytes < 0)
            return Result<AnswerComparison.Settings>.Fail($"the excerpt size {ExcerptBytes} must be >= 0");
        var settings = AnswerComparison.create(Tolerance, Ignore, Unordered, Headers, MaxBodyBytes);
        return settings.IsOk
            ? Result<AnswerComparison.Settings>.Ok(settings.ResultValue)
            : Result<AnswerComparison.Settings>.Fail(settings.ErrorValue);
    }
}
