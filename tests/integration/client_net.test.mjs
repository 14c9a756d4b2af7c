// The client's network policy against real peers: HTTP_PROXY / NO_PROXY honoured (a forward
// proxy written here, in front of the real `mcpgate serve`), and TLS verified against the
// system CAs plus --cacert (a private CA made with openssl, mcpgate serve --tls-cert).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { BIN, withTimeout } from './helpers.mjs';
import { runCli, startServe } from './client_helpers.mjs';

describe('HTTP_PROXY and NO_PROXY', () => {
  let srv;
  let proxy;
  const seen = [];
  before(async () => {
    srv = await startServe();
    // a forward proxy: requests arrive with an absolute URI and go on to it
    proxy = http.createServer((req, res) => {
      seen.push(req.url);
      const up = http.request(req.url, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on('error', () => { res.writeHead(502); res.end(); });
      req.pipe(up);
    });
    await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    proxy?.closeAllConnections();
    await new Promise((resolve) => proxy?.close(resolve));
    await srv?.stop();
  });

  test('HTTP_PROXY carries every request (the upper-case name too)', async () => {
    seen.length = 0;
    const env = { HTTP_PROXY: `http://127.0.0.1:${proxy.address().port}`, http_proxy: '',
      NO_PROXY: '', no_proxy: '' };
    const r = await runCli(['call', srv.url, 'add', 'a=1', 'b=2', '--no-auth'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '3\n');
    assert.ok(seen.length >= 2, `requests through the proxy: ${seen}`);
    assert.ok(seen.every((u) => u === srv.url), seen.join(' '));
  });

  test('NO_PROXY keeps a host away from the proxy', async () => {
    seen.length = 0;
    const env = { HTTP_PROXY: `http://127.0.0.1:${proxy.address().port}`,
      NO_PROXY: '127.0.0.1' };
    const r = await runCli(['call', srv.url, 'add', 'a=1', 'b=2', '--no-auth'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(seen, []);
  });
});

describe('TLS with a private CA', () => {
  let dir;
  let proc;
  let url;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-tls-'));
    const ssl = (...a) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=mcpgate test CA');
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=127.0.0.1');
    fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    ssl('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
      '-CAcreateserial', '-out', 'srv.pem', '-days', '2', '-extfile', 'ext.cnf');
    proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--tools', 'demo', '--no-auth',
      '--db', `sqlite:${path.join(dir, 'm.db')}`, '--tls-cert', path.join(dir, 'srv.pem'),
      '--tls-key', path.join(dir, 'srv.key')], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.stderr.setEncoding('utf8');
    url = await withTimeout(new Promise((resolve) => {
      proc.stderr.on('data', (c) => {
        log += c;
        const m = /serving MCP at (https:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(log);
        if (m) resolve(m[1]);
      });
    }), 15000, 'mcpgate serve (TLS) did not start');
  });
  after(() => {
    proc?.kill('SIGTERM');
  });

  test('a certificate from an unknown CA is refused, saying how to trust it', async () => {
    const r = await runCli(['tools', url, '--no-auth']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /TLS failed .*--cacert FILE adds a private CA/);
  });

  test('--cacert trusts the private CA', async () => {
    const r = await runCli(['call', url, 'add', 'a=20', 'b=22', '--no-auth', '--cacert',
      path.join(dir, 'ca.pem')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '42\n');
  });

  test('--cacert with a missing file is a usage error', async () => {
    const r = await runCli(['tools', url, '--no-auth', '--cacert', path.join(dir, 'nope.pem')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--cacert: cannot read/);
  });
});
