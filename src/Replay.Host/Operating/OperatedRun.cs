// One `replay run` as an operator sees it: the replay itself, wrapped in the log
// format, the metrics and health endpoint, the live progress report, the dry-run
// printer, and the closing summary. The replay does not know any of these exist.
using Replay.Host.Delivery;
using Replay.Host.Replay;

namespace Replay.Host.Operating;

public sealed class OperatedRun : IAsyncDisposable
{
    readonly ReplaySettings _settings;
    readonly OperatorLog _log;
    readonly ReplayMetrics? _metrics;
    readonly OperatingEndpoint? _endpoint;
    readonly DryRunHandler? _dryRun;
    readonly TextWriter? _consoleError;

    public ReplayConsumer Consumer { get; }
    /// <summary>Where /metrics, /healthz and /readyz are served; null without --metrics-port.</summary>
    public Uri? MetricsUrl => _endpoint is null ? null : new Uri(_endpoint.Url, "/metrics");

    OperatedRun(ReplaySettings settings, OperatorLog log, ReplayConsumer consumer, ReplayMetrics? metrics, OperatingEndpoint? endpoint,
        DryRunHandler? dryRun, TextWriter? consoleError)
    {
        _consoleError = consoleError;
        _settings = settings;
        _log = log;
        Consumer = consumer;
        _metrics = metrics;
        _endpoint = endpoint;
        _dryRun = dryRun;
    }

    /// <summary>Prepares the run: log, dry run, metrics endpoint (listening once this returns).</summary>
    /// <param name="log">Where log lines and progress go (standard error in the program).</param>
    /// <param name="output">Where --dry-run prints requests (standard output in the program).</param>
    /// <param name="terminal">True when <paramref name="log"/> is a terminal, for the in-place status line.</param>
    /// <param name="captureConsoleError">Route every other Console.Error line of the process (signal
    /// messages, dead letters logged without a sink) through the log too, so --log-format json holds
    /// for every line; undone when the run is disposed.</param>
    public static async Task<OperatedRun> StartAsync(ReplaySettings settings, TextWriter log, TextWriter output, bool terminal,
        bool captureConsoleError = false)
    {
        var operating = settings.Operating;
        var operatorLog = new OperatorLog(log, output, operating.LogFormat, terminal);
        settings.Log = operatorLog;
        TextWriter? consoleError = null;
        if (captureConsoleError)
        {
            consoleError = Console.Error;
            Console.SetError(operatorLog);
        }
        DryRunHandler? dryRun = null;
        if (settings.DryRun)
        {
            dryRun = new DryRunHandler(operatorLog);
            settings.Handler = dryRun;
            // A dry run leaves nothing behind: dead letters are printed, not written to a file or topic.
            settings.DeadLetters.Dispose();
            settings.DeadLetters = new DeadLetterLog(operatorLog);
            // Nor does it ask a token endpoint for anything: the printed requests show that a
            // bearer token would go out, never one.
            if (settings.Tokens is not null)
            {
                settings.Tokens.Dispose();
                settings.Tokens = new Security.FixedToken(Security.BearerToken.Placeholder);
            }
        }
        else if (settings.DeadLetters is DeadLetterLog)
            settings.DeadLetters = new DeadLetterLog(operatorLog);
        var consumer = new ReplayConsumer(settings);
        ReplayMetrics? metrics = null;
        OperatingEndpoint? endpoint = null;
        if (operating.MetricsPort is { } port)
        {
            metrics = new ReplayMetrics(consumer);
            endpoint = await OperatingEndpoint.StartAsync(operating.MetricsHost, port, metrics.Registry,
                () => Readiness.Problem(consumer, operating.StuckAfter));
            operatorLog.Message($"metrics: {new Uri(endpoint.Url, "/metrics")} (health: /healthz, /readyz)");
        }
        return new OperatedRun(settings, operatorLog, consumer, metrics, endpoint, dryRun, consoleError);
    }

    /// <summary>Runs the replay to its end and prints the summary; returns the exit code.</summary>
    public int Run(CancellationToken cancel)
    {
        if (_settings.DryRun)
            _log.Message("dry run: printing requests instead of sending them; no offsets are committed");
        int code;
        using (new Progress(Consumer, _log, _settings.Operating.ProgressInterval ?? Progress.DefaultInterval(_log)))
            code = Consumer.Run(cancel);
        Summarize(code);
        return code;
    }

    void Summarize(int code)
    {
        var s = Consumer.Stats;
        if (_log.Format == LogFormat.Json)
        {
            _log.Event("summary",
            [
                new("exit_code", code),
                new("consumed", s.Consumed),
                new("sent", s.Delivered),
                new("sampled_out", s.SampledOut),
                new("deletes_ignored", s.DeletesIgnored),
                new("not_json", s.NotJson),
                new("skipped_by_rule", s.SkippedByRule),
                new("dead_letters", s.DeadLettered),
                new("decode_errors", s.DecodeErrors),
                new("retries", s.Retries),
                new("dry_run", _settings.DryRun),
            ]);
            return;
        }
        _log.Message($"replay: {s.Summary()}");
        _log.Message($"replay: {s.ProcessSummary()}");
        if (_dryRun is not null)
            _log.Message($"dry run: {_dryRun.Printed} requests printed, none sent, no offsets committed");
    }

    public async ValueTask DisposeAsync()
    {
        if (_endpoint is not null) await _endpoint.DisposeAsync();
        _metrics?.Dispose();
        if (_consoleError is not null) Console.SetError(_consoleError);
    }
}
