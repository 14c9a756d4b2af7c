// Shared helpers for the integration tests: start the real mcpgate binary with its traffic
// captured in both directions (through tee), drive it with the official SDK or with raw JSON
// lines, and check the captured traffic against the official schemas (tests/tools/schemacheck).
//
// Environment (set by ctest): MCPGATE_BIN, MCPGATE_BUILD_DIR, MCPGATE_PEERS, MCPGATE_SCHEMA_DIR.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the integration tests through ctest`);
  return v;
}

export const BIN = env('MCPGATE_BIN');
export const BUILD_DIR = env('MCPGATE_BUILD_DIR');
export const PEERS = env('MCPGATE_PEERS');
export const SCHEMA_DIR = env('MCPGATE_SCHEMA_DIR');
export const SCHEMACHECK = path.join(BUILD_DIR, 'tests', 'schemacheck');

export const MODERN = '2026-07-28';
export const META_VERSION = 'io.modelcontextprotocol/protocolVersion';
export const META_CAPS = 'io.modelcontextprotocol/clientCapabilities';
export const META_SERVER = 'io.modelcontextprotocol/serverInfo';

// The official SDK, by absolute path (ESM ignores NODE_PATH).
export async function loadSdk() {
  const esm = path.join(PEERS, 'node_modules/@modelcontextprotocol/sdk/dist/esm');
  const [client, stdio, types] = await Promise.all([
    import(path.join(esm, 'client/index.js')),
    import(path.join(esm, 'client/stdio.js')),
    import(path.join(esm, 'types.js')),
  ]);
  return { Client: client.Client, StdioClientTransport: stdio.StdioClientTransport, types };
}

// A fresh directory with the two capture files of one server process.
export function captureFiles(label) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mcpgate-${label}-`));
  return {
    dir,
    inFile: path.join(dir, 'in.jsonl'),
    outFile: path.join(dir, 'out.jsonl'),
    rcFile: path.join(dir, 'server.rc'),
  };
}

// The server's exit status, once it has exited (the pipeline's own status is tee's).
export function serverExitCode(files) {
  if (!fs.existsSync(files.rcFile)) return undefined;
  return Number(fs.readFileSync(files.rcFile, 'utf8').trim());
}

const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

// The shell pipeline that runs the server with both directions captured; the server's exit
// status goes to rcFile.
export function teeCommand({ inFile, outFile, rcFile }, serverArgs = []) {
  const args = ['serve', '--stdio', '--tools', 'demo', ...serverArgs].map(shq).join(' ');
  const server = `{ ${shq(BIN)} ${args}; echo $? > ${shq(rcFile)}; }`;
  return {
    command: '/bin/sh',
    args: ['-c', `tee ${shq(inFile)} | ${server} | tee ${shq(outFile)}`],
  };
}

// An SDK client connected to a captured server. Returns the client, the capture files and the
// protocol version the initialize handshake negotiated.
export async function connectSdk({ label = 'sdk', capabilities = {}, serverArgs = [] } = {}) {
  const { Client, StdioClientTransport } = await loadSdk();
  const files = captureFiles(label);
  const transport = new StdioClientTransport({
    ...teeCommand(files, serverArgs),
    stderr: 'inherit',
  });
  const negotiated = { version: undefined };
  // The client tells HTTP transports the negotiated version this way; stdio has no such hook,
  // so this records it.
  transport.setProtocolVersion = (v) => {
    negotiated.version = v;
  };
  const client = new Client({ name: 'mcpgate-integration', version: '1.0.0' }, { capabilities });
  await client.connect(transport);
  return { client, transport, negotiated, ...files };
}

// Reads a capture file as parsed messages (one per line).
export function readCapture(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.pop(); // the last line is complete only when followed by a newline
  return lines.filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

// Waits until the capture file holds a message for which pred is true, then returns them all:
// tee writes to the pipe before the file, so a message can reach the client before the file.
export async function readCaptureUntil(file, pred, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const msgs = fs.existsSync(file) ? readCapture(file) : [];
    if (msgs.some(pred)) return msgs;
    if (Date.now() > deadline) throw new Error(`${file}: the expected message was not captured`);
    await sleep(20);
  }
}

// Runs schemacheck over the captured traffic; fails the test with its output when it fails,
// removes the capture directory when it passes.
export function checkSchemas(inFile, outFile) {
  assert.ok(fs.existsSync(SCHEMACHECK), `${SCHEMACHECK} is missing: build the default target`);
  const r = spawnSync(SCHEMACHECK, [SCHEMA_DIR, inFile, outFile], { encoding: 'utf8' });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  assert.equal(r.status, 0, `schemacheck failed on ${outFile}:\n${output}`);
  const m = /schemacheck: (\d+) passed, (\d+) failed/.exec(output);
  assert.ok(m, `schemacheck printed no totals:\n${output}`);
  // Passed: the captures are no longer needed (set MCPGATE_KEEP_CAPTURES to look at them).
  if (!process.env.MCPGATE_KEEP_CAPTURES && path.dirname(inFile) === path.dirname(outFile))
    fs.rmSync(path.dirname(inFile), { recursive: true, force: true });
  return { passed: Number(m[1]), failed: Number(m[2]), output };
}

// The _meta every 2026-07-28 request carries.
export function modernMeta(capabilities = {}, extra = {}) {
  return { [META_VERSION]: MODERN, [META_CAPS]: capabilities, ...extra };
}

// A raw newline-delimited JSON-RPC client of one server process, with its traffic captured
// through tee. Responses are awaited by id; responses with id null and notifications are queued.
export class RawClient {
  constructor({ label = 'raw', serverArgs = [] } = {}) {
    Object.assign(this, captureFiles(label));
    const { command, args } = teeCommand(this, serverArgs);
    this.proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    this.nextId = 1;
    this.waiting = new Map(); // id -> resolve
    this.responses = new Map(); // id -> response that arrived before anyone waited
    this.nullIdResponses = [];
    this.notifications = [];
    this.watchers = []; // { pred, resolve }
    this.received = []; // every message, in order
    this.exited = new Promise((resolve) => this.proc.on('close', (code) => resolve(code)));
    let buffered = '';
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (chunk) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim() !== '') this.dispatch(JSON.parse(line));
      }
    });
  }

  dispatch(msg) {
    this.received.push(msg);
    if (msg.method !== undefined && msg.id === undefined) this.notifications.push(msg);
    else if (msg.id === null || msg.id === undefined) this.nullIdResponses.push(msg);
    else if (this.waiting.has(msg.id)) {
      this.waiting.get(msg.id)(msg);
      this.waiting.delete(msg.id);
    } else this.responses.set(msg.id, msg);
    for (const w of [...this.watchers]) {
      if (w.pred(msg)) {
        this.watchers.splice(this.watchers.indexOf(w), 1);
        w.resolve(msg);
      }
    }
  }

  // Writes raw bytes (a string or a Buffer) followed by a newline.
  writeLine(data) {
    this.proc.stdin.write(Buffer.concat([Buffer.from(data), Buffer.from('\n')]));
  }

  // The response to id, when it comes (rejects after ms).
  response(id, ms = 10000) {
    if (this.responses.has(id)) {
      const r = this.responses.get(id);
      this.responses.delete(id);
      return Promise.resolve(r);
    }
    return withTimeout(
      new Promise((resolve) => this.waiting.set(id, resolve)),
      ms,
      `no response to id ${JSON.stringify(id)}`,
    );
  }

  // Sends a request and returns its response message.
  request(method, params, id = this.nextId++) {
    const msg = { jsonrpc: '2.0', id, method };
    if (params !== undefined) msg.params = params;
    this.writeLine(JSON.stringify(msg));
    return this.response(id);
  }

  notify(method, params) {
    this.writeLine(JSON.stringify({ jsonrpc: '2.0', method, params }));
  }

  // The first message (already received or to come) for which pred is true.
  waitFor(pred, ms = 10000, what = 'message') {
    const seen = this.received.find(pred);
    if (seen) return Promise.resolve(seen);
    return withTimeout(
      new Promise((resolve) => this.watchers.push({ pred, resolve })),
      ms,
      `no ${what} arrived`,
    );
  }

  // The next response with id null that arrives after this call (or is already unclaimed).
  nextNullIdResponse(ms = 10000) {
    if (this.nullIdResponses.length > 0) return Promise.resolve(this.nullIdResponses.shift());
    return withTimeout(
      new Promise((resolve) =>
        this.watchers.push({
          pred: (m) => (m.id === null || m.id === undefined) && m.method === undefined,
          resolve: (m) => {
            this.nullIdResponses.splice(this.nullIdResponses.indexOf(m), 1);
            resolve(m);
          },
        }),
      ),
      ms,
      'no id-less error response arrived',
    );
  }

  // Closes stdin, waits for the pipeline to end and returns the server's exit status.
  async close() {
    this.proc.stdin.end();
    await withTimeout(this.exited, 10000, 'server did not exit after stdin closed');
    return serverExitCode(this);
  }
}

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
