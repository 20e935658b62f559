// The embedded broker: librdkafka's mock cluster, a real Kafka-protocol broker on
// 127.0.0.1 that lives inside this process. It backs `replay broker`, `replay demo`
// and the tests. It keeps only ~5 MB / ~150k records per partition, so it is a
// stage for trying things, not a store.
using System.Reflection;
using System.Runtime.InteropServices;

namespace Replay.Host.Kafka;

public sealed class MockCluster : IDisposable
{
    internal const string Library = "rdkafka-mock";

    /// <summary>Makes the native calls of this assembly (here and in <see cref="LibrdkafkaSettings"/>) reach
    /// the librdkafka build Confluent.Kafka uses.</summary>
    internal static void EnsureResolver() { }

    static MockCluster()
    {
        // Confluent.Kafka falls back to the self-contained centos8 build when the
        // default one cannot load (it needs libsasl2.so.3, which Debian lacks); our
        // own calls must reach that same build.
        NativeLibrary.SetDllImportResolver(typeof(MockCluster).Assembly, Resolve);
    }

    static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != Library) return IntPtr.Zero;
        foreach (var candidate in Candidates())
            if (File.Exists(candidate) && NativeLibrary.TryLoad(candidate, out var handle))
                return handle;
        foreach (var fallback in new[] { "librdkafka.so.1", "librdkafka" })
            if (NativeLibrary.TryLoad(fallback, out var handle))
                return handle;
        throw new DllNotFoundException("librdkafka was not found next to the program (runtimes/<rid>/native)");
    }

    static IEnumerable<string> Candidates()
    {
        var rid = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        // A single-file binary extracts its native libraries to a directory of its own, which the
        // host lists in NATIVE_DLL_SEARCH_DIRECTORIES; without it we would fall through to whatever
        // (older) librdkafka the system has, or to none.
        var searched = (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") as string ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        var dirs = new[] { AppContext.BaseDirectory, Path.Combine(AppContext.BaseDirectory, "runtimes", rid, "native") }.Concat(searched);
        foreach (var file in new[] { "centos8-librdkafka.so", "librdkafka.so" })
            foreach (var dir in dirs)
                yield return Path.Combine(dir, file);
    }

    [DllImport(Library)] static extern IntPtr rd_kafka_conf_new();
    [DllImport(Library)] static extern int rd_kafka_conf_set(IntPtr conf, string name, string value, byte[] errstr, UIntPtr size);
    [DllImport(Library)] static extern IntPtr rd_kafka_new(int type, IntPtr conf, byte[] errstr, UIntPtr size);
    [DllImport(Library)] static extern void rd_kafka_destroy(IntPtr rk);
    [DllImport(Library)] static extern IntPtr rd_kafka_mock_cluster_new(IntPtr rk, int brokers);
    [DllImport(Library)] static extern void rd_kafka_mock_cluster_destroy(IntPtr mc);
    [DllImport(Library)] static extern IntPtr rd_kafka_mock_cluster_bootstraps(IntPtr mc);
    [DllImport(Library)] static extern int rd_kafka_mock_topic_create(IntPtr mc, string topic, int partitions, int replicationFactor);
    [DllImport(Library)] static extern int rd_kafka_mock_broker_set_down(IntPtr mc, int brokerId);
    [DllImport(Library)] static extern int rd_kafka_mock_broker_set_up(IntPtr mc, int brokerId);
    [DllImport(Library)] static extern void rd_kafka_mock_push_request_errors_array(IntPtr mc, short apiKey, UIntPtr count, int[] errors);
    [DllImport(Library)] static extern void rd_kafka_mock_clear_request_errors(IntPtr mc, short apiKey);
    [DllImport(Library)] static extern int rd_kafka_mock_set_group_consumer_session_timeout_ms(IntPtr mc, int ms);
    [DllImport(Library)] static extern void rd_kafka_mock_broker_set_host_port(IntPtr mc, int brokerId, string host, int port);

    readonly IntPtr _handle;
    readonly IntPtr _cluster;
    bool _disposed;

    /// <summary>host:port list that any Kafka client (kcat, kafka-python, Confluent) can use.</summary>
    public string BootstrapServers { get; }

    public MockCluster(int brokers = 1)
    {
        var errors = new byte[512];
        var conf = rd_kafka_conf_new();
        // The handle only owns the cluster; it never talks to it itself.
        rd_kafka_conf_set(conf, "log_level", "3", errors, (UIntPtr)errors.Length);
        _handle = rd_kafka_new(0, conf, errors, (UIntPtr)errors.Length);
        if (_handle == IntPtr.Zero)
            throw new InvalidOperationException("could not start the embedded broker: " + System.Text.Encoding.UTF8.GetString(errors).TrimEnd('\0'));
        _cluster = rd_kafka_mock_cluster_new(_handle, brokers);
        if (_cluster == IntPtr.Zero)
        {
            rd_kafka_destroy(_handle);
            throw new InvalidOperationException("could not start the embedded broker (rd_kafka_mock_cluster_new failed)");
        }
        BootstrapServers = Marshal.PtrToStringUTF8(rd_kafka_mock_cluster_bootstraps(_cluster)) ?? "";
    }

    public void CreateTopic(string topic, int partitions)
    {
        var error = rd_kafka_mock_topic_create(_cluster, topic, partitions, 1);
        if (error != 0)
            throw new InvalidOperationException($"could not create topic '{topic}' on the embedded broker (Kafka error {error})");
    }

    /// <summary>Makes broker <paramref name="brokerId"/> (1-based) tell clients to connect to host:port
    /// instead of where it listens; something must then relay that address to it.</summary>
    public void Advertise(int brokerId, string host, int port) => rd_kafka_mock_broker_set_host_port(_cluster, brokerId, host, port);

    public void SetBrokerDown(int brokerId) => rd_kafka_mock_broker_set_down(_cluster, brokerId);
    public void SetBrokerUp(int brokerId) => rd_kafka_mock_broker_set_up(_cluster, brokerId);

    /// <summary>The next <paramref name="errors"/>.Length requests of that API fail with these Kafka error codes.</summary>
    public void PushRequestErrors(short apiKey, params int[] errors) =>
        rd_kafka_mock_push_request_errors_array(_cluster, apiKey, (UIntPtr)errors.Length, errors);

    public void ClearRequestErrors(short apiKey) => rd_kafka_mock_clear_request_errors(_cluster, apiKey);

    /// <summary>How soon a vanished member of a KIP-848 group is declared dead.</summary>
    public void SetGroupSessionTimeout(TimeSpan timeout) =>
        rd_kafka_mock_set_group_consumer_session_timeout_ms(_cluster, (int)timeout.TotalMilliseconds);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        rd_kafka_mock_cluster_destroy(_cluster);
        rd_kafka_destroy(_handle);
    }
}

/// <summary>Kafka API keys used with <see cref="MockCluster.PushRequestErrors"/>.</summary>
public static class KafkaApi
{
    public const short Produce = 0;
    public const short Fetch = 1;
    public const short OffsetCommit = 8;
    public const short OffsetFetch = 9;
    public const short Heartbeat = 12;
}
