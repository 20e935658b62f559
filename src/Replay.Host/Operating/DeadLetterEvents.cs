// Dead letters that go to the operator's log (--dead-letter -, or --dry-run):
// the same line as before in text, a "dead_letter" event with its fields in JSON, so that a
// log shipper can count and search them like any other event.
using Replay.Host.Delivery;
using Replay.Host.Security;

namespace Replay.Host.Operating;

public sealed class DeadLetterEvents(OperatorLog log) : IDeadLetterSink
{
    public void Write(DeadLetter letter)
    {
        var id = letter.Id is null ? "-" : global::Replay.Core.Printable.show(letter.Id);
        log.Write(Severity.Warn,
            $"dead letter: {letter.Topic}/{letter.Partition}/{letter.Offset} id={id}{(letter.Destination is { } d ? $" at {d}" : "")}: {letter.Reason} (printed, not kept)",
            [
                new("event", "dead_letter"),
                new("topic", letter.Topic),
                new("partition", letter.Partition),
                new("offset", letter.Offset),
                new("id", letter.Id),
                new("method", letter.Method),
                new("url", letter.Url),
                new("destination", letter.Destination),
                new("reason", letter.Reason),
                new("reason_class", letter.ReasonClass),
                new("last_status", letter.LastStatus),
                new("attempts", letter.Attempts),
            ]);
    }

    public void Dispose() { }

    /// <summary>The sink to use instead of <paramref name="sink"/>: where that one only logs, this one
    /// logs the same through <paramref name="log"/>; any other sink is kept.</summary>
    public static IDeadLetterSink InPlaceOf(IDeadLetterSink sink, OperatorLog log) => sink switch
    {
        DeadLetterLog => new DeadLetterEvents(log),
        RedactingDeadLetters { Inner: DeadLetterLog } redacting => redacting.With(new DeadLetterEvents(log)),
        _ => sink,
    };
}
