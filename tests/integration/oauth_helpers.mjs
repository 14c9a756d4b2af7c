// Flow helpers for the OAuth integration tests: start `mcpgate serve` with OAuth on, plain HTTP
// requests (node:http, so paths and bodies go out byte for byte), a tiny cookie jar, the
// browser steps (sign-in, consent), DCR, PKCE and the token endpoint.
//
// Every request leaves from its own loopback source address (127.77.x.y) unless the caller
// pins one: mcpgate's per-IP rate limits (login, /token, /register) would otherwise throttle a
// test file that makes many requests, and the rate-limit tests pin one address on purpose.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { BIN } from './helpers.mjs';

// ---- the server ----

// Starts `mcpgate serve` on 127.0.0.1:0 with OAuth on. Returns { base, password, stop() };
// password is null when the database already had its first user.
export async function startServer({ dir, args = [] } = {}) {
  dir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-oauth-'));
  const proc = spawn(
    BIN,
    ['serve', '--listen', '127.0.0.1:0', '--db', `sqlite:${path.join(dir, 'm.db')}`,
      '--tools', 'demo', '--log-level', 'warn', ...args],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig)));
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mcpgate did not start:\n${log}`)), 15000);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      log += chunk;
      const m = /serving MCP at (http:\/\/127\.0\.0\.1:\d+)\/mcp/.exec(log);
      if (m) {
        clearTimeout(timer);
        const pw = /created the first user: admin, password (\S+)/.exec(log);
        resolve({ base: m[1], password: pw ? pw[1] : null });
      }
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`mcpgate exited (${code}) before serving:\n${log}`));
    });
  });
  return {
    ...ready,
    dir,
    proc,
    log: () => log,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

// ---- HTTP ----

let ipSeq = 0;
// A fresh loopback source address.
export function nextIp() {
  ipSeq = (ipSeq + 1) % 60000;
  return `127.77.${(ipSeq >> 8) & 255}.${(ipSeq & 255) || 1}`;
}

// One request. path is sent as is (no normalization). Resolves with
// { status, headers, text, json, location } (json: the parsed body or undefined).
export function request(base, method, reqPath, { headers = {}, body, ip } = {}) {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path: reqPath,
        headers: { Connection: 'close', ...headers },
        localAddress: ip ?? nextIp(),
        agent: false,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, text, json,
            location: res.headers.location });
        });
      },
    );
    req.on('error', reject);
    req.setTimeout(15000, () => req.destroy(new Error(`${method} ${reqPath}: no answer`)));
    req.end(body);
  });
}

export const formBody = (obj) => new URLSearchParams(
  Object.entries(obj).filter(([, v]) => v !== undefined),
).toString();

export function postForm(base, reqPath, form, { headers = {}, ip } = {}) {
  const body = typeof form === 'string' ? form : formBody(form);
  return request(base, 'POST', reqPath, {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    body,
    ip,
  });
}

export function postJson(base, reqPath, obj, { headers = {}, ip } = {}) {
  const body = typeof obj === 'string' ? obj : JSON.stringify(obj);
  return request(base, 'POST', reqPath, {
    headers: { 'Content-Type': 'application/json', ...headers },
    body,
    ip,
  });
}

// The value of a hidden form field of a page (HTML-unescaped).
export function hidden(html, name) {
  const m = new RegExp(`<input type="hidden" name="${name}" value="([^"]*)">`).exec(html);
  assert.ok(m, `the page has no hidden field ${name}:\n${html.slice(0, 2000)}`);
  return unescapeHtml(m[1]);
}

export function unescapeHtml(s) {
  return s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

// The text of an error page (title and message), for asserting what it says.
export function pageText(html) {
  return unescapeHtml(html.replace(/<style[\s\S]*?<\/style>/g, '').replace(/<[^>]+>/g, ' '))
    .replace(/\s+/g, ' ');
}

// ---- the browser ----

export class Browser {
  constructor(base) {
    this.base = base;
    this.jar = new Map();
  }

  cookieHeader() {
    return [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  keep(res) {
    for (const c of res.headers['set-cookie'] ?? []) {
      const [pair, ...attrs] = c.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '') this.jar.delete(name);
      else this.jar.set(name, value);
    }
    return res;
  }

  async get(p, { headers = {}, ip, base = this.base } = {}) {
    const h = { ...headers };
    if (this.jar.size) h.Cookie = this.cookieHeader();
    return this.keep(await request(base, 'GET', p, { headers: h, ip }));
  }

  async post(p, form, { headers = {}, ip, base = this.base } = {}) {
    const h = { ...headers };
    if (this.jar.size) h.Cookie = this.cookieHeader();
    return this.keep(await postForm(base, p, form, { headers: h, ip }));
  }

  // Signs in through the login page; returns the POST /login response.
  async login(username, password, { cont = '/apps', ip } = {}) {
    const page = await this.get(`/login?continue=${encodeURIComponent(cont)}`, { ip });
    assert.equal(page.status, 200, page.text);
    return this.post('/login', {
      username,
      password,
      csrf: hidden(page.text, 'csrf'),
      continue: hidden(page.text, 'continue'),
    }, { ip });
  }
}

// ---- PKCE, DCR, authorization ----

export const b64url = (buf) => Buffer.from(buf).toString('base64url');
export const s256 = (verifier) => b64url(crypto.createHash('sha256').update(verifier).digest());

export function pkcePair(length = 64) {
  const verifier = crypto.randomBytes(96).toString('base64url').slice(0, length);
  return { verifier, challenge: s256(verifier) };
}

export async function register(base, meta) {
  const r = await postJson(base, '/register', meta);
  assert.equal(r.status, 201, `registration failed: ${r.text}`);
  return r.json;
}

export function authorizePath(params) {
  return `/authorize?${formBody(params)}`;
}

// The standard authorization request of a client (override or drop any parameter).
export function authzParams(client, extra = {}) {
  const pk = extra.pkce ?? pkcePair();
  const p = {
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: client.redirect_uris[0],
    code_challenge: pk.challenge,
    code_challenge_method: 'S256',
    state: `st-${crypto.randomBytes(6).toString('hex')}`,
    scope: 'mcp',
    ...extra,
  };
  delete p.pkce;
  return { params: p, verifier: pk.verifier };
}

// Runs the browser part of the code flow: /authorize, sign-in when needed, consent when
// asked. Returns { code, state, iss, location, verifier, params }.
export async function obtainCode(browser, client, { user, base = browser.base, ...extra } = {}) {
  const { params, verifier } = authzParams(client, extra);
  let r = await browser.get(authorizePath(params), { base });
  if ((r.status === 302 || r.status === 303) && r.location.startsWith('/login?')) {
    assert.ok(user, 'signed out and no user given');
    const page = await browser.get(r.location, { base });
    assert.equal(page.status, 200, page.text);
    const li = await browser.post('/login', {
      username: user.username,
      password: user.password,
      csrf: hidden(page.text, 'csrf'),
      continue: hidden(page.text, 'continue'),
    }, { base });
    assert.equal(li.status, 303, `login failed: ${li.status} ${pageText(li.text)}`);
    r = await browser.get(li.location, { base });
  }
  if (r.status === 200) {
    r = await browser.post('/authorize/consent', {
      csrf: hidden(r.text, 'csrf'),
      request: hidden(r.text, 'request'),
      decision: 'approve',
    }, { base });
  }
  assert.ok(r.status === 302 || r.status === 303, `no code redirect: ${r.status} ${r.text}`);
  const loc = new URL(r.location);
  const code = loc.searchParams.get('code');
  assert.ok(code, `no code in ${r.location}`);
  return {
    code,
    state: loc.searchParams.get('state'),
    iss: loc.searchParams.get('iss'),
    location: loc,
    verifier,
    params,
  };
}

// A token request; basic: [id, secret] for client_secret_basic.
export function token(base, form, { basic, headers = {}, ip } = {}) {
  const h = { ...headers };
  if (basic) {
    const enc = (s) => encodeURIComponent(s);
    h.Authorization = `Basic ${Buffer.from(`${enc(basic[0])}:${enc(basic[1])}`).toString('base64')}`;
  }
  return postForm(base, '/token', form, { headers: h, ip });
}

// Exchanges a code obtained with obtainCode.
export function redeem(base, client, got, extra = {}) {
  return token(base, {
    grant_type: 'authorization_code',
    code: got.code,
    redirect_uri: got.params.redirect_uri,
    code_verifier: got.verifier,
    client_id: client.client_id,
    ...extra,
  });
}

// ---- the resource ----

// A JSON-RPC ping to /mcp with the given Authorization header value (or none).
export function mcpCall(base, authorization, { reqPath = '/mcp' } = {}) {
  const headers = {
    Accept: 'application/json, text/event-stream',
    'MCP-Protocol-Version': '2025-06-18',
  };
  if (authorization !== undefined) headers.Authorization = authorization;
  return postJson(base, reqPath, {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: {
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: 'oauth-negative', version: '1.0.0' },
    },
  }, { headers });
}

// The parameters of a WWW-Authenticate Bearer challenge.
export function bearerParams(header) {
  assert.ok(header, 'no WWW-Authenticate header');
  assert.match(header, /^Bearer /);
  const out = {};
  for (const m of header.slice(7).matchAll(/([a-z_]+)="([^"]*)"/g)) out[m[1]] = m[2];
  return out;
}

// Polls until fn() resolves truthy (or ms pass); returns the last value.
export async function eventually(fn, ms = 6000, step = 250) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, step));
  }
}
