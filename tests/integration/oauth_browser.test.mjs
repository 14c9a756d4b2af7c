// The OAuth pages in a real browser: Debian's headless Chromium driven by playwright-core (the
// browser is /usr/bin/chromium, installed by scripts/deps.sh; Playwright never downloads one).
// One server, one browser profile, steps in order: sign in and consent, remembered consent, deny,
// CSRF on the consent form, framing, and revoking on the connected-apps page.
//
// Screenshots of the login and consent pages go to the test's temp directory and are copied to
// /tmp/mcpgate-browser-{login,consent}.png.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { BIN, MODERN, PEERS, modernMeta, sleep, withTimeout } from './helpers.mjs';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const WAIT = 10000; // the bound of every browser wait (ms)
const APP = 'Browser Test App';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-browser-'));
let server; // { proc, base, password, stderr }
let cb; // the client's side: { server, origin, hits: [{path, query}], waiters }
let context; // the persistent browser context (a fresh profile in tmp)
let page;
let appA; // { client_id, redirect_uri }
let appB;
let tokensA; // the token response of step 1
const pageHeaders = []; // { url, status, headers } of every response of the server
const consoleLog = []; // what Chromium said on the page's console (CSP violations among it)

// ---- the server ----

function startServer() {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      BIN,
      ['serve', '--listen', '127.0.0.1:0', '--db', `sqlite:${path.join(tmp, 'm.db')}`, '--tools', 'demo'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    let password;
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`the server did not start within 15 s:\n${stderr}`));
    }, 15000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}) while starting:\n${stderr}`));
    });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (server) server.stderr = stderr;
      const pw = /created the first user: admin, password (\S+)/.exec(stderr);
      if (pw) password = pw[1];
      const m = /serving MCP at (http:\/\/127\.0\.0\.1:\d+)\/mcp/.exec(stderr);
      if (m && password && !server) {
        clearTimeout(timer);
        server = { proc, base: m[1], password, stderr };
        resolve(server);
      }
    });
  });
}

// ---- the client's side: the redirect target and a framing page ----

function startClientSide() {
  return new Promise((resolve) => {
    const state = { hits: [], waiters: [] };
    state.server = http.createServer((req, res) => {
      const u = new URL(req.url, 'http://127.0.0.1');
      if (u.pathname === '/callback') {
        const hit = { path: u.pathname, query: Object.fromEntries(u.searchParams) };
        state.hits.push(hit);
        for (const w of state.waiters.splice(0)) w(hit);
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        res.end('<!DOCTYPE html><title>Callback</title><h1>Callback received</h1>');
      } else if (u.pathname === '/frame') {
        // Tries to show the server's sign-in page inside this site's page (clickjacking), next
        // to a frame of this site's own that must render (so frames work at all here).
        const target = u.searchParams.get('target');
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        res.end(
          '<!DOCTYPE html><title>Framing</title>' +
            `<iframe id="victim" name="victim" src="${target.replace(/"/g, '&quot;')}" width="500" height="600"></iframe>` +
            '<iframe id="control" name="control" src="/plain" width="200" height="100"></iframe>',
        );
      } else if (u.pathname === '/plain') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        res.end('<!DOCTYPE html><title>Plain</title><p id="plain">framed fine</p>');
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    state.server.listen(0, '127.0.0.1', () => {
      state.origin = `http://127.0.0.1:${state.server.address().port}`;
      resolve(state);
    });
  });
}

// The next callback hit (or one that arrived since `since` hits).
function nextCallback(since, ms = WAIT) {
  if (cb.hits.length > since) return Promise.resolve(cb.hits[since]);
  return withTimeout(new Promise((resolve) => cb.waiters.push(resolve)), ms, 'no callback arrived').catch(
    (e) => {
      e.message += ` (page at ${page.url()}; last console messages: ${consoleLog.slice(-4).join(' | ') || 'none'})`;
      throw e;
    },
  );
}

// Clicks a submit button and returns the response to the form's POST.
async function submit(selector, pathname) {
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === pathname),
    page.click(selector),
  ]);
  await page.waitForLoadState();
  return resp;
}

async function explain(resp) {
  const body = await resp.text().catch(() => '');
  return `${resp.request().method()} ${new URL(resp.url()).pathname} -> ${resp.status()}: ${body.slice(0, 200)}`;
}

// ---- OAuth helpers ----

async function register(name) {
  const redirect_uri = `${cb.origin}/callback`;
  const r = await fetch(`${server.base}/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      redirect_uris: [redirect_uri],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      client_name: name,
      logo_uri: 'https://example.com/logo.png',
    }),
    signal: AbortSignal.timeout(WAIT),
  });
  const body = await r.json();
  assert.equal(r.status, 201, JSON.stringify(body));
  assert.ok(body.client_id);
  return { client_id: body.client_id, redirect_uri };
}

function pkce() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

function authorizeUrl(app, challenge, state) {
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: app.client_id,
    redirect_uri: app.redirect_uri,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    scope: 'mcp',
    resource: `${server.base}/mcp`,
  });
  return `${server.base}/authorize?${q}`;
}

async function tokenRequest(fields) {
  const r = await fetch(`${server.base}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
    signal: AbortSignal.timeout(WAIT),
  });
  return { status: r.status, body: await r.json() };
}

async function exchange(app, code, verifier) {
  return tokenRequest({
    grant_type: 'authorization_code',
    code,
    redirect_uri: app.redirect_uri,
    client_id: app.client_id,
    code_verifier: verifier,
    resource: `${server.base}/mcp`,
  });
}

async function echo(accessToken, text) {
  const r = await fetch(`${server.base}/mcp`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'MCP-Protocol-Version': MODERN,
      'Mcp-Method': 'tools/call',
      'Mcp-Name': 'echo',
      Authorization: `Bearer ${accessToken}`,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: { text }, _meta: modernMeta({}) },
    }),
    signal: AbortSignal.timeout(WAIT),
  });
  const raw = await r.text();
  let body;
  if ((r.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    const data = raw.split('\n').filter((l) => l.startsWith('data:'));
    body = data.length ? JSON.parse(data[data.length - 1].slice(5)) : undefined;
  } else if (raw !== '') {
    body = JSON.parse(raw);
  }
  return { status: r.status, body, raw, wwwAuth: r.headers.get('www-authenticate') };
}

async function cookieHeader() {
  const cookies = await context.cookies(server.base);
  return cookies.map((c) => `${c.name}=${c.value}`).join('; ');
}

async function screenshot(name) {
  const file = path.join(tmp, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: WAIT });
  fs.copyFileSync(file, `/tmp/mcpgate-browser-${name}.png`);
}

const text = async () => page.locator('body').innerText({ timeout: WAIT });

// ---- setup ----

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/deps.sh`);
  const pwPath = path.join(PEERS, 'node_modules/playwright-core/index.mjs');
  assert.ok(fs.existsSync(pwPath), `${pwPath} is missing: run scripts/deps.sh`);
  const { chromium } = await import(pwPath);
  await startServer();
  cb = await startClientSide();
  const profile = fs.mkdtempSync(path.join(tmp, 'profile-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    timeout: 30000,
    viewport: { width: 800, height: 900 },
  });
  context.setDefaultTimeout(WAIT);
  context.setDefaultNavigationTimeout(WAIT);
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => consoleLog.push(m.text()));
  page.on('response', async (resp) => {
    if (!resp.url().startsWith(server.base)) return;
    const entry = { url: resp.url(), status: resp.status(), headers: {} };
    pageHeaders.push(entry);
    try {
      entry.headers = await resp.allHeaders();
    } catch {
      entry.headers = resp.headers();
    }
  });
  appA = await register(APP);
});

after(async () => {
  await context?.close().catch(() => {});
  if (server) {
    server.proc.kill('SIGTERM');
    const exited = new Promise((resolve) => server.proc.once('exit', resolve));
    await withTimeout(exited, 5000, 'server did not exit').catch(() => server.proc.kill('SIGKILL'));
  }
  if (cb) {
    const closed = new Promise((resolve) => cb.server.close(resolve));
    cb.server.closeAllConnections();
    await closed;
  }
});

// ---- the steps ----

test('sign in, consent, code, token and a tool call', async () => {
  const { verifier, challenge } = pkce();
  await page.goto(authorizeUrl(appA, challenge, 's1'));

  // The login page, naming the application.
  assert.match(new URL(page.url()).pathname, /^\/login$/);
  assert.match(await page.title(), /^Sign in/);
  assert.match(await page.locator('h1').innerText(), new RegExp(`Sign in to continue to ${APP}`));
  await screenshot('login');

  // A wrong password: an error on the same page, no redirect.
  const hits = cb.hits.length;
  await page.fill('#username', 'admin');
  await page.fill('#password', 'not-the-password');
  const wrong = await submit('button:has-text("Sign in")', '/login');
  assert.equal(wrong.status(), 401, await explain(wrong));
  assert.match(new URL(page.url()).pathname, /^\/login$/);
  assert.match(await page.locator('[role=alert]').innerText(), /Wrong username or password/);
  assert.equal(await page.locator('#password').count(), 1);
  assert.equal(cb.hits.length, hits, 'a wrong password must not reach the client');

  // The right password: the consent page.
  await page.fill('#username', 'admin');
  await page.fill('#password', server.password);
  const right = await submit('button:has-text("Sign in")', '/login');
  assert.equal(right.status(), 303, await explain(right));
  await page.waitForURL((u) => u.pathname === '/authorize');
  assert.match(await page.title(), /^Authorize access/);
  const consent = await text();
  assert.match(consent, new RegExp(`${APP}`));
  assert.match(consent, /wants to access/);
  assert.match(consent, /you will be sent to\s+127\.0\.0\.1:\d+/);
  assert.match(consent, /App on this computer/, 'loopback warning');
  assert.match(consent, /Unverified app/, 'self-registered warning');
  assert.match(consent, /registered itself/);
  assert.match(consent, /Use the tools, resources and prompts of this MCP server as you/);
  assert.match(await page.locator('.sub').innerText(), /Signed in as admin/);
  assert.equal(await page.locator('.badge').innerText(), 'Unverified');
  await screenshot('consent');

  // Approve: the browser ends on the callback with code, state and iss.
  await page.click('button[value=approve]');
  const hit = await nextCallback(hits);
  await page.waitForURL((u) => u.href.startsWith(appA.redirect_uri));
  assert.equal(hit.query.state, 's1');
  assert.equal(hit.query.iss, server.base);
  assert.ok(hit.query.code, JSON.stringify(hit.query));
  assert.equal(hit.query.error, undefined);
  assert.match(await page.locator('h1').innerText(), /Callback received/);

  const tok = await exchange(appA, hit.query.code, verifier);
  assert.equal(tok.status, 200, JSON.stringify(tok.body));
  assert.ok(tok.body.access_token);
  assert.ok(tok.body.refresh_token, 'a refresh token for a client registered for the grant');
  tokensA = tok.body;

  const r = await echo(tokensA.access_token, 'hello from the browser test');
  assert.equal(r.status, 200, r.raw);
  assert.equal(r.body?.result?.content?.[0]?.text, 'hello from the browser test', r.raw);
});

test('remembered consent skips the consent page', async () => {
  assert.ok(tokensA, 'step 1 did not finish');
  const { verifier, challenge } = pkce();
  const hits = cb.hits.length;
  const seen = pageHeaders.length;
  await page.goto(authorizeUrl(appA, challenge, 's2'));
  const hit = await nextCallback(hits);
  await page.waitForURL((u) => u.href.startsWith(appA.redirect_uri));
  assert.equal(hit.query.state, 's2');
  assert.equal(hit.query.iss, server.base);
  assert.ok(hit.query.code);
  const pages = pageHeaders.slice(seen).filter((h) => h.status === 200);
  assert.deepEqual(pages, [], 'no page of the server was shown');
  const tok = await exchange(appA, hit.query.code, verifier);
  assert.equal(tok.status, 200, JSON.stringify(tok.body));

  // Signed out (the browser session ended), consent still remembered: signing in goes straight
  // to the client (the sign-in form's POST redirects through /authorize to the callback).
  await context.clearCookies();
  const again = pkce();
  const before2 = cb.hits.length;
  await page.goto(authorizeUrl(appA, again.challenge, 's2b'));
  assert.match(new URL(page.url()).pathname, /^\/login$/);
  await page.fill('#username', 'admin');
  await page.fill('#password', server.password);
  await page.click('button:has-text("Sign in")');
  const hit2 = await nextCallback(before2);
  await page.waitForURL((u) => u.href.startsWith(appA.redirect_uri));
  assert.equal(hit2.query.state, 's2b');
  assert.ok(hit2.query.code);
  const tok2 = await exchange(appA, hit2.query.code, again.verifier);
  assert.equal(tok2.status, 200, JSON.stringify(tok2.body));
});

test('deny sends access_denied back to the client', async () => {
  appB = await register('Other Browser App');
  const { challenge } = pkce();
  const hits = cb.hits.length;
  await page.goto(authorizeUrl(appB, challenge, 's3'));
  assert.match(await page.title(), /^Authorize access/);
  assert.match(await text(), /Other Browser App/);
  await page.click('button[value=deny]');
  const hit = await nextCallback(hits);
  await page.waitForURL((u) => u.href.startsWith(appB.redirect_uri));
  assert.equal(hit.query.error, 'access_denied');
  assert.equal(hit.query.state, 's3');
  assert.equal(hit.query.iss, server.base);
  assert.equal(hit.query.code, undefined);
});

test('a consent form with a wrong CSRF token is refused', async () => {
  assert.ok(appB, 'step 3 did not finish');
  const { challenge } = pkce();
  const hits = cb.hits.length;

  // In the browser: the consent page with its hidden csrf field changed.
  await page.goto(authorizeUrl(appB, challenge, 's6'));
  assert.match(await page.title(), /^Authorize access/); // deny remembered nothing
  const request = await page.locator('input[name=request]').getAttribute('value');
  const csrf = await page.locator('input[name=csrf]').getAttribute('value');
  await page.evaluate(() => {
    document.querySelector('input[name=csrf]').value = 'forged-csrf-token-0123456789';
  });
  const resp = await submit('button[value=approve]', '/authorize/consent');
  assert.equal(resp.status(), 403, await explain(resp));
  assert.match(await page.title(), /^Request refused/, await explain(resp));
  assert.equal(new URL(page.url()).origin, server.base);

  // From outside the browser, with its cookies: wrong, missing, and (control) right token.
  const cookie = await cookieHeader();
  assert.match(cookie, /mcpgate_session=/);
  const post = (form) =>
    fetch(`${server.base}/authorize/consent`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: cookie },
      body: new URLSearchParams(form).toString(),
      signal: AbortSignal.timeout(WAIT),
    });
  for (const form of [
    { csrf: `${csrf.slice(0, -1)}${csrf.endsWith('A') ? 'B' : 'A'}`, request, decision: 'approve' },
    { request, decision: 'approve' },
  ]) {
    const r = await post(form);
    assert.equal(r.status, 403, JSON.stringify(form));
    assert.equal(r.headers.get('location'), null);
    assert.match(await r.text(), /Request refused/);
  }
  await sleep(200);
  assert.equal(cb.hits.length, hits, 'a refused consent must not reach the client');
  const ok = await post({ csrf, request, decision: 'deny' });
  assert.equal(ok.status, 303, 'the same request with the right token is accepted');
  assert.match(ok.headers.get('location') ?? '', /error=access_denied/);
});

test('the login and consent pages refuse to be framed', async () => {
  // The headers, on every page the browser was shown.
  const html = pageHeaders.filter(
    (h) => (h.headers['content-type'] ?? '').startsWith('text/html') && h.status !== 404,
  );
  const login = html.filter((h) => new URL(h.url).pathname === '/login');
  const consent = html.filter((h) => new URL(h.url).pathname === '/authorize' && h.status === 200);
  assert.ok(login.length >= 2, 'login pages seen');
  assert.ok(consent.length >= 1, 'consent pages seen');
  for (const h of [...login, ...consent]) {
    assert.equal(h.headers['x-frame-options'], 'DENY', h.url);
    assert.match(h.headers['content-security-policy'] ?? '', /frame-ancestors 'none'/, h.url);
  }

  // An actual attempt: another site frames the sign-in page (signed in, /login redirects to
  // /apps, which must not render in a frame either).
  const messages = [];
  const onConsole = (m) => messages.push(m.text());
  page.on('console', onConsole);
  const target = `${server.base}/login`;
  const framed = page.waitForResponse((r) => r.url().startsWith(server.base) && r.status() === 200);
  await page.goto(`${cb.origin}/frame?target=${encodeURIComponent(target)}`, { waitUntil: 'load' });
  const framedResp = await framed;
  assert.equal((await framedResp.allHeaders())['x-frame-options'], 'DENY', framedResp.url());
  const control = page.frame({ name: 'control' });
  assert.ok(control, 'the control frame exists');
  assert.equal(await control.locator('#plain').innerText(), 'framed fine');
  const victim = await page.locator('#victim').elementHandle();
  const frame = await victim.contentFrame();
  const framedForms = frame ? await frame.locator('input[type=password], main.card').count() : 0;
  assert.equal(framedForms, 0, `${framedResp.url()} rendered inside a foreign frame`);
  const blockedUrl = frame ? frame.url() : '';
  await sleep(100);
  page.off('console', onConsole);
  const reported = messages.some((m) => /frame-ancestors|X-Frame-Options/i.test(m));
  assert.ok(
    reported || blockedUrl.startsWith('chrome-error:'),
    `Chromium did not report the frame as blocked (frame url ${blockedUrl}; console: ${messages.join(' | ')})`,
  );
});

test('revoking on the connected-apps page ends the tokens', async (t) => {
  assert.ok(tokensA, 'step 1 did not finish');
  await page.goto(`${server.base}/apps`);
  assert.match(await page.title(), /^Connected apps/);
  assert.match(await page.locator('.sub').innerText(), /Signed in as admin/);
  const rows = page.locator('li.app', { hasText: APP });
  const n = await rows.count();
  assert.ok(n >= 1, `${APP} is listed`);
  assert.equal(await rows.first().locator('button:has-text("Revoke")').count(), 1);
  assert.equal(await page.locator('li.app', { hasText: 'Other Browser App' }).count(), 0, 'denied app not listed');

  // Each authorization is its own grant, listed as its own row (steps 1 and 2 made three):
  // revoke every row of the app.
  t.diagnostic(`${APP} is listed ${n} times`);
  for (let i = 0; i < n; i++) {
    const resp = await submit(`li.app:has-text("${APP}") >> nth=0 >> button:has-text("Revoke")`, '/apps/revoke');
    assert.equal(resp.status(), 303, await explain(resp));
    await page.waitForURL((u) => u.pathname === '/apps' && u.searchParams.has('notice'));
    assert.match(await page.locator('[role=status]').innerText(), /Access revoked/);
  }
  assert.equal(await rows.count(), 0, `${APP} is still listed after revoking`);

  // The access token stops working within the revocation bound (5 s).
  const start = Date.now();
  let last;
  for (;;) {
    last = await echo(tokensA.access_token, 'after revoke');
    if (last.status === 401) break;
    assert.equal(last.status, 200, last.raw);
    assert.ok(Date.now() - start < 6500, `the access token still works ${Date.now() - start} ms after revocation`);
    await sleep(250);
  }
  assert.match(last.wwwAuth ?? '', /Bearer/);

  const refreshed = await tokenRequest({
    grant_type: 'refresh_token',
    refresh_token: tokensA.refresh_token,
    client_id: appA.client_id,
  });
  assert.equal(refreshed.status, 400, JSON.stringify(refreshed.body));
  assert.equal(refreshed.body.error, 'invalid_grant');

  // The consent went with the grant: the next authorization asks again.
  const { challenge } = pkce();
  await page.goto(authorizeUrl(appA, challenge, 's5'));
  assert.match(await page.title(), /^Authorize access/);
});
