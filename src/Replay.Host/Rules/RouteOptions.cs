// The flags of `replay run` and `replay redrive` that every route inherits besides
// --dest, --sample, --delete and --copy-keys: what the destination's answers mean
// (--ok-on, --retry-on, --drop-on, --fail-on), --drop-ip, and the key Json.Hash uses
// (--scrub-key-file). Read and checked once into the RuleBase; a rules file's
// `on-status:`, `drop-ip:` and `scrub-key-file:` refine them per rule.
using System.CommandLine;
using Microsoft.FSharp.Collections;
using Replay.Core;
using Replay.Host.Security;

namespace Replay.Host.Rules;

public static class RouteOptions
{
    public static readonly Option<string?> OkOn = new("--ok-on") { Description = "Statuses that mean delivered, e.g. 404,409 (classes such as 4xx and ranges such as 500-503 too)" };
    public static readonly Option<string?> RetryOn = new("--retry-on") { Description = "Statuses retried with backoff (default: 408, 429, 5xx)" };
    public static readonly Option<string?> DropOn = new("--drop-on") { Description = "Statuses that end the record without delivery: counted per status and route, not dead-lettered, e.g. 410" };
    public static readonly Option<string?> FailOn = new("--fail-on") { Description = "Statuses that dead-letter the record at once (default: every status not 2xx and not retried)" };
    public static readonly Option<bool> DropIp = new("--drop-ip") { Description = "Keep the envelope's ip_addr off every request (a rule cannot send it again)" };
    public static readonly Option<string?> ScrubKeyFile = new("--scrub-key-file") { Description = "File holding the secret key of Json.Hash in rules' body: (at least 16 bytes; e.g. openssl rand -hex 32)" };

    public static IEnumerable<Option> All => [OkOn, RetryOn, DropOn, FailOn, DropIp, ScrubKeyFile];

    static readonly (Option<string?> Flag, StatusPolicy.Meaning Meaning)[] PolicyFlags =
    [
        (OkOn, StatusPolicy.Meaning.Success),
        (RetryOn, StatusPolicy.Meaning.Retry),
        (DropOn, StatusPolicy.Meaning.Drop),
        (FailOn, StatusPolicy.Meaning.Fail),
    ];

    /// <summary>What the status flags say answers mean, for the start banner (the flags were checked by Apply).</summary>
    public static string Describe(ParseResult parse)
    {
        var entries = PolicyFlags
            .SelectMany(p => parse.GetValue(p.Flag) is { } text && StatusPolicy.parseList(text) is { IsOk: true } ranges
                ? ranges.ResultValue.Select(range => Tuple.Create(range, p.Meaning))
                : [])
            .ToList();
        var policy = StatusPolicy.create(ListModule.OfSeq(entries));
        return StatusPolicy.describe(policy.IsOk ? policy.ResultValue : StatusPolicy.defaults);
    }

    /// <summary>The base with these flags applied, or one message naming the flag at fault.
    /// A key file's secret goes into <paramref name="secrets"/>; a policy other than the
    /// defaults, and a key file others can read, are announced on <paramref name="log"/>.</summary>
    public static Result<RuleBase> Apply(ParseResult parse, RuleBase flags, Secrets secrets, TextWriter log)
    {
        var entries = new List<Tuple<StatusPolicy.StatusRange, StatusPolicy.Meaning>>();
        foreach (var (flag, meaning) in PolicyFlags)
        {
            if (parse.GetValue(flag) is not { } text) continue;
            var ranges = StatusPolicy.parseList(text);
            if (ranges.IsError) return Result<RuleBase>.Fail($"{flag.Name} {text}: {ranges.ErrorValue}");
            entries.AddRange(ranges.ResultValue.Select(range => Tuple.Create(range, meaning)));
        }
        var policy = StatusPolicy.create(ListModule.OfSeq(entries));
        if (policy.IsError)
            return Result<RuleBase>.Fail($"{string.Join("/", PolicyFlags.Select(p => p.Flag.Name))}: {policy.ErrorValue}; give each status one meaning");

        ScrubKey? key = null;
        if (parse.GetValue(ScrubKeyFile) is { } keyPath)
        {
            var loaded = ScrubKey.Load(keyPath, secrets, out var warning);
            if (!loaded.IsOk) return Result<RuleBase>.Fail($"--scrub-key-file: {loaded.Error}");
            if (warning is not null) log.WriteLine($"replay: warning: {warning}");
            key = loaded.Value;
        }
        if (entries.Count > 0) log.WriteLine($"replay: answers mean: {StatusPolicy.describe(policy.ResultValue)}; other statuses keep the defaults");
        return Result<RuleBase>.Ok(flags with
        {
            StatusPolicy = policy.ResultValue,
            DropIp = parse.GetValue(DropIp),
            ScrubKey = key,
            Secrets = secrets,
        });
    }
}
