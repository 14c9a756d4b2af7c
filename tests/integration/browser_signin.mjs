#!/usr/bin/env node
// A real browser for `mcpgate connect|login --browser`: headless Chromium (Debian's, driven by
// playwright-core) opens the authorization URL it is given, signs in on mcpgate's login page,
// approves on the consent page, and follows the redirect to the client's loopback listener.
//
//   node browser_signin.mjs URL
//
// Environment: MCPGATE_PEERS (playwright-core), SIGNIN_USER, SIGNIN_PASSWORD, SIGNIN_ACTION
// (approve | deny; default approve), SIGNIN_LOG (a file that gets one JSON line per run:
// {url, final, text}), SIGNIN_SCREENSHOT (a PNG of the final page). Exits 0 when the browser
// ended on the loopback callback page, 1 otherwise.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const url = process.argv[2];
const peers = process.env.MCPGATE_PEERS;
const { chromium } = await import(path.join(peers, 'node_modules/playwright-core/index.mjs'));
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage'];
const WAIT = 20000;
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-signin-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium', headless: true, args: FLAGS, timeout: 30000,
});
ctx.setDefaultTimeout(WAIT);
const page = ctx.pages()[0] ?? (await ctx.newPage());
let ok = false;
const record = { url, final: null, text: null, error: null };
try {
  // done when the browser reaches the client's redirect URI (the server may be on loopback too)
  const redirect = new URL(url).searchParams.get('redirect_uri') ?? '';
  const loopback = (u) => redirect !== '' && u.href.startsWith(redirect);
  await page.goto(url);
  for (let step = 0; step < 6 && !loopback(new URL(page.url())); step++) {
    if (await page.locator('#username').count()) {
      await page.fill('#username', process.env.SIGNIN_USER ?? 'admin');
      await page.fill('#password', process.env.SIGNIN_PASSWORD ?? '');
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }),
        page.click('button:has-text("Sign in")')]);
    } else if (await page.locator('button[value=approve]').count()) {
      const action = process.env.SIGNIN_ACTION === 'deny' ? 'deny' : 'approve';
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }),
        page.click(`button[value=${action}]`)]);
    } else {
      break;
    }
  }
  record.final = page.url();
  record.text = await page.locator('body').innerText();
  ok = loopback(new URL(page.url()));
  if (process.env.SIGNIN_SCREENSHOT) await page.screenshot({ path: process.env.SIGNIN_SCREENSHOT });
} catch (e) {
  record.error = String(e);
}
if (process.env.SIGNIN_LOG) fs.appendFileSync(process.env.SIGNIN_LOG, `${JSON.stringify(record)}\n`);
await ctx.close();
fs.rmSync(profile, { recursive: true, force: true });
process.exit(ok ? 0 : 1);
