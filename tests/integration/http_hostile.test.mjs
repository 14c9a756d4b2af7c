// Hostile and broken HTTP clients against `mcpgate serve` (libmicrohttpd): malformed requests,
// oversized headers and bodies, bad JSON, wrong headers, unknown sessions, DNS-rebinding
// attempts, slowloris, clients that never read, and clients that vanish mid-request. Every
// request goes over a raw socket (node:net), so the test controls every byte. Each case asserts
// the exact status (and JSON-RPC error code and message where there is a body), then that the
// server still serves a fresh client: initialize + tools/call echo. Every wait is bounded: a hang
// fails the test instead of stalling it.
//
// Where libmicrohttpd decides the answer itself (malformed request line, oversized headers), any
// 4xx or a closed connection is accepted.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  BIN,
  META_CAPS,
  META_VERSION,
  MODERN,
  modernMeta,
  sleep,
  withTimeout,
} from './helpers.mjs';

const LEGACY = '2025-06-18';
const MAX_MESSAGE = 65536; // --max-message 64k on the shared server

// ---- the server process ----

class Server {
  // Starts `mcpgate serve` on 127.0.0.1 port 0 and waits for its "serving MCP at" line.
  static async start(args = [], env = {}) {
    const s = new Server();
    // A scratch working directory: nothing the server writes lands in the build tree.
    s.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-hostile-'));
    s.proc = spawn(
      BIN,
      ['serve', '--listen', '127.0.0.1:0', '--no-auth', '--tools', 'demo', '--log-level', 'warn',
        ...args],
      { stdio: ['ignore', 'ignore', 'pipe'], cwd: s.dir, env: { ...process.env, ...env } },
    );
    s.log = '';
    s.proc.stderr.setEncoding('utf8');
    s.exited = new Promise((resolve) => s.proc.on('exit', (code, sig) => resolve({ code, sig })));
    s.port = await withTimeout(
      new Promise((resolve, reject) => {
        s.proc.stderr.on('data', (d) => {
          s.log = (s.log + d).slice(-65536); // the tail, for failure messages
          const m = /serving MCP at http:\/\/127\.0\.0\.1:(\d+)\/mcp/.exec(s.log);
          if (m) resolve(Number(m[1]));
        });
        s.exited.then(({ code, sig }) =>
          reject(new Error(`server exited (${code ?? sig}) before it was ready:\n${s.log}`)),
        );
      }),
      10000,
      'the server did not print its URL',
    );
    return s;
  }

  get alive() {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  assertAlive() {
    assert.ok(
      this.alive,
      `the server died (${this.proc.exitCode ?? this.proc.signalCode}):\n${this.log}`,
    );
  }

  // Resident memory in MiB (from /proc).
  rssMiB() {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${this.proc.pid}/status`, 'utf8'));
    return Number(m[1]) / 1024;
  }

  // SIGTERM; the server must exit 0 (a sanitizer build exits non-zero on leaks) within 20 s
  // (it lets requests finish for up to 10 s, then streams for 5 s).
  async stop() {
    try {
      if (!this.alive) return;
      this.proc.kill('SIGTERM');
      let status;
      try {
        status = await withTimeout(this.exited, 20000, 'the server did not stop after SIGTERM');
      } catch (e) {
        this.proc.kill('SIGKILL');
        await this.exited;
        throw e;
      }
      const how = status.code ?? status.sig;
      assert.equal(status.code, 0, `the server exited with ${how}:\n${this.log}`);
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

// ---- raw HTTP/1.1 over node:net ----

// The response head in buf, or null while incomplete.
function parseHead(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i <= 0) continue;
    const k = l.slice(0, i).trim().toLowerCase();
    const v = l.slice(i + 1).trim();
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  return { status: m ? Number(m[1]) : undefined, statusLine: lines[0], headers, headLen: end + 4 };
}

// Decodes a chunked body as far as it has arrived.
function dechunk(buf) {
  const parts = [];
  let p = 0;
  for (;;) {
    const nl = buf.indexOf('\r\n', p);
    if (nl < 0) return { data: Buffer.concat(parts), done: false };
    const size = parseInt(buf.subarray(p, nl).toString('latin1'), 16);
    if (Number.isNaN(size)) return { data: Buffer.concat(parts), done: true };
    if (size === 0) return { data: Buffer.concat(parts), done: true };
    const start = nl + 2;
    if (buf.length < start + size + 2) {
      parts.push(buf.subarray(start, Math.min(buf.length, start + size)));
      return { data: Buffer.concat(parts), done: false };
    }
    parts.push(buf.subarray(start, start + size));
    p = start + size + 2;
  }
}

// One client connection: bytes in, the response parsed as it arrives.
class Conn {
  constructor(port, { localAddress } = {}) {
    this.chunks = [];
    this.len = 0;
    this.cache = null;
    this.closed = false;
    this.error = null;
    this.waiters = new Set();
    this.sock = net.connect({ port, host: '127.0.0.1', localAddress });
    this.sock.setNoDelay(true);
    this.connected = new Promise((resolve) => {
      this.sock.once('connect', () => resolve(true));
      this.sock.once('close', () => resolve(false));
    });
    this.sock.on('data', (d) => {
      this.chunks.push(d);
      this.len += d.length;
      this.cache = null;
      this.wake();
    });
    this.sock.on('error', (e) => {
      this.error = e; // EPIPE / ECONNRESET when the server hangs up on us: not a test error
    });
    this.sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  get buf() {
    if (this.cache === null) this.cache = Buffer.concat(this.chunks, this.len);
    return this.cache;
  }

  wake() {
    for (const w of [...this.waiters]) w();
  }

  write(data) {
    if (!this.sock.destroyed) this.sock.write(data, () => {});
  }

  // The response so far: head, body (de-chunked), complete.
  parsed() {
    const head = parseHead(this.buf);
    if (head === null) return null;
    const rest = this.buf.subarray(head.headLen);
    let body, complete;
    if (/chunked/i.test(head.headers['transfer-encoding'] ?? '')) {
      const d = dechunk(rest);
      body = d.data;
      complete = d.done;
    } else if (head.headers['content-length'] !== undefined) {
      const n = Number(head.headers['content-length']);
      body = rest.subarray(0, n);
      complete = rest.length >= n;
    } else {
      body = rest;
      complete = this.closed;
    }
    return { ...head, body, text: body.toString('utf8'), complete };
  }

  // Resolves when pred() holds; rejects after ms.
  until(pred, ms, what) {
    if (pred()) return Promise.resolve();
    let done;
    const p = new Promise((resolve) => {
      done = () => {
        if (pred()) {
          this.waiters.delete(done);
          resolve();
        }
      };
      this.waiters.add(done);
    });
    return withTimeout(p, ms, what).finally(() => this.waiters.delete(done));
  }

  // The whole response, or what there is when the server closes the connection.
  async response(ms = 5000) {
    await this.until(
      () => this.closed || this.parsed()?.complete === true,
      ms,
      'no complete response and no close (the server hangs)',
    );
    const r = this.parsed() ?? { status: undefined, headers: {}, body: Buffer.alloc(0), text: '' };
    return { ...r, closed: this.closed, error: this.error, raw: this.buf };
  }

  // The response head (for streams that stay open).
  async head(ms = 5000) {
    await this.until(() => this.closed || this.parsed() !== null, ms, 'no response head');
    return this.parsed() ?? { status: undefined, headers: {}, text: '' };
  }

  // Waits until the (de-chunked) body matches re; returns the match.
  async waitBody(re, ms = 5000) {
    await this.until(() => re.test(this.parsed()?.text ?? ''), ms, `no ${re} on the stream`);
    return re.exec(this.parsed().text);
  }

  destroy() {
    this.sock.destroy();
  }

  reset() {
    if (!this.sock.destroyed) this.sock.resetAndDestroy();
  }
}

// The bytes of one request. Header values of null leave a default header out.
function rawRequest(port, method, path, headers = {}, body = undefined) {
  const h = { Host: `127.0.0.1:${port}`, Connection: 'close', ...headers };
  let b = null;
  if (body !== undefined) {
    b = Buffer.isBuffer(body)
      ? body
      : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
    if (h['Content-Length'] === undefined) h['Content-Length'] = String(b.length);
  }
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(h)) {
    if (v !== null && v !== undefined) head += `${k}: ${v}\r\n`;
  }
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), b ?? Buffer.alloc(0)]);
}

// Sends bytes on a fresh connection and returns the response (or the close).
async function exchange(port, data, { localAddress, ms = 5000 } = {}) {
  const c = new Conn(port, { localAddress });
  try {
    c.write(data);
    return await c.response(ms);
  } finally {
    c.destroy();
  }
}

function request(port, method, path, { headers = {}, body, ms = 5000 } = {}) {
  return exchange(port, rawRequest(port, method, path, headers, body), { ms });
}

const POST_HEADERS = {
  'Content-Type': 'application/json',
  Accept: 'application/json, text/event-stream',
};

const post = (port, body, headers = {}, ms = 5000) =>
  request(port, 'POST', '/mcp', { headers: { ...POST_HEADERS, ...headers }, body, ms });

const initializeMsg = (id = 1) => ({
  jsonrpc: '2.0',
  id,
  method: 'initialize',
  params: {
    protocolVersion: LEGACY,
    capabilities: {},
    clientInfo: { name: 'http-hostile', version: '1.0.0' },
  },
});

const echoMsg = (id, text) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name: 'echo', arguments: { text } },
});

const countdownMsg = (id, steps, intervalMs, meta) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name: 'countdown', arguments: { steps, intervalMs }, _meta: meta },
});

const modernEcho = (id, text, meta = modernMeta()) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name: 'echo', arguments: { text }, _meta: meta },
});

function describeRes(res) {
  return `${res.statusLine ?? '(no status line)'} closed=${res.closed} ${res.text?.slice(0, 300)}`;
}

// Asserts a JSON-RPC error response: HTTP status, error code, and a message matching re.
function assertRpcError(res, status, code, re) {
  assert.equal(res.status, status, describeRes(res));
  assert.match(res.headers['content-type'] ?? '', /^application\/json/, describeRes(res));
  const m = JSON.parse(res.text);
  assert.equal(m.jsonrpc, '2.0', res.text);
  assert.equal(m.error?.code, code, res.text);
  assert.match(m.error.message, re, res.text);
  return m;
}

// Where libmicrohttpd answers by itself: a 4xx, or the connection closed; never a hang (the
// response() timeout) and never a success.
function assertRefused(res) {
  assert.ok(
    res.closed || (res.status >= 400 && res.status < 500),
    `expected a 4xx or a closed connection, got ${describeRes(res)}`,
  );
  if (res.status !== undefined) assert.ok(res.status >= 400 && res.status < 500, describeRes(res));
}

// A legacy (session) client: initialize + notifications/initialized. Returns the session id.
async function openSession(port, { headers = {}, ms = 5000 } = {}) {
  const res = await post(port, initializeMsg(), headers, ms);
  assert.equal(res.status, 200, describeRes(res));
  const sid = res.headers['mcp-session-id'];
  assert.ok(sid, `initialize returned no Mcp-Session-Id: ${describeRes(res)}`);
  assert.equal(JSON.parse(res.text).result.protocolVersion, LEGACY, res.text);
  const n = await post(
    port,
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': LEGACY, ...headers },
    ms,
  );
  assert.equal(n.status, 202, describeRes(n));
  return sid;
}

const sessionHeaders = (sid) => ({ 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': LEGACY });

// The server is alive and a fresh client can initialize and call echo; each request within ms.
async function assertHealthy(srv, ms = 5000) {
  srv.assertAlive();
  const sid = await openSession(srv.port, { ms });
  const res = await post(srv.port, echoMsg(2, 'still alive'), sessionHeaders(sid), ms);
  assert.equal(res.status, 200, describeRes(res));
  assert.deepEqual(JSON.parse(res.text).result.content, [{ type: 'text', text: 'still alive' }]);
  const del = await request(srv.port, 'DELETE', '/mcp', { headers: sessionHeaders(sid), ms });
  assert.equal(del.status, 200, describeRes(del));
  srv.assertAlive();
}

// Opens a GET /mcp SSE stream of session sid; resolves with the connection and response head.
async function openGetStream(port, sid, extra = {}) {
  const c = new Conn(port);
  c.write(
    rawRequest(port, 'GET', '/mcp', {
      Accept: 'text/event-stream',
      ...sessionHeaders(sid),
      ...extra,
    }),
  );
  const h = await c.head();
  return { c, h };
}

async function metrics(port) {
  const res = await request(port, 'GET', '/metrics');
  assert.equal(res.status, 200, describeRes(res));
  const get = (name) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(res.text)?.[1]);
  return { streams: get('mcpgate_streams'), streaming: get('mcpgate_streaming_responses') };
}

// ---- hostile requests, one server for all (damage accumulates) ----

describe('hostile HTTP requests', () => {
  let srv;
  let port;

  before(async () => {
    srv = await Server.start(['--max-message', '64k', '--request-timeout', '10']);
    port = srv.port;
  });

  after(async () => {
    const wasAlive = srv?.alive;
    await srv?.stop();
    assert.ok(wasAlive !== false, 'the server had died');
  });

  test('sanity: a normal client works', async () => {
    await assertHealthy(srv);
  });

  test('malformed request lines: 4xx or close, never a hang', async () => {
    for (const line of [
      'GARBAGE\r\n\r\n',
      'GET\r\n\r\n',
      'GET /mcp\r\n\r\n',
      'GET /mcp HTTP/1.1 extra\r\nHost: localhost\r\n\r\n',
      '\xff\xfe\r\n\r\n',
      ' / HTTP/1.1\r\nHost: localhost\r\n\r\n',
    ]) {
      const res = await exchange(port, Buffer.from(line, 'latin1'));
      assertRefused(res);
    }
    await assertHealthy(srv);
  });

  test('NUL-led garbage, blank lines, half a head, silence: closed on timeout', async () => {
    // libmicrohttpd reads a line that starts with NUL as empty and keeps waiting for a request
    // line, like an idle connection: the timeout (2 s on this server) must end them all.
    const short = await Server.start(['--request-timeout', '2']);
    try {
      const conns = [
        Buffer.from('\x00\x01\x02\xff\r\n\r\n', 'latin1'),
        '\r\n\r\n\r\n',
        `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${short.port}\r\nX-Half: ${'a'.repeat(100)}`,
        '',
      ].map((data) => {
        const c = new Conn(short.port);
        if (data.length > 0) c.write(data);
        return c;
      });
      const t0 = Date.now();
      await Promise.all(
        conns.map((c) => c.until(() => c.closed, 6000, 'the connection stayed open')),
      );
      assert.ok(Date.now() - t0 >= 1000, 'closed before the timeout: the test proves nothing');
      for (const c of conns) assert.equal(c.len, 0, `an answer to an incomplete request: ${c.buf}`);
      await assertHealthy(short);
    } finally {
      await short.stop();
    }
    await assertHealthy(srv);
  });

  test('header line without a colon: 400-class or close', async () => {
    const res = await exchange(
      port,
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nNoColonHere\r\n\r\n`,
    );
    assertRefused(res);
    await assertHealthy(srv);
  });

  test('oversized single header (64 KiB value): 431 or 400-class, never a hang', async () => {
    const res = await exchange(
      port,
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Big: ${'a'.repeat(65536)}\r\n\r\n`,
    );
    assertRefused(res);
    if (res.status !== undefined) assert.ok([400, 413, 431].includes(res.status), describeRes(res));
    await assertHealthy(srv);
  });

  test('Content-Length above --max-message: 413 before the body is sent', async () => {
    // Only the head goes out: the answer must not wait for 10 MB that never come.
    const c = new Conn(port);
    c.write(
      rawRequest(port, 'POST', '/mcp', { ...POST_HEADERS, 'Content-Length': '10000000' }),
    );
    const res = await c.response(3000);
    c.destroy();
    assertRpcError(res, 413, -32600, new RegExp(`Payload Too Large.*${MAX_MESSAGE} bytes`));
    await assertHealthy(srv);
  });

  test('chunked body above --max-message: 413', async () => {
    const c = new Conn(port);
    c.write(rawRequest(port, 'POST', '/mcp', { ...POST_HEADERS, 'Transfer-Encoding': 'chunked' }));
    for (let i = 0; i < 3; i++) c.write(`8000\r\n${'a'.repeat(0x8000)}\r\n`);
    c.write('0\r\n\r\n');
    const res = await c.response(5000);
    c.destroy();
    // The server answers 413 as soon as the cap is crossed and closes; a client that kept
    // writing may see the reset before the answer.
    if (!res.closed || res.status !== undefined)
        assertRpcError(res, 413, -32600, /Payload Too Large/);
    await assertHealthy(srv);
  });

  test(
    'chunked body above --max-message: 413 before the body ends',
    async () => {
      const c = new Conn(port);
      c.write(
        rawRequest(port, 'POST', '/mcp', { ...POST_HEADERS, 'Transfer-Encoding': 'chunked' }),
      );
      for (let i = 0; i < 4; i++) c.write(`8000\r\n${'a'.repeat(0x8000)}\r\n`);
      try {
        const res = await c.response(1500);
        assert.ok(res.status === 413 || res.closed, describeRes(res));
      } finally {
        c.destroy();
        await assertHealthy(srv);
      }
    },
  );

  test('body that is not JSON: 400 with -32700', async () => {
    for (const body of ['this is not json', '{"jsonrpc":"2.0","id":1,', '{"a":1} trailing']) {
      const res = await post(port, body);
      assertRpcError(res, 400, -32700, /^Parse error/);
    }
    await assertHealthy(srv);
  });

  test('JSON that is not JSON-RPC: 400 with -32600', async () => {
    for (const body of ['42', '"a string"', 'null', 'true']) {
      const res = await post(port, body);
      assertRpcError(res, 400, -32600, /Invalid Request: a message must be a JSON object/);
    }
    const sid = await openSession(port);
    const res = await post(
      port,
      { jsonrpc: '1.0', id: 5, method: 'tools/list' },
      sessionHeaders(sid),
    );
    const m = assertRpcError(res, 400, -32600, /"jsonrpc" must be "2\.0"/);
    assert.equal(m.id, 5);
    await assertHealthy(srv);
  });

  test('objects that are no request, notification or response: 400 with -32600', async () => {
    const sid = await openSession(port);
    let res = await post(port, { foo: 1 }, sessionHeaders(sid));
    assertRpcError(res, 400, -32600, /Invalid Request: "jsonrpc" must be "2\.0"/);
    res = await post(port, { jsonrpc: '2.0', id: 9 }, sessionHeaders(sid));
    const m = assertRpcError(res, 400, -32600, /Invalid Request: a message needs "method"/);
    assert.equal(m.id, 9);
    res = await post(port, { jsonrpc: '2.0', id: null, method: 'ping' }, sessionHeaders(sid));
    assertRpcError(res, 400, -32600, /"id" must be a string or an integer/);
    await assertHealthy(srv);
  });

  test(
    'an empty batch: 400 with -32600',
    async () => {
      const sid = await openSession(port);
      try {
        const res = await post(port, [], sessionHeaders(sid));
        assertRpcError(res, 400, -32600, /Invalid Request/);
      } finally {
        await assertHealthy(srv);
      }
    },
  );

  test('invalid UTF-8 body: 400 with -32700', async () => {
    const sid = await openSession(port);
    for (const bad of [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
      const body = Buffer.concat([
        Buffer.from('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo",' +
          '"arguments":{"text":"'),
        Buffer.from(bad),
        Buffer.from('"}}}'),
      ]);
      const res = await post(port, body, sessionHeaders(sid));
      assertRpcError(res, 400, -32700, /invalid UTF-8 at byte \d+/);
    }
    await assertHealthy(srv);
  });

  test('deeply nested JSON: 400 with -32600', async () => {
    const arrays = '['.repeat(5000) + ']'.repeat(5000);
    const objects = '{"a":'.repeat(1000) + '1' + '}'.repeat(1000);
    for (const body of [arrays, objects]) {
      const res = await post(port, body);
      assertRpcError(res, 400, -32600, /nests deeper than \d+ levels/);
    }
    await assertHealthy(srv);
  });

  test('Content-Type text/plain: 415', async () => {
    const res = await post(port, initializeMsg(), { 'Content-Type': 'text/plain' });
    const want = /Unsupported Media Type: Content-Type must be application\/json/;
    assertRpcError(res, 415, -32600, want);
    const none = await post(port, initializeMsg(), { 'Content-Type': null });
    assertRpcError(none, 415, -32600, /Content-Type/);
    await assertHealthy(srv);
  });

  test('Accept without text/event-stream: 406', async () => {
    const res = await post(port, initializeMsg(), { Accept: 'application/json' });
    assertRpcError(res, 406, -32600, /Not Acceptable: Accept must list .*text\/event-stream/);
    await assertHealthy(srv);
  });

  test('missing Mcp-Session-Id on a non-initialize POST: 400', async () => {
    const res = await post(port, echoMsg(4, 'x'), { 'MCP-Protocol-Version': LEGACY });
    assertRpcError(res, 400, -32000, /Mcp-Session-Id header is required/);
    await assertHealthy(srv);
  });

  test('unknown or ended session: 404, also after DELETE', async () => {
    const bogus = 'nosuchsession0123456789';
    assertRpcError(
      await post(port, echoMsg(5, 'x'), sessionHeaders(bogus)),
      404,
      -32001,
      /Session not found/,
    );
    assertRpcError(
      await post(port, echoMsg(5, 'x'), sessionHeaders('x'.repeat(4000))),
      404,
      -32001,
      /Session not found/,
    );
    const sid = await openSession(port);
    const del = await request(port, 'DELETE', '/mcp', { headers: sessionHeaders(sid) });
    assert.equal(del.status, 200, describeRes(del));
    assertRpcError(
      await post(port, echoMsg(6, 'x'), sessionHeaders(sid)),
      404,
      -32001,
      /Session not found/,
    );
    const get = await request(port, 'GET', '/mcp', {
      headers: { Accept: 'text/event-stream', ...sessionHeaders(sid) },
    });
    assertRpcError(get, 404, -32001, /Session not found/);
    const del2 = await request(port, 'DELETE', '/mcp', { headers: sessionHeaders(sid) });
    assertRpcError(del2, 404, -32001, /Session not found/);
    await assertHealthy(srv);
  });

  test('bad MCP-Protocol-Version: 400 with -32020 or -32022', async () => {
    // A garbage header on a request whose _meta names 2026-07-28: they disagree.
    let res = await post(port, modernEcho(7, 'x'), {
      'MCP-Protocol-Version': 'garbage',
      'Mcp-Method': 'tools/call',
      'Mcp-Name': 'echo',
    });
    let m = assertRpcError(
      res,
      400,
      -32020,
      /MCP-Protocol-Version is 'garbage' but params\._meta says '2026-07-28'/,
    );
    assert.equal(m.id, 7);
    // Header and _meta agree on a version nobody supports.
    res = await post(
      port,
      modernEcho(8, 'x', { [META_VERSION]: '1999-01-01', [META_CAPS]: {} }),
      { 'MCP-Protocol-Version': '1999-01-01', 'Mcp-Method': 'tools/call', 'Mcp-Name': 'echo' },
    );
    m = assertRpcError(res, 400, -32022, /Unsupported protocol version '1999-01-01'/);
    assert.ok(m.error.data.supported.includes(MODERN), res.text);
    // The 2026-07-28 header with a _meta that says otherwise.
    res = await post(
      port,
      modernEcho(9, 'x', { [META_VERSION]: LEGACY, [META_CAPS]: {} }),
      { 'MCP-Protocol-Version': MODERN, 'Mcp-Method': 'tools/call', 'Mcp-Name': 'echo' },
    );
    assertRpcError(
      res,
      400,
      -32020,
      /Header mismatch: MCP-Protocol-Version is '2026-07-28' but params\._meta says '2025-06-18'/,
    );
    // A legacy session whose requests name a version other than the negotiated one.
    const sid = await openSession(port);
    const withVersion = (v) => ({ ...sessionHeaders(sid), 'MCP-Protocol-Version': v });
    res = await post(port, echoMsg(10, 'x'), withVersion('2025-03-26'));
    assertRpcError(
      res,
      400,
      -32600,
      /MCP-Protocol-Version '2025-03-26' differs from the negotiated '2025-06-18'/,
    );
    // ... or garbage: still 400.
    res = await post(port, echoMsg(11, 'x'), withVersion('garbage'));
    assert.equal(res.status, 400, describeRes(res));
    await assertHealthy(srv);
  });

  test(
    'garbage MCP-Protocol-Version in a session: the error names the header',
    async () => {
      const sid = await openSession(port);
      const res = await post(port, echoMsg(12, 'x'), {
        ...sessionHeaders(sid),
        'MCP-Protocol-Version': 'garbage',
      });
      assertRpcError(res, 400, -32022, /protocol version 'garbage'/i);
      await assertHealthy(srv);
    },
  );

  test('2026-07-28 request without (or with wrong) Mcp-Method, Mcp-Name: 400 -32020', async () => {
    const v = { 'MCP-Protocol-Version': MODERN };
    let res = await post(port, modernEcho(13, 'x'), { ...v, 'Mcp-Name': 'echo' });
    const want = /Mcp-Method must be present and equal the body's method 'tools\/call'/;
    let m = assertRpcError(res, 400, -32020, want);
    assert.equal(m.id, 13);
    res = await post(port, modernEcho(14, 'x'), {
      'MCP-Protocol-Version': MODERN,
      'Mcp-Method': 'tools/list',
      'Mcp-Name': 'echo',
    });
    assertRpcError(res, 400, -32020, /Mcp-Method/);
    res = await post(port, modernEcho(15, 'x'), { ...v, 'Mcp-Method': 'tools/call' });
    assertRpcError(res, 400, -32020, /Mcp-Name must be present and equal params\.name/);
    // The same request without the version header at all.
    res = await post(port, modernEcho(16, 'x'), { 'Mcp-Method': 'tools/call', 'Mcp-Name': 'echo' });
    assertRpcError(res, 400, -32020, /needs the MCP-Protocol-Version header/);
    // And a well-formed one works (header values may carry surrounding spaces).
    res = await post(port, modernEcho(17, 'modern ok'), {
      'MCP-Protocol-Version': MODERN,
      'Mcp-Method': '  tools/call ',
      'Mcp-Name': 'echo',
    });
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(JSON.parse(res.text).result.content[0].text, 'modern ok');
    await assertHealthy(srv);
  });

  test('GET /mcp without Accept: text/event-stream: 406', async () => {
    const sid = await openSession(port);
    for (const accept of [null, 'application/json', 'text/event-streamx']) {
      const res = await request(port, 'GET', '/mcp', {
        headers: { Accept: accept, ...sessionHeaders(sid) },
      });
      assertRpcError(res, 406, -32000, /Accept must list text\/event-stream/);
    }
    await assertHealthy(srv);
  });

  test('GET with a garbage Last-Event-ID: 400', async () => {
    const sid = await openSession(port);
    for (const id of ['garbage', '1-', '-1', '1--2', '1-2-3', '1-2 x', '9'.repeat(60), '0x1-1']) {
      const res = await request(port, 'GET', '/mcp', {
        headers: { Accept: 'text/event-stream', ...sessionHeaders(sid), 'Last-Event-ID': id },
      });
      assertRpcError(res, 400, -32000, /Last-Event-ID '.*' names no event/);
    }
    await assertHealthy(srv);
  });

  test('GET with the Last-Event-ID of an unknown stream: 400', async () => {
    const sid = await openSession(port);
    const res = await request(port, 'GET', '/mcp', {
      headers: { Accept: 'text/event-stream', ...sessionHeaders(sid), 'Last-Event-ID': '999999-1' },
    });
    assertRpcError(
      res,
      400,
      -32000,
      /Last-Event-ID '999999-1' names no event this session still has/,
    );
    await assertHealthy(srv);
  });

  test('a second GET stream for the same session: 409', async () => {
    const sid = await openSession(port);
    const { c, h } = await openGetStream(port, sid);
    try {
      assert.equal(h.status, 200, h.statusLine);
      assert.match(h.headers['content-type'], /^text\/event-stream/);
      await c.waitBody(/id: \d+-\d+\ndata: \n\n/); // the priming event
      const res = await request(port, 'GET', '/mcp', {
        headers: { Accept: 'text/event-stream', ...sessionHeaders(sid) },
      });
      assertRpcError(res, 409, -32000, /Conflict: this session already has a GET stream open/);
      assert.equal(c.closed, false, 'the first stream was closed');
    } finally {
      c.destroy();
    }
    await assertHealthy(srv);
  });

  test('DNS rebinding: a foreign Host or Origin gets 403, a localhost Origin passes', async () => {
    let res = await post(port, initializeMsg(), { Host: 'evil.example.com' });
    assertRpcError(res, 403, -32000, /Forbidden: invalid Host header 'evil\.example\.com'/);
    res = await post(port, initializeMsg(), { Host: `evil.example.com:${port}` });
    assertRpcError(res, 403, -32000, /invalid Host header/);
    res = await post(port, initializeMsg(), { Host: null });
    assertRpcError(res, 403, -32000, /invalid Host header ''/);
    for (const origin of ['http://evil.example.com', 'http://localhost.evil.example.com', 'null']) {
      res = await post(port, initializeMsg(), { Origin: origin });
      assertRpcError(res, 403, -32000, /Forbidden: invalid Origin/);
    }
    res = await request(port, 'GET', '/sse', {
      headers: { Accept: 'text/event-stream', Origin: 'http://evil.example.com' },
    });
    assertRpcError(res, 403, -32000, /invalid Origin 'http:\/\/evil\.example\.com'/);
    // A local page is not a rebinding attack.
    await openSession(port, { headers: { Origin: 'http://localhost:1234' } });
    await openSession(port, {
      headers: { Host: `localhost:${port}`, Origin: 'http://[::1]:8080' },
    });
    await assertHealthy(srv);
  });

  test(
    'DNS rebinding: Host values that only contain an allowed name get 403',
    async () => {
      try {
        let res = await post(port, initializeMsg(), { Host: 'evil.example.com/://localhost' });
        assertRpcError(res, 403, -32000, /invalid Host header/);
        const twice = Buffer.from(
          'GET /healthz HTTP/1.1\r\nHost: localhost\r\nHost: evil.example.com\r\n' +
            'Connection: close\r\n\r\n',
        );
        res = await exchange(port, twice);
        assert.ok(res.status === 400 || res.status === 403, describeRes(res));
      } finally {
        await assertHealthy(srv);
      }
    },
  );

  test('POST /messages with an unknown sessionId: 404', async () => {
    let res = await request(port, 'POST', '/messages?sessionId=nosuchsession', {
      headers: POST_HEADERS,
      body: echoMsg(20, 'x'),
    });
    assertRpcError(res, 404, -32001, /Session not found/);
    res = await request(port, 'POST', '/messages', {
      headers: POST_HEADERS,
      body: echoMsg(21, 'x'),
    });
    assertRpcError(res, 400, -32000, /sessionId is required/);
    // A Streamable HTTP session is not an HTTP+SSE one.
    const sid = await openSession(port);
    res = await request(port, 'POST', `/messages?sessionId=${sid}`, {
      headers: POST_HEADERS,
      body: echoMsg(22, 'x'),
    });
    assertRpcError(res, 404, -32001, /Session not found/);
    await assertHealthy(srv);
  });

  test('unknown path: 404', async () => {
    for (const path of ['/nope', '/mcp/extra', '/MCP', '/../etc/passwd', `/${'a'.repeat(2000)}`]) {
      const res = await request(port, 'GET', path);
      assertRpcError(res, 404, -32000, /^Not Found: /);
    }
    await assertHealthy(srv);
  });

  test('wrong method on /mcp (PUT): 405 with an Allow header', async () => {
    const res = await request(port, 'PUT', '/mcp', {
      headers: POST_HEADERS,
      body: initializeMsg(),
    });
    assertRpcError(res, 405, -32000, /Method Not Allowed: PUT \/mcp/);
    assert.match(res.headers.allow ?? '', /\bPOST\b/, describeRes(res));
    assert.match(res.headers.allow, /\bGET\b/);
    const patch = await request(port, 'PATCH', '/sse');
    assertRpcError(patch, 405, -32000, /Method Not Allowed/);
    assert.equal(patch.headers.allow, 'GET');
    await assertHealthy(srv);
  });
});

// ---- resilience ----

describe('resilience', () => {
  test('slowloris: 1,000 byte-a-second connections from 127.0.0.2, per-IP cap 200', async () => {
    const srv = await Server.start(['--max-connections-per-ip', '200', '--request-timeout', '30']);
    const slow = [];
    try {
      const line = Buffer.from(rawRequest(srv.port, 'POST', '/mcp', POST_HEADERS, '{}'));
      for (let i = 0; i < 1000; i++) slow.push(new Conn(srv.port, { localAddress: '127.0.0.2' }));
      const connected = await Promise.all(slow.map((c) => c.connected));
      assert.ok(connected.filter(Boolean).length > 0, 'no slow connection was accepted');
      let sent = 0;
      const drip = setInterval(() => {
        for (const c of slow) if (!c.closed) c.write(line.subarray(sent, sent + 1));
        sent++;
      }, 1000);
      // The normal client keeps working meanwhile, each request within 2 s.
      const until = Date.now() + 5000;
      let rounds = 0;
      try {
        while (Date.now() < until) {
          await assertHealthy(srv, 2000);
          rounds++;
          await sleep(200);
        }
      } finally {
        clearInterval(drip);
      }
      assert.ok(rounds >= 3, `only ${rounds} rounds of the normal client`);
      const open = slow.filter((c) => !c.closed).length;
      assert.ok(open <= 200, `${open} slow connections still open (cap 200)`);
      assert.ok(open >= 150, `only ${open} slow connections open: the cap refused too many`);
      assert.ok(slow.every((c) => c.len === 0), 'a slow connection got an answer');
    } finally {
      for (const c of slow) c.destroy();
      await assertHealthy(srv).finally(() => srv.stop());
    }
  });

  test('clients that never read: others are answered, memory stays bounded', async () => {
    // Under ASan, freed memory sits in a 256 MiB quarantine and counts in RSS: keep it small.
    const asan = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=16'].filter(Boolean).join(':');
    const srv = await Server.start(['--max-message', '128k'], { ASAN_OPTIONS: asan });
    const conns = [];
    try {
      const { port } = srv;
      const rss0 = srv.rssMiB();
      // 1. A legacy /sse stream, never read, while 400 large echoes are sent to it (24 MB,
      //    well over the 8 MiB a stream may buffer) plus a countdown.
      const sse = new Conn(port);
      conns.push(sse);
      sse.write(rawRequest(port, 'GET', '/sse', { Accept: 'text/event-stream' }));
      const ep = await sse.waitBody(/event: endpoint\ndata: (\/messages\?sessionId=[^\n]+)\n/);
      sse.sock.pause();
      const msgPath = ep[1];
      const legacy = async (msg) => {
        const res = await request(port, 'POST', msgPath, { headers: POST_HEADERS, body: msg });
        assert.equal(res.status, 202, describeRes(res));
      };
      const init = initializeMsg();
      await legacy({ ...init, params: { ...init.params, protocolVersion: '2024-11-05' } });
      await legacy({ jsonrpc: '2.0', method: 'notifications/initialized' });
      await legacy({
        jsonrpc: '2.0',
        id: 2,
        method: 'logging/setLevel',
        params: { level: 'debug' },
      });
      await legacy(countdownMsg(3, 200, 1, { progressToken: 'p' }));
      // 2. A GET stream and a countdown POST answered as SSE, neither read.
      const sid = await openSession(port);
      const { c: get } = await openGetStream(port, sid);
      conns.push(get);
      get.sock.pause();
      for (let i = 0; i < 4; i++) {
        const c = new Conn(port);
        conns.push(c);
        c.sock.pause();
        const msg = countdownMsg(100 + i, 200, 1, { progressToken: `t${i}` });
        c.write(rawRequest(port, 'POST', '/mcp', { ...POST_HEADERS, ...sessionHeaders(sid) }, msg));
      }
      // 3. The flood on the /sse stream, with a normal client checked all along.
      const big = 'x'.repeat(60000);
      let maxRss = 0;
      for (let batch = 0; batch < 50; batch++) {
        await Promise.all(
          Array.from({ length: 8 }, (_, k) => legacy(echoMsg(1000 + batch * 8 + k, big))),
        );
        if (batch % 10 === 9) {
          const t0 = Date.now();
          await assertHealthy(srv, 2000);
          assert.ok(Date.now() - t0 < 4000, `a normal client took ${Date.now() - t0} ms`);
        }
        maxRss = Math.max(maxRss, srv.rssMiB());
      }
      const grew = `the server grew to ${maxRss.toFixed(0)} MiB (from ${rss0.toFixed(0)})`;
      assert.ok(maxRss < 200, grew);
      const m = await metrics(port);
      assert.ok(m.streams >= 1, `metrics: ${JSON.stringify(m)}`);
      // The /sse reader fell more than 8 MiB behind: the server dropped it. Reading now gets
      // what was in flight, then the end, well short of the 24 MB sent.
      sse.sock.resume();
      await sse.until(() => sse.closed, 10000, 'the server kept the stream of a non-reader');
      assert.ok(sse.len < 20e6, `the /sse stream delivered ${sse.len} bytes: nothing was dropped`);
      srv.assertAlive();
      maxRss = Math.max(maxRss, srv.rssMiB());
      assert.ok(maxRss < 200, `the server grew to ${maxRss.toFixed(0)} MiB`);
    } finally {
      for (const c of conns) c.destroy();
      await assertHealthy(srv).finally(() => srv.stop());
    }
  });

  test('200 clients that vanish mid-request and mid-stream', async () => {
    const srv = await Server.start([]);
    try {
      const { port } = srv;
      const sid = await openSession(port);
      const inSession = { ...POST_HEADERS, ...sessionHeaders(sid) };
      const modern = {
        ...POST_HEADERS,
        'MCP-Protocol-Version': MODERN,
        'Mcp-Method': 'tools/call',
        'Mcp-Name': 'countdown',
      };
      // What each client does before it hangs up (FIN for even ones, RST for odd ones).
      const vanishers = [
        async function halfHead(c) {
          c.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Ty`);
          await sleep(20);
        },
        async function halfBody(c, i) {
          const full = rawRequest(port, 'POST', '/mcp', inSession, echoMsg(i, 'y'.repeat(2000)));
          c.write(full.subarray(0, full.length - 1000));
          await sleep(20);
        },
        async function unreadAnswer(c, i) {
          c.write(rawRequest(port, 'POST', '/mcp', inSession, echoMsg(i, 'z')));
        },
        async function midCountdown(c, i) {
          const msg = countdownMsg(i, 50, 5, { progressToken: i });
          c.write(rawRequest(port, 'POST', '/mcp', inSession, msg));
          await c.waitBody(/progress/);
        },
        async function midModernCountdown(c, i) {
          const msg = countdownMsg(i, 50, 5, { ...modernMeta(), progressToken: i });
          c.write(rawRequest(port, 'POST', '/mcp', modern, msg));
          await c.waitBody(/progress/);
        },
        async function midGetStream(c) {
          const s = await openSession(port); // one GET stream per session
          const h = { Accept: 'text/event-stream', ...sessionHeaders(s) };
          c.write(rawRequest(port, 'GET', '/mcp', h));
          await c.waitBody(/data: \n\n/);
        },
        async function midSseStream(c) {
          c.write(rawRequest(port, 'GET', '/sse', { Accept: 'text/event-stream' }));
          await c.waitBody(/event: endpoint/);
        },
        async function silent(c) {
          await c.connected;
        },
      ];
      await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const c = new Conn(port);
          try {
            await vanishers[i % vanishers.length](c, i);
          } finally {
            if (i % 2) c.reset();
            else c.destroy();
          }
        }),
      );
      await assertHealthy(srv);
      await sleep(500);
      const m = await metrics(port);
      assert.ok(Number.isInteger(m.streams) && Number.isInteger(m.streaming), JSON.stringify(m));
      await assertHealthy(srv);
    } finally {
      await srv.stop();
    }
  });
});
