// How `replay rules test` prints one decision: which rule chose what, and the
// request exactly as it would be sent, so an operator can check a rules file
// against the records they have in mind before running it: headers, what the
// destination's answers will mean, and the body before and after a `body:` rule.
using System.Text;
using Replay.Core;

namespace Replay.Host.Rules;

public static class DryRun
{
    public static string Describe(int number, SampleRecord sample, Pipeline.Decision decision)
    {
        var text = new StringBuilder($"#{number} {sample.Describe()}: ");
        var requests = Pipeline.requests(decision);
        if (requests.IsEmpty)
        {
            text.Append(decision is { IsSkip: true } ? "skip: " : "dead letter: ").Append(Pipeline.describeDecision(decision));
            return text.ToString();
        }
        foreach (var request in requests)
        {
            if (requests.Length > 1) text.Append($"\n  to destination {request.Destination + 1}: ");
            text.Append($"send by '{request.Route}': {MethodModule.name(request.Method)} {request.Url.OriginalString}");
            foreach (var (name, value) in request.Headers) text.Append($"\n    {name}: {value}");
            text.Append($"\n  answers: {StatusPolicy.describe(request.StatusPolicy)}");
        }
        var sent = requests.Head;
        var before = Encoding.UTF8.GetBytes(sample.Payload);
        if (sample.Delete) return text.ToString();
        if (sent.Body.Span.SequenceEqual(before))
            text.Append($"\n  body (unchanged): {Shown(before)}");
        else
            text.Append($"\n  body before: {Shown(before)}\n  body after:  {Shown(sent.Body.Span)}");
        return text.ToString();
    }

    /// <summary>How many characters of a body are shown before it is cut.</summary>
    const int BodyShown = 2000;

    static string Shown(ReadOnlySpan<byte> body) =>
        body.Length == 0 ? "(empty)"
        : System.Text.Unicode.Utf8.IsValid(body) ? Printable.showUpTo(BodyShown, Encoding.UTF8.GetString(body))
        : $"({body.Length} bytes, not UTF-8 text)";
}
