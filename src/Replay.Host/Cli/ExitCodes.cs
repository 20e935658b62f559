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
    /// <summary>Kafka could not be reached (refused, unresolvable, timed out) within --connect-timeout,
    /// or stopped answering: the settings may be right, so a restart later may succeed. 69 is
    /// sysexits.h's EX_UNAVAILABLE. Nothing was consumed past what is committed.</summary>
    public const int KafkaUnreachable = 69;
    /// <summary>A second Ctrl+C/SIGTERM: stopped at once, undelivered records not committed.</summary>
    public const int Interrupted = 130;
}
