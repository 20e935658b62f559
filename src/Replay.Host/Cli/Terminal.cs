namespace Replay.Host.Cli;

/// <summary>What is known about the terminal the program writes to.</summary>
public static class Terminal
{
    /// <summary>Columns of the terminal, from the terminal itself or $COLUMNS; null when unknown.</summary>
    public static int? Width()
    {
        try
        {
            var width = Console.WindowWidth;
            if (width > 0) return width;
        }
        catch (Exception e) when (e is IOException or PlatformNotSupportedException or InvalidOperationException)
        {
            // Not a terminal after all: fall back to what the shell says.
        }
        return int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out var columns) && columns > 0 ? columns : null;
    }
}
