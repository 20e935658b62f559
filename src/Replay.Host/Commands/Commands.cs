using System.CommandLine;

namespace Replay.Host.Commands;

/// <summary>Every subcommand of `replay`, in the order help lists them.</summary>
public static class Commands
{
    public static IEnumerable<Command> All() =>
    [
        RunCommand.Create(),
        CompareCommand.Create(),
        DemoCommand.Create(),
        BrokerCommand.Create(),
        ProduceCommand.Create(),
        SinkCommand.Create(),
        RedriveCommand.Create(),
        IngestCommand.Create(),
        RulesCommand.Create(),
    ];
}
