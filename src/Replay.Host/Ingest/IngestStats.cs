// Counters for one `replay ingest`, bumped with Interlocked per request and read by
// the periodic status line, the demo's summary and the tests. Never a log line per request.
namespace Replay.Host.Ingest;

public sealed class IngestStats
{
    long _stored, _deleted, _obsoleteDeletes, _rejected, _tooLarge, _unavailable, _records;

    /// <summary>POST/PUT answered 201.</summary>
    public long Stored => Volatile.Read(ref _stored);
    /// <summary>DELETE answered 200.</summary>
    public long Deleted => Volatile.Read(ref _deleted);
    /// <summary>DELETE envelopes written for X-Obsolete-Document ids.</summary>
    public long ObsoleteDeletes => Volatile.Read(ref _obsoleteDeletes);
    /// <summary>Requests answered 4xx other than 413.</summary>
    public long Rejected => Volatile.Read(ref _rejected);
    public long TooLarge => Volatile.Read(ref _tooLarge);
    /// <summary>Requests answered 503: Kafka did not acknowledge in time.</summary>
    public long Unavailable => Volatile.Read(ref _unavailable);
    /// <summary>Envelopes Kafka acknowledged.</summary>
    public long Records => Volatile.Read(ref _records);

    public void OnStored(int obsolete) { Interlocked.Increment(ref _stored); Interlocked.Add(ref _obsoleteDeletes, obsolete); Interlocked.Add(ref _records, 1 + obsolete); }
    public void OnDeleted() { Interlocked.Increment(ref _deleted); Interlocked.Increment(ref _records); }
    public void OnRejected() => Interlocked.Increment(ref _rejected);
    public void OnTooLarge() => Interlocked.Increment(ref _tooLarge);
    public void OnUnavailable() => Interlocked.Increment(ref _unavailable);

    public override string ToString() =>
        $"{Stored} stored (201), {Deleted} deleted (200), {ObsoleteDeletes} obsolete-document deletes, " +
        $"{Records} envelopes acknowledged by Kafka, {Rejected + TooLarge} rejected (4xx), {Unavailable} unavailable (503)";
}
