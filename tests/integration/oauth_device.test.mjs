// The device authorization grant (RFC 8628) against `mcpgate serve`, over plain HTTP: the
// /device_authorization endpoint's errors, every answer of the polled /token (pending, slow_down,
// denied, expired, reuse, another client's code), and the /device page (sign-in first, CSRF,
// codes typed loosely, wrong codes locking a session, the per-IP limit, deciding once). The
// real client in a real browser is oauth_device_browser.test.mjs.
//
// Server processes share one database and master key: the main one (polling interval 1 s), one
// whose device codes live 2 s (expiry), and one that deletes expired rows every second.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { BIN, sleep } from './helpers.mjs';
import {
  Browser, eventually, hidden, mcpCall, nextIp, pageText, postForm, postJson, register, request,
  startServer, token,
} from './oauth_helpers.mjs';

const DEVICE = 'urn:ietf:params:oauth:grant-type:device_code';
const CODE = /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/;
let M; // the main server
let T; // device codes live 2 s (same database)
let admin;
let browser; // signed in as admin on M
const clients = {};

// ---- assertions and steps ----

function assertOAuthError(r, status, error, what) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers['content-type'] ?? '', /^application\/json/);
  assert.equal(r.json?.error, error, r.text);
  assert.match(r.json.error_description ?? '', what);
  assert.equal(r.headers['cache-control'], 'no-store');
}

function assertPage(r, status, what) {
  assert.equal(r.status, status, `${r.status} ${r.location ?? ''} ${pageText(r.text ?? '')}`);
  assert.match(r.headers['content-type'] ?? '', /^text\/html/);
  assert.equal(r.headers['x-frame-options'], 'DENY');
  assert.match(r.headers['content-security-policy'] ?? '', /frame-ancestors 'none'/);
  assert.equal(r.headers['cache-control'], 'no-store');
  assert.match(pageText(r.text), what);
}

const publicDevice = (name, extra = {}) => register(M.base, {
  client_name: name,
  redirect_uris: [],
  grant_types: [DEVICE, 'refresh_token'],
  response_types: [],
  token_endpoint_auth_method: 'none',
  ...extra,
});

// POST /device_authorization as client (with its secret through Basic when it has one).
function deviceAuthorization(client, form = {}, { base = M.base, ip } = {}) {
  const headers = {};
  if (client?.client_secret) {
    const enc = (s) => encodeURIComponent(s);
    headers.Authorization = `Basic ${Buffer.from(`${enc(client.client_id)}:${enc(client.client_secret)}`)
      .toString('base64')}`;
  }
  return postForm(base, '/device_authorization', {
    client_id: client?.client_secret ? undefined : client?.client_id,
    scope: 'mcp',
    ...form,
  }, { headers, ip });
}

async function newCode(client = clients.dev, form = {}, opts = {}) {
  const r = await deviceAuthorization(client, form, opts);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

const poll = (client, deviceCode, extra = {}, base = M.base) => token(base, {
  grant_type: DEVICE, device_code: deviceCode, client_id: client.client_id, ...extra,
});

// The /device page for a code: its entry form, then the consent page for the code.
async function enterCode(b, userCode, { ip } = {}) {
  const page = await b.get(`/device?user_code=${encodeURIComponent(userCode)}`, { ip });
  assert.equal(page.status, 200, pageText(page.text));
  return b.post('/device', { csrf: hidden(page.text, 'csrf'), user_code: userCode }, { ip });
}

// Enters the code and answers the consent page; returns the answer (a 303 to the done page).
async function decide(b, userCode, decision = 'approve') {
  const consent = await enterCode(b, userCode);
  assert.equal(consent.status, 200, pageText(consent.text));
  return b.post('/device', {
    csrf: hidden(consent.text, 'csrf'),
    request: hidden(consent.text, 'request'),
    decision,
  });
}

async function signedIn(base = M.base) {
  const b = new Browser(base);
  const li = await b.login(admin.username, admin.password);
  assert.equal(li.status, 303, pageText(li.text));
  return b;
}

function cli(args) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', timeout: 15000 });
  assert.equal(r.status, 0, `mcpgate ${args.join(' ')}: ${r.status}\n${r.stderr}`);
  return r.stdout;
}

const auditOf = () => JSON.parse(cli(['audit', '--json', '--limit', '1000', '--db',
  `sqlite:${path.join(M.dir, 'm.db')}`]));

before(async () => {
  M = await startServer({ args: ['--device-interval', '1'] });
  assert.ok(M.password, 'the first start prints the admin password');
  admin = { username: 'admin', password: M.password };
  clients.dev = await publicDevice('device tests');
  clients.dev2 = await publicDevice('another device app');
  clients.codeOnly = await register(M.base, {
    client_name: 'code only', redirect_uris: ['https://app.example.com/cb'],
    token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'],
  });
  clients.conf = await register(M.base, {
    client_name: 'confidential device app', redirect_uris: [], grant_types: [DEVICE],
    response_types: [], token_endpoint_auth_method: 'client_secret_basic',
  });
  browser = await signedIn();
});

after(async () => {
  await T?.stop();
  await M?.stop();
  if (M?.dir) fs.rmSync(M.dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
describe('device authorization endpoint', () => {
  test('RFC 8414 / RFC 8628 4: the metadata names the endpoint and the grant type', async () => {
    const asm = (await request(M.base, 'GET', '/.well-known/oauth-authorization-server')).json;
    assert.equal(asm.device_authorization_endpoint, `${M.base}/device_authorization`);
    assert.ok(asm.grant_types_supported.includes(DEVICE), asm.grant_types_supported.join(' '));
  });

  test('RFC 7591: a client registers the device grant without redirect URIs', () => {
    assert.deepEqual(clients.dev.grant_types, [DEVICE, 'refresh_token']);
    assert.deepEqual(clients.dev.redirect_uris, []);
    assert.equal(clients.dev.client_secret, undefined);
  });

  test('RFC 8628 3.2: the response, with no-store', async () => {
    const r = await deviceAuthorization(clients.dev);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['cache-control'], 'no-store');
    const d = r.json;
    assert.match(d.device_code, /^[A-Za-z0-9_-]{43,}$/); // 256 random bits
    assert.match(d.user_code, CODE);
    assert.equal(d.verification_uri, `${M.base}/device`);
    assert.equal(d.verification_uri_complete, `${M.base}/device?user_code=${d.user_code}`);
    assert.equal(d.expires_in, 600);
    assert.equal(d.interval, 1);
    const again = await newCode();
    assert.notEqual(again.device_code, d.device_code);
    assert.notEqual(again.user_code, d.user_code);
  });

  test('RFC 6749 2.3: no client_id is invalid_client (401)', async () => {
    const r = await postForm(M.base, '/device_authorization', { scope: 'mcp' });
    assertOAuthError(r, 401, 'invalid_client', /client_id is missing/);
  });

  test('RFC 6749 2.3: an unknown client is invalid_client (401)', async () => {
    const r = await deviceAuthorization({ client_id: 'no-such-client' });
    assertOAuthError(r, 401, 'invalid_client', /unknown client_id/);
  });

  test('RFC 8628 3.1: a confidential client authenticates as at /token', async () => {
    const none = await postForm(M.base, '/device_authorization', { client_id: clients.conf.client_id });
    assertOAuthError(none, 401, 'invalid_client', /must authenticate/);
    const wrong = await deviceAuthorization({ ...clients.conf, client_secret: 'wrong' });
    assertOAuthError(wrong, 401, 'invalid_client', /secret is wrong/);
    assert.match(wrong.headers['www-authenticate'] ?? '', /^Basic /);
    const ok = await deviceAuthorization(clients.conf);
    assert.equal(ok.status, 200, ok.text);
    // its polls authenticate the same way
    const p = await token(M.base, { grant_type: DEVICE, device_code: ok.json.device_code },
      { basic: [clients.conf.client_id, clients.conf.client_secret] });
    assertOAuthError(p, 400, 'authorization_pending', /not approved or denied yet/);
    const anon = await token(M.base, { grant_type: DEVICE, device_code: ok.json.device_code,
      client_id: clients.conf.client_id });
    assertOAuthError(anon, 401, 'invalid_client', /must authenticate/);
  });

  test('RFC 6749 2.3.1: a public client sending a secret is refused', async () => {
    const r = await postForm(M.base, '/device_authorization',
      { client_id: clients.dev.client_id, client_secret: 'anything' });
    assertOAuthError(r, 401, 'invalid_client', /public/);
  });

  test('RFC 8628 3.1 / RFC 6749 5.2: a client without the grant type is unauthorized_client', async () => {
    const r = await deviceAuthorization(clients.codeOnly);
    assertOAuthError(r, 400, 'unauthorized_client', /device_code grant/);
  });

  test('RFC 6749 3.3: a scope with characters no scope has is invalid_scope', async () => {
    for (const scope of ['mcp "x"', 'mcp\\x', 'mcp\u00e9', 'mcp\u2028x', 'mcp\nadmin']) {
      const r = await deviceAuthorization(clients.dev, { scope });
      assertOAuthError(r, 400, 'invalid_scope', /RFC 6749 3\.3/);
    }
    // control characters never get past the form parser
    const ctl = await deviceAuthorization(clients.dev, { scope: 'mcp\u0001' });
    assertOAuthError(ctl, 400, 'invalid_request', /control character/);
  });

  test('RFC 8707: a resource other than this server is invalid_target', async () => {
    const r = await deviceAuthorization(clients.dev, { resource: 'https://evil.example/mcp' });
    assertOAuthError(r, 400, 'invalid_target', new RegExp(`resource must be ${M.base}/mcp`));
    const ok = await deviceAuthorization(clients.dev, { resource: `${M.base}/mcp` });
    assert.equal(ok.status, 200, ok.text);
  });

  test('RFC 6749 3.1: only POST with a form body', async () => {
    const get = await request(M.base, 'GET', '/device_authorization');
    assert.equal(get.status, 405);
    assert.equal(get.headers.allow, 'POST');
    const json = await postJson(M.base, '/device_authorization', { client_id: clients.dev.client_id });
    assertOAuthError(json, 400, 'invalid_request', /x-www-form-urlencoded/);
    const twice = await postForm(M.base, '/device_authorization',
      `client_id=${clients.dev.client_id}&client_id=${clients.dev.client_id}`);
    assertOAuthError(twice, 400, 'invalid_request', /client_id/);
  });

  test('RFC 9700 4.1: the endpoint shares /token\'s per-IP rate limit', async () => {
    const ip = nextIp();
    const statuses = [];
    let limited;
    for (let i = 0; i < 30 && !limited; i++) {
      const r = await deviceAuthorization({ client_id: 'no-such-client' }, {}, { ip });
      statuses.push(r.status);
      if (r.status === 429) limited = r;
    }
    assert.ok(limited, statuses.join(' '));
    assertOAuthError(limited, 429, 'temporarily_unavailable', /too many requests/);
    assert.match(limited.headers['retry-after'] ?? '', /^\d+$/);
  });
});

// ---------------------------------------------------------------------------------------------
describe('polling /token', () => {
  test('RFC 8628 3.5: authorization_pending, then slow_down (+5 s) when polled too soon', async () => {
    const d = await newCode();
    const first = await poll(clients.dev, d.device_code);
    assertOAuthError(first, 400, 'authorization_pending', /ask again in 1 s/);
    // the server counts whole seconds: a second poll right after may still cross into the
    // next one and be on time, a third right after that will not
    let soon = await poll(clients.dev, d.device_code);
    if (soon.json?.error === 'authorization_pending') soon = await poll(clients.dev, d.device_code);
    assertOAuthError(soon, 400, 'slow_down', /wait 6 s between requests/);
    // the interval stays grown: 1.2 s later is still too soon
    await sleep(1200);
    const still = await poll(clients.dev, d.device_code);
    assertOAuthError(still, 400, 'slow_down', /wait 11 s/);
  });

  test('RFC 8628 3.5: polls at the interval stay authorization_pending', async () => {
    const d = await newCode();
    for (let i = 0; i < 3; i++) {
      const r = await poll(clients.dev, d.device_code);
      assertOAuthError(r, 400, 'authorization_pending', /not approved or denied yet/);
      await sleep(1100);
    }
  });

  test('RFC 8628 3.5: access_denied once the user denied, every time after', async () => {
    const d = await newCode();
    const r = await decide(browser, d.user_code, 'deny');
    assert.equal(r.status, 303);
    assert.equal(r.location, '/device?done=denied');
    assertPage(await browser.get(r.location), 200, /Access denied.*not given access/);
    for (let i = 0; i < 2; i++) {
      const p = await poll(clients.dev, d.device_code);
      assertOAuthError(p, 400, 'access_denied', /denied/);
      await sleep(1100);
    }
  });

  test('RFC 8628 3.5: approved, the tokens; then the code is spent and reusing it revokes them',
    async () => {
      const d = await newCode();
      const r = await decide(browser, d.user_code);
      assert.equal(r.status, 303);
      assert.equal(r.location, '/device?done=approved');
      assertPage(await browser.get(r.location), 200, /Device connected.*go back to your device/);
      const t = await poll(clients.dev, d.device_code);
      assert.equal(t.status, 200, t.text);
      assert.equal(t.headers['cache-control'], 'no-store');
      assert.equal(t.json.token_type, 'Bearer');
      assert.equal(t.json.scope, 'mcp');
      assert.equal(typeof t.json.refresh_token, 'string');
      const claims = JSON.parse(Buffer.from(t.json.access_token.split('.')[1], 'base64url'));
      assert.equal(claims.username, 'admin');
      assert.equal(claims.client_id, clients.dev.client_id);
      assert.equal(claims.aud, `${M.base}/mcp`);
      assert.equal((await mcpCall(M.base, `Bearer ${t.json.access_token}`)).status, 200);

      await sleep(1100);
      const again = await poll(clients.dev, d.device_code);
      assertOAuthError(again, 400, 'invalid_grant', /already used.*revoked/);
      const refresh = await token(M.base, { grant_type: 'refresh_token',
        refresh_token: t.json.refresh_token, client_id: clients.dev.client_id });
      assertOAuthError(refresh, 400, 'invalid_grant', /revoked|unknown refresh token/);
      const gone = await eventually(async () => (await mcpCall(M.base,
        `Bearer ${t.json.access_token}`)).status === 401, 8000);
      assert.ok(gone, 'the access token still works after the replay');
    });

  test('RFC 6749 6: device-grant tokens refresh, with rotation', async () => {
    const d = await newCode();
    assert.equal((await decide(browser, d.user_code)).status, 303);
    const t = await poll(clients.dev, d.device_code);
    assert.equal(t.status, 200, t.text);
    const r = await token(M.base, { grant_type: 'refresh_token',
      refresh_token: t.json.refresh_token, client_id: clients.dev.client_id });
    assert.equal(r.status, 200, r.text);
    assert.notEqual(r.json.refresh_token, t.json.refresh_token);
  });

  test('RFC 8628 3.4: another client\'s device code is invalid_grant and changes nothing',
    async () => {
      const d = await newCode();
      const own = await poll(clients.dev, d.device_code);
      assertOAuthError(own, 400, 'authorization_pending', /not approved/);
      await sleep(1100);
      const other = await poll(clients.dev2, d.device_code);
      assertOAuthError(other, 400, 'invalid_grant', /issued to another client/);
      // the other client's poll did not count as the owner's: no slow_down now
      const mine = await poll(clients.dev, d.device_code);
      assertOAuthError(mine, 400, 'authorization_pending', /not approved/);
      // approved, the other client still cannot take it
      assert.equal((await decide(browser, d.user_code)).status, 303);
      const stolen = await poll(clients.dev2, d.device_code);
      assertOAuthError(stolen, 400, 'invalid_grant', /another client/);
      await sleep(1100);
      assert.equal((await poll(clients.dev, d.device_code)).status, 200);
    });

  test('RFC 8628 3.5: an unknown or missing device code', async () => {
    const r = await poll(clients.dev, 'not-a-device-code');
    assertOAuthError(r, 400, 'invalid_grant', /unknown device code/);
    const none = await token(M.base, { grant_type: DEVICE, client_id: clients.dev.client_id });
    assertOAuthError(none, 400, 'invalid_request', /device_code is missing/);
  });

  test('RFC 6749 5.2: a client without the grant type cannot poll', async () => {
    const d = await newCode();
    const r = await poll(clients.codeOnly, d.device_code);
    assertOAuthError(r, 400, 'unauthorized_client', /device_code grant/);
  });

  test('RFC 8707: a resource other than the request\'s is invalid_target', async () => {
    const d = await newCode();
    const r = await poll(clients.dev, d.device_code, { resource: 'https://evil.example/mcp' });
    assertOAuthError(r, 400, 'invalid_target', /resource differs/);
  });

  test('RFC 8628 3.5: expired_token after the code\'s lifetime, and its user code is dead', async () => {
    T = await startServer({ dir: M.dir, args: ['--device-interval', '1', '--device-code-ttl', '2'] });
    const d = await newCode(clients.dev, {}, { base: T.base });
    assert.equal(d.expires_in, 2);
    const pending = await poll(clients.dev, d.device_code, {}, T.base);
    assertOAuthError(pending, 400, 'authorization_pending', /not approved/);
    await sleep(2300);
    const r = await poll(clients.dev, d.device_code, {}, T.base);
    assertOAuthError(r, 400, 'expired_token', /expired \(it lives 2 s\)/);
    // the main server reads the same row: expired there too
    assertOAuthError(await poll(clients.dev, d.device_code), 400, 'expired_token', /expired/);
    const b = await signedIn();
    const late = await enterCode(b, d.user_code);
    assertPage(late, 400, /not valid, or it has expired/);
  });

  test('expired rows leave the database (--purge-interval), device codes among them', async () => {
    const P = await startServer({ dir: M.dir,
      args: ['--device-code-ttl', '1', '--purge-interval', '1', '--log-level', 'info'] });
    try {
      const d = await newCode(clients.dev, {}, { base: P.base });
      assertOAuthError(await poll(clients.dev, d.device_code, {}, P.base), 400,
        'authorization_pending', /not approved/);
      const mark = P.log().length; // rows expired earlier went at start
      const purged = await eventually(
        () => /deleted [1-9]\d* expired rows/.test(P.log().slice(mark)), 8000);
      assert.ok(purged, `no purge in the log:\n${P.log()}`);
      // gone, not merely expired: the server no longer knows the code
      assertOAuthError(await poll(clients.dev, d.device_code, {}, P.base), 400, 'invalid_grant',
        /unknown device code/);
    } finally {
      await P.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('the /device page', () => {
  test('signed out: to the sign-in page and back, the code kept (normalized)', async () => {
    const d = await newCode();
    const b = new Browser(M.base);
    const loose = d.user_code.toLowerCase().replace('-', '');
    const r = await b.get(`/device?user_code=${loose}`);
    assert.equal(r.status, 302);
    assert.equal(r.location,
      `/login?continue=${encodeURIComponent(`/device?user_code=${d.user_code}`)}`);
    const page = await b.get(r.location);
    assert.equal(page.status, 200);
    const li = await b.post('/login', { username: admin.username, password: admin.password,
      csrf: hidden(page.text, 'csrf'), continue: hidden(page.text, 'continue') });
    assert.equal(li.status, 303, pageText(li.text));
    assert.equal(li.location, `/device?user_code=${d.user_code}`);
    const entry = await b.get(li.location);
    assertPage(entry, 200, /Connect a device.*Signed in as admin/);
    assert.match(entry.text, new RegExp(`name="user_code" value="${d.user_code}"`));
    assert.match(pageText(entry.text), /never a code someone sent you/);
    // a POST signed out goes to sign in too (303)
    const anon = await new Browser(M.base).post('/device', { user_code: d.user_code, csrf: 'x' });
    assert.equal(anon.status, 303);
    assert.match(anon.location, /^\/login\?continue=%2Fdevice%3Fuser_code%3D/);
  });

  test('RFC 8628 6.1: the code is typed without case or dash; the consent page shows it',
    async () => {
      const d = await newCode();
      const consent = await enterCode(browser, ` ${d.user_code.toLowerCase().replace('-', ' ')} `);
      assertPage(consent, 200, /device tests.*wants to access/);
      assert.match(pageText(consent.text), new RegExp(`your device shows ${d.user_code}`));
      assert.match(pageText(consent.text), /Unverified/);
      assert.match(consent.text, /<form method="post" action="\/device">/);
    });

  test('docs/security.md (CSRF): POST /device needs the session\'s form token', async () => {
    const d = await newCode();
    const noToken = await browser.post('/device', { user_code: d.user_code });
    assertPage(noToken, 403, /did not come from/);
    const wrong = await browser.post('/device', { user_code: d.user_code, csrf: 'forged' });
    assertPage(wrong, 403, /did not come from/);
    // the answer to the consent page needs it too
    const consent = await enterCode(browser, d.user_code);
    const forged = await browser.post('/device',
      { request: hidden(consent.text, 'request'), decision: 'approve' });
    assertPage(forged, 403, /did not come from/);
    // nothing was decided: the client still waits
    assertOAuthError(await poll(clients.dev, d.device_code), 400, 'authorization_pending', /not/);
  });

  test('a sealed request is this user\'s and this form\'s: tampered, refused', async () => {
    const d = await newCode();
    const consent = await enterCode(browser, d.user_code);
    const req = hidden(consent.text, 'request');
    const tampered = `${req.slice(0, -2)}${req.slice(-2) === 'AA' ? 'BB' : 'AA'}`;
    const r = await browser.post('/device', { csrf: hidden(consent.text, 'csrf'),
      request: tampered, decision: 'approve' });
    assertPage(r, 400, /no longer valid/);
  });

  test('a code is decided once', async () => {
    const b = await signedIn();
    const d = await newCode();
    const consent = await enterCode(b, d.user_code);
    const form = { csrf: hidden(consent.text, 'csrf'), request: hidden(consent.text, 'request') };
    assert.equal((await b.post('/device', { ...form, decision: 'approve' })).status, 303);
    const second = await b.post('/device', { ...form, decision: 'deny' });
    assertPage(second, 400, /expired or was already used/);
    // and once decided it is no longer a code to enter
    const again = await enterCode(b, d.user_code);
    assertPage(again, 400, /not valid, or it has expired/);
  });

  test('something that is not a code is refused without counting as a guess', async () => {
    const b = await signedIn();
    for (const typed of ['HELLO', 'BCDF-GHJ', 'AAAA-AAAA', '12345678', 'BCDF-GHJK-LMNP']) {
      const page = await b.get('/device');
      const r = await b.post('/device', { csrf: hidden(page.text, 'csrf'), user_code: typed });
      assertPage(r, 400, /That is not a code/);
    }
    const d = await newCode();
    assert.equal((await enterCode(b, d.user_code)).status, 200);
  });

  test('brute force: five wrong codes lock the browser session; a new sign-in may continue',
    async () => {
      const b = await signedIn();
      const d = await newCode();
      // well-formed codes that match nothing (the odds of hitting a live one are negligible)
      const wrong = ['BBBB-BBBB', 'CCCC-CCCC', 'DDDD-DDDD', 'FFFF-FFFF', 'GGGG-GGGG'];
      for (let i = 0; i < 4; i++) {
        const r = await enterCode(b, wrong[i]);
        assertPage(r, 400, /not valid, or it has expired/);
      }
      const fifth = await enterCode(b, wrong[4]);
      assertPage(fifth, 429, /Too many wrong codes/);
      assert.doesNotMatch(fifth.text, /<form/);
      // locked: even the right code is not looked at, and the page has no form
      const page = await b.get(`/device?user_code=${d.user_code}`);
      assertPage(page, 429, /Too many wrong codes/);
      assert.doesNotMatch(page.text, /<form/);
      const right = await b.post('/device', { csrf: hidden((await browser.get('/device')).text,
        'csrf'), user_code: d.user_code });
      assert.equal(right.status, 403); // another session's token
      const b2 = await signedIn();
      const ok = await enterCode(b2, d.user_code);
      assertPage(ok, 200, /wants to access/);
      const audit = await eventually(() => {
        const evs = auditOf().filter((e) => e.event === 'device_code_wrong');
        return evs.length >= 5 ? evs : null;
      }, 3000, 200);
      assert.ok(audit, 'no device_code_wrong events');
      assert.ok(audit.every((e) => e.user === 'admin'));
      for (let n = 1; n <= 5; n++)
        assert.ok(audit.some((e) => e.detail.failures === n), `no event with ${n} failures`);
    });

  test('brute force: entering codes is rate limited per IP (429, Retry-After)', async () => {
    const b = await signedIn();
    const ip = nextIp();
    const page = await b.get('/device', { ip });
    const statuses = [];
    let limited;
    for (let i = 0; i < 20 && !limited; i++) {
      // not codes, so the session is not locked first
      const r = await b.post('/device', { csrf: hidden(page.text, 'csrf'), user_code: 'x' },
        { ip });
      statuses.push(r.status);
      if (r.status === 429) limited = r;
    }
    assert.ok(limited, statuses.join(' '));
    assertPage(limited, 429, /Too many codes from your network/);
    assert.match(limited.headers['retry-after'] ?? '', /^\d+$/);
    // other addresses are not affected
    const d = await newCode();
    assert.equal((await enterCode(b, d.user_code)).status, 200);
  });

  test('only GET and POST; the done page says which way it went', async () => {
    const r = await request(M.base, 'PUT', '/device');
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, 'GET, POST');
    assertPage(await request(M.base, 'GET', '/device?done=approved'), 200, /go back to your device/);
  });

  test('the audit trail: code issued, consent (device), tokens issued', async () => {
    const d = await newCode();
    assert.equal((await decide(browser, d.user_code)).status, 303);
    assert.equal((await poll(clients.dev, d.device_code)).status, 200);
    const mine = (e) => e.client === clients.dev.client_id;
    const events = await eventually(() => {
      const evs = auditOf();
      const ok = evs.some((e) => e.event === 'device_code_issued' && mine(e)) &&
        evs.some((e) => e.event === 'consent' && mine(e) && e.detail.flow === 'device') &&
        evs.some((e) => e.event === 'token_issued' && mine(e));
      return ok ? evs : null;
    }, 3000, 200);
    assert.ok(events, 'missing audit events');
    const consent = events.find((e) => e.event === 'consent' && mine(e) &&
      e.detail.decision === 'approve');
    assert.equal(consent.user, 'admin');
    assert.equal(typeof consent.detail.grant, 'string');
    // no device code, user code or token in the trail
    const text = JSON.stringify(events);
    assert.ok(!text.includes(d.device_code));
    assert.ok(!text.includes(d.user_code));
  });
});
