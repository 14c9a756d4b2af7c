#!/bin/sh
# OAuth benchmark. Two parts:
#
#  (A) token endpoint: the refresh_token grant with rotation, on SQLite, mcpgate against
#      Glewlwyd (Debian's C OAuth2/OIDC server: its OIDC plugin, ES256, one-use refresh tokens
#      "always" = rotation with reuse detection). bench/glewlwyd/flows.py runs N authorization
#      code flows (PKCE S256) on each server; bench/token_load.c then runs N keep-alive
#      connections, each a chain (POST refresh token -> take the new one -> POST it ...) for d
#      seconds, and finally checks that every chain's previous token is refused when replayed.
#      Prints refreshes/s, p50/p99; goal: mcpgate/Glewlwyd >= 10x.
#  (B) the price of authentication on /mcp: two mcpgate instances of the same build, one
#      --no-auth, one with OAuth and a client_credentials access token (Authorization: Bearer),
#      wrk keep-alive with the stateless 2026-07-28 tools/call echo; goal: auth/no-auth >= 0.9.
#
#   bench/oauth.sh           full run (about 1 minute)
#   bench/oauth.sh --smoke   4 chains and 1 s runs: still runs, still right? never fails on timing
#
# mcpgate limits /token per client address (burst 20, then 1 per second): token_load binds
# every connection to its own loopback source address and moves it to a fresh one every
# BENCH_OAUTH_PER_ADDR (16) requests, so the limiter is exercised but never trips (a 429 would
# count as a wrong answer). Glewlwyd gets the same treatment.
#
# Exit status: 0 when every server answered right; 1 on a wrong answer; 2 when a run could not
# complete (a server did not start or died, no answer for 10 s); 77 when a peer is missing
# (glewlwyd: bench/glewlwyd/install.sh, run here when it is missing; wrk: bench/deps.sh) - the
# other part still runs. Whether a goal is met never changes the exit status.
#
# Knobs (environment): BENCH_OAUTH_CHAINS (32), BENCH_OAUTH_SECONDS (10), BENCH_OAUTH_WARMUP
# (1, seconds not counted at the start of each token run), BENCH_OAUTH_PER_ADDR (16),
# BENCH_WRK_SECONDS (10), BENCH_WRK_WARMUP (2), BENCH_WRK_THREADS (2), BENCH_WRK_CONNECTIONS
# (64), BENCH_PERF (1: perf record on each server during its measured run, into
# build/bench/oauth/*.perf.data), MCPGATE.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1

mcpgate=${MCPGATE:-$top/build/release/mcpgate}
flows=$top/bench/glewlwyd/flows.py
load=$top/build/bench/token_load
out=$top/build/bench/oauth
mkdir -p "$out" || exit 2

per_addr=${BENCH_OAUTH_PER_ADDR:-16}
threads=${BENCH_WRK_THREADS:-2}
conns=${BENCH_WRK_CONNECTIONS:-64}
perf_on=${BENCH_PERF:-0}
if [ $smoke = 1 ]; then
    chains=4 tsec=1 twarm=0 dur=1 warm=0
else
    chains=${BENCH_OAUTH_CHAINS:-32}
    tsec=${BENCH_OAUTH_SECONDS:-10}
    twarm=${BENCH_OAUTH_WARMUP:-1}
    dur=${BENCH_WRK_SECONDS:-10}
    warm=${BENCH_WRK_WARMUP:-2}
fi

if [ ! -x "$mcpgate" ]; then
    echo "oauth.sh: $mcpgate not built (make build)" >&2
    exit 2
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "oauth.sh: python3 missing (bench/glewlwyd/flows.py runs the OAuth flows)" >&2
    exit 77
fi
PATH=$PATH:/usr/sbin:/sbin
export PATH
have_gw=1
if ! command -v glewlwyd >/dev/null 2>&1 || ! command -v sqlite3 >/dev/null 2>&1; then
    sh "$top/bench/glewlwyd/install.sh" || true
fi
if ! command -v glewlwyd >/dev/null 2>&1 || ! command -v sqlite3 >/dev/null 2>&1 ||
    ! command -v openssl >/dev/null 2>&1; then
    echo "oauth.sh: glewlwyd, sqlite3 or openssl missing (bench/glewlwyd/install.sh):" \
        "part A runs mcpgate only" >&2
    have_gw=0
fi
have_wrk=1
if ! command -v wrk >/dev/null 2>&1 && [ -f "$top/bench/deps.sh" ]; then
    sh "$top/bench/deps.sh" || true
fi
if ! command -v wrk >/dev/null 2>&1; then
    echo "oauth.sh: wrk missing (bench/deps.sh installs it): part B skipped" >&2
    have_wrk=0
fi

mkdir -p "$(dirname "$load")" || exit 2
cc -O2 -Wall -Wextra -o "$load" "$top/bench/token_load.c" || exit 2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-bench-oauth.XXXXXX") || exit 2
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
fail() { # STATUS MESSAGE: remember the worst status (77 only when nothing worse happened)
    echo "oauth.sh: $2" >&2
    if [ "$1" = 77 ]; then
        [ $status = 0 ] && status=77
    elif [ $status = 77 ] || [ "$1" -gt $status ]; then
        status=$1
    fi
}

# start_mcpgate LABEL DIR ARGS...: starts `mcpgate serve` on a free port with its database in
# DIR, stderr in $out/LABEL.stderr; waits up to 10 s for its URL. Sets spid, sport, spass (the
# first user's password, empty with --no-auth).
start_mcpgate() {
    label=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    : >"$out/$label.stderr"
    (cd "$dir" && exec "$mcpgate" serve --listen 127.0.0.1:0 --db "sqlite:$dir/m.db" \
        --tools demo --log-level warn "$@") 2>>"$out/$label.stderr" &
    spid=$!
    pids="$pids $spid"
    sport="" spass=""
    i=0
    while [ $i -lt 100 ]; do
        sport=$(sed -n 's#^mcpgate: serving MCP at http://127.0.0.1:\([0-9]*\)/mcp.*#\1#p' \
            "$out/$label.stderr" | head -n 1)
        if [ -n "$sport" ]; then
            spass=$(sed -n 's/^mcpgate: created the first user: admin, password \(.*\)$/\1/p' \
                "$out/$label.stderr" | head -n 1)
            return 0
        fi
        kill -0 $spid 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    echo "oauth.sh: $label did not start; its stderr:" >&2
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

perf_start() { # LABEL PID SECONDS
    perf_pid=""
    if [ "$perf_on" = 1 ] && command -v perf >/dev/null 2>&1; then
        # DWARF call chains (the release build has no frame pointers) at a low frequency.
        perf record --call-graph dwarf,16384 -F 499 -q -o "$out/$1.perf.data" -p "$2" \
            -- sleep "$3" \
            >"$out/$1.perf.log" 2>&1 &
        perf_pid=$!
    fi
}
perf_wait() { [ -n "$perf_pid" ] && wait "$perf_pid"; perf_pid=""; }

# token_run LABEL PORT CHAINS-FILE SRC PID: the refresh chains; appends a result line.
token_run() {
    label=$1
    perf_start "$label" "$5" "$(awk -v w="$twarm" -v d="$tsec" 'BEGIN { print w + d }')"
    "$load" -p "$2" -f "$3" -c "$chains" -d "$tsec" -W "$twarm" -k "$per_addr" -s "$4" -R \
        -l "$label" >"$out/$label.load" 2>"$out/$label.load.err"
    rc=$?
    perf_wait
    cat "$out/$label.load.err" >&2
    if [ $rc -ne 0 ] || ! grep -q '^label=' "$out/$label.load"; then
        if [ $rc = 1 ]; then
            fail 1 "$label: wrong answers from the token endpoint"
        else
            fail 2 "$label: the token run could not complete"
        fi
    fi
    if ! kill -0 "$5" 2>/dev/null; then
        fail 2 "$label: the server died during the run"
    fi
    sed -n 's/^label=/part=token label=/p' "$out/$label.load" | tee -a "$results"
}

# ---- (A) refresh_token grant with rotation ----

echo "oauth.sh: refresh_token grant with rotation, $chains chains, ${tsec}s (warm-up ${twarm}s)," \
    "a fresh source address every $per_addr requests"
if start_mcpgate mcpgate-token "$tmp/a-mcpgate"; then
    mp=$spid
    if [ -z "$spass" ]; then
        fail 1 "mcpgate-token: no first-user password on stderr"
    elif python3 "$flows" chains mcpgate "http://127.0.0.1:$sport" "$chains" \
        "$tmp/chains.mcpgate" --password "$spass" --src-base 127.0.0.2 \
        2>"$out/mcpgate-token.flows"; then
        token_run mcpgate-token "$sport" "$tmp/chains.mcpgate" 127.1.0.1 "$mp"
    else
        cat "$out/mcpgate-token.flows" >&2
        fail 1 "mcpgate-token: the authorization code flows failed"
    fi
    stop "$mp"
else
    fail 2 "mcpgate did not start"
fi

if [ $have_gw = 1 ]; then
    g=$tmp/glewlwyd
    mkdir -p "$g"
    gport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
    gurl=http://127.0.0.1:$gport
    if ! sqlite3 "$g/g.db" </usr/share/dbconfig-common/data/glewlwyd/install/sqlite3; then
        fail 2 "glewlwyd: could not create its database"
    fi
    sed -e "s|@PORT@|$gport|g" -e "s|@DB@|$g/g.db|g" "$top/bench/glewlwyd/glewlwyd.conf.in" \
        >"$g/glewlwyd.conf"
    # The plugin's ES256 key: a fresh P-256 key pair (PEM).
    if ! openssl ecparam -name prime256v1 -genkey -noout -out "$g/key.pem" 2>/dev/null ||
        ! openssl ec -in "$g/key.pem" -pubout -out "$g/pub.pem" 2>/dev/null; then
        fail 2 "glewlwyd: openssl could not make an ES256 key"
    fi
    (cd "$g" && exec glewlwyd -c "$g/glewlwyd.conf" -l WARNING) >"$out/glewlwyd.stderr" 2>&1 &
    gpid=$!
    pids="$pids $gpid"
    up=0 i=0
    while [ $i -lt 100 ]; do
        code=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' "$gurl/config" 2>/dev/null)
        [ -n "$code" ] && [ "$code" != 000 ] && up=1 && break
        kill -0 $gpid 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    if [ $up = 0 ]; then
        tail -n 5 "$out/glewlwyd.stderr" >&2
        fail 2 "glewlwyd did not start"
    elif ! python3 "$flows" glewlwyd-setup "$gurl" "$g/key.pem" "$g/pub.pem"; then
        fail 1 "glewlwyd: its configuration through the admin API failed"
    elif ! python3 "$flows" chains glewlwyd "$gurl" "$chains" "$tmp/chains.glewlwyd" \
        --src-base 127.0.0.2; then
        fail 1 "glewlwyd: the authorization code flows failed"
    else
        token_run glewlwyd-token "$gport" "$tmp/chains.glewlwyd" 127.2.0.1 "$gpid"
    fi
    stop "$gpid"
else
    fail 77 "glewlwyd missing: no comparison for part A"
fi

# ---- (B) tools/call with and without OAuth ----

lua=$tmp/echo_auth.lua
cat >"$lua" <<'EOF'
-- bench/oauth.sh part B: stateless 2026-07-28 tools/call echo {"text":"hi"}, with
-- Authorization: Bearer $BENCH_TOKEN when it is set; every answer must be a 200 with the text.
wrk.method = "POST"
wrk.path = "/mcp"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "echo"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo",'
    .. '"arguments":{"text":"hi"},"_meta":{"io.modelcontextprotocol/protocolVersion":'
    .. '"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) checked = 0; bad = 0 end
function response(status, headers, body)
    checked = checked + 1
    if status ~= 200 or not body or not string.find(body, '"text":"hi"', 1, true) then
        bad = bad + 1
    end
end
function done(summary, latency, requests)
    local c, b = 0, 0
    for _, t in ipairs(threads) do
        c = c + t:get("checked")
        b = b + t:get("bad")
    end
    io.write(string.format("checked=%d bad=%d\n", c, b))
end
EOF
body='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo",'
body=$body'"arguments":{"text":"hi"},"_meta":{"io.modelcontextprotocol/protocolVersion":'
body=$body'"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'

# sample URL OUTFILE [HEADER...]: one tools/call with curl; prints the status.
sample() {
    url=$1 of=$2
    shift 2
    curl --noproxy '*' -sS -m 10 -o "$of" -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: echo' \
        "$@" --data-binary "$body" "$url"
}

# wrk_run LABEL URL PID TOKEN: warm-up, then the measured run; appends a result line.
wrk_run() {
    label=$1
    if [ "$warm" -gt 0 ]; then
        BENCH_TOKEN=$4 wrk -t"$threads" -c"$conns" -d"${warm}s" -s "$lua" "$2" \
            >"$out/$label.warmup.wrk" 2>&1
    fi
    perf_start "$label" "$3" "$dur"
    BENCH_TOKEN=$4 wrk -t"$threads" -c"$conns" -d"${dur}s" --latency -s "$lua" "$2" \
        >"$out/$label.wrk" 2>&1
    perf_wait
    if ! kill -0 "$3" 2>/dev/null; then
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
    /^checked=/ { split($1, a, "="); checked = a[2]; split($2, b, "="); bad = b[2] }
    END {
        printf "part=wrk label=%s rps=%.0f p50_ms=%.2f p99_ms=%.2f checked=%d bad=%d " \
            "socket_errors=%d\n", label, rps, p50, p99, checked, bad, errs
    }' "$out/$label.wrk")
    echo "$line" | tee -a "$results"
    case "$line" in
    *" checked=0 "*) fail 2 "$label: wrk got no answer; see $out/$label.wrk" ;;
    *" bad=0 "*) ;;
    *) fail 1 "$label: wrong answers during the run; see $out/$label.wrk" ;;
    esac
}

if [ $have_wrk = 1 ]; then
    echo "oauth.sh: tools/call with and without OAuth, wrk -t$threads -c$conns -d${dur}s" \
        "(warm-up ${warm}s)"
    if start_mcpgate mcpgate-noauth "$tmp/b-noauth" --no-auth; then
        np=$spid
        url=http://127.0.0.1:$sport/mcp
        s=$(sample "$url" "$tmp/s-noauth")
        if [ "$s" = 200 ] && grep -q '"text":"hi"' "$tmp/s-noauth"; then
            wrk_run mcpgate-noauth "$url" "$np" ""
        else
            fail 1 "mcpgate-noauth: wrong sample answer: $s $(head -c 300 "$tmp/s-noauth")"
        fi
        stop "$np"
    else
        fail 2 "mcpgate (--no-auth) did not start"
    fi
    if start_mcpgate mcpgate-auth "$tmp/b-auth"; then
        ap=$spid
        url=http://127.0.0.1:$sport/mcp
        creds=$("$mcpgate" client add --name bench --confidential \
            --grant-type client_credentials --db "sqlite:$tmp/b-auth/m.db" 2>/dev/null)
        cid=$(printf '%s\n' "$creds" | sed -n 's/^client_id: //p')
        csecret=$(printf '%s\n' "$creds" | sed -n 's/^client_secret: //p')
        if tok=$(python3 "$flows" cc-token "http://127.0.0.1:$sport" "$cid" "$csecret"); then
            s0=$(sample "$url" "$tmp/s-anon")
            s=$(sample "$url" "$tmp/s-auth" -H "Authorization: Bearer $tok")
            if [ "$s0" != 401 ]; then
                fail 1 "mcpgate-auth: a call without a token got $s0, not 401"
            elif [ "$s" = 200 ] && grep -q '"text":"hi"' "$tmp/s-auth"; then
                wrk_run mcpgate-auth "$url" "$ap" "$tok"
            else
                fail 1 "mcpgate-auth: wrong sample answer: $s $(head -c 300 "$tmp/s-auth")"
            fi
        else
            fail 1 "mcpgate-auth: no client_credentials access token"
        fi
        stop "$ap"
    else
        fail 2 "mcpgate (OAuth) did not start"
    fi
else
    fail 77 "wrk missing: part B skipped"
fi

# ---- the tables ----
awk -v smoke=$smoke -v tsec="$tsec" -v twarm="$twarm" -v chains="$chains" -v k="$per_addr" \
    -v dur="$dur" -v warm="$warm" -v thr="$threads" -v con="$conns" '
function kv(line, arr,   n, i, f, p) {
    n = split(line, f, " ")
    for (i = 1; i <= n; i++) {
        p = index(f[i], "=")
        if (p > 0) arr[substr(f[i], 1, p - 1)] = substr(f[i], p + 1)
    }
}
function ratio(what, a, b, goal,   r) {
    if (a + 0 <= 0 || b + 0 <= 0) { printf "%-30s %9s\n", what, "n/a"; return }
    r = a / b
    printf "%-30s %8.2fx  >= %-5s %s\n", what, r, goal "x", (r >= goal ? "goal met" : "goal missed")
}
{
    delete v; kv($0, v)
    if (v["part"] == "token") {
        tr[v["label"]] = v["rate_rps"]; t[v["label"]] = $0; to[++nt] = v["label"]
    }
    if (v["part"] == "wrk") { wr[v["label"]] = v["rps"]; w[v["label"]] = $0; wo[++nw] = v["label"] }
}
END {
    note = smoke ? "  [smoke run: figures are not meaningful]" : ""
    printf "\ntoken endpoint: refresh_token grant with rotation, SQLite, %d chains, %ds " \
        "(warm-up %ds)%s\n", chains, tsec, twarm, note
    printf "%-16s %10s %9s %9s %9s %9s %7s %8s\n", "server", "refresh/s", "p50 ms", "p99 ms",
        "max ms", "requests", "errors", "reuse ok"
    for (i = 1; i <= nt; i++) {
        delete v; kv(t[to[i]], v)
        printf "%-16s %10s %9.2f %9.2f %9.2f %9s %7s %8s\n", to[i], v["rate_rps"],
            v["p50_us"] / 1000, v["p99_us"] / 1000, v["max_us"] / 1000, v["requests"],
            v["errors"], v["reuse_refused"] "/" (v["reuse_refused"] + v["reuse_accepted"])
    }
    ratio("mcpgate / glewlwyd", tr["mcpgate-token"], tr["glewlwyd-token"], 10)
    printf "(reuse ok: rotated tokens refused when replayed after the run; a fresh source " \
        "address every %d requests)\n", k
    printf "\n/mcp tools/call echo (2026-07-28, stateless), keep-alive, wrk %d threads " \
        "%d connections %ds (warm-up %ds)%s\n", thr, con, dur, warm, note
    printf "%-16s %10s %9s %9s %9s %5s\n", "server", "req/s", "p50 ms", "p99 ms", "checked", "bad"
    for (i = 1; i <= nw; i++) {
        delete v; kv(w[wo[i]], v)
        printf "%-16s %10s %9s %9s %9s %5s\n", wo[i], v["rps"], v["p50_ms"], v["p99_ms"],
            v["checked"], v["bad"]
    }
    ratio("auth / no-auth", wr["mcpgate-auth"], wr["mcpgate-noauth"], 0.9)
    printf "ratios: bigger is better for mcpgate\n"
}' "$results"

exit $status
