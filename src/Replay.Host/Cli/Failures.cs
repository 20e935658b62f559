// The last line of defence: an exception no command handled becomes one line and an exit code,
// never a stack trace. Commands handle the failures they expect themselves, with more to say.
using System.Net.Sockets;
using Confluent.Kafka;

namespace Replay.Host.Cli;

public static class Failures
{
    public static (string Message, int ExitCode) Describe(Exception e)
    {
        switch (e)
        {
            case AggregateException { InnerExceptions.Count: 1 } a:
                return Describe(a.InnerException!);
            case IOException { InnerException: SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse } }:
            case SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse }:
                return ($"cannot listen: {e.Message}; choose another --port (0 picks a free one)", ExitCodes.Usage);
            case KafkaException k:
                return ($"Kafka: {k.Error.Reason}", KafkaErrors.ExitCode(k.Error));
            case UnauthorizedAccessException or IOException:
                return (e.Message, ExitCodes.Failure);
            default:
                return ($"failed: {e.Message} (unexpected: please report it with this line)", ExitCodes.Failure);
        }
    }
}

/// <summary>Which Kafka errors mean "not reachable" (exit 69, a restart may help) and which
/// mean the settings are wrong (exit 2, it will not).</summary>
public static class KafkaErrors
{
    public static bool IsUnreachable(ErrorCode code) => code is ErrorCode.Local_Transport or ErrorCode.Local_AllBrokersDown
        or ErrorCode.Local_TimedOut or ErrorCode.Local_Resolve or ErrorCode.RequestTimedOut or ErrorCode.Local_WaitCoord
        or ErrorCode.NetworkException or ErrorCode.BrokerNotAvailable or ErrorCode.LeaderNotAvailable
        or ErrorCode.GroupCoordinatorNotAvailable or ErrorCode.NotCoordinatorForGroup;

    public static int ExitCode(Error error) => IsUnreachable(error.Code) ? ExitCodes.KafkaUnreachable : ExitCodes.Usage;
}
