// "Did you mean ...?" for a mistyped flag, command or topic: the nearest known name by
// edit distance (a swap of two neighbouring letters counts as one edit, the commonest typo).
namespace Replay.Host.Cli;

public static class Suggest
{
    /// <summary>The candidate closest to <paramref name="typed"/>, or null when none is close
    /// enough to be a typo of it (at most one edit in three letters, and never an exact match).</summary>
    public static string? Nearest(string typed, IEnumerable<string> candidates)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        var prefixed = new List<string>();
        foreach (var candidate in candidates.Distinct(StringComparer.Ordinal))
        {
            if (candidate == typed) return null;
            if (typed.TrimStart('-').Length >= 3 && candidate.StartsWith(typed, StringComparison.OrdinalIgnoreCase)) prefixed.Add(candidate);
            var distance = Distance(typed.ToLowerInvariant(), candidate.ToLowerInvariant());
            if (distance < bestDistance || (distance == bestDistance && string.CompareOrdinal(candidate, best) < 0))
            {
                best = candidate;
                bestDistance = distance;
            }
        }
        var allowed = Math.Max(1, typed.TrimStart('-').Length / 3);
        if (best is not null && bestDistance <= allowed) return best;
        // An abbreviation of exactly one name ("--dead" is not one: two flags start so).
        return prefixed.Count == 1 ? prefixed[0] : null;
    }

    /// <summary>Optimal string alignment distance: insertions, deletions, substitutions and
    /// transpositions of neighbours each cost one.</summary>
    public static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (var j = 0; j <= b.Length; j++) d[0, j] = j;
        for (var i = 1; i <= a.Length; i++)
        for (var j = 1; j <= b.Length; j++)
        {
            var cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
        }
        return d[a.Length, b.Length];
    }
}
