// --dry-run: the HTTP handler that prints each request the replay would send
// (method, URL, headers, body size) and answers 200 without any network traffic.
// The request is built exactly as for a real run, so what is printed is what would
// go out; the consume loop meanwhile stores and commits nothing.
using System.Net;

namespace Replay.Host.Operating;

public sealed class DryRunHandler(OperatorLog log) : HttpMessageHandler
{
    long _printed;

    /// <summary>Requests printed so far.</summary>
    public long Printed => Interlocked.Read(ref _printed);

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var headers = request.Headers.Concat(request.Content?.Headers ?? Enumerable.Empty<KeyValuePair<string, IEnumerable<string>>>())
            .Select(h => new KeyValuePair<string, string>(h.Key, string.Join(", ", h.Value)))
            .ToList();
        var bytes = request.Content?.Headers.ContentLength ?? 0;
        var method = request.Method.Method;
        var url = request.RequestUri?.OriginalString ?? "";
        log.Output(
            $"{method} {url} ({bytes} bytes){string.Concat(headers.Select(h => $" {h.Key}: {h.Value};")).TrimEnd(';')}",
            [
                new("method", method),
                new("url", url),
                new("headers", headers),
                new("body_bytes", bytes),
            ]);
        Interlocked.Increment(ref _printed);
        return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request });
    }
}
