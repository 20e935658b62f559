// Telemetry-like HTTP submissions for `replay demo`: what Bagheera's clients sent —
// stores under a versioned path with partitions, stores that replace an earlier
// document (X-Obsolete-Document), and plain DELETEs — sent concurrently to an ingest
// endpoint, counting its answers.
using System.Net;
using System.Text;

namespace Replay.Host.Ingest;

public sealed record DemoSubmission(string Method, string Path, byte[] Body, IReadOnlyList<string> Obsolete);

public sealed record DemoAnswers(int Stored, int Deleted, int Failed, string? FirstFailure);

public static class DemoTraffic
{
    /// <summary>Makes <paramref name="count"/> submissions to <paramref name="ns"/>: about 5% replace an
    /// earlier document and 2% delete one; the rest store a new one.</summary>
    public static List<DemoSubmission> Generate(int count, string ns, int seed)
    {
        var random = new Random(seed);
        var channels = new[] { "release", "beta", "aurora", "nightly" };
        var ids = new List<string>();
        var submissions = new List<DemoSubmission>(count);
        for (var i = 0; i < count; i++)
        {
            var draw = random.NextDouble();
            if (ids.Count > 0 && draw < 0.02)
            {
                submissions.Add(new("DELETE", $"/submit/{ns}/{ids[random.Next(ids.Count)]}", [], []));
                continue;
            }
            var id = new Guid(RandomBytes(random, 16)).ToString();
            var channel = channels[random.Next(channels.Length)];
            var obsolete = ids.Count > 0 && draw < 0.07 ? new[] { ids[random.Next(ids.Count)] } : [];
            ids.Add(id);
            submissions.Add(new("POST", $"/1.0/submit/{ns}/{id}/{channel}/{40 + random.Next(10)}.0", Payload(random, channel, i), obsolete));
        }
        return submissions;
    }

    /// <summary>Sends every submission with <paramref name="concurrency"/> in flight and counts the answers.</summary>
    public static async Task<DemoAnswers> SendAsync(string baseUrl, IReadOnlyList<DemoSubmission> submissions, int concurrency, CancellationToken cancel)
    {
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, UseProxy = false });
        int stored = 0, deleted = 0, failed = 0;
        string? firstFailure = null;
        await Parallel.ForEachAsync(submissions, new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancel }, async (submission, token) =>
        {
            using var request = new HttpRequestMessage(new HttpMethod(submission.Method), baseUrl + submission.Path);
            if (submission.Body.Length > 0)
                request.Content = new ByteArrayContent(submission.Body);
            if (submission.Obsolete.Count > 0)
                request.Headers.Add(IngestServer.ObsoleteDocumentHeader, string.Join(", ", submission.Obsolete));
            using var response = await client.SendAsync(request, token);
            switch (response.StatusCode)
            {
                case HttpStatusCode.Created: Interlocked.Increment(ref stored); break;
                case HttpStatusCode.OK when submission.Method == "DELETE": Interlocked.Increment(ref deleted); break;
                default:
                    Interlocked.Increment(ref failed);
                    var body = await response.Content.ReadAsStringAsync(token);
                    Interlocked.CompareExchange(ref firstFailure, $"{submission.Method} {submission.Path}: {(int)response.StatusCode} {body.Trim()}", null);
                    break;
            }
        });
        return new DemoAnswers(stored, deleted, failed, firstFailure);
    }

    static byte[] RandomBytes(Random random, int n) { var b = new byte[n]; random.NextBytes(b); return b; }

    static byte[] Payload(Random random, string channel, int i) =>
        Encoding.UTF8.GetBytes($"{{\"ver\":1,\"seq\":{i},\"info\":{{\"appUpdateChannel\":\"{channel}\",\"reason\":\"idle-daily\"}},\"simpleMeasurements\":{{\"uptime\":{random.Next(1, 100000)}}}}}");
}
