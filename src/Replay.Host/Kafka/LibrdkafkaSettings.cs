// Checks every key and value of a properties file with librdkafka itself, before any client
// is made, so that all the problems are named at once: librdkafka refuses only the first
// bad key per attempt ("No such configuration property"), and the operator would fix them
// one start at a time. Unknown keys get the nearest real one as a suggestion.
using System.Runtime.InteropServices;
using System.Text;
using Replay.Host.Cli;

namespace Replay.Host.Kafka;

public static class LibrdkafkaSettings
{
    const int Unknown = -2;
    const int Invalid = -1;

    [DllImport(MockCluster.Library)] static extern IntPtr rd_kafka_conf_new();
    [DllImport(MockCluster.Library)] static extern void rd_kafka_conf_destroy(IntPtr conf);
    [DllImport(MockCluster.Library)] static extern int rd_kafka_conf_set(IntPtr conf, string name, string value, byte[] errstr, UIntPtr size);
    [DllImport(MockCluster.Library)] static extern void rd_kafka_conf_properties_show(IntPtr file);
    [DllImport("libc.so.6")] static extern IntPtr open_memstream(out IntPtr buffer, out UIntPtr size);
    [DllImport("libc.so.6")] static extern int fclose(IntPtr file);
    [DllImport("libc.so.6")] static extern void free(IntPtr pointer);

    static readonly Lazy<IReadOnlyList<string>> KnownKeys = new(ReadKnownKeys);

    /// <summary>librdkafka's refusal of each key or value it does not accept, in file order; empty when all are fine.</summary>
    public static List<(string Key, string Problem)> Check(IEnumerable<KeyValuePair<string, string>> settings)
    {
        MockCluster.EnsureResolver();
        var problems = new List<(string, string)>();
        var conf = rd_kafka_conf_new();
        try
        {
            var error = new byte[512];
            foreach (var (key, value) in settings)
            {
                Array.Clear(error);
                var result = rd_kafka_conf_set(conf, key, value, error, (UIntPtr)error.Length);
                if (result is not (Unknown or Invalid)) continue;
                var message = Encoding.UTF8.GetString(error).TrimEnd('\0');
                if (result == Unknown && Suggest.Nearest(key, KnownKeys.Value) is { } nearest) message += $"; did you mean {nearest}?";
                problems.Add((key, message));
            }
        }
        finally
        {
            rd_kafka_conf_destroy(conf);
        }
        return problems;
    }

    /// <summary>Every property name librdkafka knows, from its own table (the one CONFIGURATION.md is made of).</summary>
    static IReadOnlyList<string> ReadKnownKeys()
    {
        try
        {
            var file = open_memstream(out var buffer, out var size);
            if (file == IntPtr.Zero) return [];
            rd_kafka_conf_properties_show(file);
            fclose(file);
            var table = Marshal.PtrToStringUTF8(buffer, (int)size);
            free(buffer);
            return table.Split('\n')
                .Select(line => line.Split('|')[0].Trim())
                .Where(name => name.Length > 0 && char.IsAsciiLetterLower(name[0]) && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '_'))
                .Distinct()
                .ToList();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Without the C library's memory streams (not glibc): no suggestions, the rest still works.
            return [];
        }
    }
}
