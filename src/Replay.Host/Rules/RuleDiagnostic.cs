// One problem found in a rules file, located in the YAML the operator wrote (not in
// the C# generated from it), printed the way compilers print them so editors and
// CI annotate the right line: `rules/x.yaml(12,9): error CS0103: ...`.
namespace Replay.Host.Rules;

public sealed record RuleDiagnostic(string Path, int Line, int Column, bool IsError, string Code, string Message)
{
    /// <summary>A problem with the file as a whole (missing, unreadable, unsafe permissions).</summary>
    public static RuleDiagnostic File(string path, string message) => new(path, 0, 0, true, "", message);

    public static RuleDiagnostic Error(string path, int line, int column, string message) =>
        new(path, line, column, true, "", message);

    public override string ToString()
    {
        var where = Line > 0 ? $"{Path}({Line},{Column})" : Path;
        var severity = IsError ? "error" : "warning";
        return Code.Length > 0 ? $"{where}: {severity} {Code}: {Message}" : $"{where}: {severity}: {Message}";
    }
}
