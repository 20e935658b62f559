// The Prometheus metrics of one run, exposed by prometheus-net. Counters that
// ReplayStats already keeps are copied in just before each scrape, so the hot path
// pays nothing extra; only the labelled ones (skips per rule, requests per method and
// status class, latency) are counted as they happen, from ReplayStats' events.
using Prometheus;
using Replay.Core;
using Replay.Host.Delivery;
using Replay.Host.Replay;
using static Replay.Core.Outcome;

namespace Replay.Host.Operating;

public sealed class ReplayMetrics : IDisposable
{
    readonly ReplayStats _stats;
    readonly ReplayConsumer _consumer;
    readonly Counter _consumed, _bytesConsumed, _delivered, _sampledOut, _deletesIgnored, _notJson, _deadLetters,
        _decodeErrors, _retries, _ruleReloads, _ruleReloadErrors, _skippedByRule, _requests, _dropped, _deadLetterWriteFailures, _ruleFailures, _ruleRollbacks, _brakeHolds;
    readonly Gauge _inFlightRecords, _inFlightBytes, _concurrencyLimit, _paused, _assigned, _lag, _destinationInFlight, _brakeHeld, _behindSchedule;
    readonly Counter _destinationRecords;
    readonly Histogram _latency;

    /// <summary>This run's registry: its own, so that runs in one process do not mix.</summary>
    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    public ReplayMetrics(ReplayConsumer consumer)
    {
        _consumer = consumer;
        _stats = consumer.Stats;
        var f = Metrics.WithCustomRegistry(Registry);
        _consumed = f.CreateCounter("replay_records_consumed_total", "Records read from Kafka.");
        _bytesConsumed = f.CreateCounter("replay_consumed_bytes_total", "Record value bytes read from Kafka.");
        _delivered = f.CreateCounter("replay_records_sent_total", "Records the destination accepted (2xx).");
        _sampledOut = f.CreateCounter("replay_records_sampled_out_total", "Records not replayed because of --sample.");
        _deletesIgnored = f.CreateCounter("replay_records_deletes_ignored_total", "DELETEs not replayed because of --delete false.");
        _notJson = f.CreateCounter("replay_records_not_json_total", "Records skipped by --validatejson.");
        _skippedByRule = f.CreateCounter("replay_records_skipped_by_rule_total", "Records a rule chose to skip.", "rule");
        _deadLetters = f.CreateCounter("replay_dead_letters_total",
            "Records written to the dead-letter file or topic (or log), by reason: permanent_status, poison, max_retry_duration, undecodable, rule_error, too_large, unsafe_url, unsafe_header.",
            "reason");
        _dropped = f.CreateCounter("replay_records_dropped_total", "Records the status policy ended without delivery (--drop-on, on-status), by route and status.", "route", "status");
        _deadLetterWriteFailures = f.CreateCounter("replay_dead_letter_write_failures_total",
            "Dead letters that could not be written (disk full, topic unreachable); each record waits, holding its partition's commit, and is tried again.");
        _brakeHolds = f.CreateCounter("replay_dead_letter_brake_holds_total", "Times --max-dead-letter-ratio paused consuming because too many of the last records became dead letters.");
        _brakeHeld = f.CreateGauge("replay_dead_letter_brake_held", "1 while --max-dead-letter-ratio holds consuming paused, else 0.");
        _decodeErrors = f.CreateCounter("replay_decode_errors_total", "Records whose envelope could not be decoded (also dead letters).");
        _retries = f.CreateCounter("replay_retries_total", "HTTP attempts repeated after a retryable failure.");
        _requests = f.CreateCounter("replay_requests_total", "HTTP attempts by destination, route, method and outcome: the status (404) and its class (4xx), or timeout / unreachable.",
            "destination", "route", "method", "status_class", "status");
        _latency = f.CreateHistogram("replay_request_duration_seconds", "Time of one HTTP attempt.", new HistogramConfiguration
        {
            LabelNames = ["destination", "method"],
            // 1 ms .. ~33 s: a local sink answers in a millisecond, a struggling server in the request timeout.
            Buckets = Histogram.ExponentialBuckets(0.001, 2, 16),
        });
        _inFlightRecords = f.CreateGauge("replay_in_flight_records", "Records handed to delivery and not finished.");
        _inFlightBytes = f.CreateGauge("replay_in_flight_bytes", "Payload bytes of the records in flight.");
        _concurrencyLimit = f.CreateGauge("replay_concurrency_limit",
            "Requests allowed on the wire at once now: the adaptive limit under --concurrency auto, otherwise --concurrency.");
        _paused = f.CreateGauge("replay_paused_partitions", "Owned partitions paused: by backpressure or the dead-letter brake, at their end (--until-end, --until), or waiting for a record not due yet (--speed).");
        _behindSchedule = f.CreateGauge("replay_schedule_behind_seconds",
            "--speed: how late the latest record was handed to delivery against its schedule (about 0 on schedule; 0 without --speed).");
        _assigned = f.CreateGauge("replay_assigned_partitions", "Partitions this member owns.");
        _lag = f.CreateGauge("replay_consumer_lag", "Records of a partition not yet finished (high watermark minus stored offset).", "topic", "partition");
        _destinationRecords = f.CreateCounter("replay_destination_records_total",
            "What each destination did with its copies of the records: sent, dropped, dead_letter, shed (a best-effort destination skipped while its budget was full), unfinished (revoked, or in flight at the stop).",
            "destination", "outcome");
        _destinationInFlight = f.CreateGauge("replay_destination_in_flight_records", "Copies handed to a destination and not finished.", "destination");
        _ruleReloads = f.CreateCounter("replay_rule_reloads_total", "Successful reloads of the rules file.");
        _ruleReloadErrors = f.CreateCounter("replay_rule_reload_errors_total", "Reloads of the rules file that failed (old rules kept).");
        _ruleFailures = f.CreateCounter("replay_rule_failures_total", "Records a rule's code failed on (threw or gave an unusable value, body: included), per rule; each is a dead letter.", "rule");
        _ruleRollbacks = f.CreateCounter("replay_rule_rollbacks_total", "New rules generations rolled back because their rules failed on too many records in their first minute.");
        DotNetStats.Register(Registry);

        _stats.SkippedByRuleObserved += OnSkip;
        _stats.AttemptObserved += OnAttempt;
        Registry.AddBeforeCollectCallback(Refresh);
    }

    void OnSkip(string rule) => _skippedByRule.WithLabels(rule).Inc();

    void OnAttempt(ReplayStats.AttemptSeen seen)
    {
        var method = MethodModule.name(seen.Method);
        var (statusClass, status) = Outcome.label(seen.Attempt);
        _requests.WithLabels(seen.Destination, seen.Route, method, statusClass, status).Inc();
        _latency.WithLabels(seen.Destination, method).Observe(seen.Elapsed.TotalSeconds);
    }

    /// <summary>Copies the cheap counters into Prometheus, just before a scrape reads them.</summary>
    void Refresh()
    {
        _consumed.IncTo(_stats.Consumed);
        _bytesConsumed.IncTo(_stats.BytesConsumed);
        _delivered.IncTo(_stats.Delivered);
        _sampledOut.IncTo(_stats.SampledOut);
        _deletesIgnored.IncTo(_stats.DeletesIgnored);
        _notJson.IncTo(_stats.NotJson);
        foreach (var cause in DeadLetterCauseModule.all)
            _deadLetters.WithLabels(DeadLetterCauseModule.label(cause)).IncTo(_stats.DeadLetteredBy(cause));
        _deadLetterWriteFailures.IncTo(_stats.DeadLetterWriteFailures);
        _decodeErrors.IncTo(_stats.DecodeErrors);
        _retries.IncTo(_stats.Retries);
        foreach (var ((route, status), count) in _stats.DroppedBy)
            _dropped.WithLabels(route, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).IncTo(count);
        _ruleReloads.IncTo(RuleMetrics.Reloads);
        _ruleReloadErrors.IncTo(RuleMetrics.ReloadErrors);
        foreach (var d in _stats.Destinations)
        {
            _destinationRecords.WithLabels(d.Name, "sent").IncTo(d.Sent);
            _destinationRecords.WithLabels(d.Name, "dropped").IncTo(d.Dropped);
            _destinationRecords.WithLabels(d.Name, "dead_letter").IncTo(d.DeadLetters);
            _destinationRecords.WithLabels(d.Name, "shed").IncTo(d.Shed);
            _destinationRecords.WithLabels(d.Name, "unfinished").IncTo(d.Unfinished);
        }
        foreach (var (name, inFlight) in _consumer.Observer.InFlightByDestination())
            _destinationInFlight.WithLabels(name).Set(inFlight);
        _ruleRollbacks.IncTo(RuleMetrics.Rollbacks);
        foreach (var (rule, count) in RuleMetrics.FailuresByRule) _ruleFailures.WithLabels(rule).IncTo(count);
        _inFlightRecords.Set(_consumer.Observer.InFlight);
        _inFlightBytes.Set(_consumer.Observer.InFlightBytes);
        _concurrencyLimit.Set(_consumer.Observer.WireLimit);
        _paused.Set(_consumer.Observer.PausedCount);
        _brakeHolds.IncTo(_consumer.Observer.Holds);
        _brakeHeld.Set(_consumer.Observer.Held is null ? 0 : 1);
        _behindSchedule.Set(_consumer.Observer.BehindSchedule?.TotalSeconds ?? 0);
        _assigned.Set(_consumer.Observer.AssignedCount);

        var lag = _consumer.Observer.Lag.Current;
        foreach (var labels in _lag.GetAllLabelValues().ToList())
            if (!lag.Keys.Any(tp => tp.Topic == labels[0] && tp.Partition.Value.ToString() == labels[1]))
                _lag.RemoveLabelled(labels);
        foreach (var (tp, value) in lag)
            _lag.WithLabels(tp.Topic, tp.Partition.Value.ToString()).Set(value);
    }

    public void Dispose()
    {
        _stats.SkippedByRuleObserved -= OnSkip;
        _stats.AttemptObserved -= OnAttempt;
    }
}
