// How many requests a replay puts on the wire at once: --concurrency N (or Bagheera's -nt N)
// for a fixed number, --concurrency auto for a limit that adapts to the destination between
// 1 and --max-concurrency (Replay.Core.ConcurrencyLimit). Shared by `run` and `redrive`.
using System.CommandLine;
using System.Globalization;
using Replay.Core;

namespace Replay.Host.Commands;

public static class ConcurrencyOptions
{
    public static readonly Option<int?> NumThreads = new("--numthreads", "-nt") { HelpName = "n", Description = "Bagheera's thread count; sets a fixed --concurrency" };

    public static readonly Option<string> Concurrency = new("--concurrency", "-c")
    {
        HelpName = "n|auto",
        Description = "Requests in flight at once (order is kept per document id); auto adapts to the destination's latency and push backs, between 1 and --max-concurrency",
        DefaultValueFactory = _ => Settings.delivery.Concurrency.Most.ToString(CultureInfo.InvariantCulture),
        CustomParser = result =>
        {
            var token = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
            if (token.Equals("auto", StringComparison.OrdinalIgnoreCase)) return "auto";
            if (int.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n)) return n.ToString(CultureInfo.InvariantCulture);
            result.AddError($"--concurrency '{token}': write a whole number (requests at once), or auto");
            return null;
        },
    };

    public static readonly Option<int> MaxConcurrency = new("--max-concurrency")
    {
        HelpName = "n",
        Description = "With --concurrency auto, the most requests in flight at once",
        DefaultValueFactory = _ => ConcurrencyLimit.defaults.Max,
    };

    public static readonly Option<int> Pipeline = new("--pipeline")
    {
        HelpName = "n",
        Description = "Requests one connection carries before their answers come (HTTP/1.1 pipelining; http:// destinations reached directly). "
            + "Fewer system calls per request, for servers known to handle it; a broken connection's unanswered requests are sent again",
        DefaultValueFactory = _ => Settings.delivery.Pipelining,
    };

    /// <summary>What the flags ask for, or one clear message (the range checks are Settings.problem's).</summary>
    public static Result<Core.Concurrency> Read(ParseResult parse)
    {
        var text = parse.GetValue(Concurrency)!;
        var threads = parse.GetValue(NumThreads);
        var maxGiven = parse.GetResult(MaxConcurrency) is { Implicit: false };
        if (text == "auto")
        {
            if (threads is { } t)
                return Result<Core.Concurrency>.Fail($"-nt {t} is a fixed number of requests at once and --concurrency auto an adaptive one: pass one of them");
            return Result<Core.Concurrency>.Ok(Core.Concurrency.NewAdaptive(ConcurrencyLimit.upTo(parse.GetValue(MaxConcurrency))));
        }
        if (maxGiven)
            return Result<Core.Concurrency>.Fail($"--max-concurrency goes with --concurrency auto; with a fixed --concurrency {threads ?? int.Parse(text, CultureInfo.InvariantCulture)}, that is the most");
        return Result<Core.Concurrency>.Ok(Core.Concurrency.NewFixed(threads ?? int.Parse(text, CultureInfo.InvariantCulture)));
    }
}
