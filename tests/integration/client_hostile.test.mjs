// The client (`mcpgate login`, `tools`, `connect`) against servers that misbehave, on purpose
// or by bug: a registration answer with a null auth method, a device flow interval of 2^32,
// an HTTP+SSE endpoint given as a bare query, a notification stream that closes as soon as it
// opens with `retry: 0`, a remote server pointing its resource metadata at this machine. Each
// must end in a clear error or keep working, without a crash, a hang or a request storm.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { BIN, sleep } from './helpers.mjs';
import { recorder, runCli } from './client_helpers.mjs';

const store = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-hostile-'));
  return { args: ['--config-dir', dir], env: { MCPGATE_CONFIG_DIR: dir } };
};

const json = (status, body, headers = {}) => ({ status,
  headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });

// An MCP server that wants OAuth, with its authorization server on the same origin.
function oauthServer(base, { register, device, token } = {}) {
  return (req, body) => {
    const u = new URL(req.url, 'http://x');
    if (u.pathname === '/mcp') {
      return { status: 401, headers: { 'WWW-Authenticate':
        `Bearer resource_metadata="${base()}/.well-known/oauth-protected-resource/mcp"` } };
    }
    if (u.pathname === '/.well-known/oauth-protected-resource/mcp') {
      return json(200, { resource: `${base()}/mcp`, authorization_servers: [base()] });
    }
    if (u.pathname === '/.well-known/oauth-authorization-server') {
      return json(200, { issuer: base(), authorization_endpoint: `${base()}/authorize`,
        token_endpoint: `${base()}/token`, registration_endpoint: `${base()}/register`,
        device_authorization_endpoint: `${base()}/device`,
        response_types_supported: ['code'], code_challenge_methods_supported: ['S256'],
        grant_types_supported: ['authorization_code', 'refresh_token',
          'urn:ietf:params:oauth:grant-type:device_code'] });
    }
    if (u.pathname === '/register') return register(body);
    if (u.pathname === '/device' && device) return device(body);
    if (u.pathname === '/token' && token) return token(body);
    return { status: 404 };
  };
}

test('a registration answer with token_endpoint_auth_method null: signing in goes on', async () => {
  let base;
  const rec = await recorder(oauthServer(() => base, {
    register: () => json(201, { client_id: 'c-1', token_endpoint_auth_method: null,
      redirect_uris: null }),
  }));
  base = rec.url;
  try {
    const s = store();
    const r = await runCli(['login', `${rec.url}/mcp`, '--no-browser', '--auth-timeout', '1',
      ...s.args], { env: s.env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /\/authorize\?[^\n]*client_id=c-1/);
    assert.match(r.stderr, /nobody signed in within 1 s/);
  } finally {
    await rec.close();
  }
});

test('a device flow interval of 2^32 seconds: no polling storm, no hang', async () => {
  let base;
  let polls = 0;
  const rec = await recorder(oauthServer(() => base, {
    register: () => json(201, { client_id: 'c-2', token_endpoint_auth_method: 'none' }),
    device: () => json(200, { device_code: 'dc', user_code: 'ABCD-EFGH',
      verification_uri: `${base}/activate`, expires_in: 600, interval: 4294967296 }),
    token: () => { polls++; return json(400, { error: 'authorization_pending' }); },
  }));
  base = rec.url;
  try {
    const s = store();
    const r = await runCli(['login', `${rec.url}/mcp`, '--device-code', '--auth-timeout', '3',
      ...s.args], { env: s.env, timeout: 20000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ABCD-EFGH/);
    assert.ok(r.ms < 10000, `took ${r.ms} ms`);
    assert.ok(polls <= 2, `${polls} token requests`);
  } finally {
    await rec.close();
  }
});

test('an HTTP+SSE endpoint event that is only a query: posts go to the stream\'s path', async () => {
  const rec = await recorder((req) => {
    if (req.method === 'GET') {
      return { status: 200, headers: { 'Content-Type': 'text/event-stream' },
        body: 'event: endpoint\ndata: ?sessionId=abc\n\n' };
    }
    return { status: 202 };
  });
  try {
    await runCli(['tools', `${rec.url}/sse`, '--no-auth', '--transport', 'sse-only',
      '--timeout', '2'], { timeout: 20000 });
    const posts = rec.requests.filter((q) => q.method === 'POST').map((q) => q.url);
    assert.ok(posts.length >= 1, JSON.stringify(rec.requests.map((q) => q.url)));
    assert.ok(posts.every((u) => u === '/sse?sessionId=abc'), posts.join(' '));
  } finally {
    await rec.close();
  }
});

test('a notification stream that closes at once with retry: 0 is retried with backoff', async () => {
  const rec = await recorder((req, body) => {
    if (req.method === 'GET') {
      return { status: 200, headers: { 'Content-Type': 'text/event-stream' },
        body: 'retry: 0\n\n' };
    }
    const m = body ? JSON.parse(body) : {};
    if (m.method === 'initialize') {
      return json(200, { jsonrpc: '2.0', id: m.id, result: { protocolVersion: '2025-11-25',
        capabilities: { tools: {} }, serverInfo: { name: 'closer', version: '1' } } },
      { 'Mcp-Session-Id': 's-1' });
    }
    if (m.method === 'tools/list') {
      return json(200, { jsonrpc: '2.0', id: m.id, result: { tools: [] } });
    }
    return { status: 202 };
  });
  const proc = spawn(BIN, ['connect', `${rec.url}/mcp`, '--no-auth', '--protocol-version',
    '2025-11-25'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (c) => { out += c; });
  try {
    proc.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {},
        clientInfo: { name: 't', version: '1' } } })}\n`);
    proc.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
    proc.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' })}\n`);
    await sleep(4000);
    const gets = rec.requests.filter((q) => q.method === 'GET').length;
    assert.ok(gets >= 2 && gets <= 8, `${gets} GETs in 4 s`);
    assert.match(out, /"id":2,"result":\{"tools":\[\]\}/);
  } finally {
    proc.stdin.end();
    await new Promise((resolve) => proc.on('close', resolve));
    await rec.close();
  }
});

test('a remote server\'s resource_metadata on this machine is not fetched', async () => {
  const ip = Object.values(os.networkInterfaces()).flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
  if (!ip) return; // no other interface: nothing to tell apart
  const local = await recorder(() => json(200, {}));
  const remote = await recorder((req) => (req.url === '/mcp' ? { status: 401,
    headers: { 'WWW-Authenticate':
      `Bearer resource_metadata="${local.url}/internal/admin?x=1"` } } : { status: 404 }),
  ip);
  try {
    const s = store();
    const r = await runCli(['tools', `${remote.url}/mcp`, '--allow-http', '--no-browser',
      '--auth-timeout', '1', ...s.args], { env: s.env, timeout: 20000 });
    assert.notEqual(r.code, 0);
    assert.equal(local.requests.length, 0, JSON.stringify(local.requests.map((q) => q.url)));
    assert.match(r.stderr, /ignoring the server's resource_metadata on this machine/);
  } finally {
    await local.close();
    await remote.close();
  }
});

// A minimal HTTP+SSE (2024-11-05) server: GET /sse opens a session stream and names its POST
// endpoint; answers travel on the stream. drop() ends every open stream (as a restart would).
// With auth, it is also its own authorization server (client credentials); a token is good
// for one stream only, so a reconnection needs a new one.
async function sseServer({ auth = false } = {}) {
  const http = await import('node:http');
  const streams = new Map();
  let next = 0;
  let tokens = 0;
  const used = new Set();
  let base;
  const srv = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const send = (status, body, headers = {}) => {
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (auth && u.pathname === '/.well-known/oauth-protected-resource/sse') {
      return send(200, { resource: `${base}/sse`, authorization_servers: [base] });
    }
    if (auth && u.pathname === '/.well-known/oauth-authorization-server') {
      return send(200, { issuer: base, authorization_endpoint: `${base}/authorize`,
        token_endpoint: `${base}/token`, response_types_supported: ['code'],
        grant_types_supported: ['client_credentials'],
        code_challenge_methods_supported: ['S256'] });
    }
    if (auth && u.pathname === '/token') {
      req.resume();
      return send(200, { access_token: `tok-${++tokens}`, token_type: 'Bearer',
        expires_in: 3600 });
    }
    if (auth && req.method === 'GET' && u.pathname === '/sse') {
      const tok = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      if (!tok || used.has(tok)) {
        return send(401, {}, { 'WWW-Authenticate':
          `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/sse"` });
      }
      used.add(tok);
    }
    if (req.method === 'GET' && u.pathname === '/sse') {
      const id = String(++next);
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write(`event: endpoint\ndata: /messages?session=${id}\n\n`);
      streams.set(id, res);
      req.on('close', () => streams.delete(id));
      return;
    }
    if (req.method === 'POST' && u.pathname === '/messages') {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const s = streams.get(u.searchParams.get('session'));
        if (!s) { res.writeHead(404); res.end(); return; }
        res.writeHead(202);
        res.end();
        const m = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (m.id === undefined) return;
        const result = m.method === 'initialize'
          ? { protocolVersion: '2024-11-05', capabilities: { tools: {} },
            serverInfo: { name: 'sse', version: '1' } }
          : m.method === 'tools/list' ? { tools: [{ name: `t${next}`, inputSchema: { type: 'object' } }] }
            : {};
        setTimeout(() => s.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0',
          id: m.id, result })}\n\n`), 5);
      });
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${srv.address().port}`;
  return {
    url: `${base}/sse`,
    sessions: () => next,
    tokens: () => tokens,
    drop: () => { for (const s of streams.values()) s.end(); streams.clear(); },
    close: () => new Promise((resolve) => { srv.closeAllConnections(); srv.close(resolve); }),
  };
}

for (const auth of [false, true]) {
  test(`HTTP+SSE: the stream lost twice, each time a new session, and requests go on${
    auth ? ' (each reconnection refused until a new token)' : ''}`, async () => {
  const sse = await sseServer({ auth });
  const s = store();
  const how = auth ? ['--client-credentials', '--static-oauth-client-info',
    '{"client_id":"cc","client_secret":"secret-1"}', ...s.args] : ['--no-auth'];
  const proc = spawn(BIN, ['connect', sse.url, '--transport', 'sse-only', ...how],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...s.env } });
  const msgs = [];
  let buf = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (c) => {
    buf += c;
    for (let nl; (nl = buf.indexOf('\n')) >= 0; buf = buf.slice(nl + 1)) msgs.push(JSON.parse(buf.slice(0, nl)));
  });
  const send = (m) => proc.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...m })}\n`);
  const answer = async (id) => {
    for (let i = 0; i < 200; i++) {
      const m = msgs.find((x) => x.id === id);
      if (m) return m;
      await sleep(50);
    }
    throw new Error(`no answer to ${id}`);
  };
  try {
    send({ id: 1, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {},
      clientInfo: { name: 't', version: '1' } } });
    await answer(1);
    send({ method: 'notifications/initialized' });
    send({ id: 2, method: 'tools/list' });
    assert.equal((await answer(2)).result.tools[0].name, 't1');
    for (const [id, session] of [[3, 2], [4, 3]]) {
      sse.drop();
      for (let i = 0; i < 100 && sse.sessions() < session; i++) await sleep(50);
      assert.equal(sse.sessions(), session, 'no new stream');
      send({ id, method: 'tools/list' });
      assert.equal((await answer(id)).result.tools[0].name, `t${session}`);
    }
    if (auth) assert.equal(sse.tokens(), 3);
  } finally {
    proc.stdin.end();
    await new Promise((resolve) => proc.on('close', resolve));
    await sse.close();
  }
  });
}
