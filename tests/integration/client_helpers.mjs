// Helpers for the client-side tests (connect, login, logout, token, tools, call): a server to
// talk to, the CLI run as a child process, `mcpgate connect` with its stdio traffic captured for
// the schema oracle, and a line client that speaks raw JSON-RPC (for 2026-07-28 clients, which
// the SDK v1 is not).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { BIN, PEERS, captureFiles, loadSdk, withTimeout } from './helpers.mjs';

export const READY = /mcpgate: serving MCP at (http:\/\/127\.0\.0\.1:(\d+)\/mcp)/;
export const SIGNIN = path.join(path.dirname(new URL(import.meta.url).pathname),
  'browser_signin.mjs');

const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

// A free TCP port on 127.0.0.1 (for servers that must come back on the same port).
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// `mcpgate serve` on 127.0.0.1 (port 0 unless given), --no-auth unless auth is true. Resolves
// with { url, base, port, password, dir, proc, stderr(), stop() }.
export async function startServe({ auth = false, port = 0, args = [], dir } = {}) {
  dir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-serve-'));
  const argv = ['serve', '--listen', `127.0.0.1:${port}`, '--tools', 'demo',
    '--db', `sqlite:${path.join(dir, 'm.db')}`, ...(auth ? [] : ['--no-auth']), ...args];
  const proc = spawn(BIN, argv, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise((resolve) => proc.on('exit', (c, s) => resolve(c ?? s)));
  proc.stderr.setEncoding('utf8');
  const m = await withTimeout(new Promise((resolve, reject) => {
    proc.stderr.on('data', (chunk) => {
      log += chunk;
      const mm = READY.exec(log);
      if (mm) resolve(mm);
    });
    exited.then((code) => reject(new Error(`mcpgate serve exited (${code}):\n${log}`)));
  }), 15000, 'mcpgate serve did not start');
  const pw = /created the first user: admin, password (\S+)/.exec(log);
  return {
    url: m[1], port: Number(m[2]), base: `http://127.0.0.1:${m[2]}`, dir, proc,
    password: pw ? pw[1] : null,
    stderr: () => log,
    // Ends it with SIGTERM; resolves with its exit status (0 when it stopped cleanly: under
    // the sanitizers, a leak or a memory error makes it non-zero).
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
        await exited;
        clearTimeout(t);
      }
      return proc.exitCode ?? proc.signalCode;
    },
  };
}

// Runs `mcpgate ARGS` to the end: { code, stdout, stderr, ms }.
export function runCli(args, { env = {}, input, timeout = 60000 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const proc = spawn(BIN, args, { env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (c) => { stdout += c; });
    proc.stderr.on('data', (c) => { stderr += c; });
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeout);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal, stdout, stderr, ms: Date.now() - t0 });
    });
    // a command that exits before reading its input (EPIPE) is not the test's failure
    proc.stdin.on('error', () => {});
    proc.stdin.end(input ?? '');
  });
}

// An SDK stdio client whose command is `mcpgate connect ARGS`, with both directions captured
// through tee (files.inFile: client -> connect, files.outFile: connect -> client).
export async function connectThroughProxy(args, { label = 'connect', capabilities = {},
  env = {}, onStderr } = {}) {
  const { Client, StdioClientTransport } = await loadSdk();
  const files = captureFiles(label);
  const cmd = `tee ${shq(files.inFile)} | { ${shq(BIN)} connect ${args.map(shq).join(' ')}; `
    + `echo $? > ${shq(files.rcFile)}; } | tee ${shq(files.outFile)}`;
  const transport = new StdioClientTransport({
    command: '/bin/sh', args: ['-c', cmd], env: { ...process.env, ...env }, stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr.setEncoding('utf8');
  transport.stderr.on('data', (c) => {
    stderr += c;
    onStderr?.(c);
  });
  const client = new Client({ name: 'mcpgate-connect-test', version: '1.0.0' }, { capabilities });
  await client.connect(transport);
  return { client, transport, files, stderr: () => stderr };
}

// A raw newline-delimited JSON-RPC client of `mcpgate connect ARGS`, traffic captured.
export class LineClient {
  constructor(args, { label = 'line', env = {} } = {}) {
    Object.assign(this, captureFiles(label));
    const cmd = `tee ${shq(this.inFile)} | { ${shq(BIN)} connect ${args.map(shq).join(' ')}; `
      + `echo $? > ${shq(this.rcFile)}; } | tee ${shq(this.outFile)}`;
    this.proc = spawn('/bin/sh', ['-c', cmd], { stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env } });
    this.nextId = 1;
    this.messages = [];
    this.waiters = [];
    this.stderr = '';
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (c) => { this.stderr += c; });
    let buf = '';
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() === '') continue;
        const msg = JSON.parse(line);
        this.messages.push(msg);
        this.waiters = this.waiters.filter((w) => !w(msg));
      }
    });
    this.closed = new Promise((resolve) => this.proc.on('close', (code) => resolve(code)));
  }

  send(msg) {
    this.proc.stdin.write(`${typeof msg === 'string' ? msg : JSON.stringify(msg)}\n`);
  }

  // Resolves with the first message (already received or coming) for which pred is true.
  waitFor(pred, ms = 15000, what = 'a message') {
    const have = this.messages.find(pred);
    if (have) return Promise.resolve(have);
    return withTimeout(new Promise((resolve) => {
      this.waiters.push((m) => {
        if (!pred(m)) return false;
        resolve(m);
        return true;
      });
    }), ms, `waiting for ${what}; stderr:\n${this.stderr}`);
  }

  request(method, params, id = this.nextId++) {
    this.send({ jsonrpc: '2.0', id, method, ...(params !== undefined ? { params } : {}) });
    return this.waitFor((m) => m.id === id && (m.result !== undefined || m.error !== undefined),
      20000, `the answer to ${method}`);
  }

  async close() {
    this.proc.stdin.end();
    return withTimeout(this.closed, 10000, 'connect did not exit on EOF');
  }
}

// A plain HTTP server that records requests and answers with handler(req, body) ->
// { status, headers, body } (default 404). Resolves with { url, requests, close() }.
export async function recorder(handler, host = '127.0.0.1') {
  const requests = [];
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      const out = handler?.(req, body, requests.at(-1)) ?? { status: 404 };
      res.writeHead(out.status, out.headers ?? {});
      res.end(out.body ?? '');
    });
  });
  await new Promise((resolve) => srv.listen(0, host, resolve));
  return {
    url: `http://${host}:${srv.address().port}`,
    port: srv.address().port,
    requests,
    close: () => new Promise((resolve) => {
      srv.closeAllConnections();
      srv.close(resolve);
    }),
  };
}

export const PEERS_DIR = PEERS;
