#!/usr/bin/env bash
# Serves the example over HTTP on a free port, calls its tool in both eras with curl, stops it
# with SIGTERM and checks it exits cleanly.
set -euo pipefail
bin=$1
log=$(mktemp)
"$bin" --http 127.0.0.1:0 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 50); do grep -q 'serving MCP at' "$log" && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*/mcp' "$log" | head -1)
[ -n "$url" ] || { echo "no URL in: $(cat "$log")"; exit 1; }

H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
hdrs=$(mktemp)
curl -sf -D "$hdrs" "${H[@]}" "$url" -o /dev/null \
  -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
sid=$(grep -i '^mcp-session-id:' "$hdrs" | cut -d' ' -f2 | tr -d '\r')
rm -f "$hdrs"
[ -n "$sid" ] || { echo "no Mcp-Session-Id"; exit 1; }
out=$(curl -sf "${H[@]}" -H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-11-25' "$url" \
  -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"hello","arguments":{"name":"Ada"}}}')
echo "$out" | grep -q 'Hello, Ada! (protocol 2025-11-25)' || { echo "legacy call: $out"; exit 1; }
out=$(curl -sf "${H[@]}" -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' \
  -H 'Mcp-Name: hello' "$url" \
  -d '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"hello","arguments":{"name":"Bo"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}')
echo "$out" | grep -q 'Hello, Bo! (protocol 2026-07-28)' || { echo "modern call: $out"; exit 1; }
kill -TERM $pid
wait $pid
echo "hello_tool served both eras over HTTP and stopped cleanly"
