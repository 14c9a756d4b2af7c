// `mcpgate connect`, `login`, `token` and `logout` against `mcpgate serve` with OAuth on, the
// sign-in done by a real headless Chromium launched through --browser (browser_signin.mjs):
// discovery, registration, PKCE, consent, the token store (modes, one sign-in for two processes
// started at once, stored tokens reused without a browser), refresh racing between processes,
// a revoked grant ending in a clear error and no storm, logout revoking at the server.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { checkSchemas, sleep } from './helpers.mjs';
import { postForm } from './oauth_helpers.mjs';
import { LineClient, PEERS_DIR, SIGNIN, connectThroughProxy, runCli,
  startServe } from './client_helpers.mjs';

const MODERN_META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': { name: 'line-client', version: '1' },
};

let srv;
let n = 0;
before(async () => {
  srv = await startServe({ auth: true, args: ['--access-ttl', '3', '--revocation-bound', '1'] });
  assert.ok(srv.password, 'the first start prints the admin password');
});
after(async () => {
  await srv?.stop();
});

// A fresh configuration: its store directory, the browser's log, the environment for mcpgate.
function config({ action = 'approve' } = {}) {
  const dir = path.join(srv.dir, `client-${++n}`);
  fs.mkdirSync(dir, { recursive: true });
  const log = path.join(dir, 'browser.log');
  return {
    dir: path.join(dir, 'store'),
    log,
    launches: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n')
      .filter(Boolean).map((l) => JSON.parse(l)) : []),
    env: { MCPGATE_PEERS: PEERS_DIR, SIGNIN_USER: 'admin', SIGNIN_PASSWORD: srv.password,
      SIGNIN_LOG: log, SIGNIN_ACTION: action },
    args: ['--config-dir', path.join(dir, 'store'), '--browser', `node ${SIGNIN}`],
  };
}

// The one entry of a store: its directory and documents.
function entry(cfg) {
  const v1 = path.join(cfg.dir, 'v1');
  const keys = fs.readdirSync(v1);
  assert.equal(keys.length, 1, `one entry in ${v1}`);
  const dir = path.join(v1, keys[0]);
  const read = (name) => JSON.parse(fs.readFileSync(path.join(dir, `${name}.json`), 'utf8'));
  return { dir, read };
}

const mode = (p) => fs.statSync(p).mode & 0o777;

async function whoami(client) {
  const r = await client.callTool({ name: 'whoami', arguments: {} });
  return r.content[0].text;
}

// Waits until the browser's log has n entries (the browser writes it as it exits).
async function launched(cfg, count) {
  const deadline = Date.now() + 20000;
  while (cfg.launches().length < count && Date.now() < deadline) await sleep(100);
  return cfg.launches();
}

describe('connect with a browser sign-in', () => {
  let cfg;
  before(() => {
    cfg = config();
  });

  test('the first start signs in through Chromium, then tools work', async () => {
    const c = await connectThroughProxy([srv.url, ...cfg.args], { env: cfg.env,
      label: 'connect-oauth' });
    try {
      assert.match(await whoami(c.client), /^admin /);
      const { tools } = await c.client.listTools();
      assert.ok(tools.some((t) => t.name === 'add'));
    } finally {
      await c.client.close();
    }
    const runs = await launched(cfg, 1);
    assert.equal(runs.length, 1, 'one sign-in');
    assert.match(runs[0].url, /\/authorize\?response_type=code&client_id=/);
    assert.match(runs[0].url, /code_challenge_method=S256/);
    assert.match(runs[0].url, /resource=http%3A%2F%2F127\.0\.0\.1/);
    assert.match(runs[0].text, /Signed in/);
    assert.match(c.stderr(), /signed in/);
    checkSchemas(c.files.inFile, c.files.outFile);
  });

  test('the store: directories 0700, files 0600, no token in the log', () => {
    const e = entry(cfg);
    assert.equal(mode(cfg.dir), 0o700);
    assert.equal(mode(path.join(cfg.dir, 'v1')), 0o700);
    assert.equal(mode(e.dir), 0o700);
    for (const f of fs.readdirSync(e.dir).filter((x) => x.endsWith('.json')))
      assert.equal(mode(path.join(e.dir, f)), 0o600, f);
    const t = e.read('tokens');
    assert.equal(typeof t.access_token, 'string');
    assert.equal(typeof t.refresh_token, 'string');
    assert.equal(e.read('client').issuer, srv.base);
    assert.equal(e.read('server').issuer, srv.base);
  });

  test('a second start uses the stored tokens: no browser', async () => {
    const c = await connectThroughProxy([srv.url, ...cfg.args], { env: cfg.env });
    try {
      assert.match(await whoami(c.client), /^admin /);
    } finally {
      await c.client.close();
    }
    await sleep(300);
    assert.equal(cfg.launches().length, 1, 'still one sign-in');
  });

  test('an expired access token is refreshed on the way', async () => {
    await sleep(3500); // --access-ttl 3
    const c = await connectThroughProxy([srv.url, ...cfg.args], { env: cfg.env });
    try {
      assert.match(await whoami(c.client), /^admin /);
    } finally {
      await c.client.close();
    }
    assert.equal(cfg.launches().length, 1, 'refreshed, not signed in again');
  });
});

test('two connect processes started at once sign in once', async () => {
  const cfg = config();
  const [a, b] = await Promise.all([
    connectThroughProxy([srv.url, ...cfg.args], { env: cfg.env, label: 'twin-a' }),
    connectThroughProxy([srv.url, ...cfg.args], { env: cfg.env, label: 'twin-b' }),
  ]);
  try {
    const [wa, wb] = await Promise.all([whoami(a.client), whoami(b.client)]);
    assert.match(wa, /^admin /);
    assert.match(wb, /^admin /);
  } finally {
    await Promise.all([a.client.close(), b.client.close()]);
  }
  const runs = await launched(cfg, 1);
  await sleep(500);
  assert.equal(cfg.launches().length, 1, `one browser for two processes: ${JSON.stringify(runs)}`);
  assert.match(a.stderr() + b.stderr(), /another mcpgate \(pid \d+\) is signing in|using the tokens another mcpgate stored/);
});

describe('login, token, logout', () => {
  let cfg;
  before(() => {
    cfg = config();
  });

  test('login signs in; token prints a token the server accepts', async () => {
    const l = await runCli(['login', srv.url, ...cfg.args], { env: cfg.env });
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stderr, /signed in to/);
    const t = await runCli(['token', srv.url, ...cfg.args], { env: cfg.env });
    assert.equal(t.code, 0, t.stderr);
    const token = t.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT');
    const r = await fetch(srv.url, { method: 'POST', headers: {
      Authorization: `Bearer ${token}`, 'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream', 'MCP-Protocol-Version': '2026-07-28',
      'Mcp-Method': 'tools/list' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: MODERN_META } }) });
    assert.equal(r.status, 200);
  });

  test('login again when signed in does nothing', async () => {
    const l = await runCli(['login', srv.url, ...cfg.args], { env: cfg.env });
    assert.equal(l.code, 0, l.stderr);
    assert.equal((await launched(cfg, 1)).length, 1);
  });

  test('refresh racing between four processes: one refresh, nobody loses the grant',
    async () => {
      await sleep(3500);
      const runs = await Promise.all([1, 2, 3, 4].map(() =>
        runCli(['token', srv.url, ...cfg.args], { env: cfg.env })));
      for (const r of runs) assert.equal(r.code, 0, r.stderr);
      const tokens = new Set(runs.map((r) => r.stdout.trim()));
      assert.equal(tokens.size, 1, 'they all print the one refreshed token');
      // the rotated refresh token still works: a reuse would have revoked the grant
      await sleep(3500);
      const again = await runCli(['call', srv.url, 'whoami', ...cfg.args], { env: cfg.env });
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /^admin /);
      assert.equal(cfg.launches().length, 1, 'no new sign-in');
    });

  test('logout revokes at the server and forgets', async () => {
    const t = (await runCli(['token', srv.url, ...cfg.args], { env: cfg.env })).stdout.trim();
    const out = await runCli(['logout', srv.url, ...cfg.args], { env: cfg.env });
    await sleep(1100); // --revocation-bound 1
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stderr, /revoked at the authorization server/);
    assert.deepEqual(fs.readdirSync(path.join(cfg.dir, 'v1')), []);
    const r = await fetch(srv.url, { method: 'POST', headers: {
      Authorization: `Bearer ${t}`, 'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream', 'MCP-Protocol-Version': '2026-07-28',
      'Mcp-Method': 'tools/list' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: MODERN_META } }) });
    assert.equal(r.status, 401, 'the revoked access token is refused');
    const again = await runCli(['logout', srv.url, ...cfg.args], { env: cfg.env });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /not signed in/);
  });
});

test('--authorize-param, --disable-resource-parameter, --scope reach the authorization URL',
  async () => {
    const cfg = config();
    const l = await runCli(['login', srv.url, ...cfg.args, '--authorize-param', 'prompt=login',
      '--disable-resource-parameter', '--scope', 'mcp'], { env: cfg.env });
    assert.equal(l.code, 0, l.stderr);
    const [run] = await launched(cfg, 1);
    const q = new URL(run.url).searchParams;
    assert.equal(q.get('prompt'), 'login');
    assert.equal(q.get('resource'), null);
    assert.equal(q.get('scope'), 'mcp');
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.match(q.get('redirect_uri'), /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
  });

test('--no-browser only prints the address', async () => {
  const cfg = config();
  const r = await runCli(['login', srv.url, '--config-dir', cfg.dir, '--no-browser',
    '--auth-timeout', '1'], { env: cfg.env });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /open this address in a browser:\n\n {4}http:\/\/127\.0\.0\.1:\d+\/authorize\?/);
  assert.match(r.stderr, /nobody signed in within 1 s/);
  assert.equal(cfg.launches().length, 0);
});

test('a revoked grant: a clear error, no sign-in storm', async () => {
  const cfg = config();
  const l = await runCli(['login', srv.url, ...cfg.args], { env: cfg.env });
  assert.equal(l.code, 0, l.stderr);
  const e = entry(cfg);
  const tok = e.read('tokens');
  const client = e.read('client');
  // the user revokes the application at the server (RFC 7009, as the apps page does)
  const rv = await postForm(srv.base, '/revoke', { token: tok.refresh_token,
    token_type_hint: 'refresh_token', client_id: client.client_id });
  assert.equal(rv.status, 200);
  await sleep(1100); // --revocation-bound 1: the access token goes with the grant
  // nobody is at the keyboard to sign in again: the browser cannot be opened
  const args = ['--config-dir', cfg.dir, '--browser', '/bin/false', '--auth-timeout', '4',
    '--debug'];
  const lc = new LineClient([srv.url, ...args], { env: cfg.env, label: 'revoked' });
  try {
    const t0 = Date.now();
    const r1 = await lc.request('tools/list', { _meta: MODERN_META });
    assert.equal(r1.error?.code, -32001, JSON.stringify(r1));
    assert.match(r1.error.message, /could not connect to .*: not authorized: nobody signed in within 4 s/);
    // at once, without a new sign-in (nor a request storm): the error says when and what to do
    const t1 = Date.now();
    const r2 = await lc.request('tools/list', { _meta: MODERN_META });
    assert.equal(r2.error?.code, -32001);
    assert.match(r2.error.message, /not retrying for \d+ s, or run: mcpgate login/);
    const r3 = await lc.request('tools/call', { _meta: MODERN_META, name: 'add',
      arguments: { a: 1, b: 2 } });
    assert.equal(r3.error?.code, -32001);
    // another sign-in attempt would take the 4 s auth timeout again
    assert.ok(Date.now() - t1 < 3000, `the later errors took ${Date.now() - t1} ms:\n${lc.stderr}`);
    assert.ok(Date.now() - t0 < 20000);
  } finally {
    await lc.close();
  }
  assert.equal(cfg.launches().length, 1, 'no browser but the first sign-in');
  assert.equal((lc.stderr.match(/to sign in, open this address/g) ?? []).length, 1,
    'one sign-in attempt after the revocation');
  assert.match(lc.stderr, /refused the refresh token \(invalid_grant/);
});
