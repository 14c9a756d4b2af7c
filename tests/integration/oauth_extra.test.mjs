// More of the authorization server, end to end against the real binary:
//   a. client ID metadata documents (CIMD) fetched over real https from a local server whose
//      certificate chains to a throwaway CA (--cimd-cacert), with the SSRF, size, redirect,
//      time and TLS limits;
//   b. the audit log (`mcpgate audit --json`) after a full flow and a tool call;
//   c. first-party clients and --auto-approve-first-party;
//   d. RFC 7592 client management (GET, PUT, DELETE /register/<id>).
//
// Servers: C (--cimd-allow-private --cimd-cacert, no auto-approve) carries a, b, d and the
// consent half of c; P (no --cimd-allow-private, --auto-approve-first-party, its own database)
// carries the private-address refusal and the auto-approve half of c. Every wait is bounded.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { BIN, MODERN, modernMeta } from './helpers.mjs';
import {
  Browser, authorizePath, authzParams, eventually, hidden, obtainCode, pageText,
  postJson, redeem, register, request, startServer,
} from './oauth_helpers.mjs';

const CB_PORT = 45123; // never listened on: only the redirect's Location is read
const CB = `http://127.0.0.1:${CB_PORT}/cb`;

let tmp; // certificates
let C; // CIMD server (private addresses allowed, our CA trusted)
let P; // private addresses refused, first-party auto-approve
let docs; // the https server of metadata documents
let wrongHost; // https, a certificate of our CA for 127.0.0.2 only
let untrusted; // https, a certificate of another CA
const hits = new Map(); // path -> requests served
const openSockets = new Set();

// ---- certificates ----

function openssl(args) {
  const r = spawnSync('openssl', args, { cwd: tmp, encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, `openssl ${args.join(' ')}:\n${r.stderr}`);
}

function makeCa(name) {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
}

function makeLeaf(name, ca, san) {
  fs.writeFileSync(path.join(tmp, `${name}.ext`),
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n` +
    `extendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`,
    '-set_serial', `0x${crypto.randomBytes(8).toString('hex')}`, '-days', '2',
    '-extfile', `${name}.ext`, '-out', `${name}.pem`]);
  return {
    key: fs.readFileSync(path.join(tmp, `${name}.key`)),
    cert: fs.readFileSync(path.join(tmp, `${name}.pem`)),
  };
}

// ---- the metadata document servers ----

const docUrl = (p, server = docs) => `https://127.0.0.1:${server.address().port}${p}`;

function metadata(p, extra = {}) {
  return {
    client_id: docUrl(p),
    client_name: 'CIMD Test',
    redirect_uris: [CB],
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    ...extra,
  };
}

function sendJson(res, obj, headers = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'max-age=120',
    'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function route(req, res) {
  const p = req.url;
  hits.set(p, (hits.get(p) ?? 0) + 1);
  switch (p) {
    case '/client.json':
    case '/client2.json':
      return sendJson(res, metadata(p));
    case '/mismatch.json': // claims another client's URL
      return sendJson(res, metadata('/client.json'));
    case '/redirect.json':
      res.writeHead(302, { Location: docUrl('/client.json') });
      return res.end();
    case '/big.json': { // valid JSON, 70 KiB, with Content-Length
      const doc = metadata(p, { software_id: 'x', padding: 'y'.repeat(70 * 1024) });
      return sendJson(res, doc);
    }
    case '/big-chunked.json': { // the same without Content-Length
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const doc = JSON.stringify(metadata(p, { padding: 'y'.repeat(70 * 1024) }));
      for (let i = 0; i < doc.length; i += 8192) res.write(doc.slice(i, i + 8192));
      return res.end();
    }
    case '/hang.json': // headers never come; the socket is destroyed in after()
      return undefined;
    default:
      res.writeHead(404);
      return res.end();
  }
}

function listenHttps(creds, handler) {
  const s = https.createServer(creds, handler);
  s.on('connection', (sock) => {
    openSockets.add(sock);
    sock.on('close', () => openSockets.delete(sock));
  });
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

// ---- helpers ----

// An error shown on mcpgate's own page: no redirect.
function assertPage(r, status, what) {
  assert.equal(r.status, status, `${r.status} ${r.location ?? ''} ${pageText(r.text)}`);
  assert.equal(r.location, undefined, 'an error page must not redirect');
  assert.match(r.headers['content-type'] ?? '', /^text\/html/);
  assert.match(pageText(r.text), what);
}

const cimdClient = (p) => ({ client_id: docUrl(p), redirect_uris: [CB] });
const anonAuthorize = (server, params) => request(server.base, 'GET', authorizePath(params));

async function signedIn(server) {
  const b = new Browser(server.base);
  const li = await b.login('admin', server.password);
  assert.equal(li.status, 303, pageText(li.text));
  return b;
}

async function toolCall(base, accessToken, text) {
  const r = await postJson(base, '/mcp', {
    jsonrpc: '2.0',
    id: 7,
    method: 'tools/call',
    params: { name: 'echo', arguments: { text }, _meta: modernMeta({}) },
  }, {
    headers: {
      Accept: 'application/json, text/event-stream',
      'MCP-Protocol-Version': MODERN,
      'Mcp-Method': 'tools/call',
      'Mcp-Name': 'echo',
      Authorization: `Bearer ${accessToken}`,
    },
  });
  let body = r.json;
  if ((r.headers['content-type'] ?? '').startsWith('text/event-stream')) {
    const data = r.text.split('\n').filter((l) => l.startsWith('data:'));
    body = data.length ? JSON.parse(data[data.length - 1].slice(5)) : undefined;
  }
  return { status: r.status, body, text: r.text };
}

function cli(args) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', timeout: 15000 });
  assert.equal(r.status, 0, `mcpgate ${args.join(' ')}: ${r.status}\n${r.stderr}`);
  return r.stdout;
}

const auditOf = (server, extra = []) => JSON.parse(cli(['audit', '--json', '--limit', '1000',
  '--db', `sqlite:${path.join(server.dir, 'm.db')}`, ...extra]));

function addFirstParty(server) {
  const out = cli(['client', 'add', '--name', 'Tool', '--redirect-uri', CB, '--first-party',
    '--db', `sqlite:${path.join(server.dir, 'm.db')}`]);
  const m = /^client_id: (\S+)$/m.exec(out);
  assert.ok(m, out);
  return { client_id: m[1], redirect_uris: [CB] };
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-extra-'));
  makeCa('ca');
  makeCa('other-ca');
  const leaf = makeLeaf('srv', 'ca', 'IP:127.0.0.1');
  const leaf2 = makeLeaf('srv2', 'ca', 'IP:127.0.0.2');
  const leaf3 = makeLeaf('srv3', 'other-ca', 'IP:127.0.0.1');
  docs = await listenHttps(leaf, route);
  wrongHost = await listenHttps(leaf2, route);
  untrusted = await listenHttps(leaf3, route);
  const ca = path.join(tmp, 'ca.pem');
  [C, P] = await Promise.all([
    startServer({ args: ['--cimd-allow-private', '--cimd-cacert', ca] }),
    startServer({ args: ['--cimd-cacert', ca, '--auto-approve-first-party'] }),
  ]);
  assert.ok(C.password && P.password, 'the first start prints the admin password');
});

after(async () => {
  for (const s of openSockets) s.destroy();
  await Promise.all([C?.stop(), P?.stop()]);
  for (const s of [docs, wrongHost, untrusted]) s?.close();
  for (const d of [tmp, C?.dir, P?.dir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
describe('a. client ID metadata documents', () => {
  let browser;

  test('the AS metadata advertises CIMD', async () => {
    const r = await request(C.base, 'GET', '/.well-known/oauth-authorization-server');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.client_id_metadata_document_supported, true);
    assert.ok(r.json.token_endpoint_auth_methods_supported.includes('none'));
  });

  test('the full flow with an https client_id: consent names it, the token works', async () => {
    browser = await signedIn(C);
    const client = cimdClient('/client.json');
    const { params, verifier } = authzParams(client);
    const page = await browser.get(authorizePath(params));
    assert.equal(page.status, 200, pageText(page.text));
    assert.match(pageText(page.text), /CIMD Test/);
    assert.equal(hits.get('/client.json'), 1);
    const r = await browser.post('/authorize/consent', {
      csrf: hidden(page.text, 'csrf'),
      request: hidden(page.text, 'request'),
      decision: 'approve',
    });
    assert.equal(r.status, 303, pageText(r.text));
    const loc = new URL(r.location);
    assert.equal(`${loc.origin}${loc.pathname}`, CB);
    assert.equal(loc.searchParams.get('state'), params.state);
    assert.equal(loc.searchParams.get('iss'), C.base);
    const got = { code: loc.searchParams.get('code'), params, verifier };
    const t = await redeem(C.base, client, got);
    assert.equal(t.status, 200, t.text);
    assert.equal(t.json.token_type, 'Bearer');
    const call = await toolCall(C.base, t.json.access_token, 'via cimd');
    assert.equal(call.status, 200, call.text);
    assert.equal(call.body?.result?.content?.[0]?.text, 'via cimd', call.text);
  });

  test('a second authorization within max-age does not refetch the document', async () => {
    const client = cimdClient('/client.json');
    const got = await obtainCode(browser, client);
    const t = await redeem(C.base, client, got);
    assert.equal(t.status, 200, t.text);
    assert.equal(hits.get('/client.json'), 1, 'the document was fetched again');
  });

  test('a document whose client_id is not its URL: our page, no redirect', async () => {
    const r = await anonAuthorize(C, authzParams(cimdClient('/mismatch.json')).params);
    assertPage(r, 400, /Unknown application.*client_id: must equal the URL/);
  });

  test('a redirect_uri the document does not list: our page', async () => {
    const p = authzParams(cimdClient('/client2.json'),
      { redirect_uri: `http://127.0.0.1:${CB_PORT}/elsewhere` }).params;
    const r = await anonAuthorize(C, p);
    assertPage(r, 400, /Bad redirect address/);
  });

  test('a document answering 302 is refused (redirects are not followed)', async () => {
    const before = hits.get('/client.json');
    const r = await anonAuthorize(C, authzParams(cimdClient('/redirect.json')).params);
    assertPage(r, 400, /Unknown application.*HTTP 302.*not followed/);
    assert.equal(hits.get('/client.json'), before, 'the redirect was followed');
  });

  test('a document over 64 KiB is refused (with and without Content-Length)', async () => {
    for (const p of ['/big.json', '/big-chunked.json']) {
      const r = await anonAuthorize(C, authzParams(cimdClient(p)).params);
      assertPage(r, 400, /Unknown application.*larger than 65536 bytes/);
    }
  });

  test('a server that never answers is given up on within the 5 s timeout', async () => {
    const t0 = Date.now();
    const r = await anonAuthorize(C, authzParams(cimdClient('/hang.json')).params);
    const ms = Date.now() - t0;
    assertPage(r, 400, /Unknown application.*fetch failed.*Timeout/i);
    assert.ok(ms >= 4500 && ms < 8000, `took ${ms} ms`);
  });

  test('TLS is verified: another CA, or a certificate for another host, is refused', async () => {
    for (const server of [untrusted, wrongHost]) {
      const url = docUrl('/client.json', server);
      const r = await anonAuthorize(C,
        authzParams({ client_id: url, redirect_uris: [CB] }).params);
      assertPage(r, 400, /Unknown application.*fetch failed \(SSL peer certificate/);
    }
  });

  test('without --cimd-allow-private the loopback URL is refused with a clear page', async () => {
    const before = hits.get('/client.json');
    const r = await anonAuthorize(P, authzParams(cimdClient('/client.json')).params);
    assertPage(r, 400, /Unknown application.*private or loopback address/);
    assert.equal(hits.get('/client.json'), before, 'the private address was contacted');
  });
});

// ---------------------------------------------------------------------------------------------
describe('b. audit', () => {
  test('a flow, a tool call, a failed login and a code replay are recorded, no secrets', async () => {
    const client = await register(C.base, {
      client_name: 'audit test', redirect_uris: [CB], token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
    });
    const browser = await signedIn(C);
    const got = await obtainCode(browser, client);
    const t = await redeem(C.base, client, got);
    assert.equal(t.status, 200, t.text);
    const call = await toolCall(C.base, t.json.access_token, 'audited');
    assert.equal(call.status, 200, call.text);
    const again = await redeem(C.base, client, got); // replay
    assert.equal(again.status, 400, again.text);
    assert.equal(again.json.error, 'invalid_grant');
    const bad = await new Browser(C.base).login('admin', 'not the password');
    assert.notEqual(bad.status, 303);

    const mine = (e) => e.client === client.client_id;
    const has = (evs) => ['login_ok', 'consent', 'code_issued', 'token_issued'].every(
      (n) => evs.some((e) => e.event === n && (n === 'login_ok' || mine(e)))) &&
      evs.some((e) => e.event === 'tool_call' && mine(e)) &&
      evs.some((e) => e.event === 'revoked' && mine(e)) &&
      evs.some((e) => e.event === 'login_failed');
    const events = await eventually(() => {
      const evs = auditOf(C);
      return has(evs) ? evs : null;
    }, 3000, 200);
    assert.ok(events, `missing events:\n${JSON.stringify(auditOf(C), null, 1)}`);

    const tc = events.find((e) => e.event === 'tool_call' && mine(e));
    assert.equal(tc.user, 'admin');
    assert.equal(tc.detail.tool, 'echo');
    assert.equal(tc.detail.outcome, 'ok');
    assert.equal(typeof tc.detail.seconds, 'number');
    assert.ok(tc.detail.seconds >= 0 && tc.detail.seconds < 10, JSON.stringify(tc));
    const rv = events.find((e) => e.event === 'revoked' && mine(e));
    assert.equal(rv.detail.reason, 'authorization code replay');
    const lf = events.find((e) => e.event === 'login_failed');
    assert.equal(lf.user, 'admin');

    const byAdmin = auditOf(C, ['--user', 'admin']);
    assert.ok(byAdmin.length > 0 && byAdmin.every((e) => e.user === 'admin'),
      JSON.stringify(byAdmin.filter((e) => e.user !== 'admin')));
    assert.ok(byAdmin.some((e) => e.event === 'tool_call'));
    assert.ok(!byAdmin.some((e) => e.event === 'client_registered'));

    const text = cli(['audit', '--db', `sqlite:${path.join(C.dir, 'm.db')}`]) +
      JSON.stringify(auditOf(C));
    for (const [what, s] of [['access token', t.json.access_token],
      ['refresh token', t.json.refresh_token], ['code', got.code], ['verifier', got.verifier]]) {
      assert.ok(s, what);
      assert.ok(!text.includes(s), `the audit output contains the ${what}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('c. first-party clients', () => {
  test('--auto-approve-first-party: straight from sign-in to the callback', async () => {
    const tool = addFirstParty(P);
    const browser = new Browser(P.base);
    const { params, verifier } = authzParams(tool);
    const r = await browser.get(authorizePath(params));
    assert.equal(r.status, 302, pageText(r.text));
    assert.match(r.location, /^\/login\?/);
    const page = await browser.get(r.location);
    const li = await browser.post('/login', {
      username: 'admin', password: P.password,
      csrf: hidden(page.text, 'csrf'), continue: hidden(page.text, 'continue'),
    });
    assert.equal(li.status, 303, pageText(li.text));
    const back = await browser.get(li.location);
    assert.equal(back.status, 302, `a consent page appeared: ${pageText(back.text)}`);
    const loc = new URL(back.location);
    assert.equal(`${loc.origin}${loc.pathname}`, CB);
    assert.ok(loc.searchParams.get('code'));
    assert.equal(loc.searchParams.get('state'), params.state);
    const t = await redeem(P.base, tool, { code: loc.searchParams.get('code'), params, verifier });
    assert.equal(t.status, 200, t.text);
  });

  test('without the flag the consent page appears', async () => {
    const tool = addFirstParty(C);
    const browser = await signedIn(C);
    const r = await browser.get(authorizePath(authzParams(tool).params));
    assert.equal(r.status, 200, `${r.status} ${r.location}`);
    assert.match(pageText(r.text), /Tool/);
    assert.ok(hidden(r.text, 'request'));
  });
});

// ---------------------------------------------------------------------------------------------
describe('d. RFC 7592 client management', () => {
  test('GET, PUT, DELETE with the registration access token', async () => {
    const meta = {
      client_name: 'Managed', redirect_uris: [CB], token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
    };
    const reg = await register(C.base, meta);
    assert.ok(reg.registration_access_token, JSON.stringify(reg));
    assert.equal(reg.registration_client_uri, `${C.base}/register/${reg.client_id}`);
    assert.equal(reg.client_secret, undefined);
    const p = new URL(reg.registration_client_uri).pathname;
    const auth = { Authorization: `Bearer ${reg.registration_access_token}` };

    let r = await request(C.base, 'GET', p, { headers: auth });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.client_id, reg.client_id);
    assert.equal(r.json.client_name, 'Managed');
    assert.deepEqual(r.json.redirect_uris, [CB]);
    assert.equal(r.json.client_secret, undefined);
    assert.equal(r.json.registration_access_token, undefined);

    r = await request(C.base, 'GET', p); // no token
    assert.equal(r.status, 401, r.text);

    const put = (body) => request(C.base, 'PUT', p, {
      headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    r = await put({ ...meta, client_id: reg.client_id, client_name: 'Managed v2' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.client_name, 'Managed v2');
    assert.equal(r.json.client_secret, undefined);
    r = await request(C.base, 'GET', p, { headers: auth });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.client_name, 'Managed v2');

    r = await put({ ...meta, client_id: `${reg.client_id}x`, client_name: 'Hijack' });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error, 'invalid_client_metadata');
    r = await request(C.base, 'GET', p, { headers: auth });
    assert.equal(r.json.client_name, 'Managed v2');

    r = await request(C.base, 'DELETE', p, { headers: auth });
    assert.equal(r.status, 204, r.text);
    assert.equal(r.text, '');
    r = await request(C.base, 'GET', p, { headers: auth });
    assert.ok(r.status === 401 || r.status === 404, `${r.status} ${r.text}`);

    r = await anonAuthorize(C, authzParams({ client_id: reg.client_id, redirect_uris: [CB] }).params);
    assertPage(r, 400, /Unknown application/);
  });
});
