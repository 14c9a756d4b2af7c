-- wrk script for bench/http.sh: every request is the same `tools/call` of the `echo` tool with
-- the text "hello" over POST /mcp (keep-alive). Every response is checked: a status other than
-- 200, or a body without the echoed text, counts as bad. done() prints one line
--   checked=N bad=B
-- which http.sh reads (wrk's own summary comes before it).
--
-- Environment:
--   BENCH_ERA=2026     the stateless 2026-07-28 request: MCP-Protocol-Version, Mcp-Method and
--                      Mcp-Name headers, protocol version and client capabilities in _meta
--   BENCH_ERA=legacy   (default) a 2025-11-25 request, with BENCH_SESSION as Mcp-Session-Id
--                      when it is set (mcpgate's legacy session) or none (the SDK's stateless
--                      mode, which takes tools/call without initialize)
--   BENCH_TOKEN        an access token sent as Authorization: Bearer (bench/connect.sh)
--   BENCH_TOOL, BENCH_ARG, BENCH_EXPECT   another echo tool: its name, its argument, the text
--                      its answer holds (default echo, text, hello)

local era = os.getenv("BENCH_ERA") or "legacy"
local session = os.getenv("BENCH_SESSION")
local token = os.getenv("BENCH_TOKEN")
-- the echo tool, its argument and what its answer holds (bench/gateway.sh: server-everything's
-- echo behind a gateway answers "Echo: hello")
local tool = os.getenv("BENCH_TOOL") or "echo"
local arg = os.getenv("BENCH_ARG") or "text"
local expect = '"text":"' .. (os.getenv("BENCH_EXPECT") or "hello") .. '"'

wrk.method = "POST"
wrk.path = "/mcp"
if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
if era == "2026" then
    wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
    wrk.headers["Mcp-Method"] = "tools/call"
    wrk.headers["Mcp-Name"] = tool
    wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' .. tool .. '",'
        .. '"arguments":{"' .. arg .. '":"hello"},"_meta":{"io.modelcontextprotocol/protocolVersion":'
        .. '"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
else
    wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
    if session and session ~= "" then
        wrk.headers["Mcp-Session-Id"] = session
    end
    wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' .. tool .. '",'
        .. '"arguments":{"' .. arg .. '":"hello"}}}'
end

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    checked = 0
    bad = 0
end

function response(status, headers, body)
    checked = checked + 1
    if status ~= 200 or not body or not string.find(body, expect, 1, true) then
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
