// report.html: the comparison as a page that opens from the file, with no server,
// no network and no script. Per route: the rate of differences, the paths that
// differ most with their counts and a few side-by-side examples, noise apart, and
// failures. Everything shown came from servers or records, so every text is
// HTML-encoded (and redacted); on top of that the page's Content-Security-Policy
// forbids scripts, images, fonts and any fetch, so even a mistake in encoding could
// not run or load anything.
using System.Globalization;
using System.Net;
using Replay.Core;
using Replay.Host.Security;

namespace Replay.Host.Comparison;

public static class HtmlReport
{
    /// <summary>Paths listed per route (regressions, and noise, each); the rest are summed up in one line.</summary>
    public const int PathsShown = 50;

    const string Style = """
        body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1em 1.5em;color:#1d1d1f;background:#fff}
        h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.6em 0 .3em;border-bottom:1px solid #ddd}h3{font-size:1em;margin:1.2em 0 .3em}
        table{border-collapse:collapse;width:100%;margin:.3em 0}th,td{text-align:left;padding:.25em .5em;border-bottom:1px solid #eee;vertical-align:top}
        th{background:#f5f5f7;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
        code{font:12px/1.4 ui-monospace,monospace;overflow-wrap:anywhere}h2 code{font-size:inherit}.flag{white-space:nowrap}
        pre{font:12px/1.4 ui-monospace,monospace;white-space:pre-wrap;overflow-wrap:anywhere;margin:0;padding:.4em;background:#f7f7f9;border:1px solid #e5e5ea;max-height:16em;overflow:auto}
        .meta,.explain,.more{color:#555}.problem{background:#fff3cd;border:1px solid #e0c060;padding:.5em}
        .sides{display:grid;grid-template-columns:1fr 1fr;gap:.5em;margin:.3em 0 .8em}.sides h4{margin:0;font-size:.85em;color:#555}
        .example-head{margin:.4em 0 .1em;font-size:.9em}.different{color:#b00020;font-weight:600}.noisy{color:#8a6d00}
        meter{width:6em;vertical-align:middle}
        """;

    static string E(string text) => WebUtility.HtmlEncode(text);

    static string Rate(long part, long whole) =>
        whole == 0 ? "0%" : (100.0 * part / whole).ToString(part * 1000 < whole && part > 0 ? "0.00" : "0.0", CultureInfo.InvariantCulture) + "%";

    static string Fraction(long part, long whole) =>
        whole == 0 ? "0" : ((double)part / whole).ToString("0.####", CultureInfo.InvariantCulture);

    /// <summary>Writes the whole page for the routes as summarised now.</summary>
    public static void Write(TextWriter w, IReadOnlyList<ComparisonTally.RouteSummary> routes, ComparisonOptions options,
        Secrets secrets, DateTimeOffset writtenAt, string? problem)
    {
        string S(string text) => E(secrets.Redact(text));
        var total = ComparisonTally.total([.. routes]);

        w.Write("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
        w.Write("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
        w.Write("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Replay comparison</title>\n<style>");
        w.Write(Style);
        w.Write("</style></head>\n<body>\n<h1>Replay comparison</h1>\n");
        w.Write($"<p class=\"meta\">Written {E(writtenAt.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture))}. ");
        w.Write($"Tolerance {E(options.Tolerance.ToString(CultureInfo.InvariantCulture))}; ");
        w.Write($"ignored: {E(options.Ignore.Count == 0 ? "nothing" : string.Join(", ", options.Ignore))}; ");
        w.Write($"unordered: {E(options.Unordered.Count == 0 ? "nothing" : string.Join(", ", options.Unordered))}; ");
        w.Write($"headers compared: {E(options.Headers.Count == 0 ? "none" : string.Join(", ", options.Headers))}; ");
        w.Write($"bodies above {options.MaxBodyBytes} bytes compared by hash.</p>\n");
        if (problem is not null) w.Write($"<p class=\"problem\">{S(problem)}</p>\n");

        w.Write("<h2 id=\"overview\">Routes</h2>\n");
        w.Write($"<p class=\"totals\" data-compared=\"{total.Compared}\" data-different=\"{total.Different}\">{total.Compared} records compared: " +
                $"{total.Equal} equal, <span class=\"different\">{total.Different} different ({Rate(total.Different, total.Compared)})</span>, " +
                $"<span class=\"noisy\">{total.Noisy} noisy</span>; {total.Failed} could not be compared.</p>\n");
        w.Write("<table class=\"overview\"><thead><tr><th>route</th><th>compared</th><th>equal</th><th>different</th><th>rate</th><th>noisy</th><th>failed</th></tr></thead><tbody>\n");
        var ordered = routes.Select((route, i) => (route, anchor: $"route-{i + 1}"))
            .OrderByDescending(r => r.route.Counts.Different).ThenBy(r => r.route.Route, StringComparer.Ordinal).ToList();
        foreach (var (route, anchor) in ordered)
        {
            var c = route.Counts;
            w.Write($"<tr class=\"route-row\" data-route=\"{S(route.Route)}\"><td><a href=\"#{anchor}\"><code>{S(route.Route)}</code></a></td>" +
                    $"<td class=\"n\">{c.Compared}</td><td class=\"n\">{c.Equal}</td><td class=\"n\">{c.Different}</td>" +
                    $"<td class=\"n\"><meter min=\"0\" max=\"1\" value=\"{Fraction(c.Different, c.Compared)}\"></meter> {Rate(c.Different, c.Compared)}</td>" +
                    $"<td class=\"n\">{c.Noisy}</td><td class=\"n\">{c.Failed}</td></tr>\n");
        }
        w.Write("</tbody></table>\n");

        foreach (var (route, anchor) in ordered) WriteRoute(w, route, anchor, S);
        w.Write("</body></html>\n");
    }

    static void WriteRoute(TextWriter w, ComparisonTally.RouteSummary route, string anchor, Func<string, string> S)
    {
        var c = route.Counts;
        w.Write($"<section class=\"route\" id=\"{anchor}\" data-route=\"{S(route.Route)}\">\n<h2><code>{S(route.Route)}</code></h2>\n");
        w.Write($"<p>{c.Compared} compared: {c.Equal} equal, <span class=\"different\">{c.Different} different ({Rate(c.Different, c.Compared)})</span>, " +
                $"<span class=\"noisy\">{c.Noisy} noisy</span>; {c.Failed} could not be compared.</p>\n");

        var regressions = route.Fields.Where(f => !f.IsNoise).ToList();
        w.Write("<h3>Differing paths</h3>\n");
        if (regressions.Count == 0) w.Write("<p class=\"explain\">None: wherever the candidate differed, primary and secondary differed too.</p>\n");
        else WritePaths(w, "paths", regressions, c.Compared, S);

        var noise = route.Fields.Where(f => f.IsNoise).ToList();
        if (noise.Count > 0)
        {
            w.Write("<h3>Noise</h3>\n<p class=\"explain\">Paths where primary and secondary differed from each other: " +
                    "the candidate's differences there are counted as noisy, not as regressions. Known ones can be left out with <code class=\"flag\">--ignore</code>.</p>\n");
            WritePaths(w, "noise", noise, c.Compared, S);
        }

        if (c.Failed > 0)
        {
            w.Write($"<h3>Could not be compared</h3>\n<table class=\"failures\"><thead><tr><th>replay id</th><th>request</th><th>reason</th></tr></thead><tbody>\n");
            foreach (var f in route.Failures)
                w.Write($"<tr><td><code>{S(f.ReplayId)}</code></td><td><code>{S(f.Request)}</code></td><td>{S(f.Reason)}</td></tr>\n");
            w.Write("</tbody></table>\n");
            if (c.Failed > route.Failures.Length) w.Write($"<p class=\"more\">and {c.Failed - route.Failures.Length} more.</p>\n");
        }
        w.Write("</section>\n");
    }

    static void WritePaths(TextWriter w, string kind, List<ComparisonTally.FieldSummary> fields, long compared, Func<string, string> S)
    {
        var noiseColumn = kind == "noise" ? "<th>primary vs secondary</th>" : "";
        w.Write($"<table class=\"{kind}\"><thead><tr><th>path</th><th>records</th><th>rate</th>{noiseColumn}<th>examples</th></tr></thead><tbody>\n");
        foreach (var f in fields.Take(PathsShown))
        {
            w.Write($"<tr class=\"path\" data-path=\"{S(f.Field)}\" data-count=\"{f.Differences}\" data-noise=\"{f.Noise}\">" +
                    $"<td><code>{S(f.Field)}</code></td><td class=\"n\">{f.Differences}</td><td class=\"n\">{Rate(f.Differences, compared)}</td>");
            if (kind == "noise") w.Write($"<td class=\"n\">{f.Noise}</td>");
            w.Write("<td>");
            if (f.Examples.Length > 0)
            {
                w.Write($"<details><summary>{f.Examples.Length} example{(f.Examples.Length == 1 ? "" : "s")}</summary>\n");
                foreach (var x in f.Examples)
                {
                    w.Write($"<p class=\"example-head\"><code>{S(x.ReplayId)}</code> · <code>{S(x.Request)}</code> · <code>{S(x.Path)}</code> {E(Difference.changeName(x.Change))}</p>\n");
                    w.Write($"<div class=\"sides\"><div><h4>primary</h4><pre class=\"primary\">{S(x.Primary)}</pre></div>" +
                            $"<div><h4>candidate</h4><pre class=\"candidate\">{S(x.Candidate)}</pre></div></div>\n");
                }
                w.Write("</details>");
            }
            w.Write("</td></tr>\n");
        }
        w.Write("</tbody></table>\n");
        if (fields.Count > PathsShown)
            w.Write($"<p class=\"more\">and {fields.Count - PathsShown} more paths ({fields.Skip(PathsShown).Sum(f => f.Differences)} differences).</p>\n");
    }
}
