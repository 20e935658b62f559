// How `replay rules test` prints one decision: which rule chose what, and the
// request exactly as it would be sent, so an operator can check a rules file
// against the records they have in mind before running it: headers, and what the
// destination's answers will mean.
using System.Text;
using Replay.Core;

namespace Replay.Host.Rules;

public static class DryRun
{
    public static string Describe(int number, SampleRecord sample, Pipeline.Decision decision)
    {
        var text = new StringBuilder($"#{number} {sample.Describe()}: ");
        switch (decision)
        {
            case Pipeline.Decision.Send send:
                var request = send.Item;
                text.Append($"send by '{request.Route}': {MethodModule.name(request.Method)} {request.Url.OriginalString}");
                foreach (var (name, value) in request.Headers) text.Append($"\n    {name}: {value}");
                text.Append($"\n  answers: {StatusPolicy.describe(request.StatusPolicy)}");
                break;
            case Pipeline.Decision.Skip skip:
                text.Append($"skip: {Pipeline.describeSkip(skip.Item)}");
                break;
            case Pipeline.Decision.Reject reject:
                text.Append($"dead letter: {Pipeline.describeReject(reject.Item)}");
                break;
        }
        return text.ToString();
    }
}
