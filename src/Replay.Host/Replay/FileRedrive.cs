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
        // Read twice: once to refuse a file that is not a dead-letter file before anything is sent,
        // and once to send, so that a file of any size is never held in memory whole.
        int count;
        try { count = DeadLetterFile.Read(path).Count(); }
        catch (Exception e) when (IsUnreadable(e))
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

        int read = 0, submitted = 0, done = 0;
        bool Going() => fatal is null && !cancel.IsCancellationRequested;
        // Takes what finished within the wait; a record counts once all its destinations are done with it.
        void Collect(TimeSpan wait)
        {
            if (!completions.TryTake(out var job, wait)) return;
            if (Consuming.finished(job) is { IsValueSome: true } end)
            {
                stats.Ended(end.Value);
                done++;
            }
        }
        try
        {
            foreach (var letter in DeadLetterFile.Read(path))
            {
                // The in-flight budget holds here as in a live replay: the file waits on disk.
                while (Going() && !HasRoom(settings, stack)) Collect(TimeSpan.FromMilliseconds(50));
                if (!Going()) break;
                if (Take(stack, lease, read++, letter, stats, abort.Token)) submitted++;
            }
        }
        catch (Exception e) when (IsUnreadable(e))
        {
            fatal ??= $"the dead-letter file changed while it was read: {e.Message}";
        }
        while (done < submitted && Going()) Collect(TimeSpan.FromMilliseconds(200));
        if (fatal is not null || cancel.IsCancellationRequested)
        {
            stack.Stop();
            abort.Cancel();
        }
        if (fatal is not null) services.Log.WriteLine($"redrive: stopping: {fatal}");
        services.Log.WriteLine($"redrive: {count} dead letters read, {stats.Delivered} delivered, {stats.DeadLettered} dead-lettered again");
        return fatal is null && stats.DeadLettered == 0 && read == count && stats.Delivered + stats.Dropped == submitted ? 0 : Cli.ExitCodes.Failure;
    }

    static bool IsUnreadable(Exception e) => e is IOException or System.Text.Json.JsonException or FormatException;

    static bool HasRoom(RunSettings settings, ReplayStack stack)
    {
        var (records, bytes) = stack.Load();
        return Backpressure.hasRoom(settings.Budget, records, bytes);
    }

    /// <summary>Hands one dead letter to the stack as the record it was; false when nothing is sent for it.</summary>
    static bool Take(ReplayStack stack, Lease lease, long line, DeadLetter letter, ReplayStats stats, CancellationToken abort)
    {
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
            Abort = abort,
        };
        // The file's line number orders the records for the lease; the letter keeps its own place.
        return stack.Take(lease, line, value.Length, stack.Decide(record), source);
    }
}
