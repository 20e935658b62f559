// Sends the records of a dead-letter file again, through the same decision and
// delivery path as a live replay (ReplayStack). What fails again goes to the
// dead-letter sink of this run (e.g. a new file), so a redrive never loses what it
// could not send; a sink that cannot be written ends the run with the cause.
using Confluent.Kafka;
using Replay.Core;
using Replay.Host.Delivery;

namespace Replay.Host.Replay;

public static class FileRedrive
{
    public static int Run(RunSettings settings, ReplayServices services, string path, ReplayStats stats, CancellationToken cancel)
    {
        if (!File.Exists(path))
        {
            services.Log.WriteLine($"redrive: dead-letter file '{path}' does not exist");
            return Cli.ExitCodes.Usage;
        }
        List<DeadLetter> letters;
        try { letters = DeadLetterFile.Read(path).ToList(); }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException or FormatException)
        {
            services.Log.WriteLine($"redrive: cannot read dead-letter file '{path}': {e.Message}");
            return Cli.ExitCodes.Usage;
        }
        var completions = new System.Collections.Concurrent.BlockingCollection<Job>();
        string? fatal = null;
        using var stack = new ReplayStack(settings, services, stats, completions.Add,
            tlsFailure: reason => fatal ??= reason, fatal: reason => fatal ??= reason,
            giveUpOnDeadLetters: settings.Delivery.Retry.MaxRetryDuration?.Value ?? settings.Delivery.Retry.PoisonAfter);
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        // One lease for the whole file: its records are this run's until they finish.
        var lease = LeaseModule.create(path, 0, -1L);

        var submitted = 0;
        for (var i = 0; i < letters.Count; i++)
        {
            var letter = letters[i];
            var key = letter.KeyBase64 is null ? null : Convert.FromBase64String(letter.KeyBase64);
            var value = Convert.FromBase64String(letter.ValueBase64);
            var headers = new Headers();
            foreach (var (name, v) in letter.Headers ?? new Dictionary<string, string?>())
                headers.Add(name, v is null ? null : System.Text.Encoding.UTF8.GetBytes(v));
            var record = new Record(letter.Topic, letter.Partition, letter.Offset, key, value,
                headers.Select(h => new KafkaHeader(h.Key, h.GetValueBytes())).ToArray(), 0);
            stats.Consume(value.Length);
            var source = new RecordRef
            {
                Topic = letter.Topic, Partition = letter.Partition, Offset = letter.Offset, Key = key, Value = value, Headers = headers,
                Abort = abort.Token,
            };
            // The file's line number orders the records for the lease; the letter keeps its own place.
            if (stack.Take(lease, i, value.Length, stack.Decide(record), source)) submitted++;
        }
        for (var done = 0; done < submitted && fatal is null && !cancel.IsCancellationRequested;)
        {
            if (!completions.TryTake(out var job, TimeSpan.FromMilliseconds(200))) continue;
            if (Consuming.finished(job) is { IsValueSome: true } end)
            {
                stats.Ended(end.Value);
                done++;
            }
        }
        if (fatal is not null || cancel.IsCancellationRequested)
        {
            stack.Stop();
            abort.Cancel();
        }
        if (fatal is not null) services.Log.WriteLine($"redrive: stopping: {fatal}");
        services.Log.WriteLine($"redrive: {letters.Count} dead letters read, {stats.Delivered} delivered, {stats.DeadLettered} dead-lettered again");
        return fatal is null && stats.DeadLettered == 0 && stats.Delivered + stats.Dropped == submitted ? 0 : Cli.ExitCodes.Failure;
    }
}
