// `mcpgate connect` driven by the official TypeScript SDK's stdio client (a legacy-era client,
// like Claude Desktop) and by a raw 2026-07-28 line client, in front of the real `mcpgate
// serve` spoken to in each era and transport: tools, elicitation across the era bridge (MRTR one
// way, server requests the other), progress, cancellation, a lost session, stdin EOF. Every
// message connect writes to its client is checked against the official schema.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { checkSchemas, loadSdk, readCapture, sleep, withTimeout } from './helpers.mjs';
import { LineClient, connectThroughProxy, freePort, startServe } from './client_helpers.mjs';

const { types } = await loadSdk();
const { ElicitRequestSchema, LoggingMessageNotificationSchema } = types;
const DEMO = ['add', 'countdown', 'echo', 'greet_user', 'time', 'whoami'];
const MODERN = '2026-07-28';
const META = (caps = {}) => ({
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientCapabilities': caps,
  'io.modelcontextprotocol/clientInfo': { name: 'line-client', version: '1' },
});

let srv;
before(async () => {
  srv = await startServe();
});
after(async () => {
  await srv?.stop();
});

// The same conversation through every upstream era: list, call, elicitation, progress, logging.
for (const [label, url, extra] of [
  ['a 2026-07-28 server (bridged)', () => srv.url, []],
  ['a 2025-11-25 server', () => srv.url, ['--protocol-version', '2025-11-25']],
  ['an HTTP+SSE server', () => `${srv.base}/sse`, ['--transport', 'sse-only']],
]) {
  describe(`SDK client -> connect -> ${label}`, () => {
    let c;
    before(async () => {
      c = await connectThroughProxy([url(), '--no-auth', ...extra], {
        label: 'connect-sdk', capabilities: { elicitation: {} },
      });
    });
    after(async () => {
      await c?.client.close();
    });

    test('initialize answered with the server\'s identity and tools capability', () => {
      assert.equal(c.client.getServerVersion().name, 'mcpgate');
      assert.ok(c.client.getServerCapabilities().tools, 'tools capability');
    });

    test('tools/list and tools/call', async () => {
      const { tools } = await c.client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), DEMO);
      const r = await c.client.callTool({ name: 'add', arguments: { a: 40, b: 2 } });
      assert.deepEqual(r.structuredContent, { sum: 42 });
      assert.equal(r.content[0].text, '42');
    });

    test('elicitation reaches the client and its answer the tool', async () => {
      const asked = [];
      c.client.setRequestHandler(ElicitRequestSchema, async (req) => {
        asked.push(req.params);
        return { action: 'accept', content: { name: 'Ada' } };
      });
      const r = await c.client.callTool({ name: 'greet_user', arguments: {} });
      assert.equal(r.content[0].text, 'Hello, Ada!');
      assert.equal(asked.length, 1);
      assert.match(asked[0].message, /name/);
    });

    test('progress notifications arrive with the client\'s token', async () => {
      const seen = [];
      const r = await c.client.callTool({ name: 'countdown', arguments: { steps: 3 } }, undefined,
        { onprogress: (p) => seen.push(p) });
      assert.match(r.content[0].text, /counted down 3 steps/);
      // one per step, then (when it comes before the result) the final "done" at 3 of 3
      const got = seen.map((p) => p.progress);
      assert.deepEqual(got.slice(0, 3), [0, 1, 2]);
      assert.ok(got.length <= 4 && (got.length === 3 || got[3] === 3), JSON.stringify(got));
      assert.ok(seen.every((p) => p.total === 3));
    });

    test('logging/setLevel, then the tool\'s log messages', async () => {
      const logs = [];
      c.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n));
      await c.client.setLoggingLevel('debug');
      await c.client.callTool({ name: 'countdown', arguments: { steps: 2 } });
      await withTimeout((async () => { while (logs.length < 2) await sleep(20); })(), 5000,
        'log messages');
      assert.ok(logs.every((n) => typeof n.params.level === 'string'));
    });

    test('twenty calls in flight at once, each answered with its own result', async () => {
      const calls = Array.from({ length: 20 }, (_, i) =>
        c.client.callTool({ name: 'add', arguments: { a: i, b: 1000 } }));
      const got = await Promise.all(calls);
      assert.deepEqual(got.map((r) => r.structuredContent.sum),
        Array.from({ length: 20 }, (_, i) => i + 1000));
    });

    test('ping', async () => {
      assert.deepEqual(await c.client.ping(), {});
    });

    test('cancellation: the call ends, the next one works', async () => {
      const ac = new AbortController();
      const p = c.client.callTool({ name: 'countdown', arguments: { steps: 50 } }, undefined,
        { signal: ac.signal });
      await sleep(300);
      ac.abort('test');
      await assert.rejects(p);
      const r = await c.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } });
      assert.equal(r.content[0].text, '2');
    });

    test('cancelled just as the answers come, a hundred times: connect stays whole', async () => {
      const runs = Array.from({ length: 100 }, async (_, i) => {
        const ac = new AbortController();
        const p = c.client.callTool({ name: 'add', arguments: { a: i, b: 1 } }, undefined,
          { signal: ac.signal });
        await new Promise((resolve) => (i % 2 ? setImmediate : setTimeout)(resolve, i % 3));
        ac.abort('race');
        return p.then((r) => r.structuredContent.sum, () => 'cancelled');
      });
      const got = await Promise.all(runs);
      got.forEach((v, i) => assert.ok(v === 'cancelled' || v === i + 1, `${i}: ${v}`));
      const r = await c.client.callTool({ name: 'add', arguments: { a: 2, b: 2 } });
      assert.equal(r.content[0].text, '4');
    });

    test('what connect wrote follows the schema of its revision', async () => {
      await c.client.close();
      const res = checkSchemas(c.files.inFile, c.files.outFile);
      assert.ok(res.passed > 10, res.output);
      c = null;
    });
  });
}

describe('a 2026-07-28 line client -> connect', () => {
  for (const [label, extra] of [
    ['-> a legacy server (bridged: server requests become input_required)',
      ['--protocol-version', '2025-11-25']],
    ['-> a 2026-07-28 server (passed through)', []],
  ]) {
    test(label, async () => {
      const lc = new LineClient([srv.url, '--no-auth', ...extra], { label: 'connect-modern' });
      try {
        const d = await lc.request('server/discover', { _meta: META() });
        assert.ok(d.result.supportedVersions.includes(MODERN), JSON.stringify(d));
        assert.ok(d.result.capabilities.tools);
        assert.equal(d.result.resultType, 'complete');
        const l = await lc.request('tools/list', { _meta: META() });
        assert.deepEqual(l.result.tools.map((t) => t.name).sort(), DEMO);
        const a = await lc.request('tools/call', { _meta: META(), name: 'add',
          arguments: { a: 2, b: 2 } });
        assert.deepEqual(a.result.structuredContent, { sum: 4 });
        assert.equal(a.result.resultType, 'complete');
        // elicitation as MRTR: input_required, then the retry with the answer
        const caps = { elicitation: { form: {} } };
        const first = await lc.request('tools/call', { _meta: META(caps), name: 'greet_user',
          arguments: {} });
        assert.equal(first.result.resultType, 'input_required', JSON.stringify(first));
        const keys = Object.keys(first.result.inputRequests);
        assert.equal(keys.length, 1);
        assert.equal(first.result.inputRequests[keys[0]].method, 'elicitation/create');
        assert.equal(typeof first.result.requestState, 'string');
        const second = await lc.request('tools/call', {
          _meta: META(caps), name: 'greet_user', arguments: {},
          inputResponses: { [keys[0]]: { action: 'accept', content: { name: 'Grace' } } },
          requestState: first.result.requestState,
        });
        assert.equal(second.result.content[0].text, 'Hello, Grace!', JSON.stringify(second));
        // a made-up requestState is refused, not forwarded
        if (extra.length > 0) {
          const bogus = await lc.request('tools/call', { _meta: META(caps), name: 'greet_user',
            arguments: {}, inputResponses: {}, requestState: 'not-a-state' });
          assert.equal(bogus.error.code, -32602);
        }
      } finally {
        assert.equal(await lc.close(), 0);
      }
      const res = checkSchemas(lc.inFile, lc.outFile);
      assert.ok(res.passed >= 5, res.output);
    });
  }
});

describe('robustness', () => {
  test('a line that is not JSON gets -32700 and the proxy goes on', async () => {
    const lc = new LineClient([srv.url, '--no-auth', '--protocol-version', '2025-11-25']);
    try {
      lc.send('this is not json');
      const e = await lc.waitFor((m) => m.error?.code === -32700, 5000, 'the parse error');
      assert.equal(e.id, null);
      lc.send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
        protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
      const init = await lc.waitFor((m) => m.id === 1, 10000, 'initialize');
      assert.equal(init.result.protocolVersion, '2025-11-25');
    } finally {
      await lc.close();
    }
  });

  test('--ping-interval keeps the session busy while the client is idle', async () => {
    const lc = new LineClient([srv.url, '--no-auth', '--protocol-version', '2025-11-25',
      '--ping-interval', '1', '--debug']);
    try {
      lc.send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
        protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
      await lc.waitFor((m) => m.id === 1, 10000, 'initialize');
      await sleep(2600);
      assert.ok((lc.stderr.match(/keep-alive ping/g) ?? []).length >= 2, lc.stderr);
      const r = await lc.request('tools/list', undefined, 2);
      assert.ok(r.result?.tools?.length > 0, JSON.stringify(r));
      // the pings are the proxy's own: nothing of them reaches the client
      assert.ok(lc.messages.every((m) => m.id === 1 || m.id === r.id), JSON.stringify(lc.messages));
    } finally {
      await lc.close();
    }
  });

  test('stdin EOF ends connect at once, with status 0', async () => {
    const lc = new LineClient([srv.url, '--no-auth']);
    await lc.request('tools/list', { _meta: META() });
    const t0 = Date.now();
    assert.equal(await lc.close(), 0);
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  });

  test('a server that forgets the session: connect initializes again and replays', async () => {
    const port = await freePort();
    let up = await startServe({ port });
    const c = await connectThroughProxy([up.url, '--no-auth', '--protocol-version', '2025-11-25'],
      { label: 'connect-404' });
    try {
      assert.equal((await c.client.callTool({ name: 'add', arguments: { a: 1, b: 2 } }))
        .content[0].text, '3');
      await up.stop();
      up = await startServe({ port, dir: up.dir });
      const r = await c.client.callTool({ name: 'add', arguments: { a: 3, b: 4 } });
      assert.equal(r.content[0].text, '7');
      assert.match(c.stderr(), /initializ/i);
    } finally {
      await c.client.close();
      await up.stop();
    }
  });

  test('the server is down: initialize gets an error that names the server', async () => {
    const lc = new LineClient(['http://127.0.0.1:9/mcp', '--no-auth']);
    try {
      lc.send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
        protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
      const e = await lc.waitFor((m) => m.id === 1, 15000, 'the error');
      assert.equal(e.error.code, -32000);
      assert.match(e.error.message, /could not connect to http:\/\/127\.0\.0\.1:9\/mcp/);
    } finally {
      await lc.close();
    }
    assert.ok(readCapture(lc.outFile).every((m) => m.jsonrpc === '2.0'), 'stdout: JSON-RPC only');
  });
});
