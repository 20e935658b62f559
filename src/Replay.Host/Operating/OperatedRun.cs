// One `replay run` as an operator sees it: the replay itself, wrapped in the log format, the
// start banner and the pre-flight checks, the metrics and health endpoint, the live progress
// report, the dry-run printer, and the closing summary. The replay does not know any of these exist.
using System.Diagnostics;
using Replay.Host.Cli;
using Replay.Host.Delivery;
using Replay.Host.Kafka;
using Replay.Host.Replay;

namespace Replay.Host.Operating;

public sealed class OperatedRun : IAsyncDisposable
{
    readonly ReplayJob _job;
    readonly OperatorLog _log;
    readonly ReplayMetrics? _metrics;
    readonly OperatingEndpoint? _endpoint;
    readonly DryRunHandler? _dryRun;
    readonly HttpMessageHandler? _proxyNaming;
    readonly TextWriter? _consoleError;

    public ReplayConsumer Consumer { get; }
    /// <summary>Where /metrics, /healthz and /readyz are served; null without --metrics-port.</summary>
    public Uri? MetricsUrl => _endpoint is null ? null : new Uri(_endpoint.Url, "/metrics");
    /// <summary>What the start banner says beyond the settings (set by `replay run`).</summary>
    public BannerFacts? Facts { get; set; }
    /// <summary>Whether --from was given, so that the pre-flight can say it does not apply where the group has commits.</summary>
    public bool FromGiven { get; set; }

    OperatedRun(ReplayJob job, OperatorLog log, ReplayConsumer consumer, ReplayMetrics? metrics, OperatingEndpoint? endpoint,
        DryRunHandler? dryRun, HttpMessageHandler? proxyNaming, TextWriter? consoleError)
    {
        _consoleError = consoleError;
        _job = job;
        _log = log;
        Consumer = consumer;
        _metrics = metrics;
        _endpoint = endpoint;
        _dryRun = dryRun;
        _proxyNaming = proxyNaming;
    }

    /// <summary>Prepares the run: log, dry run, metrics endpoint (listening once this returns).</summary>
    /// <param name="log">Where log lines and progress go (standard error in the program).</param>
    /// <param name="output">Where --dry-run prints requests (standard output in the program).</param>
    /// <param name="terminal">True when <paramref name="log"/> is a terminal, for the in-place status line.</param>
    /// <param name="captureConsoleError">Route every other Console.Error line of the process (signal
    /// messages, dead letters logged without a sink) through the log too, so --log-format json holds
    /// for every line; undone when the run is disposed.</param>
    public static Task<OperatedRun> StartAsync(ReplayJob job, TextWriter log, TextWriter output, bool terminal,
        bool captureConsoleError = false) =>
        StartAsync(job, new OperatorLog(log, output, job.Operating.LogFormat, terminal), captureConsoleError);

    /// <summary>As above, with the operator log the command already writes to.</summary>
    public static async Task<OperatedRun> StartAsync(ReplayJob job, OperatorLog operatorLog, bool captureConsoleError = false)
    {
        var operating = job.Operating;
        var services = job.Services with { Log = operatorLog };
        TextWriter? consoleError = null;
        if (captureConsoleError && Console.Error != operatorLog)
        {
            consoleError = Console.Error;
            Console.SetError(operatorLog);
        }
        DryRunHandler? dryRun = null;
        HttpMessageHandler? proxyNaming = null;
        if (job.Run.DryRun)
        {
            dryRun = new DryRunHandler(operatorLog);
            // A dry run leaves nothing behind: dead letters are printed, not written to a file or topic.
            // The sinks the command opened stay its to dispose. Nor does a dry run ask a token
            // endpoint for anything: the printed requests show that a bearer token would go out, never one.
            services = services with
            {
                Handler = dryRun,
                DeadLetters = new DeadLetterEvents(operatorLog),
                Tokens = services.Tokens is null ? null : new Security.FixedToken(Security.BearerToken.Placeholder),
                // Nothing is answered in a dry run: there are no exchanges to log.
                Exchanges = null,
            };
        }
        else
        {
            services = services with { DeadLetters = DeadLetterEvents.InPlaceOf(services.DeadLetters, operatorLog) };
            if (services.Handler is null && ProxyNaming.Applies(services.Proxy))
                services = services with
                {
                    Handler = proxyNaming = new ProxyNaming(HttpSender.CreateHandler(job.Run.Delivery.Concurrency.Most, services.Proxy, services.Tls), services.Proxy),
                };
        }
        job = job with { Services = services };
        var consumer = new ReplayConsumer(job.Run, job.Services);
        ReplayMetrics? metrics = null;
        OperatingEndpoint? endpoint = null;
        if (operating.MetricsPort is { } port)
        {
            metrics = new ReplayMetrics(consumer);
            if (job.Services.Comparison is { } comparison) Comparison.ComparisonMetrics.Register(metrics.Registry, comparison.Report);
            if (job.Services.Exchanges is { } exchanges) ResponsesMetrics.Register(metrics.Registry, exchanges);
            endpoint = await OperatingEndpoint.StartAsync(operating.MetricsHost, port, metrics.Registry,
                () => Readiness.Problem(consumer, operating.StuckAfter));
            operatorLog.Message($"metrics: {new Uri(endpoint.Url, "/metrics")} (health: /healthz, /readyz)");
        }
        return new OperatedRun(job, operatorLog, consumer, metrics, endpoint, dryRun, proxyNaming, consoleError);
    }

    /// <summary>Says what the run will do, checks Kafka, runs the replay to its end and prints
    /// the summary; returns the exit code.</summary>
    public int Run(CancellationToken cancel)
    {
        foreach (var note in StartupNotes.Drain()) _log.Write(Severity.Warn, $"replay run: {note}");
        StartBanner.Write(_log, _job, Facts);
        if (_job.Run.DryRun)
            _log.Message("dry run: printing requests instead of sending them; no offsets are committed");
        var preflight = Preflight.Check(new PreflightRequest(_job.Run.Kafka, _job.Run.Topic, _job.Services.Start, FromGiven, _job.Services.Reset,
            // Records ahead (for the percentage) are counted to the high-water marks: with --until the run ends before them.
            _job.Run.UntilEnd && _job.Run.Until.IsValueNone, _job.Operating.ConnectTimeout), _log, cancel);
        if (preflight.ExitCode is { } stopped)
        {
            if (stopped != ExitCodes.Ok) _log.Write(Severity.Error, $"replay run: {preflight.Problem}", [new("event", "preflight"), new("exit_code", stopped)]);
            return stopped;
        }
        var clock = Stopwatch.StartNew();
        int code;
        var context = new ProgressContext(preflight.RecordsAhead, _job.Run.DryRun, WaitingHint(),
            _job.Services.Comparison is { } comparing ? comparing.Report.Progress : null);
        using (new Progress(Consumer, _log, _job.Operating.ProgressInterval ?? Progress.DefaultInterval(_log), context))
            code = Consumer.Run(cancel);
        // Every record handed to the comparison is compared before the summary counts them,
        // and every exchange queued for the responses log is written.
        _job.Services.Comparison?.Dispose();
        _job.Services.Exchanges?.Complete(TimeSpan.FromSeconds(10));
        Summarize(code, clock.Elapsed);
        SummarizeResponses();
        SummarizeComparison();
        return code;
    }

    /// <summary>Why partitions may be slow to come, in this group's terms.</summary>
    string WaitingHint()
    {
        var session = _job.Run.Kafka.TryGetValue("session.timeout.ms", out var ms) && int.TryParse(ms, out var n) ? n / 1000 : 45;
        return _job.Run.Topic.StartsWith('^')
            ? $"no partitions until a topic matches {_job.Run.Topic}; or a previous member's session may hold them up to {session} s"
            : $"a previous member's session may hold them up to {session} s; with more members than partitions, some members stay idle";
    }

    void Summarize(int code, TimeSpan elapsed)
    {
        var s = Consumer.Stats;
        var seconds = Math.Max(0.001, elapsed.TotalSeconds);
        var rate = s.Consumed / seconds;
        if (_log.Format == LogFormat.Json)
        {
            _log.Event("summary",
            [
                new("exit_code", code),
                new("consumed", s.Consumed),
                new("sent", _job.Run.DryRun ? 0L : s.Delivered),
                new("would_send", _job.Run.DryRun ? s.Delivered : 0L),
                new("dropped", s.Dropped),
                new("destinations", s.Destinations.Select(d => new Dictionary<string, object>
                {
                    ["name"] = d.Name, ["best_effort"] = d.BestEffort, ["sent"] = d.Sent, ["dropped"] = d.Dropped,
                    ["dead_letters"] = d.DeadLetters, ["shed"] = d.Shed, ["unfinished"] = d.Unfinished,
                }).ToList()),
                new("skipped", s.SampledOut + s.DeletesIgnored + s.NotJson + s.SkippedByRule),
                new("sampled_out", s.SampledOut),
                new("deletes_ignored", s.DeletesIgnored),
                new("not_json", s.NotJson),
                new("skipped_by_rule", s.SkippedByRule),
                new("dead_letters", s.DeadLettered),
                new("decode_errors", s.DecodeErrors),
                new("retries", s.Retries),
                new("elapsed_s", Math.Round(seconds, 1)),
                new("records_per_s", rate),
                new("dry_run", _job.Run.DryRun),
            ], code == ExitCodes.Ok ? Severity.Info : Severity.Error);
            return;
        }
        _log.Message($"replay: {s.Summary(_job.Run.DryRun ? "would send" : null)}; in {seconds:F1} s ({rate:F0} records/s)");
        if (s.Destinations.Count > 1)
            foreach (var destination in s.Destinations) _log.Message($"replay: destination {destination}");
        _log.Message($"replay: {s.ProcessSummary()}");
        if (_dryRun is not null)
            _log.Message($"dry run: {_dryRun.Printed} requests printed, none sent, no offsets committed");
    }

    /// <summary>--responses: how many exchanges were logged, and what was lost (a warning then).</summary>
    void SummarizeResponses()
    {
        if (_job.Services.Exchanges is not { } responses) return;
        var lost = responses.Unwritable + responses.Dropped > 0;
        _log.Write(lost ? Severity.Warn : Severity.Info, responses.Summary(),
            [new("event", "responses"), new("logged", responses.Written), new("unwritable", responses.Unwritable),
             new("dropped", responses.Dropped), new("problem", responses.Problem)]);
    }

    /// <summary>replay compare: the totals per route, and where the report is.</summary>
    void SummarizeComparison()
    {
        if (_job.Services.Comparison?.Report is not { } report) return;
        var problem = report.Finish();
        foreach (var route in report.Routes())
            _log.Write(Severity.Info, $"compare: route {route.Route}: compared {route.Compared}, equal {route.Equal}, different {route.Different}, noisy {route.Noisy}, failed {route.Failed}",
                [new("event", "compare"), new("route", route.Route), new("compared", route.Compared), new("equal", route.Equal),
                 new("different", route.Different), new("noisy", route.Noisy), new("failed", route.Failed)]);
        if (report.HtmlPath is { } html) _log.Message($"compare: report {html} (differences: {report.DifferencesPath})");
        if (problem is not null) _log.Write(Severity.Warn, $"compare: the report could not be written completely: {problem}");
    }

    public async ValueTask DisposeAsync()
    {
        if (_endpoint is not null) await _endpoint.DisposeAsync();
        _metrics?.Dispose();
        _proxyNaming?.Dispose();
        if (_consoleError is not null) Console.SetError(_consoleError);
    }
}
