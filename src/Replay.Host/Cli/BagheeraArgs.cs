// Bagheera was started as `consumer com.mozilla.bagheera.consumer.KafkaReplayConsumer
// -t ... --dest ...`, with JVM system properties (-Dhttp.proxyHost=H -Dhttp.proxyPort=P,
// -Dlog4j.configuration=...) before or after the class name. A Bagheera user switches by
// changing only the program name, so those shapes are rewritten before parsing: the class name
// (wherever it stands) means `run`, the proxy properties become --proxy and --no-proxy, and
// any other -Dkey=value is dropped with a note saying so. Values of boolean flags may be
// written yes/no/on/off as well as true/false.
using System.Text.RegularExpressions;

namespace Replay.Host.Cli;

public static partial class BagheeraArgs
{
    const string ReplayConsumerClass = "com.mozilla.bagheera.consumer.KafkaReplayConsumer";

    /// <summary>The arguments to parse, and one line for each thing that was ignored.</summary>
    public sealed record Normalized(string[] Args, IReadOnlyList<string> Notes);

    [GeneratedRegex(@"^-D(?<name>[A-Za-z_][A-Za-z0-9_.\-]*)(=(?<value>.*))?$", RegexOptions.Singleline)]
    private static partial Regex JvmProperty();

    public static Normalized Normalize(string[] args) => Normalize(args, new HashSet<string>(), _ => false);

    /// <param name="commands">Names of the commands, to tell `replay run ...` from a bare `replay -t ...`.</param>
    /// <param name="isBoolFlag">True for a flag (any alias) whose value is a boolean.</param>
    public static Normalized Normalize(string[] args, IReadOnlySet<string> commands, Func<string, bool> isBoolFlag)
    {
        var notes = new List<string>();
        var kept = new List<string>();
        var sawClass = false;
        string? host = null, port = null, secureHost = null, securePort = null, nonProxy = null;
        var literal = false;
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (literal || arg == "--")
            {
                literal = true;
                kept.Add(arg);
                continue;
            }
            if (arg == ReplayConsumerClass || (arg.EndsWith(".KafkaReplayConsumer", StringComparison.Ordinal) && !arg.StartsWith('-')))
            {
                sawClass = true;
                continue;
            }
            if (JvmProperty().Match(arg) is { Success: true } m && (m.Groups["value"].Success || m.Groups["name"].Value.Contains('.')))
            {
                var name = m.Groups["name"].Value;
                var value = m.Groups["value"].Value;
                switch (name)
                {
                    case "http.proxyHost": host = value; break;
                    case "http.proxyPort": port = value; break;
                    case "https.proxyHost": secureHost = value; break;
                    case "https.proxyPort": securePort = value; break;
                    case "http.nonProxyHosts": nonProxy = value; break;
                    // The name only: a value may be a password (-Djavax.net.ssl.keyStorePassword=...).
                    default: notes.Add($"ignoring -D{name}: a JVM setting, and Replay is not a JVM program{Hint(name)}"); break;
                }
                continue;
            }
            if (i + 1 < args.Length && isBoolFlag(arg) && Flags.BoolWords.TryGetValue(args[i + 1], out var word))
            {
                kept.Add(arg);
                kept.Add(word);
                i++;
                continue;
            }
            if (arg.IndexOf('=') is > 1 and var eq && isBoolFlag(arg[..eq]) && Flags.BoolWords.TryGetValue(arg[(eq + 1)..], out var inline))
            {
                kept.Add(arg[..eq]);
                kept.Add(inline);
                continue;
            }
            kept.Add(arg);
        }

        var first = kept.Count > 0 ? kept[0] : null;
        var hasCommand = first is not null && commands.Contains(first);
        if (!hasCommand && (sawClass || (first is not null && first.StartsWith('-') && first is not ("-h" or "--help" or "-?" or "--version"))))
            kept.Insert(0, "run");

        host ??= secureHost;
        port ??= securePort;
        var proxyFlag = kept.Contains("--proxy");
        if (host is not null)
        {
            kept.Add("--proxy");
            kept.Add($"http://{host}:{(string.IsNullOrEmpty(port) ? "80" : port)}");
        }
        else if (port is not null)
            notes.Add("ignoring -Dhttp.proxyPort: there is no -Dhttp.proxyHost to go with it");
        if (nonProxy is not null && (host is not null || proxyFlag))
        {
            // Java writes "localhost|*.internal|127.*"; --no-proxy takes commas.
            kept.Add("--no-proxy");
            kept.Add(string.Join(',', nonProxy.Split('|', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)));
        }
        else if (nonProxy is not null)
            notes.Add("ignoring -Dhttp.nonProxyHosts: there is no -Dhttp.proxyHost (or --proxy) for it to make exceptions to; with HTTP_PROXY, set NO_PROXY");
        return new Normalized(kept.ToArray(), notes);
    }

    static string Hint(string name) =>
        name.StartsWith("log4j", StringComparison.Ordinal) || name.StartsWith("java.util.logging", StringComparison.Ordinal)
            ? " (logging is --log-format text|json)"
            : name.StartsWith("javax.net.ssl", StringComparison.Ordinal)
                ? " (destination TLS is --ca-file, --client-cert and --client-key; Kafka's is ssl.* in the properties file)"
                : "";
}
