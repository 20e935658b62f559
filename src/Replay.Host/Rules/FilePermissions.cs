// Rules are code that replay runs with its own rights, so a rules file must be as
// trusted as the binary. Like ssh with private keys, replay refuses a file that
// users other than its owner can change, or that sits in a directory they can
// write to (and so could replace it), unless that directory is sticky (/tmp-like).
namespace Replay.Host.Rules;

public static class FilePermissions
{
    const UnixFileMode OthersWrite = UnixFileMode.GroupWrite | UnixFileMode.OtherWrite;

    /// <summary>Why the file may not be trusted, or null when it may.</summary>
    public static string? Unsafe(string path)
    {
        if (OperatingSystem.IsWindows()) return null;
        var mode = File.GetUnixFileMode(path);
        if ((mode & OthersWrite) != 0)
            return $"{path} is writable by {Who(mode)} (mode {Octal(mode)}); a rules file is code that replay runs, "
                + $"so it must be writable by its owner only (as ssh requires for keys). Fix: chmod go-w {path}";
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var directoryMode = File.GetUnixFileMode(directory);
        if ((directoryMode & OthersWrite) != 0 && (directoryMode & UnixFileMode.StickyBit) == 0)
            return $"the directory {directory} holding {path} is writable by {Who(directoryMode)} (mode {Octal(directoryMode)}), "
                + $"so others could replace the rules file, which is code that replay runs. Fix: chmod go-w {directory}";
        return null;
    }

    static string Who(UnixFileMode mode) =>
        (mode & UnixFileMode.GroupWrite) != 0 && (mode & UnixFileMode.OtherWrite) != 0 ? "its group and other users"
        : (mode & UnixFileMode.GroupWrite) != 0 ? "its group"
        : "other users";

    static string Octal(UnixFileMode mode) => Convert.ToString((int)mode & 0xFFF, 8).PadLeft(4, '0');
}
