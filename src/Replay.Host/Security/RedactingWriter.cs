// A TextWriter that masks known secrets before they reach the real one. It works
// a line at a time, because a secret may arrive split over several Write calls;
// a complete line is redacted and passed on (and flushed) at once.
using System.Text;

namespace Replay.Host.Security;

public sealed class RedactingWriter(TextWriter inner, Secrets secrets) : TextWriter
{
    readonly StringBuilder _line = new();

    public override Encoding Encoding => inner.Encoding;

    public override void Write(char value)
    {
        lock (_line)
        {
            _line.Append(value);
            if (value == '\n') Emit();
        }
    }

    public override void Write(string? value)
    {
        if (string.IsNullOrEmpty(value)) return;
        lock (_line)
        {
            _line.Append(value);
            if (value.Contains('\n')) Emit();
        }
    }

    public override void Write(char[] buffer, int index, int count) => Write(new string(buffer, index, count));

    public override void WriteLine(string? value) => Write((value ?? "") + NewLine);

    public override void Flush()
    {
        lock (_line)
        {
            if (_line.Length > 0)
            {
                inner.Write(secrets.Redact(_line.ToString()));
                _line.Clear();
            }
            inner.Flush();
        }
    }

    /// <summary>Passes on every complete line in the buffer; keeps a trailing partial one.</summary>
    void Emit()
    {
        var text = _line.ToString();
        var end = text.LastIndexOf('\n') + 1;
        inner.Write(secrets.Redact(text[..end]));
        inner.Flush();
        _line.Remove(0, end);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) Flush();
        base.Dispose(disposing);
    }
}
