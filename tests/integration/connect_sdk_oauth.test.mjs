// Interop with a server mcpgate did not write: the official TypeScript SDK's example Streamable
// HTTP server with its demo OAuth provider (a separate authorization server; DCR; PKCE; exact
// redirect matching; auto-approval at /authorize, so the "browser" is curl following the
// redirect), strict about the resource indicator. The SDK's stdio client lists and calls tools
// through `mcpgate connect`; `mcpgate call` does the same from the command line.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { loadSdk, sleep, withTimeout } from './helpers.mjs';
import { PEERS_DIR, connectThroughProxy, freePort, runCli } from './client_helpers.mjs';

const EXAMPLE = path.join(PEERS_DIR,
  'node_modules/@modelcontextprotocol/sdk/dist/esm/examples/server/simpleStreamableHttp.js');
const { types } = await loadSdk();
const { ElicitRequestSchema } = types;

let demo;
let url;
let dir;
const BROWSER = 'curl -s -o /dev/null -L';

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-sdk-oauth-'));
  const port = await freePort();
  const authPort = await freePort();
  demo = spawn(process.execPath, [EXAMPLE, '--oauth', '--oauth-strict'], {
    cwd: dir, stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MCP_PORT: String(port), MCP_AUTH_PORT: String(authPort) },
  });
  let out = '';
  demo.stdout.setEncoding('utf8');
  demo.stderr.setEncoding('utf8');
  demo.stdout.on('data', (c) => { out += c; });
  demo.stderr.on('data', (c) => { out += c; });
  await withTimeout((async () => {
    while (!/MCP Streamable HTTP Server listening on port/.test(out)) await sleep(50);
  })(), 20000, `the SDK example server did not start:\n${out}`);
  // its protected resource metadata names http://localhost:PORT/mcp: use that spelling
  url = `http://localhost:${port}/mcp`;
});

after(async () => {
  demo?.kill('SIGINT');
  await sleep(200);
  demo?.kill('SIGKILL');
});

test('the SDK stdio client lists and calls tools through connect (sign-in included)', async () => {
  const store = path.join(dir, 'store-a');
  const c = await connectThroughProxy([url, '--config-dir', store, '--browser', BROWSER],
    { label: 'connect-sdk-demo', capabilities: { elicitation: {} } });
  try {
    assert.match(c.client.getServerVersion().name, /simple-streamable-http-server/);
    const { tools } = await c.client.listTools();
    const names = tools.map((t) => t.name);
    for (const t of ['greet', 'multi-greet', 'collect-user-info'])
      assert.ok(names.includes(t), `${t} in ${names}`);
    const r = await c.client.callTool({ name: 'greet', arguments: { name: 'mcpgate' } });
    assert.equal(r.content[0].text, 'Hello, mcpgate!');
    // the server asks the user (elicitation) over its session's stream
    const asked = [];
    c.client.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked.push(req.params.message);
      return { action: 'accept', content: { name: 'Ada', email: 'ada@example.com' } };
    });
    const e = await c.client.callTool({ name: 'collect-user-info',
      arguments: { infoType: 'contact' } });
    assert.equal(asked.length, 1);
    assert.match(JSON.stringify(e.content), /Ada/);
  } finally {
    await c.client.close();
  }
  assert.match(c.stderr(), /registering with http:\/\/localhost:\d+/);
  assert.match(c.stderr(), /signed in/);
  // the registration and the tokens are kept for the next start
  const v1 = path.join(store, 'v1');
  const [entry] = fs.readdirSync(v1);
  const tokens = JSON.parse(fs.readFileSync(path.join(v1, entry, 'tokens.json'), 'utf8'));
  assert.equal(tokens.resource, url);
  assert.equal(tokens.issuer.replace(/\/$/, ''), tokens.issuer.replace(/\/$/, ''));
});

test('mcpgate call against the same server, stored tokens reused', async () => {
  const store = path.join(dir, 'store-a');
  const r = await runCli(['call', url, 'greet', 'name=again', '--config-dir', store,
    '--browser', '/bin/false', '--auth-timeout', '5']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Hello, again!\n');
  assert.doesNotMatch(r.stderr, /to sign in/);
});

test('--protocol-version 2026-07-28 against a legacy-only server is a clear error', async () => {
  const r = await runCli(['tools', url, '--config-dir', path.join(dir, 'store-a'),
    '--protocol-version', '2026-07-28', '--browser', '/bin/false', '--auth-timeout', '5']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot connect to/);
});
