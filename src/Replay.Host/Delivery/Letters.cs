// A dead letter from a job that could not be delivered: where the record came from,
// what was tried, what the destination last answered, why it failed, and the record
// itself as it was consumed.
using System.Text;
using Replay.Core;

namespace Replay.Host.Delivery;

public static class Letters
{
    /// <param name="destination">The name of the destination that could not take it.</param>
    public static DeadLetter Of(Job job, string destination)
    {
        var source = (RecordRef)job.Source;
        var request = job.HasRequest ? job.Request : null;
        var status = job.LastStatus;
        return new DeadLetter(source.Topic, source.Partition, source.Offset,
            request?.OrderingKey, request is null ? null : MethodModule.name(request.Method), request?.Url.OriginalString,
            job.Reason, status == 0 ? null : status, job.Attempts, DateTimeOffset.UtcNow,
            source.Key is null ? null : Convert.ToBase64String(source.Key),
            Convert.ToBase64String(source.Value.Span),
            ReadableHeaders(source.Headers))
        {
            Destination = request is null ? null : destination,
            ReasonClass = DeadLetterCauseModule.label(job.Cause),
            LastAnswer = job.LastAttempt is { IsValueSome: true } last ? ServerAnswer.Of(last.Value) : null,
            Original = new OriginalRecord(source.Key, source.Value, source.Headers),
        };
    }

    /// <summary>Headers for people to read (the JSON file): one value per name, the last, as text.</summary>
    static IReadOnlyDictionary<string, string?>? ReadableHeaders(Confluent.Kafka.Headers? headers)
    {
        if (headers is null || headers.Count == 0) return null;
        var readable = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var header in headers)
            readable[header.Key] = header.GetValueBytes() is { } bytes ? Encoding.UTF8.GetString(bytes) : null;
        return readable;
    }
}
