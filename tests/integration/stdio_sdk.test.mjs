// The official TypeScript SDK client (legacy era, initialize handshake) against the real binary
// over stdio, every message captured and checked against the official schema afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  checkSchemas,
  connectSdk,
  loadSdk,
  readCapture,
  readCaptureUntil,
  serverExitCode,
  sleep,
} from './helpers.mjs';

const { types } = await loadSdk();
const { LoggingMessageNotificationSchema, ElicitRequestSchema } = types;

describe('mcpgate over stdio with the SDK client', () => {
  let conn;
  let client;
  const logs = []; // params of every notifications/message received

  before(async () => {
    conn = await connectSdk({ label: 'sdk' });
    client = conn.client;
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
      logs.push(n.params);
    });
  });

  after(async () => {
    await client?.close();
  });

  test('initialize negotiates the latest legacy revision and announces the capabilities', () => {
    assert.equal(client.getServerVersion().name, 'mcpgate');
    assert.equal(typeof client.getServerVersion().version, 'string');
    const caps = client.getServerCapabilities();
    for (const c of ['tools', 'resources', 'prompts', 'logging'])
      assert.ok(caps[c], `capability ${c} missing: ${JSON.stringify(caps)}`);
    assert.equal(conn.negotiated.version, '2025-11-25');
  });

  test('tools/list has the six demo tools with their input schemas', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), [
      'add',
      'countdown',
      'echo',
      'greet_user',
      'time',
      'whoami',
    ]);
    const echo = tools.find((t) => t.name === 'echo');
    assert.equal(echo.inputSchema.type, 'object');
    assert.equal(echo.inputSchema.properties.text.type, 'string');
    assert.deepEqual(echo.inputSchema.required, ['text']);
    const add = tools.find((t) => t.name === 'add');
    assert.equal(add.outputSchema.properties.sum.type, 'number');
  });

  test('tools/call echo and add', async () => {
    const echoed = await client.callTool({ name: 'echo', arguments: { text: 'héllo, world' } });
    assert.notEqual(echoed.isError, true);
    assert.deepEqual(echoed.content, [{ type: 'text', text: 'héllo, world' }]);

    const sum = await client.callTool({ name: 'add', arguments: { a: 2.5, b: 40 } });
    assert.notEqual(sum.isError, true);
    assert.equal(sum.structuredContent.sum, 42.5);
    assert.equal(sum.content[0].text, '42.5');
  });

  test('tools/call time and whoami', async () => {
    const t = await client.callTool({ name: 'time', arguments: {} });
    assert.match(t.structuredContent.utc, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.ok(Math.abs(t.structuredContent.unix - Date.now() / 1000) < 120, 'clock far off');
    const w = await client.callTool({ name: 'whoami', arguments: {} });
    assert.equal(w.structuredContent.authenticated, false);
    assert.equal(w.structuredContent.protocolVersion, '2025-11-25');
  });

  test('invalid arguments are a tool error naming the missing property, not a JSON-RPC error', async () => {
    const r = await client.callTool({ name: 'echo', arguments: {} });
    assert.equal(r.isError, true);
    assert.equal(r.content[0].type, 'text');
    assert.match(r.content[0].text, /'text'/);
    assert.match(r.content[0].text, /required/);

    const wrongType = await client.callTool({ name: 'add', arguments: { a: 'one', b: 2 } });
    assert.equal(wrongType.isError, true);
    assert.match(wrongType.content[0].text, /\/a/);
  });

  test('an unknown tool is JSON-RPC error -32602', async () => {
    await assert.rejects(client.callTool({ name: 'no_such_tool', arguments: {} }), (e) => {
      assert.equal(e.code, -32602);
      assert.match(e.message, /no_such_tool/);
      return true;
    });
  });

  test('greet_user without the elicitation capability is a tool error', async () => {
    const r = await client.callTool({ name: 'greet_user', arguments: {} });
    assert.equal(r.isError, true);
    assert.match(r.content[0].text, /elicitation/);
  });

  test('resources: list, read, template, not found', async () => {
    const { resources } = await client.listResources();
    const readme = resources.find((r) => r.uri === 'demo://readme');
    assert.ok(readme, JSON.stringify(resources));
    assert.equal(readme.mimeType, 'text/markdown');

    const { resourceTemplates } = await client.listResourceTemplates();
    assert.deepEqual(
      resourceTemplates.map((t) => t.uriTemplate),
      ['demo://numbers/{n}'],
    );

    const doc = await client.readResource({ uri: 'demo://readme' });
    assert.equal(doc.contents.length, 1);
    assert.equal(doc.contents[0].uri, 'demo://readme');
    assert.match(doc.contents[0].text, /^# mcpgate demo/);

    const seven = await client.readResource({ uri: 'demo://numbers/7' });
    assert.equal(seven.contents[0].uri, 'demo://numbers/7');
    assert.equal(seven.contents[0].text, '7 is odd.');
    const eight = await client.readResource({ uri: 'demo://numbers/8' });
    assert.equal(eight.contents[0].text, '8 is even.');

    await assert.rejects(client.readResource({ uri: 'demo://missing' }), (e) => {
      assert.equal(e.code, -32002);
      return true;
    });
  });

  test('prompts: list, get, missing required argument', async () => {
    const { prompts } = await client.listPrompts();
    const greeting = prompts.find((p) => p.name === 'greeting');
    assert.ok(greeting, JSON.stringify(prompts));
    const nameArg = greeting.arguments.find((a) => a.name === 'name');
    assert.equal(nameArg.required, true);

    const p = await client.getPrompt({ name: 'greeting', arguments: { name: 'Grace', style: 'formal' } });
    assert.ok(p.messages.length >= 1);
    assert.equal(p.messages[0].content.type, 'text');
    assert.match(p.messages[0].content.text, /Grace/);
    assert.match(p.messages[0].content.text, /formal/);

    await assert.rejects(client.getPrompt({ name: 'greeting', arguments: { style: 'funny' } }), (e) => {
      assert.equal(e.code, -32602);
      assert.match(e.message, /name/);
      return true;
    });
  });

  test('completion/complete suggests styles for the greeting prompt', async () => {
    const r = await client.complete({
      ref: { type: 'ref/prompt', name: 'greeting' },
      argument: { name: 'style', value: 'f' },
    });
    assert.deepEqual([...r.completion.values].sort(), ['formal', 'friendly', 'funny']);
    const po = await client.complete({
      ref: { type: 'ref/prompt', name: 'greeting' },
      argument: { name: 'style', value: 'po' },
    });
    assert.deepEqual(po.completion.values, ['poetic']);
  });

  test('countdown reports progress and logs each step', async () => {
    logs.length = 0;
    const progress = [];
    const r = await client.callTool(
      { name: 'countdown', arguments: { steps: 3, intervalMs: 20 } },
      undefined,
      { onprogress: (p) => progress.push(p) },
    );
    assert.equal(r.content[0].text, 'counted down 3 steps');
    assert.ok(progress.length >= 3, `progress: ${JSON.stringify(progress)}`);
    assert.ok(progress.every((p) => p.total === 3), JSON.stringify(progress));
    for (let i = 1; i < progress.length; i++)
      assert.ok(progress[i].progress > progress[i - 1].progress, 'progress must increase');
    // The SDK may drop a progress notification that arrives right before the response (it
    // handles notifications a tick later), so the last one is read from the capture.
    const isCall = (m) => m.method === 'tools/call' && m.params.name === 'countdown';
    const call = (await readCaptureUntil(conn.inFile, isCall)).findLast(isCall);
    const token = call.params._meta.progressToken;
    const out = await readCaptureUntil(conn.outFile, (m) => m.id === call.id && m.result);
    const sent = out.filter(
      (m) => m.method === 'notifications/progress' && m.params.progressToken === token,
    );
    assert.deepEqual(
      sent.map((m) => m.params.progress),
      [0, 1, 2, 3],
    );
    assert.equal(sent.at(-1).params.message, 'done');
    const mine = logs.filter((l) => l.logger === 'countdown');
    assert.deepEqual(
      mine.map((l) => [l.level, l.data.remaining]),
      [
        ['info', 3],
        ['info', 2],
        ['info', 1],
      ],
    );
  });

  test('logging/setLevel error silences the info logs', async () => {
    await client.setLoggingLevel('error');
    logs.length = 0;
    const r = await client.callTool({ name: 'countdown', arguments: { steps: 2, intervalMs: 10 } });
    assert.equal(r.content[0].text, 'counted down 2 steps');
    await sleep(100);
    assert.deepEqual(logs, []);
    await client.setLoggingLevel('info');
  });

  test('cancelling a long countdown stops it and the server stays usable', async () => {
    logs.length = 0;
    const ac = new AbortController();
    const started = Date.now();
    const call = client.callTool(
      { name: 'countdown', arguments: { steps: 100, intervalMs: 100 } },
      undefined,
      { signal: ac.signal },
    );
    // Let it run a few steps, then cancel.
    while (logs.length < 2 && Date.now() - started < 5000) await sleep(20);
    assert.ok(logs.length >= 2, 'the countdown never started logging');
    ac.abort('enough');
    await assert.rejects(call);
    assert.ok(Date.now() - started < 3000, 'the call did not end soon after abort');

    // The server stopped the handler: no further steps are logged.
    await sleep(300);
    const seen = logs.length;
    await sleep(500);
    assert.equal(logs.length, seen, 'the countdown kept running after notifications/cancelled');
    assert.ok(seen < 20, `${seen} steps logged: the countdown was not stopped`);

    const r = await client.callTool({ name: 'echo', arguments: { text: 'still here' } });
    assert.equal(r.content[0].text, 'still here');
  });

  test('the captured traffic matches the official schema', async () => {
    await client.close();
    client = undefined;
    // The SDK closes stdin and waits 2 s before SIGTERM: the server must have exited by itself.
    assert.equal(serverExitCode(conn), 0, 'the server did not exit cleanly when stdin closed');
    const out = readCapture(conn.outFile);
    const init = out.find((m) => m.result?.protocolVersion !== undefined);
    assert.equal(init.result.protocolVersion, '2025-11-25');
    // The cancelled call got no response: the spec says not to send one.
    const sent = readCapture(conn.inFile);
    const cancelled = sent.find((m) => m.method === 'notifications/cancelled');
    assert.ok(cancelled, 'the client sent no notifications/cancelled');
    const rid = cancelled.params.requestId;
    assert.equal(
      out.filter((m) => m.id === rid && m.method === undefined).length,
      0,
      'the server answered a cancelled request',
    );
    const { passed } = checkSchemas(conn.inFile, conn.outFile);
    assert.ok(passed >= 25, `only ${passed} messages checked`);
  });
});

describe('elicitation with the SDK client', () => {
  test('greet_user asks for the name and greets with the answer', async () => {
    const conn = await connectSdk({ label: 'sdk-elicit', capabilities: { elicitation: {} } });
    const asked = [];
    conn.client.setRequestHandler(ElicitRequestSchema, (req) => {
      asked.push(req.params);
      return { action: 'accept', content: { name: 'Ada' } };
    });
    try {
      const r = await conn.client.callTool({ name: 'greet_user', arguments: {} });
      assert.notEqual(r.isError, true);
      assert.equal(r.content[0].text, 'Hello, Ada!');
      assert.equal(asked.length, 1);
      assert.equal(asked[0].requestedSchema.properties.name.type, 'string');

      conn.client.setRequestHandler(ElicitRequestSchema, () => ({ action: 'decline' }));
      const declined = await conn.client.callTool({ name: 'greet_user', arguments: {} });
      assert.doesNotMatch(declined.content[0].text, /Hello/);
      assert.match(declined.content[0].text, /decline/);
    } finally {
      await conn.client.close();
    }
    checkSchemas(conn.inFile, conn.outFile);
  });
});
