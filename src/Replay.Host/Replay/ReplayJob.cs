using Replay.Core;
using Replay.Host.Operating;

namespace Replay.Host.Replay;

/// <summary>One validated replay, as a command line describes it: its parameters (the core's
/// RunSettings), what it works with, and how it is watched.</summary>
public sealed record ReplayJob(RunSettings Run, ReplayServices Services, OperatingSettings Operating);
