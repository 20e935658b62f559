// A new file is durable only once the directory that names it is on disk too: fsync of the
// file alone may leave it nameless after a power cut. .NET opens no directory, so this asks
// libc directly; where that is not possible (not Linux or macOS) the file's own fsync is all
// there is, as before.
using System.Runtime.InteropServices;

namespace Replay.Host.Delivery;

static partial class DirectorySync
{
    /// <summary>Flushes the directory's entries to disk; true when it could.</summary>
    public static bool Sync(string? directory)
    {
        if (directory is null || !(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())) return false;
        try
        {
            var fd = Open(directory, 0 /* O_RDONLY */);
            if (fd < 0) return false;
            try { return FSync(fd) == 0; }
            finally { Close(fd); }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync")]
    private static partial int FSync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
