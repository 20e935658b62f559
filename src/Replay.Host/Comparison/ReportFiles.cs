// The --report directory: made (or checked) once at start, so that a path that
// cannot hold the report is an error before anything is sent; report.html is then
// replaced whole each time (written beside it, then renamed over it), so a browser
// or a copy never gets half a page, and a write that fails (a full disk) leaves the
// previous page in place.
using System.Text;

namespace Replay.Host.Comparison;

public sealed class ReportFiles
{
    public const string DifferencesName = "differences.jsonl";
    public const string HtmlName = "report.html";

    public string Directory { get; }
    public string DifferencesPath => Path.Combine(Directory, DifferencesName);
    public string HtmlPath => Path.Combine(Directory, HtmlName);
    string PartialHtmlPath => HtmlPath + ".partial";

    ReportFiles(string directory) => Directory = directory;

    public static Result<ReportFiles> Prepare(string directory)
    {
        if (string.IsNullOrWhiteSpace(directory))
            return Result<ReportFiles>.Fail("--report needs a directory");
        var full = Path.GetFullPath(directory);
        if (File.Exists(full))
            return Result<ReportFiles>.Fail($"--report '{directory}' is a file; name a directory (it is created when missing)");
        try
        {
            System.IO.Directory.CreateDirectory(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return Result<ReportFiles>.Fail($"--report '{directory}': the directory cannot be created: {e.Message}");
        }
        return Result<ReportFiles>.Ok(new ReportFiles(full));
    }

    /// <summary>Replaces report.html with what <paramref name="write"/> writes. Returns what went
    /// wrong, or null; on failure the previous report.html is left as it was.</summary>
    public string? WriteHtml(Action<TextWriter> write)
    {
        try
        {
            using (var stream = new FileStream(PartialHtmlPath, FileMode.Create, FileAccess.Write, FileShare.None))
            using (var writer = new StreamWriter(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)))
                write(writer);
            File.Move(PartialHtmlPath, HtmlPath, overwrite: true);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(PartialHtmlPath); }
            catch (Exception again) when (again is IOException or UnauthorizedAccessException) { /* the first failure is the one to report */ }
            return $"writing '{HtmlPath}' failed (the previous version stays): {e.Message}";
        }
    }
}
