// The device authorization grant end to end: `mcpgate login URL --device-code` (the real
// client) against `mcpgate serve`, the person's side played by Debian's headless Chromium
// driven by playwright-core. The client prints where to go and the code on stderr; the browser
// opens that page, signs in, enters the code (typed, or through verification_uri_complete),
// and approves or denies; then `mcpgate login` ends, and `mcpgate call ... whoami` uses the
// stored tokens. The server polls at 1 s (--device-interval) so this runs in seconds.
//
// Screenshots of the code entry and consent pages go to /tmp/mcpgate-device-{entry,consent}.png.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { BIN, PEERS, withTimeout } from './helpers.mjs';
import { runCli, startServe } from './client_helpers.mjs';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync'];
const WAIT = 15000; // the bound of every browser wait (ms)
const CODE = /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/;

let srv;
let context;
let page;
let n = 0;

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/deps.sh`);
  const pwPath = path.join(PEERS, 'node_modules/playwright-core/index.mjs');
  assert.ok(fs.existsSync(pwPath), `${pwPath} is missing: run scripts/deps.sh`);
  const { chromium } = await import(pwPath);
  srv = await startServe({ auth: true, args: ['--device-interval', '1'] });
  assert.ok(srv.password, 'the first start prints the admin password');
  const profile = fs.mkdtempSync(path.join(srv.dir, 'profile-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, timeout: 30000,
    viewport: { width: 800, height: 900 },
  });
  context.setDefaultTimeout(WAIT);
  context.setDefaultNavigationTimeout(WAIT);
  page = context.pages()[0] ?? (await context.newPage());
});

after(async () => {
  await context?.close().catch(() => {});
  await srv?.stop();
});

// `mcpgate login URL --device-code` in the background, with a fresh token store. Resolves the
// prompt once the client has printed it: { uri, code, complete, done (the exit), configDir }.
async function startLogin() {
  const configDir = path.join(srv.dir, `device-${++n}`);
  const proc = spawn(BIN,
    ['login', srv.url, '--device-code', '--config-dir', configDir],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (c) => { stdout += c; });
  proc.stderr.setEncoding('utf8');
  const done = new Promise((resolve) => proc.on('close', (code) => resolve({ code, stdout,
    stderr })));
  const prompt = await withTimeout(new Promise((resolve, reject) => {
    proc.stderr.on('data', (c) => {
      stderr += c;
      const m = /to sign in, visit (\S+) and enter the code (\S+)\n/.exec(stderr);
      const o = /\(or open (\S+)\)\n/.exec(stderr);
      if (m && o) resolve({ uri: m[1], code: m[2], complete: o[1] });
    });
    done.then((r) => reject(new Error(`mcpgate login exited (${r.code}):\n${r.stderr}`)));
  }), 20000, 'mcpgate login printed no code');
  return { ...prompt, done, configDir, proc, stderr: () => stderr };
}

async function bodyText() {
  return page.locator('body').innerText({ timeout: WAIT });
}

// Clicks and waits for the page it leads to.
async function clickTo(selector) {
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(selector)]);
}

async function signInIfAsked() {
  if (await page.locator('#password').count()) {
    await page.fill('#username', 'admin');
    await page.fill('#password', srv.password);
    await clickTo('button:has-text("Sign in")');
  }
}

async function answer(decision, { shot = false } = {}) {
  assert.match(await bodyText(), /wants to access/);
  if (shot)
    await page.screenshot({ path: '/tmp/mcpgate-device-consent.png', fullPage: true });
  await clickTo(`button[value=${decision}]`);
}

async function finished(login) {
  const r = await withTimeout(login.done, 30000, 'mcpgate login did not finish');
  return { ...r, stderr: login.stderr() };
}

test('the code typed on the verification page: signed in, then call uses the tokens', async () => {
  const login = await startLogin();
  assert.equal(login.uri, `${srv.base}/device`);
  assert.match(login.code, CODE);
  assert.equal(login.complete, `${srv.base}/device?user_code=${login.code}`);

  await page.goto(login.uri);
  assert.match(new URL(page.url()).pathname, /^\/login$/, 'signed out: the sign-in page first');
  await signInIfAsked();
  assert.equal(new URL(page.url()).pathname, '/device');
  assert.match(await bodyText(), /Connect a device/);
  // typed the way people type it: lower case, no dash
  await page.fill('#user_code', login.code.toLowerCase().replace('-', ''));
  await page.screenshot({ path: '/tmp/mcpgate-device-entry.png', fullPage: true });
  await clickTo('button:has-text("Continue")');
  assert.match(await bodyText(), new RegExp(`your device shows ${login.code}`));
  await answer('approve', { shot: true });
  assert.match(await bodyText(), /Device connected/);
  assert.match(await bodyText(), /go back to your device/);

  const r = await finished(login);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /signed in/);
  assert.doesNotMatch(r.stderr, /access_token|refresh_token/);

  const call = await runCli(['call', srv.url, 'whoami', '--device-code', '--config-dir',
    login.configDir]);
  assert.equal(call.code, 0, call.stderr);
  assert.match(call.stdout, /^admin /);
  assert.doesNotMatch(call.stderr, /to sign in, visit/, 'the stored tokens were used');
});

test('verification_uri_complete: the code comes filled in; the person confirms it', async () => {
  const login = await startLogin();
  await page.goto(login.complete); // the browser is still signed in
  await signInIfAsked();
  assert.equal(new URL(page.url()).pathname, '/device');
  assert.equal(await page.inputValue('#user_code'), login.code);
  await clickTo('button:has-text("Continue")');
  await answer('approve');
  assert.match(await bodyText(), /Device connected/);
  const r = await finished(login);
  assert.equal(r.code, 0, r.stderr);
  const call = await runCli(['call', srv.url, 'whoami', '--device-code', '--config-dir',
    login.configDir]);
  assert.equal(call.code, 0, call.stderr);
  assert.match(call.stdout, /^admin /);
});

test('the person denies: mcpgate login exits 1 saying the sign-in was denied', async () => {
  const login = await startLogin();
  await page.goto(login.complete);
  await signInIfAsked();
  await clickTo('button:has-text("Continue")');
  await answer('deny');
  assert.match(await bodyText(), /Access denied/);
  const r = await finished(login);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /the sign-in was denied/);
  const stored = (dir) => (fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true }) : [])
    .filter((f) => String(f).endsWith('tokens.json'));
  assert.deepEqual(stored(login.configDir), [], 'no tokens were stored');
});

test('the pages refuse to be framed and load nothing', async () => {
  const resp = await page.goto(`${srv.base}/device`);
  const h = await resp.allHeaders();
  assert.equal(h['x-frame-options'], 'DENY');
  assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
  assert.match(h['content-security-policy'], /default-src 'none'/);
  assert.equal(h['cache-control'], 'no-store');
});
