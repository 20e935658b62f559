// Sends the records of a dead-letter file again, through the same decision and
// delivery path as a live replay. What fails again goes to the dead-letter sink
// of this run (e.g. a new file), so a redrive never loses what it could not send.
using Confluent.Kafka;
using Microsoft.FSharp.Core;
using Replay.Core;
using Replay.Host.Delivery;
using static Replay.Core.Pipeline;

namespace Replay.Host.Replay;

public static class FileRedrive
{
    public static int Run(ReplaySettings settings, string path, ReplayStats stats, CancellationToken cancel)
    {
        if (!File.Exists(path))
        {
            settings.Log.WriteLine($"redrive: dead-letter file '{path}' does not exist");
            return Cli.ExitCodes.Usage;
        }
        var letters = DeadLetterFile.Read(path).ToList();
        var entropy = new Entropy(
            FuncConvert.FromFunc(() => Guid.NewGuid().ToString()),
            FuncConvert.FromFunc(() => Random.Shared.NextDouble()));
        using var done = new SemaphoreSlim(0);
        using var sender = new HttpSender(settings.Handler ?? HttpSender.CreateHandler(settings.Concurrency, settings.Proxy, settings.Tls), settings.RequestTimeout,
            PlainHttp.For(settings.Handler, settings.Proxy), settings.Capture, settings.Tokens);
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        using var engine = new DeliveryEngine(sender,
            new DeliveryOptions(settings.Concurrency, settings.RetryBaseDelay, settings.RetryMaxDelay, settings.MaxRetryDuration, settings.MaxRate),
            stats,
            job =>
            {
                if (job.Result == JobResult.Delivered) stats.Deliver();
                else if (job.Result == JobResult.DeadLettered)
                {
                    var s = job.Source;
                    settings.DeadLetters.Write(ReplayConsumer.Letter(s.Topic, s.Partition, s.Offset, s.Key, s.Value, s.Headers,
                        job.Request, job.Request.OrderingKey, job.FailureReason ?? "failed", job.LastStatus == 0 ? null : job.LastStatus, job.Attempts));
                    stats.DeadLetter();
                }
                done.Release();
            },
            abandon.Token);

        var submitted = 0;
        foreach (var letter in letters)
        {
            var key = letter.KeyBase64 is null ? null : Convert.FromBase64String(letter.KeyBase64);
            var value = Convert.FromBase64String(letter.ValueBase64);
            var headers = new Headers();
            foreach (var (name, v) in letter.Headers ?? new Dictionary<string, string?>())
                headers.Add(name, v is null ? null : System.Text.Encoding.UTF8.GetBytes(v));
            var record = new Record(letter.Topic, letter.Partition, letter.Offset, key, value,
                headers.Select(h => new KafkaHeader(h.Key, h.GetValueBytes())).ToArray(), 0);
            stats.Consume(value.Length);
            switch (decide(settings.Pipeline, settings.Router().Route, entropy, record))
            {
                case Decision.Send send:
                    engine.Submit(new Job
                    {
                        Request = send.Item,
                        Source = new RecordRef
                        {
                            Topic = letter.Topic, Partition = letter.Partition, Offset = letter.Offset, Bytes = value.Length,
                            Key = key, Value = value, Headers = headers, Owner = letter,
                        },
                    });
                    submitted++;
                    break;
                case Decision.Skip skip:
                    stats.Skip(skip.Item);
                    break;
                case Decision.Reject reject:
                    settings.DeadLetters.Write(letter with { Reason = describeReject(reject.Item), Time = DateTimeOffset.UtcNow });
                    stats.DeadLetter();
                    break;
            }
        }
        var deadline = DateTime.UtcNow + (settings.MaxRetryDuration ?? TimeSpan.FromDays(365)) + settings.RequestTimeout;
        for (var finished = 0; finished < submitted && !cancel.IsCancellationRequested;)
        {
            if (done.Wait(TimeSpan.FromMilliseconds(200))) finished++;
            if (DateTime.UtcNow > deadline) break;
        }
        abandon.Cancel();
        settings.Log.WriteLine($"redrive: {letters.Count} dead letters read, {stats.Delivered} delivered, {stats.DeadLettered} dead-lettered again");
        return stats.DeadLettered == 0 && stats.Delivered == submitted ? 0 : Cli.ExitCodes.Failure;
    }
}
