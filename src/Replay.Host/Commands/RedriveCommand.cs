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
        var command = new Command("redrive", """
            Send dead letters again, once the destination accepts them. Records that fail again go to
            this run's --dead-letter / --dead-letter-topic (use a new file), so nothing is lost.

            Examples:
              replay redrive --file dead.jsonl --dest "http://proto.example/submit/telemetry/%k" --dead-letter dead-2.jsonl
              replay redrive --topic replay-dead -b 127.0.0.1:9092 -gid redrive-1 --dest "http://proto.example/submit/telemetry/%k"
            """);
        command.Options.Add(file);
        command.Options.Add(topic);
        foreach (var option in new Option[] { GroupId, Properties, Bootstrap, Dest, CopyKeys, Sample, SampleMode, Delete, NumThreads,
                     Concurrency, ValidateJson, Proxy, CaFile, ClientCert, ClientKey, InsecureSkipVerify, Format, RawKeys, RunCommand.DeadLetterFile, RunCommand.DeadLetterTopic, MaxRate, From, MaxInFlightBytes,
                     MaxInFlightRecords, MaxPayloadBytes, RequestTimeout, MaxRetryDuration, ShutdownTimeout, RulesFile })
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
            var settings = DeliverySettings(parse, new Dictionary<string, string>(), "", secrets);
            if (!settings.IsOk) { Console.Error.WriteLine($"replay redrive: {settings.Error}"); return ExitCodes.Usage; }
            using var deadLetters = settings.Value!.DeadLetters;
            using var fileTokens = settings.Value!.Tokens;
            return FileRedrive.Run(settings.Value!, file, stats, cancel);
        }
        var kafka = KafkaSettings(parse, secrets);
        if (!kafka.IsOk) { Console.Error.WriteLine($"replay redrive: {kafka.Error}"); return ExitCodes.Usage; }
        // A dead-letter topic is read from its start unless the group has committed offsets.
        if (parse.GetResult(From) is null or { Implicit: true }) kafka.Value!["auto.offset.reset"] = "earliest";
        var built = DeliverySettings(parse, kafka.Value!, topic!, secrets);
        if (!built.IsOk) { Console.Error.WriteLine($"replay redrive: {built.Error}"); return ExitCodes.Usage; }
        built.Value!.UntilEnd = true;
        // --from may be a time here too: the dead letters written since then.
        built.Value!.Start = Operating.StartPosition.Parse(parse.GetValue(From)!, DateTimeOffset.UtcNow).Value!;
        using var sinks = built.Value!.DeadLetters;
        using var tokens = built.Value!.Tokens;
        var consumer = new ReplayConsumer(built.Value!, stats);
        var code = consumer.Run(cancel);
        Console.Error.WriteLine($"replay redrive: {stats.Summary()}");
        return code != 0 ? code : stats.DeadLettered == 0 ? 0 : ExitCodes.Failure;
    }
}
