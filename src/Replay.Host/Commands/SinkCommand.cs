using System.CommandLine;
using Replay.Host.Cli;
using Replay.Host.Sink;

namespace Replay.Host.Commands;

public static class SinkCommand
{
    public static Command Create()
    {
        var port = new Option<int>("--port") { Description = "Port on 127.0.0.1 (0 picks a free one)", DefaultValueFactory = _ => 8080 };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print only a count every few seconds" };
        var command = new Command("sink", "A small Bagheera-compatible receiver on 127.0.0.1 that prints what lands.");
        HelpText.Describe(command,
            details: "POST|PUT /submit/{namespace}/{id} -> 201, DELETE -> 200, anything else -> 404 or 405.",
            examples: """
                  replay sink --port 8080
                  replay run ... --dest "http://127.0.0.1:8080/submit/telemetry/%k"
                """);
        command.Options.Add(port);
        command.Options.Add(quiet);
        Signals.Stops(command, "stopping the sink");
        command.SetAction(async (parse, cancel) =>
        {
            var print = !parse.GetValue(quiet);
            var listenOn = parse.GetValue(port);
            if (listenOn is < 0 or > 65535)
            {
                Console.Error.WriteLine($"replay sink: --port {listenOn}: use a port from 1 to 65535 (or 0 for any free one)");
                return ExitCodes.Usage;
            }
            await using var sink = new SinkServer(port: listenOn)
            {
                OnReceived = r => { if (print) Console.Out.WriteLine($"{r.Method} {r.Path} {r.Bytes} bytes {r.ReplayId}"); },
            };
            try
            {
                await sink.StartAsync(cancel);
            }
            catch (Exception e) when (Listening.IsListenFailure(e))
            {
                Console.Error.WriteLine($"replay sink: {Listening.Problem("--port", "127.0.0.1", listenOn, e)}");
                return ExitCodes.Usage;
            }
            Console.Out.WriteLine($"sink listening on {sink.Url}");
            try
            {
                while (!cancel.IsCancellationRequested)
                {
                    await Task.Delay(TimeSpan.FromSeconds(5), cancel);
                    if (!print) Console.Out.WriteLine($"received {sink.Posts} posts, {sink.Deletes} deletes");
                }
            }
            catch (OperationCanceledException) { }
            Console.Out.WriteLine($"received {sink.Posts} posts, {sink.Deletes} deletes");
            return ExitCodes.Ok;
        });
        return command;
    }
}
