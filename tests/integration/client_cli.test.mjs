// The command-line client (`mcpgate tools`, `mcpgate call`, and the errors every client command
// gives) against the real `mcpgate serve`: both protocol eras, the HTTP+SSE transport, typed
// KEY=VALUE arguments, --json, --ignore-tool, --header, and failures a person can act on.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { recorder, runCli, startServe } from './client_helpers.mjs';

const DEMO = ['add', 'countdown', 'echo', 'greet_user', 'time', 'whoami'];
let srv;

before(async () => {
  srv = await startServe();
});
after(async () => {
  await srv?.stop();
});

const names = (out) => out.trim().split('\n').map((l) => l.split(/\s+/)[0]).sort();

describe('tools', () => {
  for (const [label, extra] of [
    ['2026-07-28 (probed)', []],
    ['2025-11-25 (pinned)', ['--protocol-version', '2025-11-25']],
    ['2024-11-05 HTTP+SSE', ['--transport', 'sse-only']],
  ]) {
    test(`lists the demo tools over ${label}`, async () => {
      const url = label.includes('SSE') ? `${srv.base}/sse` : srv.url;
      const r = await runCli(['tools', url, '--no-auth', ...extra]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(names(r.stdout), DEMO);
      assert.match(r.stdout, /^add {2}Adds a and b\.$/m);
    });
  }

  test('http-first falls back to HTTP+SSE on its own', async () => {
    const r = await runCli(['tools', `${srv.base}/sse`, '--no-auth', '--debug']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(names(r.stdout), DEMO);
    assert.match(r.stderr, /trying the HTTP\+SSE transport/);
  });

  test('--json prints the tools as the server describes them', async () => {
    const r = await runCli(['tools', srv.url, '--no-auth', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const tools = JSON.parse(r.stdout);
    assert.deepEqual(tools.map((t) => t.name).sort(), DEMO);
    const add = tools.find((t) => t.name === 'add');
    assert.equal(add.inputSchema.type, 'object');
  });

  test('--ignore-tool hides tools (case-insensitive glob)', async () => {
    const r = await runCli(['tools', srv.url, '--no-auth', '--ignore-tool', 'GREET*',
      '--ignore-tool', 'c?untdown']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(names(r.stdout), ['add', 'echo', 'time', 'whoami']);
  });
});

describe('call', () => {
  test('KEY=VALUE arguments take the type the schema gives', async () => {
    const r = await runCli(['call', srv.url, 'add', 'a=2', 'b=3', '--no-auth']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '5\n');
    // echo's text is a string: 123 stays "123", not a number the schema would refuse
    const e = await runCli(['call', srv.url, 'echo', 'text=123', '--no-auth']);
    assert.equal(e.code, 0, e.stderr);
    assert.equal(e.stdout, '123\n');
  });

  test('one JSON object as the arguments, in both eras', async () => {
    for (const extra of [[], ['--protocol-version', '2025-11-25']]) {
      const r = await runCli(['call', srv.url, 'add', '{"a":40,"b":2}', '--no-auth', ...extra]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '42\n');
    }
  });

  test('--json prints the result, structuredContent included', async () => {
    const r = await runCli(['call', srv.url, 'add', 'a=1', 'b=1', '--no-auth', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.deepEqual(res.structuredContent, { sum: 2 });
    assert.equal(res.isError ?? false, false);
  });

  test('a tool error exits 1 and still prints what the tool said', async () => {
    const r = await runCli(['call', srv.url, 'add', 'a=x', 'b=1', '--no-auth']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /Invalid arguments for tool 'add'/);
  });

  test('an unknown tool is a JSON-RPC error on stderr, exit 1', async () => {
    const r = await runCli(['call', srv.url, 'no_such_tool', '--no-auth']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no_such_tool/);
    assert.match(r.stderr, /-32602/);
  });

  test('an ignored tool is refused without asking the server', async () => {
    const r = await runCli(['call', srv.url, 'add', 'a=1', 'b=2', '--no-auth',
      '--ignore-tool', 'add']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ignored/);
  });

  test('KEY:=JSON gives raw JSON; bad arguments are usage errors', async () => {
    const r = await runCli(['call', srv.url, 'add', 'a:=4', 'b:=5', '--no-auth']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '9\n');
    const bad = await runCli(['call', srv.url, 'add', 'nonsense', '--no-auth']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /not KEY=VALUE/);
  });
});

describe('errors a person can act on', () => {
  test('nothing listening: exit 1 saying it could not connect', async () => {
    const r = await runCli(['tools', 'http://127.0.0.1:9/mcp', '--no-auth']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot connect to http:\/\/127\.0\.0\.1:9\/mcp: .*could not connect/);
  });

  test('plain http to a remote host is refused unless --allow-http', async () => {
    const r = await runCli(['tools', 'http://mcp.example.com/mcp']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--allow-http/);
  });

  test('not an URL, no URL, unknown option, unknown transport', async () => {
    for (const [args, re] of [
      [['tools', 'ftp://x/y'], /not an absolute http\(s\) URL/],
      [['call'], /the server URL is missing/],
      [['call', srv.url], /the tool name is missing/],
      [['tools', srv.url, '--frobnicate'], /unknown option '--frobnicate'/],
      [['tools', srv.url, '--transport', 'carrier-pigeon'], /unknown --transport/],
      [['tools', srv.url, '--protocol-version', '1999-01-01'], /not a revision/],
      [['connect', srv.url, 'notaport'], /unexpected argument 'notaport'/],
    ]) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
  });

  test('token without a sign-in says how to sign in', async () => {
    const cfg = `${srv.dir}/cfg-token`;
    const r = await runCli(['token', srv.url, '--config-dir', cfg]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not signed in .* run: mcpgate login/);
    assert.equal(r.stdout, '');
  });

  test('every client command has --help', async () => {
    for (const cmd of ['connect', 'login', 'logout', 'token', 'tools', 'call']) {
      const r = await runCli([cmd, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`^usage: mcpgate ${cmd} URL`));
      assert.match(r.stdout, /--static-oauth-client-info/);
      assert.match(r.stdout, /--transport/);
    }
  });
});

describe('headers', () => {
  test('--header (both forms, ${VAR}) and --header-file reach the server', async () => {
    const rec = await recorder(() => ({ status: 404 }));
    const fs = await import('node:fs');
    const hf = `${srv.dir}/headers.txt`;
    fs.writeFileSync(hf, '# a comment\n\nX-From-File: yes\r\n');
    try {
      const r = await runCli(['tools', `${rec.url}/mcp`, '--no-auth', '--transport', 'http-only',
        '--header', 'X-Api-Key: ${TEST_KEY}', '--header', 'X-Nospace:tight',
        '--header-file', hf], { env: { TEST_KEY: 'k-123 with spaces' } });
      assert.equal(r.code, 1);
      assert.ok(rec.requests.length >= 1);
      for (const q of rec.requests) {
        assert.equal(q.headers['x-api-key'], 'k-123 with spaces');
        assert.equal(q.headers['x-nospace'], 'tight');
        assert.equal(q.headers['x-from-file'], 'yes');
      }
      // a header that would split the request is refused before anything is sent
      const bad = await runCli(['tools', `${rec.url}/mcp`, '--header', 'Bad Name: x']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /not a header name/);
    } finally {
      await rec.close();
    }
  });

  test('the probe order: server/discover, then initialize, then GET for HTTP+SSE', async () => {
    const rec = await recorder(() => ({ status: 404 }));
    try {
      const r = await runCli(['tools', `${rec.url}/mcp`, '--no-auth']);
      assert.equal(r.code, 1);
      const seen = rec.requests.map((q) => `${q.method} ${q.body ? JSON.parse(q.body).method : ''}`);
      assert.deepEqual(seen, ['POST server/discover', 'POST initialize', 'GET ']);
      const [discover, init, get] = rec.requests;
      assert.equal(discover.headers['mcp-protocol-version'], '2026-07-28');
      assert.equal(discover.headers['mcp-method'], 'server/discover');
      assert.equal(JSON.parse(discover.body).params._meta['io.modelcontextprotocol/protocolVersion'],
        '2026-07-28');
      assert.equal(init.headers['mcp-protocol-version'], undefined);
      assert.match(init.headers.accept, /application\/json/);
      assert.match(init.headers.accept, /text\/event-stream/);
      assert.equal(get.headers.accept, 'text/event-stream');
    } finally {
      await rec.close();
    }
  });
});
