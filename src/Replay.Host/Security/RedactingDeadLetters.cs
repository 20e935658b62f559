// Dead letters are files people open, copy and attach to tickets. This sink masks,
// before the entry is written: the values of Authorization-like Kafka headers, and
// any known secret in the reason, the URL, another header or the destination's last
// answer (its header values and body excerpt, which may echo a credential). The
// record's key and value are kept as consumed: they are the data being replayed, and
// the record in Kafka is unchanged.
using Replay.Host.Delivery;

namespace Replay.Host.Security;

public sealed class RedactingDeadLetters(IDeadLetterSink inner, Secrets secrets) : IDeadLetterSink
{
    /// <summary>Where the redacted entries go.</summary>
    public IDeadLetterSink Inner => inner;

    /// <summary>The same redaction in front of another sink.</summary>
    public RedactingDeadLetters With(IDeadLetterSink other) => new(other, secrets);

    public void Write(DeadLetter letter) =>
        inner.Write(letter with
        {
            Reason = secrets.Redact(letter.Reason),
            Url = letter.Url is null ? null : secrets.Redact(letter.Url),
            Headers = letter.Headers?.ToDictionary(h => h.Key, h => SensitiveHeaders.Shown(h.Key, h.Value, secrets)),
            LastAnswer = letter.LastAnswer?.Redacted(secrets),
        });

    public void Dispose() => inner.Dispose();
}
