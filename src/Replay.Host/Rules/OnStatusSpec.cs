// `on-status:` in a rules file: statuses, classes or ranges mapped to what they mean,
// read into the core's status policy with every mistake at its own YAML line.
using Microsoft.FSharp.Collections;
using Replay.Core;
using YamlDotNet.RepresentationModel;

namespace Replay.Host.Rules;

public static class OnStatusSpec
{
    /// <summary>`on-status: {404: drop, 5xx: retry, "500-503": ok}`: statuses, classes or ranges
    /// (a comma list too) to ok, retry, drop or fail; each mistake at its own line.</summary>
    public static StatusPolicy.Policy? Read(YamlNode node, Action<YamlNode, string> error)
    {
        const string Shape = "`on-status:` maps statuses to what they mean, e.g. {404: drop, 409: ok, 5xx: retry}; meanings are ok, retry, drop and fail";
        if (node is not YamlMappingNode mapping)
        {
            error(node, Shape);
            return null;
        }
        var entries = new List<Tuple<StatusPolicy.StatusRange, StatusPolicy.Meaning>>();
        var good = true;
        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            if (keyNode is not YamlScalarNode { Value: { } statuses } || StatusPolicy.parseList(statuses) is not { IsOk: true } ranges)
            {
                var why = keyNode is YamlScalarNode { Value: { } written } ? StatusPolicy.parseList(written).ErrorValue
                    : "a key is a status such as 404, a class such as 5xx or a range such as 500-503";
                error(keyNode, $"on-status: {why}");
                good = false;
                continue;
            }
            if (valueNode is not YamlScalarNode { Value: { } text } || StatusPolicy.parseMeaning(text) is not { IsOk: true } meaning)
            {
                var why = valueNode is YamlScalarNode { Value: { } written } ? StatusPolicy.parseMeaning(written).ErrorValue
                    : "each status maps to ok, retry, drop or fail";
                error(valueNode, $"on-status: {why}");
                good = false;
                continue;
            }
            foreach (var range in ranges.ResultValue) entries.Add(Tuple.Create(range, meaning.ResultValue));
        }
        if (!good) return null;
        var policy = StatusPolicy.create(ListModule.OfSeq(entries));
        if (policy.IsError)
        {
            error(mapping, $"on-status: {policy.ErrorValue}");
            return null;
        }
        return policy.ResultValue;
    }
}
