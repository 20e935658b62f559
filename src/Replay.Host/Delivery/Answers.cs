// The core's Answer, built from what either sender read. A status-only answer (a 2xx
// under the default capture) allocates nothing beyond the record itself.
using System.Net.Http.Headers;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using static Replay.Core.Outcome;

namespace Replay.Host.Delivery;

static class Answers
{
    public static Answer Of(in PlainResponse response) =>
        Of(response.Status, response.RetryAfter, response.Headers, response.Body, response.BodyLength, response.BodyHash);

    public static Answer Of(int status, RetryConditionHeaderValue? retryAfter, List<KeyValuePair<string, string>>? headers,
        byte[]? body, long bodyLength, byte[]? bodyHash) =>
        new(status,
            RetryAfter(retryAfter),
            headers is null or { Count: 0 }
                ? FSharpList<Tuple<string, string>>.Empty
                : ListModule.OfSeq(headers.Select(h => Tuple.Create(h.Key, h.Value))),
            body ?? [],
            bodyLength,
            bodyHash ?? []);

    /// <summary>Retry-After as a wait from now: a delay as given, a date as the time left until it.</summary>
    public static FSharpOption<TimeSpan> RetryAfter(RetryConditionHeaderValue? header)
    {
        if (header?.Delta is { } delta) return FSharpOption<TimeSpan>.Some(delta);
        if (header?.Date is { } date)
        {
            var wait = date - DateTimeOffset.UtcNow;
            return FSharpOption<TimeSpan>.Some(wait > TimeSpan.Zero ? wait : TimeSpan.Zero);
        }
        return FSharpOption<TimeSpan>.None;
    }
}
