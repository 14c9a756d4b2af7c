// OAuth 2.1 end to end against the real binary: the official SDK's OAuth client (PRM discovery,
// DCR, PKCE, the code exchange, refresh on 401) with a headless "user" that signs in and approves
// on the server's own HTML pages (fetch + a cookie jar, no JavaScript); then raw RFC 6749/7009/7591
// exchanges for what the SDK does not show: refresh rotation and reuse detection, revocation
// within the revocation bound, the token response and the JWT access token, Claude's DCR shape
// (scope "claudeai " trimmed to "claudeai"), step-up on a scoped tool, and stdio's anonymity.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  BIN,
  MODERN,
  PEERS,
  captureFiles,
  checkSchemas,
  connectSdk,
  loadSdk,
  modernMeta,
  readCapture,
  sleep,
  withTimeout,
} from './helpers.mjs';

const esm = path.join(PEERS, 'node_modules/@modelcontextprotocol/sdk/dist/esm');
const { Client } = await loadSdk();
const { StreamableHTTPClientTransport } = await import(path.join(esm, 'client/streamableHttp.js'));
const { UnauthorizedError } = await import(path.join(esm, 'client/auth.js'));

const DEMO_TOOLS = ['add', 'countdown', 'echo', 'greet_user', 'time', 'whoami'];
const READY = /mcpgate: serving MCP at (http:\/\/127\.0\.0\.1:(\d+)\/mcp)/;
const FIRST_USER = /mcpgate: created the first user: (\S+), password (\S+)/;
// A loopback callback nobody listens on: the final redirect's Location is read, not followed.
const LOOPBACK_CALLBACK = 'http://127.0.0.1:47913/callback';
const CLAUDE_CALLBACK = 'https://claude.ai/api/mcp/auth_callback';

// ---------------------------------------------------------------------------------------------
// The server

// Starts `mcpgate serve` with OAuth on (the default over HTTP) and a fresh database in a temporary
// directory; resolves with its URLs and the first user's credentials once it prints its address.
async function startServer(extraArgs = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-oauth-'));
  const args = ['serve', '--listen', '127.0.0.1:0', '--db', `sqlite:${path.join(dir, 'm.db')}`,
    '--tools', 'demo', ...extraArgs];
  const proc = spawn(BIN, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const srv = { proc, dir, stderr: '' };
  srv.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  proc.stderr.setEncoding('utf8');
  const ready = new Promise((resolve, reject) => {
    proc.stderr.on('data', (chunk) => {
      srv.stderr += chunk;
      const m = READY.exec(srv.stderr);
      if (m) resolve(m);
    });
    srv.exited.then(({ code }) => reject(new Error(`mcpgate exited (${code}):\n${srv.stderr}`)));
  });
  // Argon2 hashing of the first user's password makes the first start slow on a busy machine.
  const m = await withTimeout(ready, 20000, 'mcpgate did not print its address');
  const user = FIRST_USER.exec(srv.stderr);
  assert.ok(user, `no first-user line on stderr:\n${srv.stderr}`);
  srv.username = user[1];
  srv.password = user[2];
  srv.url = m[1];
  srv.base = `http://127.0.0.1:${m[2]}`;
  srv.jar = new CookieJar(); // the headless browser's cookies for this server
  return srv;
}

async function stopServer(srv) {
  if (!srv) return;
  if (srv.proc.exitCode === null && srv.proc.signalCode === null) {
    srv.proc.kill('SIGTERM');
    await withTimeout(srv.exited, 10000, 'mcpgate did not exit after SIGTERM').catch(() =>
      srv.proc.kill('SIGKILL'),
    );
  }
  fs.rmSync(srv.dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// The headless user: a cookie jar, the login form and the consent form

class CookieJar {
  constructor() {
    this.cookies = new Map();
  }

  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const gone = attrs.some((a) => /^\s*max-age\s*=\s*(0|-\d+)\s*$/i.test(a)) || value === '';
      if (gone) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
function htmlUnescape(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (all, e) => {
    if (e[0] === '#')
      return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1)));
    return ENTITIES[e.toLowerCase()] ?? all;
  });
}

function attr(tag, name) {
  const m = new RegExp(`\\s${name}\\s*=\\s*"([^"]*)"`, 'i').exec(tag);
  return m ? htmlUnescape(m[1]) : undefined;
}

// The first <form> of a page: its action and its hidden inputs.
function parseForm(html) {
  const form = /<form\b[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  assert.ok(form, `no form on the page:\n${html.slice(0, 2000)}`);
  const action = attr(form[0].slice(0, form[0].indexOf('>') + 1), 'action');
  const hidden = {};
  for (const [tag] of form[1].matchAll(/<input\b[^>]*>/gi))
    if (attr(tag, 'type') === 'hidden') hidden[attr(tag, 'name')] = attr(tag, 'value') ?? '';
  return { action, hidden, body: form[1] };
}

// Plays the user in a browser from an authorization URL to the client's redirect: follows
// /authorize -> /login, signs in, approves on the consent page and returns the URL the server
// finally redirects to (starting with redirectUri), without following it. `pages` records each
// page's URL, status and headers.
async function browse(srv, startUrl, redirectUri, { decision = 'approve', pages = [] } = {}) {
  let url = new URL(startUrl);
  let init = { method: 'GET' };
  for (let hop = 0; hop < 12; hop++) {
    const headers = { cookie: srv.jar.header(), ...(init.headers ?? {}) };
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    srv.jar.store(res);
    const text = await res.text();
    pages.push({ url: String(url), method: init.method, status: res.status, headers: res.headers, text });
    if (res.status >= 300 && res.status < 400) {
      const loc = res.headers.get('location');
      assert.ok(loc, `${res.status} without Location from ${url}`);
      const next = new URL(loc, url);
      if (String(next).startsWith(redirectUri)) return next;
      url = next;
      init = { method: 'GET' };
      continue;
    }
    assert.equal(res.status, 200, `${init.method} ${url} answered ${res.status}:\n${text.slice(0, 2000)}`);
    const form = parseForm(text);
    const post = new URL(form.action ?? String(url), url);
    const fields = new URLSearchParams(form.hidden);
    if (/name="password"/.test(form.body)) {
      fields.set('username', srv.username);
      fields.set('password', srv.password);
    } else if (/name="decision"/.test(form.body)) {
      fields.set('decision', decision);
    } else {
      assert.fail(`neither a login nor a consent form at ${url}:\n${text.slice(0, 2000)}`);
    }
    url = post;
    // A browser sends Origin on a form POST.
    init = { method: 'POST', body: fields.toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: srv.base } };
  }
  assert.fail(`too many hops from ${startUrl}: ${pages.map((p) => `${p.status} ${p.url}`).join('\n')}`);
}

// ---------------------------------------------------------------------------------------------
// The SDK's OAuth client

class HeadlessProvider {
  constructor(srv, { scope } = {}) {
    this.srv = srv;
    this.scope = scope;
    this.saved = { client: undefined, tokens: undefined, verifier: undefined };
    this.tokenSaves = [];
    this.authorizationUrls = [];
    this.states = [];
    this.code = undefined;
    this.callback = undefined;
    this.invalidated = [];
  }

  get redirectUrl() {
    return LOOPBACK_CALLBACK;
  }

  get clientMetadata() {
    return {
      client_name: 'mcpgate OAuth integration test',
      redirect_uris: [LOOPBACK_CALLBACK],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      ...(this.scope ? { scope: this.scope } : {}),
    };
  }

  state() {
    const s = crypto.randomBytes(16).toString('base64url');
    this.states.push(s);
    return s;
  }

  clientInformation() {
    return this.saved.client;
  }

  saveClientInformation(info) {
    this.saved.client = info;
  }

  tokens() {
    return this.saved.tokens;
  }

  saveTokens(tokens) {
    this.saved.tokens = tokens;
    this.tokenSaves.push(tokens);
  }

  saveCodeVerifier(v) {
    this.saved.verifier = v;
  }

  codeVerifier() {
    return this.saved.verifier;
  }

  invalidateCredentials(scope) {
    this.invalidated.push(scope);
    if (scope === 'all' || scope === 'client') this.saved.client = undefined;
    if (scope === 'all' || scope === 'tokens') this.saved.tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this.saved.verifier = undefined;
  }

  async redirectToAuthorization(url) {
    this.authorizationUrls.push(String(url));
    this.pages = [];
    this.callback = await browse(this.srv, url, LOOPBACK_CALLBACK, { pages: this.pages });
    this.code = this.callback.searchParams.get('code');
  }
}

// A fetch that records every request and appends the JSON-RPC messages exchanged with /mcp
// (request bodies; JSON responses and SSE `message` events of 2xx answers) to capture files.
function recordingFetch(srv, files) {
  const log = [];
  const append = (file, msg) => fs.appendFileSync(file, `${JSON.stringify(msg)}\n`);
  const f = async (url, init = {}) => {
    const entry = { method: init.method ?? 'GET', url: String(url) };
    log.push(entry);
    const res = await fetch(url, init);
    entry.status = res.status;
    if (String(url) !== srv.url || !res.ok) return res;
    if (typeof init.body === 'string' && init.body !== '')
      for (const m of [].concat(JSON.parse(init.body))) append(files.inFile, m);
    const type = res.headers.get('content-type') ?? '';
    if (!res.body || !(type.startsWith('application/json') || type.startsWith('text/event-stream')))
      return res;
    const [mine, theirs] = res.body.tee();
    entry.read = (async () => {
      const text = await new Response(mine).text();
      for (const m of parseMcpBody(type, text)) append(files.outFile, m);
    })().catch(() => {}); // a GET stream aborted at close
    return new Response(theirs, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
  f.log = log;
  f.settle = () =>
    withTimeout(Promise.allSettled(log.map((e) => e.read).filter(Boolean)), 3000, 'open bodies').catch(() => {});
  return f;
}

// The JSON-RPC messages of a response body, JSON or SSE.
function parseMcpBody(type, text) {
  if (type.startsWith('application/json')) return text.trim() === '' ? [] : [].concat(JSON.parse(text));
  const out = [];
  for (const block of text.replace(/\r\n?/g, '\n').split('\n\n')) {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (event === 'message' && data.join('').trim() !== '') out.push(JSON.parse(data.join('\n')));
  }
  return out;
}

// The SDK's whole flow: the first connect fails with UnauthorizedError after the provider played
// the user; finishAuth exchanges the code; a second connect (a fresh transport) initializes.
async function sdkConnect(srv, provider, files) {
  const fetchFn = recordingFetch(srv, files);
  const first = new StreamableHTTPClientTransport(new URL(srv.url), { authProvider: provider, fetch: fetchFn });
  const probe = new Client({ name: 'mcpgate-oauth-integration', version: '1.0.0' });
  await assert.rejects(
    withTimeout(probe.connect(first), 30000, 'the first connect'),
    (e) => e instanceof UnauthorizedError,
  );
  assert.ok(provider.code, `no code captured; callback ${provider.callback}`);
  await withTimeout(first.finishAuth(provider.code), 15000, 'finishAuth');
  await first.close().catch(() => {});
  const transport = new StreamableHTTPClientTransport(new URL(srv.url), { authProvider: provider, fetch: fetchFn });
  const client = new Client({ name: 'mcpgate-oauth-integration', version: '1.0.0' });
  await withTimeout(client.connect(transport), 15000, 'the second connect');
  return { client, transport, fetchFn };
}

// ---------------------------------------------------------------------------------------------
// Raw OAuth: DCR, PKCE, the code flow through the headless user, /token, /revoke

const b64url = (buf) => Buffer.from(buf).toString('base64url');

async function postForm(url, fields, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...headers },
    body: new URLSearchParams(fields).toString(),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

async function register(srv, metadata) {
  const res = await fetch(`${srv.base}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(metadata),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: JSON.parse(text), text };
}

const PUBLIC_CLIENT = {
  client_name: 'raw test client',
  redirect_uris: [LOOPBACK_CALLBACK],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
};

// Registers a public client (unless clientId is given), runs the authorization request through the
// headless user and exchanges the code. Returns the token response and what led to it.
async function codeFlow(srv, { clientId, redirectUri = LOOPBACK_CALLBACK, scope = 'mcp', metadata } = {}) {
  if (!clientId) {
    const reg = await register(srv, metadata ?? PUBLIC_CLIENT);
    assert.equal(reg.status, 201, reg.text);
    clientId = reg.json.client_id;
  }
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
  const state = b64url(crypto.randomBytes(12));
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    resource: srv.url,
  });
  if (scope !== undefined) q.set('scope', scope); // URLSearchParams writes ' ' as '+'
  const authorizeUrl = `${srv.base}/authorize?${q}`;
  const callback = await browse(srv, authorizeUrl, redirectUri);
  assert.equal(callback.searchParams.get('state'), state);
  assert.equal(callback.searchParams.get('iss'), srv.base);
  const code = callback.searchParams.get('code');
  assert.ok(code, `no code in ${callback}`);
  const tok = await postForm(`${srv.base}/token`, {
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUri,
    client_id: clientId,
    code_verifier: verifier,
    resource: srv.url,
  });
  assert.equal(tok.status, 200, tok.text);
  return { clientId, authorizeUrl, callback, code, verifier, redirectUri, token: tok.json, response: tok };
}

const refresh = (srv, clientId, refreshToken) =>
  postForm(`${srv.base}/token`, {
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
    client_id: clientId,
    resource: srv.url,
  });

// One stateless (2026-07-28) tools/call on /mcp with a bearer token: {status, www, msg}.
async function mcpCall(srv, token, name, args = {}) {
  const body = {
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name, arguments: args, _meta: modernMeta() },
  };
  const res = await fetch(srv.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': 'tools/call',
      'mcp-name': name,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  let msg;
  if (res.ok) msg = parseMcpBody(type, text).find((m) => m.id === 1);
  return { status: res.status, www: res.headers.get('www-authenticate'), msg, text };
}

// A 2025-11-25 session on /mcp with a bearer token: initialize, then call(name, args) posts a
// tools/call in that session and resolves {status, www, msg, text}.
async function legacySession(srv, token) {
  const post = async (msg, sid) => {
    const res = await fetch(srv.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${token}`,
        ...(sid ? { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' } : {}),
      },
      body: JSON.stringify(msg),
      signal: AbortSignal.timeout(10000),
    });
    const text = await res.text();
    const type = res.headers.get('content-type') ?? '';
    const msgs = res.ok && text.trim() !== '' ? parseMcpBody(type, text) : [];
    return { status: res.status, www: res.headers.get('www-authenticate'), sid: res.headers.get('mcp-session-id'),
      msg: msgs.find((m) => m.id === msg.id), text };
  };
  const init = await post({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
    protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
  assert.equal(init.status, 200, init.text);
  assert.ok(init.sid, 'no session id');
  const note = await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, init.sid);
  assert.equal(note.status, 202, note.text);
  let id = 2;
  return { call: (name, args = {}) =>
    post({ jsonrpc: '2.0', id: id++, method: 'tools/call', params: { name, arguments: args } }, init.sid) };
}

// Polls a tools/call every 500 ms until it answers `status` (bounded): the last answer.
async function pollStatus(srv, token, status, ms = 8000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await mcpCall(srv, token, 'echo', { text: 'poll' });
    if (r.status === status || Date.now() > deadline) return { ...r, waited: ms - (deadline - Date.now()) };
    await sleep(500);
  }
}

function decodeJwt(jwt) {
  const parts = jwt.split('.');
  assert.equal(parts.length, 3, 'the access token is not a JWS compact serialization');
  const [h, p] = parts.slice(0, 2).map((s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8')));
  return { header: h, payload: p, parts };
}

// Scopes as a set from the whoami tool's space-delimited string.
const scopeList = (s) => (s ?? '').split(' ').filter(Boolean);

// ---------------------------------------------------------------------------------------------

describe('the SDK OAuth client: PRM, DCR, PKCE, code exchange', () => {
  let srv;
  let conn;
  let provider;
  let files;

  before(async () => {
    srv = await startServer();
  });

  after(async () => {
    await conn?.client.close().catch(() => {});
    await stopServer(srv);
  });

  test('without a token /mcp answers 401 with resource_metadata and scope', async () => {
    const r = await mcpCall(srv, undefined, 'echo', { text: 'x' });
    assert.equal(r.status, 401);
    assert.match(r.www, /^Bearer /);
    assert.match(r.www, new RegExp(`resource_metadata="${srv.base}/\\.well-known/oauth-protected-resource/mcp"`));
    assert.match(r.www, /scope="mcp"/);
    assert.doesNotMatch(r.www, /error=/, 'no token was presented: no error code');
  });

  test('the protected resource metadata is the same at every well-known variant', async () => {
    const docs = [];
    for (const p of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource',
      '/mcp/.well-known/oauth-protected-resource']) {
      const res = await fetch(`${srv.base}${p}`);
      assert.equal(res.status, 200, p);
      docs.push(await res.json());
    }
    assert.equal(docs[0].resource, srv.url);
    assert.deepEqual(docs[0].authorization_servers, [srv.base]);
    assert.deepEqual(docs[0].scopes_supported, ['mcp']);
    assert.deepEqual(docs[0].bearer_methods_supported, ['header']);
    assert.deepEqual(docs[1], docs[0]);
    assert.deepEqual(docs[2], docs[0]);
  });

  test('the SDK signs in headlessly and initializes', async () => {
    provider = new HeadlessProvider(srv);
    files = captureFiles('oauth-sdk');
    conn = await sdkConnect(srv, provider, files);
    assert.equal(conn.client.getServerVersion().name, 'mcpgate');

    // Discovery went through the protected resource metadata, then the AS metadata.
    const urls = conn.fetchFn.log.map((e) => `${e.method} ${e.url}`);
    const prm = urls.findIndex((u) => u === `GET ${srv.base}/.well-known/oauth-protected-resource/mcp`);
    const asm = urls.findIndex((u) => u === `GET ${srv.base}/.well-known/oauth-authorization-server`);
    assert.ok(prm >= 0, `PRM not fetched:\n${urls.join('\n')}`);
    assert.ok(asm > prm, `AS metadata not fetched after the PRM:\n${urls.join('\n')}`);
    assert.ok(urls.includes(`POST ${srv.base}/register`), `no DCR:\n${urls.join('\n')}`);
    assert.ok(urls.includes(`POST ${srv.base}/token`), `no code exchange:\n${urls.join('\n')}`);

    // DCR as a public client: a client_id and no secret.
    assert.equal(typeof provider.saved.client?.client_id, 'string');
    assert.ok(provider.saved.client.client_id.length > 0);
    assert.equal(provider.saved.client.client_secret, undefined, 'a secret for a "none" client');

    // The authorization request: PKCE S256, state, resource, scope from the challenge.
    assert.equal(provider.authorizationUrls.length, 1);
    const az = new URL(provider.authorizationUrls[0]);
    assert.equal(`${az.origin}${az.pathname}`, `${srv.base}/authorize`);
    assert.equal(az.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(az.searchParams.get('resource'), srv.url);
    assert.equal(az.searchParams.get('scope'), 'mcp');
    assert.equal(az.searchParams.get('client_id'), provider.saved.client.client_id);

    // The callback (RFC 9207): code, our state, the issuer.
    assert.equal(provider.callback.searchParams.get('state'), provider.states.at(-1));
    assert.equal(provider.callback.searchParams.get('iss'), srv.base);

    // The user saw a login page and a consent page, both unframeable, and each POST got a 303.
    const html = provider.pages.filter((p) => p.status === 200);
    assert.equal(html.length, 2, provider.pages.map((p) => `${p.method} ${p.status} ${p.url}`).join('\n'));
    for (const p of html) {
      assert.equal(p.headers.get('x-frame-options'), 'DENY', p.url);
      assert.match(p.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/, p.url);
      assert.match(p.headers.get('content-type') ?? '', /^text\/html/, p.url);
    }
    for (const p of provider.pages.filter((x) => x.method === 'POST')) assert.equal(p.status, 303, p.url);

    const t = provider.saved.tokens;
    assert.equal(t.token_type.toLowerCase(), 'bearer');
    assert.equal(t.scope, 'mcp');
    assert.equal(typeof t.refresh_token, 'string');
  });

  test('tools/list has the six demo tools', async () => {
    const { tools } = await conn.client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), DEMO_TOOLS);
  });

  test("whoami sees the signed-in user, the client and the granted scope", async () => {
    const r = await conn.client.callTool({ name: 'whoami', arguments: {} });
    assert.notEqual(r.isError, true, JSON.stringify(r));
    const s = r.structuredContent;
    assert.equal(s.authenticated, true, JSON.stringify(s));
    assert.equal(s.username, srv.username);
    assert.equal(srv.username, 'admin');
    assert.ok(scopeList(s.scopes).includes('mcp'), `scopes ${JSON.stringify(s.scopes)}`);
    assert.equal(s.clientId, provider.saved.client.client_id);
    assert.equal(typeof s.subject, 'string');
  });

  test('tools/call echo', async () => {
    const r = await conn.client.callTool({ name: 'echo', arguments: { text: 'signed in' } });
    assert.deepEqual(r.content, [{ type: 'text', text: 'signed in' }]);
  });

  test('the captured MCP traffic matches the official schema', async () => {
    const { fetchFn } = conn;
    await conn.client.close();
    conn = undefined;
    await fetchFn.settle();
    const out = readCapture(files.outFile);
    assert.ok(out.some((m) => m.result?.serverInfo), 'the initialize result was not captured');
    const { passed } = checkSchemas(files.inFile, files.outFile);
    assert.ok(passed >= 4, `only ${passed} messages checked`);
  });
});

describe('raw OAuth exchanges', () => {
  let srv;
  let jwks;

  before(async () => {
    srv = await startServer();
    const res = await fetch(`${srv.base}/jwks`);
    assert.equal(res.status, 200);
    jwks = await res.json();
  });

  after(async () => {
    await stopServer(srv);
  });

  test('the token response and the JWT access token', async () => {
    const { clientId, token, response } = await codeFlow(srv);
    assert.match(response.headers.get('cache-control') ?? '', /no-store/);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(token.token_type, 'Bearer');
    assert.equal(token.scope, 'mcp');
    assert.equal(typeof token.expires_in, 'number');
    assert.ok(token.expires_in > 0 && token.expires_in <= 3600, `expires_in ${token.expires_in}`);
    assert.equal(typeof token.refresh_token, 'string');
    assert.ok(token.refresh_token.length >= 22, 'a refresh token shorter than 128 bits');

    const { header, payload, parts } = decodeJwt(token.access_token);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(header.alg, 'ES256');
    const jwk = jwks.keys.find((k) => k.kid === header.kid);
    assert.ok(jwk, `kid ${header.kid} is not in /jwks: ${JSON.stringify(jwks)}`);
    // The signature verifies with that key (JWS ES256: r || s, 64 bytes).
    const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
    const ok = crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), { key, dsaEncoding: 'ieee-p1363' },
      Buffer.from(parts[2], 'base64url'));
    assert.ok(ok, 'the access token signature does not verify with the /jwks key');

    assert.equal(payload.iss, srv.base);
    assert.ok(payload.aud === srv.url || (Array.isArray(payload.aud) && payload.aud.includes(srv.url)),
      `aud ${JSON.stringify(payload.aud)}`);
    assert.equal(typeof payload.sub, 'string');
    assert.equal(payload.client_id, clientId);
    assert.equal(payload.scope, 'mcp');
    for (const c of ['exp', 'iat']) assert.equal(typeof payload[c], 'number', c);
    assert.ok(Math.abs(payload.exp - payload.iat - token.expires_in) <= 1, `exp-iat vs expires_in`);
    assert.ok(Math.abs(payload.iat - Date.now() / 1000) < 60, `iat ${payload.iat}`);
    assert.equal(typeof payload.jti, 'string');
    assert.ok(payload.jti.length > 0);

    const r = await mcpCall(srv, token.access_token, 'echo', { text: 'jwt' });
    assert.equal(r.status, 200, r.text);
  });

  test('deny: the client gets access_denied with state and iss', async () => {
    const reg = await register(srv, PUBLIC_CLIENT);
    assert.equal(reg.status, 201, reg.text);
    const challenge = b64url(crypto.createHash('sha256').update('x'.repeat(43)).digest());
    const q = new URLSearchParams({ response_type: 'code', client_id: reg.json.client_id,
      redirect_uri: LOOPBACK_CALLBACK, code_challenge: challenge, code_challenge_method: 'S256',
      state: 'deny-state', scope: 'mcp', resource: srv.url });
    const cb = await browse(srv, `${srv.base}/authorize?${q}`, LOOPBACK_CALLBACK, { decision: 'deny' });
    assert.equal(cb.searchParams.get('error'), 'access_denied', String(cb));
    assert.equal(cb.searchParams.get('state'), 'deny-state');
    assert.equal(cb.searchParams.get('iss'), srv.base);
    assert.equal(cb.searchParams.get('code'), null);
  });

  test('a replayed code is refused and revokes the tokens it issued', async () => {
    const flow = await codeFlow(srv);
    const replay = await postForm(`${srv.base}/token`, {
      grant_type: 'authorization_code', code: flow.code, redirect_uri: flow.redirectUri,
      client_id: flow.clientId, code_verifier: flow.verifier, resource: srv.url,
    });
    assert.equal(replay.status, 400, replay.text);
    assert.equal(replay.json?.error, 'invalid_grant');
    const r = await pollStatus(srv, flow.token.access_token, 401);
    assert.equal(r.status, 401, `the first access token still works ${r.waited} ms after the replay`);
    assert.ok(r.waited <= 6500, `took ${r.waited} ms (bound 5 s)`);
    const rf = await refresh(srv, flow.clientId, flow.token.refresh_token);
    assert.equal(rf.json?.error, 'invalid_grant', rf.text);
  });

  test('refresh rotates; reusing the old refresh token fails and revokes the grant', async () => {
    const { clientId, token } = await codeFlow(srv);
    const r1 = await refresh(srv, clientId, token.refresh_token);
    assert.equal(r1.status, 200, r1.text);
    assert.match(r1.headers.get('cache-control') ?? '', /no-store/);
    assert.equal(r1.json.scope, 'mcp');
    assert.equal(typeof r1.json.refresh_token, 'string', 'no new refresh token (public clients rotate)');
    assert.notEqual(r1.json.refresh_token, token.refresh_token);
    assert.notEqual(r1.json.access_token, token.access_token);
    assert.equal((await mcpCall(srv, r1.json.access_token, 'echo', { text: 'new' })).status, 200);

    // The rotated one again: invalid_grant, and the whole grant goes.
    const reuse = await refresh(srv, clientId, token.refresh_token);
    assert.equal(reuse.status, 400, reuse.text);
    assert.equal(reuse.json?.error, 'invalid_grant');
    const newest = await refresh(srv, clientId, r1.json.refresh_token);
    assert.equal(newest.status, 400, `the newest refresh token survived a reuse: ${newest.text}`);
    assert.equal(newest.json?.error, 'invalid_grant');
    const r = await pollStatus(srv, r1.json.access_token, 401);
    assert.equal(r.status, 401, `the newest access token still works ${r.waited} ms after the reuse`);
    assert.match(r.www, /error="invalid_token"/);
    assert.ok(r.waited <= 6500, `took ${r.waited} ms (bound 5 s)`);
  });

  test('revoking the refresh token ends the grant within the revocation bound', async () => {
    const { clientId, token } = await codeFlow(srv);
    assert.equal((await mcpCall(srv, token.access_token, 'echo', { text: 'before' })).status, 200);
    const rv = await postForm(`${srv.base}/revoke`, {
      token: token.refresh_token,
      token_type_hint: 'refresh_token',
      client_id: clientId,
    });
    assert.equal(rv.status, 200, rv.text);
    const t0 = Date.now();
    const r = await pollStatus(srv, token.access_token, 401);
    assert.equal(r.status, 401, `the access token still works ${Date.now() - t0} ms after /revoke`);
    assert.match(r.www, /error="invalid_token"/);
    assert.ok(r.waited <= 6500, `took ${r.waited} ms (bound 5 s)`);
    const again = await refresh(srv, clientId, token.refresh_token);
    assert.equal(again.status, 400, again.text);
    assert.equal(again.json?.error, 'invalid_grant');
  });

  test("Claude's shape: DCR with scope claudeai, then scope 'claudeai ' is trimmed", async () => {
    const reg = await register(srv, {
      client_name: 'Claude',
      redirect_uris: [CLAUDE_CALLBACK],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      scope: 'claudeai',
    });
    assert.equal(reg.status, 201, reg.text);
    assert.equal(typeof reg.json.client_id, 'string');
    assert.equal(reg.json.client_secret, undefined, 'a secret for a "none" client breaks Claude');
    assert.equal(reg.json.token_endpoint_auth_method, 'none');
    assert.deepEqual(reg.json.redirect_uris, [CLAUDE_CALLBACK]);

    const flow = await codeFlow(srv, { clientId: reg.json.client_id, redirectUri: CLAUDE_CALLBACK, scope: 'claudeai ' });
    assert.match(flow.authorizeUrl, /[?&]scope=claudeai\+(&|$)/);
    assert.equal(flow.token.scope, 'claudeai');
    assert.equal(flow.token.token_type, 'Bearer');
    const r = await mcpCall(srv, flow.token.access_token, 'whoami');
    assert.equal(r.status, 200, r.text);
    const s = r.msg?.result?.structuredContent;
    assert.equal(s?.authenticated, true, r.text);
    assert.equal(s.username, 'admin');
    // Its refresh keeps the trimmed scope.
    const r1 = await refresh(srv, reg.json.client_id, flow.token.refresh_token);
    assert.equal(r1.status, 200, r1.text);
    assert.equal(r1.json.scope, 'claudeai');
  });
});

describe('the SDK refreshes an expired access token (--access-ttl 2)', () => {
  let srv;
  let conn;

  before(async () => {
    srv = await startServer(['--access-ttl', '2']);
  });

  after(async () => {
    await conn?.client.close().catch(() => {});
    await stopServer(srv);
  });

  test('a call 3 s later succeeds with a refreshed, rotated token', async () => {
    const provider = new HeadlessProvider(srv);
    const files = captureFiles('oauth-sdk-refresh');
    conn = await sdkConnect(srv, provider, files);
    const first = provider.saved.tokens;
    assert.ok(first.expires_in <= 2, `expires_in ${first.expires_in}`);
    assert.equal((await conn.client.callTool({ name: 'echo', arguments: { text: 'a' } })).content[0].text, 'a');
    await sleep(3000);
    const r = await withTimeout(conn.client.callTool({ name: 'whoami', arguments: {} }), 15000, 'whoami after expiry');
    assert.equal(r.structuredContent.authenticated, true, JSON.stringify(r));
    assert.equal(r.structuredContent.username, 'admin');
    assert.equal(provider.authorizationUrls.length, 1, 'the SDK sent the user to sign in again');
    const now = provider.saved.tokens;
    assert.notEqual(now.access_token, first.access_token, 'no new access token');
    assert.equal(typeof now.refresh_token, 'string');
    assert.notEqual(now.refresh_token, first.refresh_token, 'the refresh token was not rotated');
    const log = conn.fetchFn.log.filter((e) => e.url === `${srv.base}/token`);
    assert.ok(log.every((e) => e.status === 200), JSON.stringify(log));
    const { fetchFn } = conn;
    await conn.client.close();
    conn = undefined;
    await fetchFn.settle();
    checkSchemas(files.inFile, files.outFile);
  });
});

describe('step-up: a tool that needs another scope (--tool-scope time=admin)', () => {
  let srv;

  before(async () => {
    srv = await startServer(['--tool-scope', 'time=admin', '--scopes', 'mcp admin']);
  });

  after(async () => {
    await stopServer(srv);
  });

  test("an 'mcp' token gets 403 insufficient_scope for time and still calls echo", async () => {
    const { token } = await codeFlow(srv, { scope: 'mcp' });
    assert.equal(token.scope, 'mcp');
    const t = await mcpCall(srv, token.access_token, 'time');
    assert.equal(t.status, 403, t.text);
    assert.match(t.www ?? '', /^Bearer /);
    assert.match(t.www, /error="insufficient_scope"/);
    assert.match(t.www, /scope="([^"]* )?admin( [^"]*)?"/);
    const e = await mcpCall(srv, token.access_token, 'echo', { text: 'still fine' });
    assert.equal(e.status, 200, e.text);
    assert.deepEqual(e.msg?.result?.content, [{ type: 'text', text: 'still fine' }]);

    // The same in a 2025-11-25 session (what the SDK's step-up reacts to: an HTTP 403).
    const session = await legacySession(srv, token.access_token);
    const lt = await session.call('time');
    assert.equal(lt.status, 403, lt.text);
    assert.match(lt.www ?? '', /error="insufficient_scope"/);
    assert.match(lt.www, /scope="([^"]* )?admin( [^"]*)?"/);
    const le = await session.call('echo', { text: 'session' });
    assert.equal(le.status, 200, le.text);
    assert.equal(le.msg?.result?.content?.[0]?.text, 'session');
  });

  test("an 'mcp admin' token calls time", async () => {
    const { token } = await codeFlow(srv, { scope: 'mcp admin' });
    assert.deepEqual(scopeList(token.scope).sort(), ['admin', 'mcp']);
    const t = await mcpCall(srv, token.access_token, 'time');
    assert.equal(t.status, 200, t.text);
    assert.equal(typeof t.msg?.result?.structuredContent?.unix, 'number', t.text);
  });
});

describe('stdio has no sign-in', () => {
  test('whoami over `serve --stdio` reports anonymous', async () => {
    const c = await connectSdk({ label: 'oauth-stdio' });
    try {
      const r = await c.client.callTool({ name: 'whoami', arguments: {} });
      assert.equal(r.structuredContent.authenticated, false, JSON.stringify(r));
      assert.equal(r.structuredContent.username, undefined);
      assert.match(r.content[0].text, /anonymous/);
    } finally {
      await c.client.close();
    }
    checkSchemas(c.inFile, c.outFile);
  });
});
