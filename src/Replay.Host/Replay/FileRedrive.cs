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
        // The whole file is checked before anything is sent, and read no further than its end now.
        int total;
        long end;
        try { (total, end) = DeadLetterFile.Survey(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or FormatException)
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
        var budget = settings.Budget;

        int read = 0, submitted = 0, done = 0;
        // Takes what finished; waits up to 200 ms for one when asked to.
        void Finish(bool wait)
        {
            while (completions.TryTake(out var job, wait ? TimeSpan.FromMilliseconds(200) : TimeSpan.Zero))
            {
                wait = false;
                if (Consuming.finished(job) is { IsValueSome: true } ended)
                {
                    stats.Ended(ended.Value);
                    done++;
                }
            }
        }
        bool Going() => fatal is null && !cancel.IsCancellationRequested;
        // As a live run counts it: the required destinations' load, not the best-effort ones'.
        bool Full()
        {
            var (records, bytes) = stack.Load();
            return Backpressure.isFull(budget, records, bytes);
        }

        // In batches no larger than the in-flight budget, each read with the file open only as long as
        // that takes; a record is handed on only while the budget has room, so memory stays bounded
        // whatever the file's size.
        var position = 0L;
        while (Going() && position < end)
        {
            List<DeadLetter> batch;
            var before = position;
            // A quarter of the bytes budget a batch: its lines are held as text (about twice their bytes)
            // while the records before them are still in flight.
            try { (batch, position) = DeadLetterFile.ReadBatch(path, position, end, budget.MaxInFlightRecords, Math.Max(1, budget.MaxInFlightBytes / 4)); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or FormatException)
            {
                fatal = $"the dead-letter file changed while it was read ({e.Message})";
                break;
            }
            if (position == before)
            {
                fatal = $"the dead-letter file was truncated or replaced while it was read ({read} of {total} dead letters read)";
                break;
            }
            for (var b = 0; b < batch.Count; b++)
            {
                while (Going() && Full()) Finish(wait: true);
                if (!Going()) break;
                var letter = batch[b];
                batch[b] = null!;
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
                // The letter's place in the file orders the records for the lease; the letter keeps its own place.
                if (stack.Take(lease, read, value.Length, stack.Decide(record), source)) submitted++;
                read++;
                Finish(wait: false);
            }
        }
        while (done < submitted && Going()) Finish(wait: true);
        if (!Going())
        {
            stack.Stop();
            abort.Cancel();
        }
        if (fatal is not null) services.Log.WriteLine($"redrive: stopping: {fatal}");
        services.Log.WriteLine($"redrive: {read} dead letters read, {stats.Delivered} delivered, {stats.DeadLettered} dead-lettered again");
        return fatal is null && read == total && stats.DeadLettered == 0 && stats.Delivered + stats.Dropped == submitted ? 0 : Cli.ExitCodes.Failure;
    }
}
