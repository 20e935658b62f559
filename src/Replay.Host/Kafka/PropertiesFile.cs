// Bagheera read its Kafka settings from a Java .properties file (`-p`). Replay keeps
// the file and the format but hands the keys to librdkafka, so the keys are
// librdkafka's. Keys that only Kafka 0.7/0.8's Scala client knew get a message that
// says what to write instead, rather than librdkafka's bare "no such property".
using System.Text;

namespace Replay.Host.Kafka;

public static class PropertiesFile
{
    // Static initialisers run in order: this one before the table that reads it.
    static readonly string ReplacePrefetch =
        $"replace it with queued.max.messages.kbytes (the prefetch size; {ConsumerSettings.PrefetchKbytes} by default)";

    /// <summary>Legacy Bagheera/Kafka 0.8 keys and what to use instead.</summary>
    public static readonly IReadOnlyDictionary<string, string> LegacyKeys = new Dictionary<string, string>
    {
        ["zk.connect"] = "Kafka clients no longer talk to ZooKeeper: set bootstrap.servers=HOST:PORT[,HOST:PORT] (or pass --bootstrap-servers)",
        ["zookeeper.connect"] = "Kafka clients no longer talk to ZooKeeper: set bootstrap.servers=HOST:PORT[,HOST:PORT] (or pass --bootstrap-servers)",
        ["consumer.threads"] = "replace it with the --concurrency N flag (or -nt N); it sets how many requests run at once",
        ["fetch.size"] = "rename it to fetch.max.bytes (librdkafka's name for the same limit)",
        ["groupid"] = "rename it to group.id (or pass -gid)",
        ["autooffset.reset"] = "rename it to auto.offset.reset with earliest or latest (or pass --from)",
        ["zk.connectiontimeout.ms"] = "delete it: there is no ZooKeeper connection any more",
        ["zk.sessiontimeout.ms"] = "delete it: there is no ZooKeeper connection any more",
        ["zookeeper.session.timeout.ms"] = "delete it: there is no ZooKeeper connection any more",
        ["zookeeper.connection.timeout.ms"] = "delete it: there is no ZooKeeper connection any more",
        ["socket.buffersize"] = "rename it to socket.receive.buffer.bytes",
        ["serializer.class"] = "delete it: Replay reads raw bytes and decodes envelopes itself",
        ["autocommit.enable"] = "delete it: Replay commits only what was delivered",
        ["auto.commit.enable"] = "delete it: Replay commits only what was delivered",
        ["enable.auto.offset.store"] = "delete it: Replay stores offsets only after delivery, always",
        ["autocommit.interval.ms"] = "rename it to auto.commit.interval.ms (Replay commits what is finished every 1 s unless that says otherwise)",
        ["consumer.timeout.ms"] = "delete it: Replay waits for records itself; to end a run, use --until-end or --max-records",
        ["consumer.id"] = "delete it: to name this client to the brokers, set client.id",
        ["num.consumer.fetchers"] = "delete it: librdkafka fetches from every broker in parallel by itself",
        ["queued.max.message.chunks"] = ReplacePrefetch,
        ["queuedchunks.max"] = ReplacePrefetch,
        ["rebalance.max.retries"] = "delete it: the group coordinator runs rebalances now",
        ["rebalance.retries.max"] = "delete it: the group coordinator runs rebalances now",
        ["rebalance.backoff.ms"] = "delete it: the group coordinator runs rebalances now",
        ["refresh.leader.backoff.ms"] = "delete it: librdkafka finds new leaders by itself (topic.metadata.refresh.interval.ms)",
        ["backoff.increment.ms"] = "rename it to fetch.error.backoff.ms",
        ["exclude.internal.topics"] = "delete it: a ^regex --topic matches internal topics only if it names them",
        ["zookeeper.sync.time.ms"] = "delete it: there is no ZooKeeper connection any more",
        ["zk.synctime.ms"] = "delete it: there is no ZooKeeper connection any more",
        ["offsets.storage"] = "delete it: offsets are always stored in Kafka now",
        ["dual.commit.enabled"] = "delete it: offsets are always stored in Kafka now",
        ["offsets.channel.backoff.ms"] = "delete it: the group coordinator handles commits (retry.backoff.ms)",
        ["offsets.channel.socket.timeout.ms"] = "delete it: the group coordinator handles commits (socket.timeout.ms)",
        ["offsets.commit.max.retries"] = "delete it: the group coordinator handles commits; a failed commit is retried by the next one",
        ["mirror.topics.whitelist"] = "delete it: a MirrorMaker setting; --topic takes a ^regex for several topics",
        ["mirror.topics.blacklist"] = "delete it: a MirrorMaker setting; --topic takes a ^regex for several topics",
        ["mirror.consumer.numthreads"] = "delete it: a MirrorMaker setting; --concurrency sets how many requests run at once",
    };

    /// <summary>Keys whose values are secrets: never printed.</summary>
    public static bool IsSecret(string key) =>
        key.Contains("password", StringComparison.OrdinalIgnoreCase)
        || key.Contains("secret", StringComparison.OrdinalIgnoreCase)
        || key.Contains("passphrase", StringComparison.OrdinalIgnoreCase)
        || key.EndsWith(".key.pem", StringComparison.OrdinalIgnoreCase)
        || key.Equals("sasl.oauthbearer.config", StringComparison.OrdinalIgnoreCase);

    public sealed record Entry(string Key, string Value, int Line);

    /// <summary>Parses the Java .properties format: comments (# !), key=value, key: value
    /// or key value, backslash continuation and escapes.</summary>
    public static IReadOnlyList<Entry> Parse(string text)
    {
        var entries = new List<Entry>();
        var lines = text.Replace("\r\n", "\n").Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var lineNumber = i + 1;
            var line = lines[i].TrimStart();
            if (line.Length == 0 || line[0] == '#' || line[0] == '!') continue;
            var logical = new StringBuilder();
            while (EndsWithContinuation(line) && i + 1 < lines.Length)
            {
                logical.Append(line, 0, line.Length - 1);
                line = lines[++i].TrimStart();
            }
            logical.Append(line);
            var (key, value) = Split(logical.ToString());
            entries.Add(new Entry(Unescape(key), Unescape(value), lineNumber));
        }
        return entries;
    }

    static bool EndsWithContinuation(string line)
    {
        var slashes = 0;
        for (var j = line.Length - 1; j >= 0 && line[j] == '\\'; j--) slashes++;
        return slashes % 2 == 1;
    }

    static (string Key, string Value) Split(string line)
    {
        for (var j = 0; j < line.Length; j++)
        {
            var c = line[j];
            if (c == '\\') { j++; continue; }
            if (c == '=' || c == ':' || char.IsWhiteSpace(c))
            {
                var key = line[..j];
                var rest = line[j..].TrimStart();
                if (!char.IsWhiteSpace(c) || (rest.Length > 0 && (rest[0] == '=' || rest[0] == ':')))
                    rest = rest.Length > 0 && (rest[0] == '=' || rest[0] == ':') ? rest[1..].TrimStart() : rest;
                return (key, rest);
            }
        }
        return (line, "");
    }

    static string Unescape(string s)
    {
        if (!s.Contains('\\')) return s;
        var sb = new StringBuilder(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] != '\\' || i + 1 >= s.Length) { sb.Append(s[i]); continue; }
            var c = s[++i];
            switch (c)
            {
                case 't': sb.Append('\t'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 'f': sb.Append('\f'); break;
                case 'u' when i + 4 < s.Length:
                    sb.Append((char)Convert.ToInt32(s.Substring(i + 1, 4), 16));
                    i += 4;
                    break;
                default: sb.Append(c); break;
            }
        }
        return sb.ToString();
    }

    /// <summary>Reads a properties file into librdkafka settings, or explains everything that is wrong
    /// with it at once: Kafka 0.8 keys with what to write instead, then every key or value librdkafka
    /// itself refuses, each with its line.</summary>
    public static Result<Dictionary<string, string>> Load(string path)
    {
        if (!File.Exists(path))
            return Result<Dictionary<string, string>>.Fail($"properties file '{path}' does not exist (-p/--properties)");
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Result<Dictionary<string, string>>.Fail($"properties file '{path}' cannot be read: {e.Message}");
        }
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        var lines = new Dictionary<string, int>(StringComparer.Ordinal);
        var problems = new List<(int Line, string Text)>();
        foreach (var entry in Parse(text))
        {
            if (LegacyKeys.TryGetValue(entry.Key, out var advice))
                problems.Add((entry.Line, $"{path}({entry.Line}): '{entry.Key}' is a Kafka 0.8 setting: {advice}"));
            else
            {
                settings[entry.Key] = entry.Value;
                lines[entry.Key] = entry.Line;
            }
        }
        foreach (var (key, problem) in LibrdkafkaSettings.Check(settings))
        {
            // The value is not repeated: it may be a password.
            problems.Add((lines[key], $"{path}({lines[key]}): '{key}': {problem}"));
        }
        if (problems.Count == 0) return Result<Dictionary<string, string>>.Ok(settings);
        var all = problems.OrderBy(p => p.Line).Select(p => p.Text).ToList();
        return Result<Dictionary<string, string>>.Fail(all.Count == 1
            ? all[0]
            : $"{path}: {all.Count} settings Kafka cannot use:{Environment.NewLine}  " + string.Join(Environment.NewLine + "  ", all));
    }
}
