// The stateless 2026-07-28 revision over stdio, spoken as raw JSON lines to one server process
// (started with --max-message 1k), and the framing errors every client can run into. The traffic
// is captured and checked against the official schema at the end.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { checkSchemas, META_SERVER, MODERN, modernMeta, RawClient } from './helpers.mjs';

describe('2026-07-28 over stdio (raw JSON lines)', () => {
  let c;

  before(() => {
    c = new RawClient({ label: 'modern', serverArgs: ['--max-message', '1k'] });
  });

  after(async () => {
    if (c && c.proc.exitCode === null) await c.close();
  });

  const call = (name, args, caps = {}, extra = {}) =>
    c.request('tools/call', { name, arguments: args, ...extra, _meta: modernMeta(caps) });

  const assertComplete = (res) => {
    assert.equal(res.error, undefined, JSON.stringify(res.error));
    assert.equal(res.result.resultType, 'complete');
    assert.equal(res.result._meta[META_SERVER].name, 'mcpgate');
  };

  test('server/discover lists the supported versions', async () => {
    const res = await c.request('server/discover', { _meta: modernMeta() });
    assertComplete(res);
    assert.ok(res.result.supportedVersions.includes(MODERN), JSON.stringify(res.result));
    assert.ok(res.result.supportedVersions.includes('2025-11-25'));
    assert.ok(res.result.capabilities.tools, JSON.stringify(res.result.capabilities));
    assert.equal(typeof res.result._meta[META_SERVER].version, 'string');
  });

  test('tools/list carries cache hints', async () => {
    const res = await c.request('tools/list', { _meta: modernMeta() });
    assertComplete(res);
    assert.equal(res.result.tools.length, 6);
    assert.ok(Number.isInteger(res.result.ttlMs) && res.result.ttlMs >= 0, `ttlMs ${res.result.ttlMs}`);
    assert.ok(['private', 'public'].includes(res.result.cacheScope), res.result.cacheScope);
  });

  test('tools/call echo', async () => {
    const res = await call('echo', { text: 'modern hello' });
    assertComplete(res);
    assert.deepEqual(res.result.content, [{ type: 'text', text: 'modern hello' }]);
  });

  test('resources/read of a template carries cache hints', async () => {
    const res = await c.request('resources/read', { uri: 'demo://numbers/10', _meta: modernMeta() });
    assertComplete(res);
    assert.equal(res.result.contents[0].text, '10 is even.');
    assert.ok(Number.isInteger(res.result.ttlMs));
  });

  test('countdown: progress with a progressToken, logs only with a logLevel', async () => {
    const quiet = await c.request('tools/call', {
      name: 'countdown',
      arguments: { steps: 2, intervalMs: 10 },
      _meta: modernMeta({}, { progressToken: 'quiet' }),
    });
    assertComplete(quiet);
    const loud = await c.request('tools/call', {
      name: 'countdown',
      arguments: { steps: 2, intervalMs: 10 },
      _meta: modernMeta({}, { progressToken: 'loud', 'io.modelcontextprotocol/logLevel': 'info' }),
    });
    assertComplete(loud);
    assert.equal(loud.result.content[0].text, 'counted down 2 steps');
    const progress = (tok) =>
      c.notifications
        .filter((n) => n.method === 'notifications/progress' && n.params.progressToken === tok)
        .map((n) => n.params.progress);
    assert.deepEqual(progress('quiet'), [0, 1, 2]);
    assert.deepEqual(progress('loud'), [0, 1, 2]);
    // No logLevel in _meta: no notifications/message for that request (2026-07-28 opt-in).
    const logs = c.notifications.filter((n) => n.method === 'notifications/message');
    assert.deepEqual(
      logs.map((n) => [n.params.logger, n.params.level, n.params.data.remaining]),
      [
        ['countdown', 'info', 2],
        ['countdown', 'info', 1],
      ],
    );
  });

  test('MRTR: greet_user asks for input, the retry with the answer completes', async () => {
    const caps = { elicitation: {} };
    const first = await call('greet_user', {}, caps);
    assert.equal(first.error, undefined, JSON.stringify(first.error));
    assert.equal(first.result.resultType, 'input_required');
    const ask = first.result.inputRequests.name;
    assert.equal(ask.method, 'elicitation/create');
    assert.equal(ask.params.requestedSchema.properties.name.type, 'string');
    assert.equal(typeof first.result.requestState, 'string');

    const retry = await call('greet_user', {}, caps, {
      inputResponses: { name: { action: 'accept', content: { name: 'Lin' } } },
      requestState: first.result.requestState,
    });
    assertComplete(retry);
    assert.equal(retry.result.content[0].text, 'Hello, Lin!');
  });

  test('MRTR: greet_user without the elicitation capability is a tool error', async () => {
    const res = await call('greet_user', {}, {});
    assertComplete(res);
    assert.equal(res.result.isError, true);
  });

  test('MRTR: a tampered requestState is -32602', async () => {
    const caps = { elicitation: {} };
    const first = await call('greet_user', {}, caps);
    const state = first.result.requestState;
    let i = Math.floor(state.length / 2);
    if (state[i] === '.') i++;
    const tampered = state.slice(0, i) + (state[i] === 'A' ? 'B' : 'A') + state.slice(i + 1);
    assert.notEqual(tampered, state);
    const res = await call('greet_user', {}, caps, {
      inputResponses: { name: { action: 'accept', content: { name: 'Mallory' } } },
      requestState: tampered,
    });
    assert.equal(res.result, undefined, JSON.stringify(res.result));
    assert.equal(res.error.code, -32602);
  });

  test('an unsupported version is -32022 listing the supported ones', async () => {
    const res = await c.request('tools/list', {
      _meta: { 'io.modelcontextprotocol/protocolVersion': '2099-01-01', 'io.modelcontextprotocol/clientCapabilities': {} },
    });
    assert.equal(res.error.code, -32022);
    assert.ok(res.error.data.supported.includes(MODERN), JSON.stringify(res.error.data));
    assert.equal(res.error.data.requested, '2099-01-01');
  });

  test('missing clientCapabilities is -32602', async () => {
    const res = await c.request('tools/list', {
      _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN },
    });
    assert.equal(res.error.code, -32602);
    assert.match(res.error.message, /clientCapabilities/);
  });

  test('ping does not exist in the 2026-07-28 era', async () => {
    const res = await c.request('ping', { _meta: modernMeta() });
    assert.equal(res.error.code, -32601);
  });

  test('a legacy request before initialize is an error', async () => {
    const res = await c.request('tools/list', {});
    assert.equal(res.result, undefined, JSON.stringify(res.result));
    assert.ok(res.error, JSON.stringify(res));
    assert.match(res.error.message, /initialize/);
  });

  test('malformed JSON is -32700 without an id (MCP schemas forbid id null)', async () => {
    c.writeLine('{"jsonrpc":"2.0","id":900,"method":"tools/list",');
    const res = await c.nextNullIdResponse();
    assert.ok(!('id' in res), JSON.stringify(res));
    assert.equal(res.error.code, -32700);
  });

  test('a batch is -32600', async () => {
    c.writeLine(JSON.stringify([{ jsonrpc: '2.0', id: 901, method: 'tools/list', params: { _meta: modernMeta() } }]));
    const res = await c.nextNullIdResponse();
    assert.equal(res.error.code, -32600);
    assert.match(res.error.message, /batch/);
  });

  test('invalid UTF-8 is -32700', async () => {
    c.writeLine(
      Buffer.concat([
        Buffer.from('{"jsonrpc":"2.0","id":902,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'),
        Buffer.from([0xc3, 0x28, 0xff]),
        Buffer.from(`"},"_meta":${JSON.stringify(modernMeta())}}}`),
      ]),
    );
    const res = await c.nextNullIdResponse();
    assert.equal(res.error.code, -32700);
    // Nothing was executed for it.
    await assert.rejects(c.response(902, 300));
  });

  test('a line over --max-message is -32600 and the next line is still answered', async () => {
    for (const size of [2000, 200000]) {
      const big = JSON.stringify({
        jsonrpc: '2.0',
        id: 903 + size,
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: 'x'.repeat(size) }, _meta: modernMeta() },
      });
      c.writeLine(big);
      const res = await c.nextNullIdResponse();
      assert.equal(res.error.code, -32600);
      assert.match(res.error.message, /limit/);
      const next = await call('echo', { text: `after ${size}` });
      assertComplete(next);
      assert.equal(next.result.content[0].text, `after ${size}`);
    }
    await assert.rejects(c.response(2903, 300), /no response/);
  });

  test('subscriptions/listen is acknowledged', async () => {
    const id = 'listen-1';
    c.writeLine(
      JSON.stringify({
        jsonrpc: '2.0',
        id,
        method: 'subscriptions/listen',
        params: { notifications: { toolsListChanged: true }, _meta: modernMeta() },
      }),
    );
    const ack = await c.waitFor(
      (m) => m.method === 'notifications/subscriptions/acknowledged',
      10000,
      'notifications/subscriptions/acknowledged',
    );
    assert.equal(ack.params.notifications.toolsListChanged, true);
    assert.equal(ack.params._meta['io.modelcontextprotocol/subscriptionId'], id);
  });

  test('the captured traffic matches the official schema', async () => {
    const code = await c.close();
    assert.equal(code, 0);
    const { passed } = checkSchemas(c.inFile, c.outFile);
    assert.ok(passed >= 20, `only ${passed} messages checked`);
  });
});
