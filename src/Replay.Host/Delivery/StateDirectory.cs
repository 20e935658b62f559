// Where a replay keeps what must outlive it on this host — today, its dead letters. The
// default follows the conventions a Linux service and a user's shell already have: systemd's
// StateDirectory= (which sets $STATE_DIRECTORY), then the XDG base directories
// ($XDG_STATE_HOME, else ~/.local/state), each with a directory of Replay's own.
using System.Security.Cryptography;
using System.Text;

namespace Replay.Host.Delivery;

public static class StateDirectory
{
    /// <summary>The directory to use: <paramref name="given"/> (--state-dir), else the default from
    /// the environment, with where it came from; a message when there is none.</summary>
    public static Result<(string Path, string Origin)> Resolve(string? given, Func<string, string?> environment)
    {
        if (given is not null)
            return given.Trim().Length == 0
                ? Result<(string, string)>.Fail("--state-dir is empty: name a directory this user can write, e.g. --state-dir /var/lib/replay")
                : Result<(string, string)>.Ok((Path.GetFullPath(given), "--state-dir"));
        // systemd may list several directories, separated by colons: the first is this unit's.
        if (NonEmpty(environment("STATE_DIRECTORY")) is { } systemd)
            return Result<(string, string)>.Ok((Path.GetFullPath(systemd.Split(':')[0]), "$STATE_DIRECTORY"));
        // XDG says a relative $XDG_STATE_HOME is invalid and is to be ignored.
        if (NonEmpty(environment("XDG_STATE_HOME")) is { } xdg && Path.IsPathRooted(xdg))
            return Result<(string, string)>.Ok((Path.Combine(xdg, "replay"), "$XDG_STATE_HOME"));
        if (NonEmpty(environment("HOME")) is { } home && Path.IsPathRooted(home))
            return Result<(string, string)>.Ok((Path.Combine(home, ".local", "state", "replay"), "~/.local/state"));
        return Result<(string, string)>.Fail(
            "no state directory for the dead-letter file: neither STATE_DIRECTORY, XDG_STATE_HOME nor HOME is set; " +
            "pass --state-dir DIR, --dead-letter FILE, or --dead-letter - to print dead letters instead of keeping them");
    }

    /// <summary>The environment of this process.</summary>
    public static string? Environment(string name) => System.Environment.GetEnvironmentVariable(name);

    /// <summary>The default dead-letter file of a consumer group in a state directory.</summary>
    public static string DeadLetterFile(string stateDirectory, string group) =>
        Path.Combine(stateDirectory, SafeName(group) + ".dead-letters.jsonl");

    /// <summary>A file name for a group id, which Kafka lets be any text: letters, digits, '.', '_' and
    /// '-' are kept, anything else becomes '_', and a name that had to change (or is very long) gets
    /// a short hash of the real id, so that two groups never share a file by accident.</summary>
    public static string SafeName(string group)
    {
        const int MaxLength = 100;
        var kept = new StringBuilder(group.Length);
        foreach (var c in group) kept.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '_');
        var name = kept.ToString();
        var changed = name != group || name.Length == 0 || name.StartsWith('.') || name.Length > MaxLength;
        if (!changed) return name;
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(group)))[..12];
        var stem = name.TrimStart('.');
        return (stem.Length > MaxLength - 13 ? stem[..(MaxLength - 13)] : stem) + "-" + hash;
    }

    static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
