// The answer as the HttpClient path keeps it, by the same capture rules as the lean
// path: a status-only answer leaves the body to the handler (which drains or closes),
// a full one reads the body into the collector, up to the drain allowance unless the
// whole of it is to be hashed. No decompression: the handler is set up without it.
using System.Buffers;
using static Replay.Core.Outcome;

namespace Replay.Host.Delivery;

static class ClientAnswer
{
    public static async ValueTask<Answer> ReadAsync(HttpResponseMessage response, ResponseCapture capture, CancellationToken cancel)
    {
        var status = (int)response.StatusCode;
        var announced = response.Content.Headers.ContentLength ?? -1;
        if (!capture.KeepsAnswer(status))
            return Answers.Of(status, response.Headers.RetryAfter, null, null, announced, null);

        var headers = new List<KeyValuePair<string, string>>();
        foreach (var (name, values) in response.Headers.NonValidated.Concat(response.Content.Headers.NonValidated))
            if (capture.KeptName(name) is { } keptName)
                foreach (var value in values)
                    headers.Add(new(keptName, value));

        var keep = capture.BodyBytesFor(status);
        var collector = new BodyCollector(keep, capture.HashBeyond, announced);
        var budget = capture.HashBeyond ? long.MaxValue : keep + (long)ResponseReader.DrainBytes;
        var complete = true;
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            await using var body = await response.Content.ReadAsStreamAsync(cancel).ConfigureAwait(false);
            while (true)
            {
                var want = (int)Math.Min(buffer.Length, budget - collector.Seen);
                if (want == 0)
                {
                    complete = false;
                    break;
                }
                var read = await body.ReadAsync(buffer.AsMemory(0, want), cancel).ConfigureAwait(false);
                if (read == 0) break;
                collector.Take(buffer.AsSpan(0, read));
            }
        }
        catch
        {
            collector.Abandon();
            throw;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        if (!complete) collector.Abandon();
        var (kept, hash) = collector.Finish();
        return Answers.Of(status, response.Headers.RetryAfter, headers, kept, complete ? collector.Seen : announced, hash);
    }
}
