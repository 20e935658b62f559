// Bagheera was started as `consumer com.mozilla.bagheera.consumer.KafkaReplayConsumer
// -t ... --dest ...` with the JVM's -Dhttp.proxyHost/-Dhttp.proxyPort for a proxy.
// A Bagheera user switches by changing only the program name, so those shapes are
// rewritten into `replay run ... --proxy URL` before parsing.
namespace Replay.Host.Cli;

public static class BagheeraArgs
{
    const string ReplayConsumerClass = "com.mozilla.bagheera.consumer.KafkaReplayConsumer";

    public static string[] Normalize(string[] args)
    {
        var rest = new List<string>(args);
        if (rest.Count > 0 && (rest[0] == ReplayConsumerClass || rest[0].EndsWith(".KafkaReplayConsumer", StringComparison.Ordinal)))
            rest[0] = "run";
        else if (rest.Count > 0 && rest[0].StartsWith('-') && rest[0] is not ("-h" or "--help" or "-?" or "--version"))
            rest.Insert(0, "run");

        string? host = null, port = null, secureHost = null, securePort = null;
        var kept = new List<string>();
        foreach (var arg in rest)
        {
            if (TryJvmProperty(arg, "http.proxyHost", out var v)) host = v;
            else if (TryJvmProperty(arg, "http.proxyPort", out v)) port = v;
            else if (TryJvmProperty(arg, "https.proxyHost", out v)) secureHost = v;
            else if (TryJvmProperty(arg, "https.proxyPort", out v)) securePort = v;
            else kept.Add(arg);
        }
        host ??= secureHost;
        port ??= securePort;
        if (host is not null)
        {
            kept.Add("--proxy");
            kept.Add($"http://{host}:{port ?? "80"}");
        }
        return kept.ToArray();
    }

    static bool TryJvmProperty(string arg, string name, out string value)
    {
        var prefix = "-D" + name + "=";
        if (arg.StartsWith(prefix, StringComparison.Ordinal))
        {
            value = arg[prefix.Length..];
            return true;
        }
        value = "";
        return false;
    }
}
