namespace Replay.Host.Cli;

public static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    /// <summary>Bad flags, files or settings: nothing was consumed.</summary>
    public const int Usage = 2;
    /// <summary>TLS to the destination failed (untrusted certificate...): retrying cannot fix it;
    /// what was not delivered stays uncommitted.</summary>
    public const int DestinationTls = 3;
    /// <summary>A second Ctrl+C/SIGTERM: stopped at once, undelivered records not committed.</summary>
    public const int Interrupted = 130;
}
