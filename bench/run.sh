#!/usr/bin/env bash
# Replay's throughput against what this machine can do at all.
#
# Starts, as separate processes on 127.0.0.1: the embedded broker (`replay broker`), nginx
# answering 201 (its own config, from nginx.conf.template), and `replay run --until-end`.
# Measures in the same run the ceiling (wrk POSTing the same body to the same nginx with the
# same number of connections) and Replay's rate, and prints one table of medians over the runs.
#
#   bench/run.sh [--records N] [--partitions P] [--connections C] [--runs R] [--payload-bytes B] [--pipeline N] [--profile]
#
# --profile samples the whole machine with perf for 5 s of each run's steady phase, managed frames
# named through .NET's perf map, into bench/out/perf-RUN.data (`perf report -i ... --sort comm,dso`).
set -euo pipefail
cd "$(dirname "$0")/.."

# 400k records over 128 partitions: a steady phase of several seconds at today's rates (the mock keeps
# ~5 MB per partition, so larger sets need more partitions).
records=400000 partitions=128 connections=64 runs=3 payload=1024 wrk_seconds=10 profile= pipeline=1
while [ $# -gt 0 ]; do
    case "$1" in
        --records) records=$2; shift 2 ;;
        --partitions) partitions=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --payload-bytes) payload=$2; shift 2 ;;
        --wrk-seconds) wrk_seconds=$2; shift 2 ;;
        --pipeline) pipeline=$2; shift 2 ;;
        --profile) profile=1; shift ;;
        *) echo "bench: unknown argument $1" >&2; exit 2 ;;
    esac
done

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
[ -z "$profile" ] || command -v perf >/dev/null || need+=(linux-perf)
if [ ${#need[@]} -gt 0 ]; then
    echo "bench: installing ${need[*]} (Debian packages)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# REPLAY_DLL measures another build (an A/B of two commits) against the same broker, nginx and wrk.
dll=${REPLAY_DLL:-src/Replay.Host/bin/Release/net10.0/replay.dll}
if [ -n "${REPLAY_DLL:-}" ] && [ ! -f "$dll" ]; then echo "bench: REPLAY_DLL=$dll does not exist" >&2; exit 2; fi
[ -f "$dll" ] || dotnet build src/Replay.Host -c Release -v quiet -nologo
replay=(dotnet "$dll")

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

mkdir -p bench/out
results=bench/out/runs.tsv
printf "run\tceiling_rps\treplay_steady_rps\treplay_total_rps\tratio\tp50_ms\tp99_ms\tpeak_rss_mb\tcpu_s_per_10k\talloc_b_per_record\n" > "$results"

for run in $(seq 1 "$runs"); do
    # A fresh broker per run: the mock keeps ~5 MB per partition and drops older records.
    "${replay[@]}" broker --topic bench --partitions "$partitions" > "$work/broker.out" 2>"$work/broker.err" &
    pids+=($!)
    for _ in $(seq 100); do grep -q bootstrap.servers "$work/broker.out" && break; sleep 0.1; done
    bootstrap=$(sed -n 's/^bootstrap.servers=//p' "$work/broker.out")

    wrk_port=$(free_port); replay_port=$(free_port)
    prefix="$work/nginx-$run"; mkdir -p "$prefix"
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@WRK_PORT@|$wrk_port|" -e "s|@REPLAY_PORT@|$replay_port|" \
        bench/nginx.conf.template > "$prefix/nginx.conf"
    nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" &
    pids+=($!)
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$wrk_port) 2>/dev/null && break; sleep 0.1; done

    "${replay[@]}" produce -b "$bootstrap" -t bench --count "$records" --payload-bytes "$payload" --delete-ratio 0.02 >&2

    # The ceiling is measured for half the wrk time before Replay runs and half after, and averaged:
    # the neighbours' load moves it by a third within a minute, and one side alone caught a high or a low.
    wrk_half() { wrk -t2 -c"$connections" -d"$(( (wrk_seconds + 1) / 2 ))s" -s bench/post.lua "http://127.0.0.1:$wrk_port/submit/telemetry/x" \
        | awk '/Requests\/sec/ {print $2}'; }
    ceiling_before=$(wrk_half)

    start=$(date +%s.%N)
    if [ -n "$profile" ]; then
        # Past the group join and the first fetches, inside the steady phase at the default size.
        (sleep 6; perf record -a -g -F 499 -o "bench/out/perf-$run.data" -- sleep 5) >/dev/null 2>&1 &
        profiler=$!
        # W^X off: JIT code in a double-mapped memfd is invisible to the perf map.
        export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0
    fi
    "${replay[@]}" run -b "$bootstrap" -t bench -gid "bench-$run" --from earliest --until-end \
        --concurrency "$connections" --pipeline "$pipeline" --dest "http://127.0.0.1:$replay_port/submit/telemetry/%k" --state-dir "$work/state" \
        2> "$work/replay-$run.err"
    [ -z "$profile" ] || wait "$profiler" || true
    ceiling_after=$(wrk_half)
    ceiling=$(awk -v a="$ceiling_before" -v b="$ceiling_after" 'BEGIN {print (a + b) / 2}')
    kill -HUP "$(cat "$prefix/nginx.pid")"   # flush the buffered access log
    for _ in $(seq 50); do [ "$(wc -l < "$prefix/replay.log")" -ge "$records" ] && break; sleep 0.1; done

    logged=$(wc -l < "$prefix/replay.log")
    if [ "$logged" -ne "$records" ]; then
        echo "bench: run $run: nginx logged $logged requests for $records records" >&2
        cat "$work/replay-$run.err" >&2
        exit 1
    fi
    first=$(head -1 "$prefix/replay.log" | cut -d' ' -f1); last=$(tail -1 "$prefix/replay.log" | cut -d' ' -f1)
    summary=$(grep 'replay: process:' "$work/replay-$run.err")
    rss=$(sed -E 's/.*peak RSS ([0-9]+) MB.*/\1/' <<<"$summary")
    cpu=$(sed -E 's/.*CPU ([0-9.]+) s.*/\1/' <<<"$summary")
    alloc=$(sed -E 's/.*\(([0-9]+) B\/record\).*/\1/' <<<"$summary")
    p50=$(sed -E 's/.*p50 ([0-9.]+) ms.*/\1/' <<<"$summary")
    p99=$(sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' <<<"$summary")
    awk -v run="$run" -v c="$ceiling" -v n="$records" -v f="$first" -v l="$last" -v s="$start" \
        -v rss="$rss" -v cpu="$cpu" -v alloc="$alloc" -v p50="$p50" -v p99="$p99" 'BEGIN {
            steady = (n - 1) / (l - f); total = n / (l - s)
            printf "%d\t%.0f\t%.0f\t%.0f\t%.3f\t%s\t%s\t%s\t%.2f\t%s\n", run, c, steady, total, steady / c, p50, p99, rss, cpu * 10000 / n, alloc
        }' >> "$results"
    kill "$(cat "$prefix/nginx.pid")" 2>/dev/null || true
    kill "${pids[0]}" 2>/dev/null || true
    wait 2>/dev/null || true
    pids=()
    tail -1 "$results" >&2
done

col() { awk -F'\t' -v c="$1" 'NR > 1 {print $c}' "$results" | median; }
# The median, with the spread of the runs after it: "0.71 (0.68-0.74)".
spread() {
    local m lo hi
    m=$(col "$1")
    lo=$(awk -F'\t' -v c="$1" 'NR > 1 {print $c}' "$results" | sort -g | head -1)
    hi=$(awk -F'\t' -v c="$1" 'NR > 1 {print $c}' "$results" | sort -g | tail -1)
    echo "$m ($lo-$hi)"
}
table=$(cat <<TABLE
Replay benchmark: $records records, ${payload} B payloads, 2% deletes, $partitions partitions, $connections connections, median of $runs runs
| measure | value |
| --- | --- |
| ceiling: wrk -> nginx (req/s), per run | $(spread 2) |
| Replay steady rate, first to last request (records/s) | $(spread 3) |
| Replay total rate, start to last request (records/s) | $(spread 4) |
| **Replay / ceiling** (each run against its own ceiling) | **$(spread 5)** |
| request latency p50 / p99 (ms) | $(col 6) / $(col 7) |
| peak RSS (MB) | $(spread 8) |
| CPU seconds per 10k records | $(spread 9) |
| GC allocations per record (bytes, payload included) | $(spread 10) |
TABLE
)
echo "$table" | tee bench/out/results.md
