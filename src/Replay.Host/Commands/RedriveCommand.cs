// `replay redrive`: send dead letters again, from a --dead-letter file or a
// --dead-letter-topic, with the same destination flags as `replay run`.
using System.CommandLine;
using Replay.Host.Cli;
using Replay.Host.Delivery;
using Replay.Host.Replay;
using Replay.Host.Security;
using static Replay.Host.Commands.RunCommand;

namespace Replay.Host.Commands;

public static class RedriveCommand
{
    public static Command Create()
    {
        var file = new Option<string?>("--file", "-f") { Description = "A dead-letter file written by --dead-letter" };
        var topic = new Option<string?>("--topic", "-t") { Description = "A dead-letter topic written by --dead-letter-topic (needs -b/-p and -gid)" };
        var command = new Command("redrive", "Send dead letters again, from a --dead-letter file or a --dead-letter-topic.");
        HelpText.Describe(command,
            details: """
                Records that fail again go to this run's --dead-letter / --dead-letter-topic (use a new file); from a file
                without either they are printed (the file still holds them), from a topic they go to the group's file in
                --state-dir, so nothing is lost. Exit 0 when every record was sent, 1 when some failed again.
                """,
            examples: """
                  replay redrive --file dead.jsonl --dest "http://proto.example/submit/telemetry/%k" --dead-letter dead-2.jsonl
                  replay redrive --topic replay-dead -b 127.0.0.1:9092 -gid redrive-1 --dest "http://proto.example/submit/telemetry/%k"
                """);
        Signals.Stops(command, "stopping: finishing in-flight requests, then committing", "undelivered records stay uncommitted");
        command.Options.Add(file);
        command.Options.Add(topic);
        foreach (var option in new Option[] { GroupId, Properties, Bootstrap, Dest, DestBestEffort, CopyKeys, Sample, SampleMode, Delete, ConcurrencyOptions.NumThreads,
                     ConcurrencyOptions.Concurrency, ConcurrencyOptions.MaxConcurrency, ConcurrencyOptions.Pipeline, ValidateJson, Proxy, RunCommand.NoProxy, CaFile, ClientCert, ClientKey, InsecureSkipVerify, Format, RawKeys, RunCommand.DeadLetterFile, RunCommand.DeadLetterTopic, StateDir, MaxRate, From, MaxInFlightBytes,
                     MaxInFlightRecords, MaxPayloadBytes, RequestTimeout, MaxRetryDuration, MaxBackoff, PoisonAfter, ShutdownTimeout, RulesFile }.Concat(Rules.RouteOptions.All))
            command.Options.Add(option);
        foreach (var option in DestinationAuthOptions.All) command.Options.Add(option);
        command.SetAction((parse, cancel) => Task.FromResult(Execute(parse, file, topic, cancel)));
        return command;
    }

    static int Execute(ParseResult parse, Option<string?> fileOption, Option<string?> topicOption, CancellationToken cancel)
    {
        var file = parse.GetValue(fileOption);
        var topic = parse.GetValue(topicOption);
        if ((file is null) == (topic is null))
        {
            Console.Error.WriteLine("replay redrive: pass exactly one of --file FILE or --topic TOPIC");
            return ExitCodes.Usage;
        }
        var secrets = new Secrets();
        Console.SetOut(new RedactingWriter(Console.Out, secrets));
        Console.SetError(new RedactingWriter(Console.Error, secrets));
        var stats = new ReplayStats();
        if (file is not null)
        {
            var built = DeliverySettings(parse, new Dictionary<string, string>(), "", secrets);
            if (!built.IsOk) { Console.Error.WriteLine($"replay redrive: {built.Error}"); return ExitCodes.Usage; }
            var job = built.Value!;
            if (NoProxyProblem(parse, job) is { } noProxy) { Console.Error.WriteLine($"replay redrive: {noProxy}"); return ExitCodes.Usage; }
            using var deadLetters = job.Services.DeadLetters;
            using var fileTokens = job.Services.Tokens;
            return FileRedrive.Run(job.Run, job.Services, file, stats, cancel);
        }
        var kafka = KafkaSettings(parse, secrets);
        if (!kafka.IsOk) { Console.Error.WriteLine($"replay redrive: {kafka.Error}"); return ExitCodes.Usage; }
        // A dead-letter topic is read from its start unless the group has committed offsets.
        if (parse.GetResult(From) is null or { Implicit: true }) kafka.Value!["auto.offset.reset"] = "earliest";
        // --from may be a time here too: the dead letters written since then.
        var start = Operating.StartPosition.Parse(parse.GetValue(From)!, DateTimeOffset.UtcNow).Value!;
        var fromTopic = DeliverySettings(parse, kafka.Value!, topic!, secrets, untilEnd: true, start: start);
        if (!fromTopic.IsOk) { Console.Error.WriteLine($"replay redrive: {fromTopic.Error}"); return ExitCodes.Usage; }
        var redrive = fromTopic.Value!;
        if (NoProxyProblem(parse, redrive) is { } bypass) { Console.Error.WriteLine($"replay redrive: {bypass}"); return ExitCodes.Usage; }
        using var sinks = redrive.Services.DeadLetters;
        using var tokens = redrive.Services.Tokens;
        // The same checks as `replay run` before joining the group: Kafka answers, the topic exists.
        var preflight = Kafka.Preflight.Check(new Kafka.PreflightRequest(redrive.Run.Kafka, topic!, start,
            parse.GetResult(From) is { Implicit: false }, false, true, TimeSpan.FromSeconds(30)), Console.Error, cancel);
        if (preflight.ExitCode is { } stopped)
        {
            if (stopped != ExitCodes.Ok) Console.Error.WriteLine($"replay redrive: {preflight.Problem}");
            return stopped;
        }
        var consumer = new ReplayConsumer(redrive.Run, redrive.Services, stats);
        var code = consumer.Run(cancel);
        Console.Error.WriteLine($"replay redrive: {stats.Summary()}");
        return code != 0 ? code : stats.DeadLettered == 0 ? 0 : ExitCodes.Failure;
    }

    static string? NoProxyProblem(ParseResult parse, ReplayJob job)
    {
        if (parse.GetValue(RunCommand.NoProxy) is not { } hosts) return null;
        var problem = ProxySettings.Bypass(job.Services.Proxy, hosts);
        if (problem is not null) job.Services.DeadLetters.Dispose();
        return problem;
    }
}
