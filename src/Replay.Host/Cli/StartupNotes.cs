namespace Replay.Host.Cli;

/// <summary>Lines about the command line (ignored JVM properties) that `replay run` prints through
/// its own log, so that they take its --log-format; other commands print them at once.</summary>
public static class StartupNotes
{
    static readonly List<string> Pending = [];

    public static void Add(string note) { lock (Pending) Pending.Add(note); }

    public static IReadOnlyList<string> Drain()
    {
        lock (Pending)
        {
            var all = Pending.ToList();
            Pending.Clear();
            return all;
        }
    }
}
