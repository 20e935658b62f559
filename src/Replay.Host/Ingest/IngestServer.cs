// `replay ingest`'s HTTP side: Bagheera's submission endpoint on Kestrel. It reads
// the request (path, method, body within the limit, X-Obsolete-Document, client
// address), lets the core's Submission module decide, writes the envelopes through
// the KafkaWriter and answers 201/200 only after Kafka acknowledged them.
using System.IO.Compression;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Replay.Core;

namespace Replay.Host.Ingest;

public sealed class IngestServer : IAsyncDisposable
{
    /// <summary>Bagheera's header naming documents this submission replaces.</summary>
    public const string ObsoleteDocumentHeader = "X-Obsolete-Document";

    readonly IngestSettings _settings;
    readonly KafkaWriter _writer;
    readonly WebApplication _app;
    readonly FSharpFunc<string, bool> _accepts;
    readonly FSharpList<IPNetwork> _trusted;
    int _disposed;

    public IngestStats Stats { get; } = new();
    /// <summary>The base URL, e.g. http://127.0.0.1:8080, once started.</summary>
    public string Url { get; private set; } = "";
    /// <summary>Cancelled when the Kafka producer failed for good.</summary>
    public CancellationToken Fatal => _writer.Fatal;

    public IngestServer(IngestSettings settings)
    {
        _settings = settings;
        _accepts = FuncConvert.FromFunc<string, bool>(settings.Accepts);
        _trusted = ListModule.OfSeq(settings.TrustedProxies);
        _writer = new KafkaWriter(settings.Kafka, settings.KafkaTimeout, settings.MaxContentLength, settings.Log);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel =>
        {
            // The limit is enforced by ReadBodyAsync, after decompression, with a 413 that says so.
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.AddServerHeader = false;
        });
        var host = settings.Host.Contains(':') && !settings.Host.StartsWith('[') ? $"[{settings.Host}]" : settings.Host;
        builder.WebHost.UseUrls($"http://{host}:{settings.Port}");
        // In-flight submissions finish (and get their answer) before a stop completes.
        builder.WebHost.UseShutdownTimeout(settings.KafkaTimeout + TimeSpan.FromSeconds(5));
        _app = builder.Build();
        _app.Run(HandleAsync);
    }

    public async Task StartAsync(CancellationToken cancel = default)
    {
        await _app.StartAsync(cancel);
        Url = Cli.ListeningAddress.Of(_app);
    }

    async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var response = context.Response;
        // Browsers may read every answer, as from Bagheera: submissions come from web pages too.
        response.Headers.AccessControlAllowOrigin = "*";
        var path = RawPath(context);
        if (path == "/" && (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)))
        {
            // Bagheera's root answer: load balancers probe it.
            response.StatusCode = StatusCodes.Status200OK;
            return;
        }
        var parsed = Submission.parsePath(_accepts, path);
        if (parsed.IsError)
        {
            await RejectAsync(context, parsed.ErrorValue);
            return;
        }
        var action = Submission.action(request.Method, parsed.ResultValue);
        if (action.IsError)
        {
            await RejectAsync(context, action.ErrorValue);
            return;
        }
        switch (action.ResultValue)
        {
            case Submission.Action.Store store:
                await StoreAsync(context, store.Item);
                break;
            case Submission.Action.Remove remove:
                await RemoveAsync(context, remove.path, remove.id);
                break;
            default:
                Preflight(response);
                break;
        }
    }

    async Task StoreAsync(HttpContext context, Submission.Path path)
    {
        var body = await ReadBodyAsync(context);
        if (body is null) return;
        if (body.Length == 0)
        {
            await RejectAsync(context, Submission.Rejection.EmptyBody);
            return;
        }
        var obsolete = Submission.obsoleteIds(context.Request.Headers[ObsoleteDocumentHeader].Select(v => v ?? ""));
        if (obsolete.IsError)
        {
            await RejectAsync(context, obsolete.ErrorValue);
            return;
        }
        var id = path.Id is { } given ? given.Value : Guid.NewGuid().ToString();
        var writes = Submission.store(Context(context), path, id, body, obsolete.ResultValue);
        var obsoleteCount = writes.Length - 1;
        var result = await _writer.WriteAsync(_settings.TopicFor(path.Namespace), [.. writes]);
        if (result == WriteResult.Written)
        {
            Stats.OnStored(obsoleteCount);
            context.Response.StatusCode = StatusCodes.Status201Created;
            context.Response.ContentType = "text/plain; charset=utf-8";
            // Bagheera answered a store with the id, so a client that let the server choose learns it.
            await context.Response.WriteAsync(id);
            return;
        }
        await WriteFailedAsync(context, result);
    }

    async Task RemoveAsync(HttpContext context, Submission.Path path, string id)
    {
        var write = Submission.remove(Context(context), path, id);
        var result = await _writer.WriteAsync(_settings.TopicFor(path.Namespace), [write]);
        if (result == WriteResult.Written)
        {
            Stats.OnDeleted();
            context.Response.StatusCode = StatusCodes.Status200OK;
            return;
        }
        await WriteFailedAsync(context, result);
    }

    Task WriteFailedAsync(HttpContext context, WriteResult result)
    {
        if (result == WriteResult.TooLarge)
        {
            Stats.OnTooLarge();
            return AnswerAsync(context, StatusCodes.Status413RequestEntityTooLarge,
                "Kafka refused the record as too large; lower --max-content-length or raise the topic's max.message.bytes");
        }
        Stats.OnUnavailable();
        // Nothing was promised: the client keeps the submission and tries again.
        context.Response.Headers.RetryAfter = "5";
        var last = _writer.LastError is { Length: > 0 } reason ? $" (last Kafka error: {reason})" : "";
        return AnswerAsync(context, StatusCodes.Status503ServiceUnavailable,
            $"Kafka did not acknowledge the submission within {_settings.KafkaTimeout.TotalSeconds:0.###} s{last}; nothing is promised stored, retry later");
    }

    Submission.Context Context(HttpContext context)
    {
        var peer = context.Connection.RemoteIpAddress ?? IPAddress.Loopback;
        var client = ClientAddress.resolve(
            _trusted,
            peer,
            context.Request.Headers["X-Forwarded-For"].Select(v => v ?? ""));
        return new Submission.Context(client.GetAddressBytes(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }

    /// <summary>The body, decompressed as Bagheera did for gzip and deflate, or null
    /// when the answer (413, 400, 415) was already written. Two limits apply: the decompressed
    /// body to --max-content-length, and the bytes read from the wire to
    /// <see cref="IngestSettings.MaxWireLength"/>, so that a small body padded with empty gzip
    /// members or empty deflate blocks cannot keep the server reading.</summary>
    async Task<byte[]?> ReadBodyAsync(HttpContext context)
    {
        var request = context.Request;
        var limit = _settings.MaxContentLength;
        var encoding = request.Headers.ContentEncoding.ToString().Trim().ToLowerInvariant();
        var compressed = encoding is "gzip" or "x-gzip" or "deflate";
        if (encoding is not ("" or "identity") && !compressed)
        {
            Stats.OnRejected();
            await AnswerAsync(context, StatusCodes.Status415UnsupportedMediaType,
                $"Content-Encoding '{encoding}' is not supported; send the body as is, gzip or deflate");
            return null;
        }
        // Kestrel counts the bytes of the body as they arrive and fails the read past this, before
        // a decompressor sees them; it also bounds what Kestrel would read to drain a body left
        // unread (a declared one refused below), which is otherwise unlimited here. A plain body
        // is held to the exact limit by ReadAtMostAsync.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } wire)
            wire.MaxRequestBodySize = _settings.MaxWireLength;
        if (request.ContentLength > (compressed ? _settings.MaxWireLength : limit))
        {
            await TooLargeAsync(context, request.ContentLength.Value, compressed);
            return null;
        }
        try
        {
            Stream source = encoding switch
            {
                "gzip" or "x-gzip" => new GZipStream(request.Body, CompressionMode.Decompress, leaveOpen: true),
                // HTTP's "deflate" is zlib-wrapped.
                "deflate" => new ZLibStream(request.Body, CompressionMode.Decompress, leaveOpen: true),
                _ => request.Body,
            };
            await using (source)
            {
                var bytes = request.ContentLength is { } n && !compressed
                    ? await ReadExactlyAsync(source, (int)n)
                    : await ReadAtMostAsync(source, limit, 16 * 1024);
                if (bytes is null)
                {
                    await TooLargeAsync(context, null, false);
                    return null;
                }
                return bytes;
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            await TooLargeAsync(context, null, compressed);
            return null;
        }
        catch (InvalidDataException e)
        {
            Stats.OnRejected();
            await AnswerAsync(context, StatusCodes.Status400BadRequest, $"the body is not valid {encoding}: {e.Message}");
            return null;
        }
    }

    /// <summary>A body of declared length, already checked against the limit: Kestrel
    /// delivers exactly that many bytes (or fails the request), so one buffer fits.</summary>
    static async Task<byte[]> ReadExactlyAsync(Stream source, int length)
    {
        var buffer = new byte[length];
        await source.ReadExactlyAsync(buffer);
        return buffer;
    }

    /// <summary>Reads the whole stream, or returns null as soon as it holds more than <paramref name="limit"/> bytes.</summary>
    static async Task<byte[]?> ReadAtMostAsync(Stream source, int limit, int expected)
    {
        var buffer = new byte[Math.Min(Math.Max(expected, 1), limit) + 1];
        var length = 0;
        while (true)
        {
            if (length == buffer.Length)
            {
                if (length > limit) return null;
                Array.Resize(ref buffer, (int)Math.Min((long)buffer.Length * 2, (long)limit + 1));
            }
            var read = await source.ReadAsync(buffer.AsMemory(length));
            if (read == 0) break;
            length += read;
            if (length > limit) return null;
        }
        return length == buffer.Length ? buffer : buffer[..length];
    }

    /// <param name="onTheWire">The limit broken is the one on the compressed bytes.</param>
    Task TooLargeAsync(HttpContext context, long? declared, bool onTheWire)
    {
        Stats.OnTooLarge();
        // The rest of a body this large is not worth reading just to keep the connection.
        context.Response.Headers.Connection = "close";
        var size = declared is { } n ? $"{n} bytes" : "larger";
        return AnswerAsync(context, StatusCodes.Status413RequestEntityTooLarge, onTheWire
            ? $"the compressed body is {size}, over the {_settings.MaxWireLength} bytes a body within --max-content-length ({_settings.MaxContentLength} bytes) can take compressed"
            : $"the body is {size}, over the limit of {_settings.MaxContentLength} bytes (--max-content-length)");
    }

    static void Preflight(HttpResponse response)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.Headers.AccessControlAllowMethods = Submission.allowedMethods;
        response.Headers.AccessControlAllowHeaders = $"Content-Type, Content-Encoding, {ObsoleteDocumentHeader}";
        response.Headers.AccessControlMaxAge = "86400";
    }

    Task RejectAsync(HttpContext context, Submission.Rejection rejection)
    {
        Stats.OnRejected();
        if (rejection.IsMethodNotAllowed) context.Response.Headers.Allow = Submission.allowedMethods;
        return AnswerAsync(context, Submission.status(rejection), Submission.describe(rejection));
    }

    static Task AnswerAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync(message + "\n", Encoding.UTF8);
    }

    /// <summary>The path exactly as the client escaped it: Kestrel's decoded Path would
    /// turn %2F into a separator and lose what the replay must rebuild.</summary>
    static string RawPath(HttpContext context)
    {
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? "";
        if (!raw.StartsWith('/'))
            // Absolute form (through a proxy) or '*': fall back to the normalised path.
            return context.Request.PathBase.Add(context.Request.Path).ToUriComponent();
        var query = raw.IndexOfAny(['?', '#']);
        return query < 0 ? raw : raw[..query];
    }

    /// <summary>Stops accepting, lets in-flight submissions finish, then flushes Kafka.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await _app.StopAsync();
        await _app.DisposeAsync();
        _writer.Dispose();
    }
}
