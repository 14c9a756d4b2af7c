// The gateway: real MCP servers from npm (@modelcontextprotocol/server-everything,
// server-filesystem on a temporary directory, server-memory) and the TypeScript SDK's example
// HTTP server put behind `mcpgate serve --config`, driven by the official TypeScript SDK client.
// Over stdio without auth; over HTTP with OAuth, two users and their scopes; a crash in the
// middle of a call; per-session children isolated per user; elicitation and progress through the
// gateway; a configuration with errors named one by one; SIGHUP adding a server.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { BIN, loadSdk, sleep, withTimeout } from './helpers.mjs';
import { PEERS_DIR, freePort, runCli, startServe } from './client_helpers.mjs';
import { Browser, bearerParams, obtainCode, redeem, register } from './oauth_helpers.mjs';

const NM = path.join(PEERS_DIR, 'node_modules');
const EVERYTHING = path.join(NM, '@modelcontextprotocol/server-everything/dist/index.js');
const FILESYSTEM = path.join(NM, '@modelcontextprotocol/server-filesystem/dist/index.js');
const MEMORY = path.join(NM, '@modelcontextprotocol/server-memory/dist/index.js');
const SDK_EXAMPLE = path.join(NM,
  '@modelcontextprotocol/sdk/dist/esm/examples/server/simpleStreamableHttp.js');
const esm = path.join(NM, '@modelcontextprotocol/sdk/dist/esm');
const { Client, StdioClientTransport, types } = await loadSdk();
const { StreamableHTTPClientTransport } = await import(path.join(esm, 'client/streamableHttp.js'));
const { ElicitRequestSchema } = types;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-gateway-'));
const files = path.join(dir, 'files');
fs.mkdirSync(files);
fs.writeFileSync(path.join(files, 'hello.txt'), 'hello from the filesystem server\n');

function writeConfig(name, servers, extra = {}) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, JSON.stringify({ mcpServers: servers, ...extra }, null, 2));
  return p;
}

const everything = { command: process.execPath, args: [EVERYTHING, 'stdio'] };
const filesystem = { command: process.execPath, args: [FILESYSTEM, files],
  tools: { deny: ['write_*', 'edit_*', 'move_*', 'create_*'] } };
const memory = { command: process.execPath, args: [MEMORY], process: 'per-session',
  env: { MEMORY_FILE_PATH: path.join(dir, 'memory-${MCPGATE_SESSION}.jsonl') } };

describe('configuration', () => {
  test('--check accepts a good file', async () => {
    const p = writeConfig('good.json', { everything, fs: filesystem });
    const r = await runCli(['serve', '--config', p, '--check']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${p}: ok (2 servers)\n`);
  });

  test('a file with errors: every error named with its key, nothing started', async () => {
    const p = writeConfig('bad.json', {
      'bad__name': { command: 'x' },
      both: { command: 'x', url: 'https://x/mcp' },
      neither: {},
      args: { command: 'x', args: ['ok', 3] },
      proc: { command: 'x', process: 'forked', callTimeout: -1 },
      web: { url: 'ftp://x', headers: { 'Bad Header': 'v' } },
      typo: { command: 'x', comand: 'y' },
    }, { extra: true });
    const r = await runCli(['serve', '--config', p, '--check']);
    assert.equal(r.code, 2);
    for (const re of [
      /mcpServers\.bad__name: the name must be/,
      /mcpServers\.both: needs exactly one of "command" .* or "url"/,
      /mcpServers\.neither: needs exactly one of/,
      /mcpServers\.args\.args\[1\]: must be a string/,
      /mcpServers\.proc\.process: must be "shared" .* or "per-session"/,
      /mcpServers\.proc\.callTimeout: must be an integer from 1 to 86400/,
      /mcpServers\.web\.url: must be an http\(s\) URL/,
      /mcpServers\.web\.headers\.Bad Header: is not a valid header name/,
      /mcpServers\.typo\.comand: unknown key/,
      /: extra: unknown key \(mcpServers, server, limits\)/,
      /mcpgate serve: 10 errors in/,
    ])
      assert.match(r.stderr, re);
    for (const line of r.stderr.trim().split('\n').slice(0, -1))
      assert.ok(line.startsWith(`${p}: `), line);
  });

  test('a syntax error names its line and column', async () => {
    const p = path.join(dir, 'syntax.json');
    fs.writeFileSync(p, '{\n  "mcpServers": {\n    "a": {"command": "x",}\n  }\n}\n');
    const r = await runCli(['serve', '--config', p, '--check']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`${p}: line 3, column \\d+: `));
  });
});

describe('stdio: the aggregator without auth', () => {
  let client;
  let log = '';
  before(async () => {
    const p = writeConfig('stdio.json', { everything, fs: filesystem,
      slow: { ...everything, callTimeout: 1 } });
    const transport = new StdioClientTransport({ command: BIN,
      args: ['serve', '--stdio', '--config', p], stderr: 'pipe' });
    transport.stderr.on('data', (c) => { log += c; });
    client = new Client({ name: 'gateway-test', version: '1' },
      { capabilities: { elicitation: {} } });
    await client.connect(transport);
  });
  after(async () => {
    await client?.close();
  });

  test('tools of both servers, namespaced; denied tools absent', async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const t of ['everything__echo', 'everything__get-sum', 'fs__read_text_file',
      'fs__list_directory'])
      assert.ok(names.includes(t), `${t} missing from ${names}`);
    assert.ok(!names.some((n) => /^fs__(write|edit|move|create)_/.test(n)), names.join(' '));
    assert.ok(names.every((n) => /^(everything|fs|slow)__/.test(n)),
      'no demo tools with --config');
  });

  test('a call past its callTimeout ends with an error; the server stays usable', async () => {
    const t0 = Date.now();
    const r = await client.callTool({ name: 'slow__trigger-long-running-operation',
      arguments: { duration: 8, steps: 8 } });
    const took = Date.now() - t0;
    assert.equal(r.isError, true);
    assert.match(r.content[0].text, /slow did not answer within 1 s/);
    assert.ok(took >= 900 && took < 6000, `ended after ${took} ms`);
    const e = await client.callTool({ name: 'slow__echo', arguments: { message: 'still here' } });
    assert.equal(e.content[0].text, 'Echo: still here');
  });

  test('many calls at once, answered by the connection\'s thread, each to its caller',
    async () => {
      const calls = [];
      for (let i = 0; i < 64; i++)
        calls.push(client.callTool({ name: i % 2 ? 'everything__echo' : 'slow__echo',
          arguments: { message: `m${i}` } }));
      // bigger than the pipe to the child: sent by a worker, not the thread that read it
      const big = 'x'.repeat(300000);
      calls.push(client.callTool({ name: 'everything__echo', arguments: { message: big } }));
      const got = await Promise.all(calls);
      assert.equal(got.pop().content[0].text, `Echo: ${big}`);
      got.forEach((r, i) => assert.equal(r.content[0].text, `Echo: m${i}`));
    });

  test('calls reach the right server', async () => {
    const e = await client.callTool({ name: 'everything__echo', arguments: { message: 'hi' } });
    assert.equal(e.content[0].text, 'Echo: hi');
    const f = await client.callTool({ name: 'fs__read_text_file',
      arguments: { path: path.join(files, 'hello.txt') } });
    assert.equal(f.content[0].text, 'hello from the filesystem server\n');
    const denied = await client.callTool({ name: 'fs__write_file',
      arguments: { path: path.join(files, 'x'), content: 'x' } }).catch((err) => err);
    assert.match(String(denied.message ?? denied), /Unknown tool/);
  });

  test('prompts and resources pass through', async () => {
    const { prompts } = await client.listPrompts();
    assert.ok(prompts.some((p) => p.name === 'everything__simple-prompt'));
    const g = await client.getPrompt({ name: 'everything__simple-prompt' });
    assert.ok(g.messages.length > 0);
    const { resources } = await client.listResources();
    const doc = resources.find((r) => r.uri.startsWith('demo://everything/resource/static/'));
    assert.ok(doc, JSON.stringify(resources.map((r) => r.uri)));
    const rd = await client.readResource({ uri: doc.uri });
    assert.ok(rd.contents[0].text.length > 0);
  });

  test('a URI two servers offer: each offer carries its server\'s name, none hides the other',
    async () => {
      // "everything" and "slow" are the same server: every resource URI is offered twice
      const uris = (await client.listResources()).resources.map((r) => r.uri);
      const doc = 'resource/static/document/architecture.md';
      assert.ok(uris.includes(`demo://everything/${doc}`), uris.join(' '));
      assert.ok(uris.includes(`demo://slow/${doc}`), uris.join(' '));
      assert.ok(!uris.some((u) => u.startsWith('demo://resource/')), uris.join(' '));
      assert.equal(new Set(uris).size, uris.length);
      const rd = await client.readResource({ uri: `demo://slow/${doc}` });
      assert.equal(rd.contents[0].uri, `demo://slow/${doc}`);
      assert.match(rd.contents[0].text, /architecture/i);
      const tpls = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
      assert.ok(tpls.includes('demo://everything/resource/dynamic/text/{resourceId}'), tpls.join(' '));
      assert.ok(tpls.includes('demo://slow/resource/dynamic/text/{resourceId}'), tpls.join(' '));
      // a template read goes to its server with the server's own URI, and comes back renamed
      const t = await client.readResource({ uri: 'demo://slow/resource/dynamic/text/5' });
      assert.equal(t.contents[0].uri, 'demo://slow/resource/dynamic/text/5');
      assert.match(t.contents[0].text, /Resource 5/);
      // links and embedded resources in results name what the gateway serves
      const links = await client.callTool({ name: 'everything__get-resource-links',
        arguments: { count: 2 } });
      const link = links.content.find((c) => c.type === 'resource_link');
      assert.match(link.uri, /^demo:\/\/everything\/resource\/dynamic\/(text|blob)\/\d+$/);
      const followed = await client.readResource({ uri: link.uri });
      assert.equal(followed.contents[0].uri, link.uri);
      const ref = await client.callTool({ name: 'slow__get-resource-reference',
        arguments: { resourceId: 3 } });
      const embedded = ref.content.find((c) => c.type === 'resource');
      assert.equal(embedded.resource.uri, 'demo://slow/resource/dynamic/text/3');
      // a URI of neither form is not found (no guess at which server meant it)
      const miss = await client.readResource({ uri: 'demo://resource/dynamic/text/3' })
        .catch((err) => err);
      assert.match(String(miss.message ?? miss), /not found/i);
    });

  test('a subscription reaches the server behind the URI; its updates come back renamed',
    async () => {
      const { ResourceUpdatedNotificationSchema } = types;
      const updates = [];
      client.setNotificationHandler(ResourceUpdatedNotificationSchema,
        (n) => { updates.push(n.params.uri); });
      const doc = 'resource/static/document/architecture.md';
      const uri = `demo://slow/${doc}`;
      await client.subscribeResource({ uri });
      await withTimeout((async () => {
        while (!log.includes(`[slow] subscribed to demo://${doc}`)) await sleep(50);
      })(), 10000, `the subscription did not reach the server:\n${log.slice(-2000)}`);
      assert.ok(!log.includes(`[everything] subscribed to`), 'the other server was told');
      // the everything server sends updates for its subscriptions every 5 s once asked to
      await client.callTool({ name: 'slow__toggle-subscriber-updates', arguments: {} });
      try {
        await withTimeout((async () => { while (updates.length === 0) await sleep(50); })(),
          15000, 'no notifications/resources/updated');
        assert.deepEqual([...new Set(updates)], [uri]);
      } finally {
        await client.callTool({ name: 'slow__toggle-subscriber-updates', arguments: {} });
      }
      await client.unsubscribeResource({ uri });
      await withTimeout((async () => {
        while (!log.includes(`[slow] unsubscribed from demo://${doc}`)) await sleep(50);
      })(), 10000, 'the unsubscription did not reach the server');
    });

  test('completion of a server\'s prompt arguments and template variables', async () => {
    const dept = await client.complete({
      ref: { type: 'ref/prompt', name: 'everything__completable-prompt' },
      argument: { name: 'department', value: 'S' } });
    assert.deepEqual(dept.completion.values.sort(), ['Sales', 'Support']);
    // the context (arguments already chosen) goes along
    const who = await client.complete({
      ref: { type: 'ref/prompt', name: 'slow__completable-prompt' },
      argument: { name: 'name', value: '' }, context: { arguments: { department: 'Sales' } } });
    assert.deepEqual(who.completion.values, ['David', 'Eve', 'Frank']);
    // a namespaced template reaches its server under the server's own template
    const id = await client.complete({
      ref: { type: 'ref/resource', uri: 'demo://slow/resource/dynamic/text/{resourceId}' },
      argument: { name: 'resourceId', value: '12' } });
    assert.deepEqual(id.completion.values, ['12']);
    const none = await client.complete({
      ref: { type: 'ref/prompt', name: 'nobody__completable-prompt' },
      argument: { name: 'department', value: 'S' } }).catch((err) => err);
    assert.match(String(none.message ?? none), /nothing to complete/);
  });

  test('progress and elicitation through the gateway', async () => {
    const seen = [];
    const r = await client.callTool({ name: 'everything__trigger-long-running-operation',
      arguments: { duration: 1, steps: 3 } }, undefined, { onprogress: (p) => seen.push(p) });
    assert.match(JSON.stringify(r.content), /completed/i);
    assert.ok(seen.length >= 2, JSON.stringify(seen));
    const asked = [];
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked.push(req.params);
      return { action: 'accept', content: { color: 'red', number: 7, pets: 'cats' } };
    });
    const e = await client.callTool({ name: 'everything__trigger-elicitation-request',
      arguments: {} });
    assert.equal(asked.length, 1);
    assert.match(JSON.stringify(e.content), /accept/);
  });
});

describe('a 2026-07-28 client through the gateway', () => {
  test('elicitation as input_required: the call waits upstream between the rounds', async () => {
    const p = writeConfig('modern.json', { everything });
    const proc = spawn(BIN, ['serve', '--stdio', '--config', p], { stdio: ['pipe', 'pipe', 'pipe'] });
    const msgs = [];
    let buf = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (c) => {
      buf += c;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        msgs.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
    });
    const meta = {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': { elicitation: { form: {} } },
    };
    const call = async (id, params) => {
      proc.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params })}\n`);
      return withTimeout((async () => {
        for (;;) {
          const m = msgs.find((x) => x.id === id);
          if (m) return m;
          await sleep(20);
        }
      })(), 20000, `the answer to ${id}`);
    };
    try {
      const name = 'everything__trigger-elicitation-request';
      const first = await call(1, { _meta: meta, name, arguments: {} });
      assert.equal(first.result?.resultType, 'input_required', JSON.stringify(first));
      const [key] = Object.keys(first.result.inputRequests);
      assert.equal(first.result.inputRequests[key].method, 'elicitation/create');
      const second = await call(2, { _meta: meta, name, arguments: {},
        inputResponses: { [key]: { action: 'accept',
          content: { color: 'blue', number: 3, pets: 'dogs' } } },
        requestState: first.result.requestState });
      assert.equal(second.result?.resultType, 'complete', JSON.stringify(second));
      assert.match(JSON.stringify(second.result.content), /accept/);
      // a requestState whose call is gone is refused, not forwarded
      const stale = await call(3, { _meta: meta, name, arguments: {},
        inputResponses: { [key]: { action: 'accept', content: {} } },
        requestState: first.result.requestState });
      assert.ok(stale.result?.isError || stale.error, JSON.stringify(stale));
    } finally {
      proc.stdin.end();
      await new Promise((resolve) => proc.on('close', resolve));
    }
  });
});

// A hand-written stdio MCP server with one tool, whose first run misbehaves once its tools
// are listed: `misbehave` is JavaScript run then (rl: the stdin reader); `reply` is the tool's
// text (m: the tools/call request). Later runs behave.
function handServer(name, { misbehave, reply }) {
  const marker = path.join(dir, `${name}-once`);
  const srcPath = path.join(dir, `${name}-server.mjs`);
  fs.writeFileSync(srcPath, `
    import fs from 'node:fs';
    import readline from 'node:readline';
    const first = !fs.existsSync(${JSON.stringify(marker)});
    if (first) fs.writeFileSync(${JSON.stringify(marker)}, '');
    const rl = readline.createInterface({ input: process.stdin });
    const say = (m) => process.stdout.write(JSON.stringify({ jsonrpc: '2.0', ...m }) + '\\n');
    rl.on('line', (line) => {
      const m = JSON.parse(line);
      if (m.method === 'initialize') {
        say({ id: m.id, result: { protocolVersion: m.params.protocolVersion,
          capabilities: { tools: {} }, serverInfo: { name: '${name}', version: '1' } } });
      } else if (m.method === 'tools/list') {
        say({ id: m.id, result: { tools: [{ name: 'echo', inputSchema: { type: 'object' } }] } });
        if (first) { ${misbehave} }
      } else if (m.method === 'tools/call') {
        say({ id: m.id, result: { content: [{ type: 'text', text: ${reply} }] } });
      }
    });
  `);
  return srcPath;
}

// The aggregator over stdio with one server: { client, log() }.
async function stdioGateway(servers) {
  const p = writeConfig(`${Object.keys(servers)[0]}.json`, servers);
  const transport = new StdioClientTransport({ command: BIN,
    args: ['serve', '--stdio', '--config', p], stderr: 'pipe' });
  let log = '';
  transport.stderr.on('data', (c) => { log += c; });
  const client = new Client({ name: 'gateway-test', version: '1' });
  await client.connect(transport);
  return { client, log: () => log };
}

describe('a server that stops reading its input', () => {
  test('a call it cannot take ends in an error within callTimeout; the next one works',
    async () => {
      // the first time, nothing more is read after the handshake: its stdin fills, and a
      // write to it would wait forever
      const src = handServer('stuck', {
        misbehave: 'rl.close(); process.stdin.pause(); setInterval(() => {}, 1000);',
        reply: "'got ' + JSON.stringify(m.params.arguments).length" });
      const { client, log } = await stdioGateway({ stuck: { command: process.execPath,
        args: [src], callTimeout: 2 } });
      try {
        await withTimeout((async () => {
          while ((await client.listTools()).tools.length === 0) await sleep(50);
        })(), 10000, 'the stuck server\'s tools');
        const big = 'x'.repeat(300 * 1024); // more than the pipe holds
        const t0 = Date.now();
        const r = await client.callTool({ name: 'stuck__echo', arguments: { big } }, undefined,
          { timeout: 20000 });
        assert.equal(r.isError, true, JSON.stringify(r).slice(0, 300));
        assert.ok(Date.now() - t0 < 10000, `took ${Date.now() - t0} ms`);
        assert.match(log(), /\[stuck\] reads nothing from us any more; stopping it/);
        const ok = await client.callTool({ name: 'stuck__echo', arguments: { small: 1 } });
        assert.equal(ok.content[0].text, 'got 11');
      } finally {
        await client.close();
      }
    });
});

describe('a server that closes its output but keeps running', () => {
  test('it is stopped and started again; calls work', async () => {
    const src = handServer('closer', {
      misbehave: 'setTimeout(() => { fs.closeSync(1); setInterval(() => {}, 1000); }, 100);',
      reply: "'hi'" });
    const { client, log } = await stdioGateway({ closer: { command: process.execPath,
      args: [src] } });
    try {
      await withTimeout((async () => {
        while (!/\[closer\] the server closed its output but kept running; stopped/.test(log())) {
          await sleep(50);
        }
      })(), 15000, 'the closed output was not noticed');
      const r = await withTimeout(client.callTool({ name: 'closer__echo', arguments: {} }), 15000,
        'the call after the restart');
      assert.equal(r.content[0].text, 'hi');
    } finally {
      await client.close();
    }
  });
});

describe('a shared template beside URIs of one server\'s own', () => {
  test('its own URIs keep their names in reads and links; the template\'s carry the server\'s',
    async () => {
      // two instances of one server: the template t://item/{id} is offered twice, the resource
      // t://item/<instance> once each
      const srcPath = path.join(dir, 'items-server.mjs');
      fs.writeFileSync(srcPath, `
        import { McpServer, ResourceTemplate } from '${path.join(esm, 'server/mcp.js')}';
        import { StdioServerTransport } from '${path.join(esm, 'server/stdio.js')}';
        const me = process.env.ITEM;
        const server = new McpServer({ name: 'items', version: '1' });
        server.registerResource('mine', 't://item/' + me, {},
          async (uri) => ({ contents: [{ uri: uri.href, text: 'mine: ' + me }] }));
        server.registerResource('any', new ResourceTemplate('t://item/{id}', { list: undefined }),
          {}, async (uri, { id }) => ({ contents: [{ uri: uri.href, text: me + ' item ' + id }] }));
        server.registerPrompt('broken', { description: 'fails' }, () => {
          throw new Error('the prompt database is down');
        });
        server.registerResource('broken', 't://broken/' + me, {}, async () => {
          throw new Error('the disk is on fire');
        });
        server.registerTool('link', { description: 'links to items' }, async () => ({
          content: [{ type: 'resource_link', uri: 't://item/' + me, name: 'mine' },
            { type: 'resource_link', uri: 't://item/42', name: 'any' }] }));
        await server.connect(new StdioServerTransport());
      `);
      const item = (name) => ({ command: process.execPath, args: [srcPath], env: { ITEM: name } });
      const p = writeConfig('items.json', { one: item('one'), two: item('two') });
      const transport = new StdioClientTransport({ command: BIN,
        args: ['serve', '--stdio', '--config', p], stderr: 'pipe' });
      const client = new Client({ name: 'gateway-test', version: '1' });
      await client.connect(transport);
      try {
        await withTimeout((async () => {
          for (;;) {
            const t = (await client.listResourceTemplates()).resourceTemplates;
            if (t.length === 2) return;
            await sleep(50);
          }
        })(), 15000, 'both servers\' templates');
        const tpls = (await client.listResourceTemplates()).resourceTemplates
          .map((t) => t.uriTemplate).sort();
        assert.deepEqual(tpls, ['t://one/item/{id}', 't://two/item/{id}']);
        const uris = (await client.listResources()).resources.map((r) => r.uri).sort();
        assert.deepEqual(uris, ['t://broken/one', 't://broken/two', 't://item/one', 't://item/two']);
        // a server's failure reaches the client in its own words
        const bp = await client.getPrompt({ name: 'one__broken' }).catch((err) => err);
        assert.match(String(bp.message), /one: .*the prompt database is down/);
        const br = await client.readResource({ uri: 't://broken/two' }).catch((err) => err);
        assert.match(String(br.message), /two: .*the disk is on fire/);
        const mine = await client.readResource({ uri: 't://item/one' });
        assert.deepEqual(mine.contents.map((c) => [c.uri, c.text]), [['t://item/one', 'mine: one']]);
        const any = await client.readResource({ uri: 't://two/item/42' });
        assert.deepEqual(any.contents.map((c) => [c.uri, c.text]), [['t://two/item/42', 'two item 42']]);
        const links = await client.callTool({ name: 'two__link', arguments: {} });
        assert.deepEqual(links.content.map((c) => c.uri), ['t://item/two', 't://two/item/42']);
      } finally {
        await client.close();
      }
    });
});

describe('list changes propagate', () => {
  test('a tool the server adds appears, and the client is told', async () => {
    // a real SDK server (McpServer) that registers a tool when asked
    const srcPath = path.join(dir, 'dynamic-server.mjs');
    fs.writeFileSync(srcPath, `
      import { McpServer } from '${path.join(esm, 'server/mcp.js')}';
      import { StdioServerTransport } from '${path.join(esm, 'server/stdio.js')}';
      const server = new McpServer({ name: 'dynamic', version: '1' });
      server.registerTool('add_tool', { description: 'adds a tool' }, async () => {
        server.registerTool('dynamic', { description: 'appeared later' },
          async () => ({ content: [{ type: 'text', text: 'I am new' }] }));
        return { content: [{ type: 'text', text: 'added' }] };
      });
      await server.connect(new StdioServerTransport());
    `);
    const p = writeConfig('dynamic.json', { dyn: { command: process.execPath, args: [srcPath] } });
    const { ToolListChangedNotificationSchema } = types;
    const transport = new StdioClientTransport({ command: BIN,
      args: ['serve', '--stdio', '--config', p], stderr: 'pipe' });
    const client = new Client({ name: 'gateway-test', version: '1' });
    let told = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => { told++; });
    await client.connect(transport);
    try {
      const before = (await client.listTools()).tools.map((t) => t.name);
      assert.deepEqual(before, ['dyn__add_tool']);
      const r = await client.callTool({ name: 'dyn__add_tool', arguments: {} });
      assert.equal(r.content[0].text, 'added');
      await withTimeout((async () => { while (told === 0) await sleep(50); })(), 10000,
        'no tools/list_changed from the gateway');
      const after = (await client.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(after, ['dyn__add_tool', 'dyn__dynamic']);
      const d = await client.callTool({ name: 'dyn__dynamic', arguments: {} });
      assert.equal(d.content[0].text, 'I am new');
    } finally {
      await client.close();
    }
  });
});

// ---- HTTP with OAuth ----

async function tokenFor(srv, user, scope, whole = false) {
  const browser = new Browser(srv.base);
  const client = await register(srv.base, { client_name: `gw-${user.username}`,
    redirect_uris: ['http://127.0.0.1:9/cb'], token_endpoint_auth_method: 'none' });
  const got = await obtainCode(browser, client, { user, scope });
  const t = await redeem(srv.base, client, got);
  assert.equal(t.status, 200, t.text);
  return whole ? t.json : t.json.access_token;
}

async function httpClient(srv, token, capabilities = {}) {
  const transport = new StreamableHTTPClientTransport(new URL(srv.url),
    { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const client = new Client({ name: 'gateway-http-test', version: '1' }, { capabilities });
  await client.connect(transport);
  client.httpTransport = transport;
  return client;
}

describe('HTTP with OAuth: two upstreams, two users, scopes', () => {
  let srv;
  let demo;
  let admin;
  let bob;
  let cfgPath;
  before(async () => {
    const port = await freePort();
    const authPort = await freePort();
    demo = spawn(process.execPath, [SDK_EXAMPLE], { stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, MCP_PORT: String(port), MCP_AUTH_PORT: String(authPort) } });
    let out = '';
    demo.stdout.on('data', (c) => { out += c; });
    await withTimeout((async () => {
      while (!/listening on port/.test(out)) await sleep(50);
    })(), 20000, 'the SDK example server did not start');
    // a shared server that asks its client a question a while into a call
    const askerPath = path.join(dir, 'asker-server.mjs');
    fs.writeFileSync(askerPath, `
      import { McpServer } from '${path.join(esm, 'server/mcp.js')}';
      import { StdioServerTransport } from '${path.join(esm, 'server/stdio.js')}';
      const server = new McpServer({ name: 'asker', version: '1' });
      const text = (t) => ({ content: [{ type: 'text', text: t }] });
      server.registerTool('ask_later', { description: 'asks after 800 ms' }, async () => {
        await new Promise((r) => setTimeout(r, 800));
        try {
          const r = await server.server.elicitInput({ message: 'your password?',
            requestedSchema: { type: 'object', properties: { pw: { type: 'string' } } } });
          return text('answered: ' + JSON.stringify(r));
        } catch (err) {
          return text('not asked: ' + err.message);
        }
      });
      server.registerTool('slow', { description: 'takes 2 s' }, async () => {
        await new Promise((r) => setTimeout(r, 2000));
        return text('done');
      });
      await server.connect(new StdioServerTransport());
    `);
    cfgPath = writeConfig('http.json', {
      everything: { ...everything, scope: 'mcp:everything' },
      memory: { ...memory, scope: 'mcp:memory' },
      sdk: { url: `http://localhost:${port}/mcp`, users: ['admin'] },
      asker: { command: process.execPath, args: [askerPath], scope: 'mcp:asker' },
    }, { server: { accessTtl: 1234, purgeInterval: 600 } });
    srv = await startServe({ auth: true, args: ['--config', cfgPath] });
    admin = { username: 'admin', password: srv.password };
    const add = await runCli(['user', 'add', 'bob', '--password-stdin', '--db',
      `sqlite:${path.join(srv.dir, 'm.db')}`], { input: 'bob-password-1\n' });
    assert.equal(add.code, 0, add.stderr);
    bob = { username: 'bob', password: 'bob-password-1' };
  });
  after(async () => {
    demo?.kill('SIGKILL');
    const code = await srv?.stop();
    assert.equal(code, 0, `mcpgate serve did not exit cleanly:\n${srv?.stderr().slice(-4000)}`);
  });

  test('the SDK client, authenticated, lists and calls tools of two upstreams', async () => {
    const got = await tokenFor(srv, admin, 'mcp mcp:everything mcp:memory mcp:sdk', true);
    assert.equal(got.expires_in, 1234, 'the file\'s server.accessTtl applies');
    const tok = got.access_token;
    const c = await httpClient(srv, tok);
    try {
      const { tools } = await c.listTools();
      const names = tools.map((t) => t.name);
      assert.ok(names.includes('everything__get-sum'));
      assert.ok(names.includes('sdk__greet'), names.join(' '));
      assert.ok(names.includes('whoami'), 'the built-in tools stay');
      const s = await c.callTool({ name: 'everything__get-sum', arguments: { a: 40, b: 2 } });
      assert.match(s.content[0].text, /42/);
      const g = await c.callTool({ name: 'sdk__greet', arguments: { name: 'gateway' } });
      assert.equal(g.content[0].text, 'Hello, gateway!');
    } finally {
      await c.close();
    }
  });

  test('without an upstream\'s scope: its tools are hidden and a call gets 403', async () => {
    const tok = await tokenFor(srv, admin, 'mcp mcp:memory');
    const c = await httpClient(srv, tok);
    try {
      const names = (await c.listTools()).tools.map((t) => t.name);
      assert.ok(!names.some((n) => n.startsWith('everything__')), names.join(' '));
      assert.ok(names.some((n) => n.startsWith('memory__')));
      // nor its prompts, resources, or completions of them
      const prompts = (await c.listPrompts()).prompts.map((p) => p.name);
      assert.ok(!prompts.some((n) => n.startsWith('everything__')), prompts.join(' '));
      const uris = (await c.listResources()).resources.map((x) => x.uri);
      assert.ok(!uris.some((u) => /^demo:\/\/(everything\/)?resource\//.test(u)), uris.join(' '));
      const none = await c.complete({
        ref: { type: 'ref/prompt', name: 'everything__completable-prompt' },
        argument: { name: 'department', value: 'S' } }).catch((err) => err);
      assert.match(String(none.message ?? none), /nothing to complete/);
      // nor through a URI one of its templates matches
      const viaUri = await c.complete({
        ref: { type: 'ref/resource', uri: 'demo://resource/dynamic/text/3' },
        argument: { name: 'resourceId', value: '1' } }).catch((err) => err);
      assert.match(String(viaUri.message ?? viaUri), /nothing to complete/);
    } finally {
      await c.close();
    }
    const r = await fetch(srv.url, { method: 'POST', headers: {
      Authorization: `Bearer ${tok}`, 'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream', 'MCP-Protocol-Version': '2026-07-28',
      'Mcp-Method': 'tools/call', 'Mcp-Name': 'everything__echo' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: {
      name: 'everything__echo', arguments: { message: 'x' }, _meta: {
        'io.modelcontextprotocol/protocolVersion': '2026-07-28',
        'io.modelcontextprotocol/clientCapabilities': {} } } }) });
    assert.equal(r.status, 403);
    const w = bearerParams(r.headers.get('www-authenticate'));
    assert.equal(w.error, 'insufficient_scope');
    assert.equal(w.scope, 'mcp:everything');
  });

  test('an upstream limited to some users is invisible to the others', async () => {
    const tok = await tokenFor(srv, bob, 'mcp mcp:everything mcp:memory mcp:sdk');
    const c = await httpClient(srv, tok);
    try {
      const names = (await c.listTools()).tools.map((t) => t.name);
      assert.ok(!names.some((n) => n.startsWith('sdk__')), names.join(' '));
      assert.ok(names.includes('everything__echo'));
      await assert.rejects(c.callTool({ name: 'sdk__greet', arguments: { name: 'x' } }),
        /Unknown tool/);
    } finally {
      await c.close();
    }
  });

  test('per-session children: two users never see each other\'s state', async () => {
    const ta = await tokenFor(srv, admin, 'mcp mcp:memory');
    const tb = await tokenFor(srv, bob, 'mcp mcp:memory');
    const a = await httpClient(srv, ta);
    const b = await httpClient(srv, tb);
    try {
      await a.callTool({ name: 'memory__create_entities', arguments: { entities: [
        { name: 'SecretOfAdmin', entityType: 'note', observations: ['only admin'] }] } });
      const ga = await a.callTool({ name: 'memory__read_graph', arguments: {} });
      assert.match(JSON.stringify(ga.structuredContent ?? ga.content), /SecretOfAdmin/);
      const gb = await b.callTool({ name: 'memory__read_graph', arguments: {} });
      assert.doesNotMatch(JSON.stringify(gb.structuredContent ?? gb.content), /SecretOfAdmin/);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('a shared server\'s question never reaches another user\'s client', async () => {
    const ta = await tokenFor(srv, admin, 'mcp mcp:asker');
    const tb = await tokenFor(srv, bob, 'mcp mcp:asker');
    const a = await httpClient(srv, ta, { elicitation: {} });
    const b = await httpClient(srv, tb, { elicitation: {} });
    const asked = { a: [], b: [] };
    a.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked.a.push(req.params.message);
      return { action: 'accept', content: { pw: 'admin-secret' } };
    });
    b.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked.b.push(req.params.message);
      return { action: 'accept', content: { pw: 'bob-typed-this' } };
    });
    try {
      // admin's call asks at 800 ms; bob's, started meanwhile, is the newest in flight then:
      // the shared child's question cannot say whose it is, so nobody is asked
      const pa = a.callTool({ name: 'asker__ask_later', arguments: {} });
      await sleep(200);
      const pb = b.callTool({ name: 'asker__slow', arguments: {} });
      const [ra, rb] = await Promise.all([pa, pb]);
      assert.deepEqual(asked.b, [], 'bob was asked admin\'s question');
      assert.equal(rb.content[0].text, 'done');
      assert.match(ra.content[0].text, /^not asked: /);
      // alone in flight, the question reaches its own caller
      const again = await a.callTool({ name: 'asker__ask_later', arguments: {} });
      assert.match(again.content[0].text, /admin-secret/);
      assert.deepEqual(asked.a, ['your password?']);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('the audit trail names every call', async () => {
    const r = await runCli(['audit', '--db', `sqlite:${path.join(srv.dir, 'm.db')}`, '--since',
      '1h']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /everything__get-sum/);
    assert.match(r.stdout, /memory__read_graph/);
  });

  test('an upstream killed in the middle of a call: an error, then the next call works',
    async () => {
      const tok = await tokenFor(srv, admin, 'mcp mcp:everything');
      const c = await httpClient(srv, tok);
      try {
        const pidOf = () => {
          const all = [...srv.stderr().matchAll(/\[everything\] started \(pid (\d+)\)/g)];
          return Number(all.at(-1)[1]);
        };
        const pid = pidOf();
        const call = c.callTool({ name: 'everything__trigger-long-running-operation',
          arguments: { duration: 10, steps: 10 } });
        await sleep(800);
        process.kill(pid, 'SIGKILL');
        const r = await call;
        assert.equal(r.isError, true);
        assert.match(r.content[0].text, /everything stopped during the call/);
        // restarted with backoff; the next call gets a new process
        const deadline = Date.now() + 15000;
        let ok;
        while (!ok && Date.now() < deadline) {
          const x = await c.callTool({ name: 'everything__echo', arguments: { message: 'back' } });
          if (!x.isError) ok = x;
          else await sleep(300);
        }
        assert.equal(ok?.content[0].text, 'Echo: back');
        assert.notEqual(pidOf(), pid);
      } finally {
        await c.close();
      }
    });

  test('SIGHUP adds a server and keeps the others running', async () => {
    const pidBefore = [...srv.stderr().matchAll(/\[everything\] started \(pid (\d+)\)/g)].at(-1)[1];
    const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
    cfg.mcpServers.fs = { ...filesystem, scope: 'mcp:everything' };
    fs.writeFileSync(cfgPath, JSON.stringify(cfg));
    srv.proc.kill('SIGHUP');
    await withTimeout((async () => {
      while (!/\[fs\] offers \d+ tools/.test(srv.stderr())) await sleep(100);
    })(), 15000, `fs not added:\n${srv.stderr()}`);
    const tok = await tokenFor(srv, admin, 'mcp mcp:everything');
    const c = await httpClient(srv, tok);
    try {
      const names = (await c.listTools()).tools.map((t) => t.name);
      assert.ok(names.includes('fs__read_text_file'), names.join(' '));
    } finally {
      await c.close();
    }
    const after = [...srv.stderr().matchAll(/\[everything\] started \(pid (\d+)\)/g)].at(-1)[1];
    assert.equal(after, pidBefore, 'the unchanged server was not restarted');
  });

  test('SIGHUP adding a second server with the same resources renames both; removing it undoes',
    async () => {
      const doc = 'resource/static/document/architecture.md';
      const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
      const uris = async (c) => (await c.listResources()).resources.map((r) => r.uri);
      const waitFor = (c, pred, what) => withTimeout((async () => {
        for (;;) {
          const u = await uris(c);
          if (pred(u)) return u;
          await sleep(100);
        }
      })(), 20000, what);
      const tok = await tokenFor(srv, admin, 'mcp mcp:everything');
      const c = await httpClient(srv, tok);
      const logged = (line, what) => withTimeout((async () => {
        while (!srv.stderr().includes(line)) await sleep(50);
      })(), 10000, what);
      try {
        assert.ok((await uris(c)).includes(`demo://${doc}`));
        // subscribed under the name it has now; unsubscribed after it changed
        await c.subscribeResource({ uri: `demo://${doc}` });
        await logged(`[everything] subscribed to demo://${doc}`, 'not subscribed upstream');
        fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg,
          mcpServers: { ...cfg.mcpServers, twin: { ...everything, scope: 'mcp:twin' } } }));
        srv.proc.kill('SIGHUP');
        const renamed = await waitFor(c, (u) => u.includes(`demo://everything/${doc}`),
          'everything\'s resources were not renamed');
        assert.ok(!renamed.includes(`demo://${doc}`), renamed.join(' '));
        // twin's are there, but not for a token without its scope
        assert.ok(!renamed.some((u) => u.startsWith('demo://twin/')), renamed.join(' '));
        const miss = await c.readResource({ uri: `demo://twin/${doc}` }).catch((err) => err);
        assert.match(String(miss.message ?? miss), /not found/i);
        const r = await c.readResource({ uri: `demo://everything/${doc}` });
        assert.match(r.contents[0].text, /architecture/i);
        await c.unsubscribeResource({ uri: `demo://${doc}` });
        await logged(`[everything] unsubscribed from demo://${doc}`,
          'the old name\'s subscription stayed upstream');
        fs.writeFileSync(cfgPath, JSON.stringify(cfg));
        srv.proc.kill('SIGHUP');
        const back = await waitFor(c, (u) => u.includes(`demo://${doc}`),
          'everything\'s resources did not get their own names back');
        assert.ok(!back.some((u) => u.startsWith('demo://everything/')), back.join(' '));
      } finally {
        await c.close();
      }
    });
});

describe('per-session children: identity, caps, idle stop, cancellation', () => {
  let srv;
  let admin;
  before(async () => {
    const p = writeConfig('sessions.json', {
      env: { ...everything, process: 'per-session', idleTimeout: 2, scope: 'mcp:env' },
      memory: { ...memory, scope: 'mcp:env' },
      shared: { ...everything, scope: 'mcp:env' },
    }, { limits: { maxChildrenPerUser: 1 } });
    srv = await startServe({ auth: true, args: ['--config', p] });
    admin = { username: 'admin', password: srv.password };
  });
  after(async () => {
    const code = await srv?.stop();
    assert.equal(code, 0, `mcpgate serve did not exit cleanly:\n${srv?.stderr().slice(-4000)}`);
  });

  test('a per-session child knows who it serves (environment), never the token', async () => {
    const tok = await tokenFor(srv, admin, 'mcp mcp:env');
    const c = await httpClient(srv, tok);
    try {
      const r = await c.callTool({ name: 'env__get-env', arguments: {} });
      const env = JSON.parse(r.content[0].text);
      assert.equal(env.MCPGATE_USER, 'admin');
      assert.ok(env.MCPGATE_SUBJECT);
      assert.ok(env.MCPGATE_SESSION);
      assert.ok(!JSON.stringify(env).includes(tok), 'the access token reached the child');
      assert.equal(env.MCPGATE_DB, undefined, 'only passEnv variables reach the child');
      // the shared child gets no identity in its environment
      const sh = JSON.parse((await c.callTool({ name: 'shared__get-env', arguments: {} }))
        .content[0].text);
      assert.equal(sh.MCPGATE_USER, undefined);
      // ... nor when a call of someone's is what starts it again
      const pid = [...srv.stderr().matchAll(/\[shared\] started \(pid (\d+)\)/g)].at(-1)[1];
      process.kill(Number(pid), 'SIGKILL');
      await withTimeout((async () => {
        while (!/\[shared\] .*it is restarted/.test(srv.stderr())) await sleep(20);
      })(), 10000, 'the shared child\'s end was not noticed');
      const sh2 = JSON.parse((await c.callTool({ name: 'shared__get-env', arguments: {} }))
        .content[0].text);
      assert.equal(sh2.MCPGATE_USER, undefined, 'the restarted shared child took a caller\'s name');
      assert.equal(sh2.MCPGATE_SESSION, undefined);
      // the per-user cap: a second per-session child for the same user is refused
      const m = await c.callTool({ name: 'memory__read_graph', arguments: {} });
      assert.equal(m.isError, true);
      assert.match(m.content[0].text, /too many running servers/);
      await c.httpTransport.terminateSession(); /* DELETE: the session ends */
    } finally {
      await c.close();
    }
    // its session ended: its child is stopped
    await withTimeout((async () => {
      while (!/\[env\] the session ended; stopping its server/.test(srv.stderr())) await sleep(100);
    })(), 10000, 'the child of an ended session was not stopped');
  });

  test('an idle per-session child is stopped after idleTimeout', async () => {
    const tok = await tokenFor(srv, admin, 'mcp mcp:env');
    const c = await httpClient(srv, tok);
    try {
      await c.callTool({ name: 'env__echo', arguments: { message: 'x' } });
      await withTimeout((async () => {
        while (!/\[env\] idle for 2 s; stopping/.test(srv.stderr())) await sleep(100);
      })(), 10000, 'the idle child was not stopped');
      // the next call starts a new one
      const r = await c.callTool({ name: 'env__echo', arguments: { message: 'again' } });
      assert.equal(r.content[0].text, 'Echo: again');
    } finally {
      await c.close();
    }
  });

  test('cancelling a call cancels it upstream, and the connection stays usable', async () => {
    const tok = await tokenFor(srv, admin, 'mcp mcp:env');
    const c = await httpClient(srv, tok);
    try {
      const ac = new AbortController();
      const t0 = Date.now();
      const call = c.callTool({ name: 'shared__trigger-long-running-operation',
        arguments: { duration: 30, steps: 30 } }, undefined, { signal: ac.signal });
      await sleep(500);
      ac.abort('test');
      await assert.rejects(call);
      assert.ok(Date.now() - t0 < 5000);
      const r = await c.callTool({ name: 'shared__echo', arguments: { message: 'after' } });
      assert.equal(r.content[0].text, 'Echo: after');
    } finally {
      await c.close();
    }
  });
});

