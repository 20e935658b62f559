using System.CommandLine;
using Replay.Host.Sink;

namespace Replay.Host.Commands;

public static class SinkCommand
{
    public static Command Create()
    {
        var port = new Option<int>("--port") { Description = "Port on 127.0.0.1 (0 picks a free one)", DefaultValueFactory = _ => 8080 };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print only a count every few seconds" };
        var command = new Command("sink", """
            A small Bagheera-compatible receiver on 127.0.0.1 that prints what lands:
            POST|PUT /submit/{namespace}/{id} -> 201, DELETE -> 200.

            Example:
              replay sink --port 8080
              replay run ... --dest "http://127.0.0.1:8080/submit/telemetry/%k"
            """);
        command.Options.Add(port);
        command.Options.Add(quiet);
        command.SetAction(async (parse, cancel) =>
        {
            var print = !parse.GetValue(quiet);
            await using var sink = new SinkServer(port: parse.GetValue(port))
            {
                OnReceived = r => { if (print) Console.Out.WriteLine($"{r.Method} {r.Path} {r.Bytes} bytes {r.ReplayId}"); },
            };
            await sink.StartAsync(cancel);
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
            return 0;
        });
        return command;
    }
}
