// The flags of the responses log: a sampled record of what the destinations answered,
// to a JSON-lines file and/or a Kafka topic. What is kept is the core's decision
// (ExchangeSample); the log itself is ExchangeLog. The defaults are stated once, in
// ExchangeSample.defaults.
using System.CommandLine;
using Replay.Core;
using Replay.Host.Delivery;
using Replay.Host.Security;

namespace Replay.Host.Operating;

public static class ResponsesOptions
{
    public static readonly Option<string?> File = new("--responses")
    {
        HelpName = "file",
        Description = "Append a sampled record of exchanges (replay id, request, status or what happened instead, latency, kept headers and body excerpt, redacted) to this JSON-lines file",
    };

    public static readonly Option<string?> Topic = new("--responses-topic")
    {
        HelpName = "topic",
        Description = "Write the same record of exchanges to this Kafka topic (key: the replay id)",
    };

    public static readonly Option<double> Sample = new("--responses-sample")
    {
        HelpName = "rate",
        Description = "Fraction of records whose exchanges are all logged, chosen by replay id (the same records in every run and member)",
        DefaultValueFactory = _ => Sampling.RateModule.value(ExchangeSample.defaults.Rate),
    };

    public static readonly Option<bool> Errors = new("--responses-errors")
    {
        Description = "Also log every attempt that got no 2xx (another status, a time-out, no connection), sampled or not",
        DefaultValueFactory = _ => ExchangeSample.defaults.Errors,
    };

    public static IEnumerable<Option> All => [File, Topic, Sample, Errors];

    /// <summary>The responses log the flags ask for (null when none), its file open already; or one clear message.</summary>
    /// <param name="kafka">librdkafka settings of the run, for --responses-topic.</param>
    /// <param name="log">Where the log reports lines it cannot write.</param>
    public static Result<ExchangeLog?> Read(ParseResult parse, IReadOnlyDictionary<string, string> kafka, Secrets secrets, TextWriter log)
    {
        var file = parse.GetValue(File);
        var topic = parse.GetValue(Topic);
        if (file is null && topic is null)
        {
            foreach (var flag in new Option[] { Sample, Errors })
                if (parse.GetResult(flag) is { Implicit: false })
                    return Result<ExchangeLog?>.Fail($"{flag.Name} has no effect without --responses FILE or --responses-topic TOPIC");
            return Result<ExchangeLog?>.Ok(null);
        }
        var rate = Sampling.RateModule.create(parse.GetValue(Sample));
        if (rate.IsError) return Result<ExchangeLog?>.Fail("--responses-sample: " + rate.ErrorValue);
        var settings = new ExchangeSample.Settings(rate.ResultValue, parse.GetValue(Errors));
        if (ExchangeSample.keepsNothing(settings))
            return Result<ExchangeLog?>.Fail("--responses-sample 0 with --responses-errors false would log nothing: raise the sample, or leave errors on");
        if (topic is { Length: 0 }) return Result<ExchangeLog?>.Fail("--responses-topic: give a topic name");
        var sinks = new List<IExchangeSink>();
        if (file is not null)
        {
            var opened = ExchangeFile.Open(file);
            if (!opened.IsOk) return Result<ExchangeLog?>.Fail("--responses: " + opened.Error);
            sinks.Add(opened.Value!);
        }
        if (topic is not null) sinks.Add(new ExchangeTopic(kafka, topic, log));
        return Result<ExchangeLog?>.Ok(new ExchangeLog(settings, sinks, secrets, log));
    }
}
