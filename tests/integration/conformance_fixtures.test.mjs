// The `conformance` toolset (src/tools/conformance.c) against docs/conformance-fixtures.md §6:
// one server process spoken to as raw JSON lines, first as a legacy 2025-11-25 session (which
// answers the server's sampling and elicitation requests), then with stateless 2026-07-28
// requests (MRTR round trips). The traffic is checked against the official schemas at the end.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { checkSchemas, modernMeta, RawClient } from './helpers.mjs';

const IMG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV = 'UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=';
const text = (t) => ({ type: 'text', text: t });
const image = { type: 'image', data: IMG, mimeType: 'image/png' };
const accept = (content) => ({ action: 'accept', content });
const form = (message, field, type) => ({
  mode: 'form',
  message,
  requestedSchema: { type: 'object', properties: { [field]: { type } }, required: [field] },
});
const ALL_CAPS = { sampling: {}, elicitation: {}, roots: { listChanged: true } };

const SCHEMA_2020_12 = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  $defs: {
    address: {
      $anchor: 'addressDef',
      type: 'object',
      properties: { street: { type: 'string' }, city: { type: 'string' } },
    },
  },
  properties: {
    name: { type: 'string' },
    address: { $ref: '#/$defs/address' },
    contactMethod: { type: 'string', enum: ['phone', 'email'] },
    phone: { type: 'string' },
    email: { type: 'string' },
  },
  allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
  if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
  then: { required: ['phone'] },
  else: { required: ['email'] },
  additionalProperties: false,
};

describe('conformance toolset', () => {
  let c;
  const answered = new Set();

  before(() => {
    c = new RawClient({ label: 'conformance', serverArgs: ['--tools', 'conformance'] });
  });

  after(async () => {
    if (c && c.proc.exitCode === null) await c.close();
  });

  const ok = (res) => {
    assert.equal(res.error, undefined, JSON.stringify(res.error));
    return res.result;
  };

  // The next server-to-client request of this method not yet answered.
  const serverRequest = async (method) => {
    const req = await c.waitFor(
      (m) => m.method === method && m.id !== undefined && !answered.has(m.id),
      10000,
      `${method} request`,
    );
    answered.add(req.id);
    return req;
  };
  const reply = (req, result) => c.writeLine(JSON.stringify({ jsonrpc: '2.0', id: req.id, result }));

  describe('legacy era (2025-11-25 session)', () => {
    const call = (name, args = {}, extra = {}) =>
      c.request('tools/call', { name, arguments: args, ...extra });

    test('initialize', async () => {
      const res = ok(
        await c.request('initialize', {
          protocolVersion: '2025-11-25',
          capabilities: { sampling: {}, elicitation: {} },
          clientInfo: { name: 'conformance-test-client', version: '1.0.0' },
        }),
      );
      assert.equal(res.protocolVersion, '2025-11-25');
      assert.deepEqual(res.capabilities.completions, {});
      c.notify('notifications/initialized');
    });

    test('tools/list: test_simple_text first, every tool described', async () => {
      const { tools } = ok(await c.request('tools/list', {}));
      assert.equal(tools[0].name, 'test_simple_text');
      for (const t of tools) {
        assert.ok(typeof t.description === 'string' && t.description !== '', t.name);
        assert.equal(t.inputSchema.type, 'object', t.name);
      }
      const names = tools.map((t) => t.name);
      for (const n of [
        'test_tool_with_logging', 'test_tool_with_progress', 'test_error_handling',
        'test_reconnection', 'test_sampling', 'test_elicitation',
        'test_elicitation_sep1034_defaults', 'test_elicitation_sep1330_enums',
        'json_schema_2020_12_tool', 'test_missing_capability', 'test_streaming_elicitation',
        'test_logging_tool', 'test_trigger_tool_change', 'test_trigger_prompt_change',
        'test_input_required_result_elicitation', 'test_input_required_result_sampling',
        'test_input_required_result_list_roots', 'test_input_required_result_request_state',
        'test_input_required_result_multiple_inputs', 'test_input_required_result_multi_round',
        'test_input_required_result_tampered_state', 'test_input_required_result_capabilities',
        'test_custom_header',
      ]) {
        assert.ok(names.includes(n), `${n} is listed`);
      }
      const schemaTool = tools.find((t) => t.name === 'json_schema_2020_12_tool');
      assert.deepEqual(schemaTool.inputSchema, SCHEMA_2020_12);
      const header = tools.find((t) => t.name === 'test_custom_header');
      assert.equal(header.inputSchema.properties.region['x-mcp-header'], 'Region');
    });

    test('static content tools return exactly the fixtures', async () => {
      const cases = {
        test_simple_text: [text('This is a simple text response for testing.')],
        test_image_content: [image],
        test_audio_content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }],
        test_embedded_resource: [
          {
            type: 'resource',
            resource: {
              uri: 'test://embedded-resource',
              mimeType: 'text/plain',
              text: 'This is an embedded resource content.',
            },
          },
        ],
        test_multiple_content_types: [
          text('Multiple content types test:'),
          image,
          {
            type: 'resource',
            resource: {
              uri: 'test://mixed-content-resource',
              mimeType: 'application/json',
              text: '{"test":"data","value":123}',
            },
          },
        ],
      };
      for (const [name, content] of Object.entries(cases)) {
        const res = ok(await call(name));
        assert.deepEqual(res, { content }, name);
      }
      // tools-call-simple-text sends no arguments member at all.
      const bare = ok(await c.request('tools/call', { name: 'test_simple_text' }));
      assert.deepEqual(bare.content, cases.test_simple_text);
    });

    test('test_error_handling is a tool error, not a JSON-RPC error', async () => {
      const res = ok(await call('test_error_handling'));
      assert.deepEqual(res, {
        content: [text('This tool intentionally returns an error for testing')],
        isError: true,
      });
    });

    test('test_tool_with_logging sends 3 log messages before its result', async () => {
      assert.deepEqual(ok(await c.request('logging/setLevel', { level: 'debug' })), {});
      const res = await call('test_tool_with_logging');
      assert.deepEqual(ok(res).content, [text('Tool with logging executed successfully')]);
      const at = c.received.indexOf(res);
      const logs = c.received
        .slice(0, at)
        .filter((m) => m.method === 'notifications/message')
        .map((m) => m.params);
      assert.deepEqual(logs.slice(-3), [
        { level: 'info', data: 'Tool execution started' },
        { level: 'info', data: 'Tool processing data' },
        { level: 'info', data: 'Tool execution completed' },
      ]);
    });

    test('test_tool_with_progress reports 0/50/100 and returns the token', async () => {
      const res = await call('test_tool_with_progress', {}, { _meta: { progressToken: 'tok' } });
      assert.deepEqual(ok(res).content, [text('tok')]);
      const at = c.received.indexOf(res);
      const progress = c.received
        .slice(0, at)
        .filter((m) => m.method === 'notifications/progress' && m.params.progressToken === 'tok')
        .map((m) => m.params);
      assert.deepEqual(progress, [0, 50, 100].map((p) => ({
        progressToken: 'tok', progress: p, total: 100, message: `Completed step ${p} of 100`,
      })));
      const numeric = await call('test_tool_with_progress', {}, { _meta: { progressToken: 7 } });
      assert.deepEqual(ok(numeric).content, [text('7')]);
      assert.deepEqual(ok(await call('test_tool_with_progress')).content, [text('0')]);
    });

    test('test_sampling asks the client for a completion', async () => {
      const pending = call('test_sampling', { prompt: 'Capital of France?' });
      const req = await serverRequest('sampling/createMessage');
      assert.deepEqual(req.params, {
        messages: [{ role: 'user', content: text('Capital of France?') }],
        maxTokens: 100,
      });
      reply(req, { role: 'assistant', content: text('Paris'), model: 'm' });
      assert.deepEqual(ok(await pending).content, [text('LLM response: Paris')]);
    });

    test('test_elicitation asks the user', async () => {
      const pending = call('test_elicitation', { message: 'Please provide your information' });
      const req = await serverRequest('elicitation/create');
      assert.deepEqual(req.params, {
        mode: 'form',
        message: 'Please provide your information',
        requestedSchema: {
          type: 'object',
          properties: { response: { type: 'string', description: "User's response" } },
          required: ['response'],
        },
      });
      reply(req, accept({ username: 'testuser', email: 'test@example.com' }));
      assert.deepEqual(ok(await pending).content, [
        text('User response: action=accept, content={"username":"testuser","email":"test@example.com"}'),
      ]);
    });

    test('SEP-1034 defaults and SEP-1330 enums forms', async () => {
      const pending = call('test_elicitation_sep1034_defaults');
      const req = await serverRequest('elicitation/create');
      const p = req.params.requestedSchema.properties;
      assert.equal(p.name.default, 'John Doe');
      assert.equal(p.age.type, 'integer');
      assert.equal(p.age.default, 30);
      assert.equal(p.score.default, 95.5);
      assert.deepEqual(p.status.enum, ['active', 'inactive', 'pending']);
      assert.equal(p.verified.default, true);
      reply(req, { action: 'decline' });
      assert.deepEqual(ok(await pending).content, [
        text('Elicitation completed: action=decline, content={}'),
      ]);

      const pending2 = call('test_elicitation_sep1330_enums');
      const req2 = await serverRequest('elicitation/create');
      const q = req2.params.requestedSchema.properties;
      assert.equal(q.titledSingle.oneOf.length, 3);
      assert.equal(q.legacyEnum.enumNames.length, 3);
      assert.equal(q.titledMulti.items.anyOf[0].title, 'First Choice');
      reply(req2, accept({ untitledSingle: 'option1' }));
      assert.deepEqual(ok(await pending2).content, [
        text('Elicitation completed: action=accept, content={"untitledSingle":"option1"}'),
      ]);
    });

    test('resources: list, templates and every read', async () => {
      const { resources } = ok(await c.request('resources/list', {}));
      assert.deepEqual(resources, [
        { uri: 'test://static-text', name: 'static-text', title: 'Static Text Resource',
          description: 'A static text resource for testing', mimeType: 'text/plain' },
        { uri: 'test://static-binary', name: 'static-binary', title: 'Static Binary Resource',
          description: 'A static binary resource (image) for testing', mimeType: 'image/png' },
        { uri: 'test://watched-resource', name: 'watched-resource', title: 'Watched Resource',
          description: 'A resource that auto-updates every 3 seconds', mimeType: 'text/plain' },
      ]);
      const { resourceTemplates } = ok(await c.request('resources/templates/list', {}));
      assert.deepEqual(resourceTemplates, [
        { uriTemplate: 'test://template/{id}/data', name: 'template', title: 'Resource Template',
          description: 'A resource template with parameter substitution',
          mimeType: 'application/json' },
      ]);
      const reads = {
        'test://static-text': { mimeType: 'text/plain',
          text: 'This is the content of the static text resource.' },
        'test://static-binary': { mimeType: 'image/png', blob: IMG },
        'test://watched-resource': { mimeType: 'text/plain', text: 'Watched resource content' },
        'test://template/123/data': { mimeType: 'application/json',
          text: '{"id":"123","templateTest":true,"data":"Data for ID: 123"}' },
      };
      for (const [uri, body] of Object.entries(reads)) {
        const res = ok(await c.request('resources/read', { uri }));
        assert.deepEqual(res.contents, [{ uri, ...body }], uri);
      }
      assert.deepEqual(ok(await c.request('resources/subscribe', { uri: 'test://watched-resource' })), {});
    });

    test('prompts: list and get', async () => {
      const { prompts } = ok(await c.request('prompts/list', {}));
      assert.deepEqual(prompts.slice(0, 4).map((p) => p.name), [
        'test_simple_prompt', 'test_prompt_with_arguments',
        'test_prompt_with_embedded_resource', 'test_prompt_with_image',
      ]);
      for (const p of prompts) assert.ok(p.description, p.name);
      assert.deepEqual(prompts[1].arguments, [
        { name: 'arg1', description: 'First test argument', required: true },
        { name: 'arg2', description: 'Second test argument', required: true },
      ]);
      const get = async (name, args) =>
        ok(await c.request('prompts/get', args ? { name, arguments: args } : { name })).messages;
      assert.deepEqual(await get('test_simple_prompt'), [
        { role: 'user', content: text('This is a simple prompt for testing.') },
      ]);
      assert.deepEqual(await get('test_prompt_with_arguments', { arg1: 'testValue1', arg2: 'testValue2' }), [
        { role: 'user', content: text("Prompt with arguments: arg1='testValue1', arg2='testValue2'") },
      ]);
      assert.deepEqual(
        await get('test_prompt_with_embedded_resource', { resourceUri: 'test://example-resource' }),
        [
          { role: 'user', content: { type: 'resource', resource: { uri: 'test://example-resource',
            mimeType: 'text/plain', text: 'Embedded resource content for testing.' } } },
          { role: 'user', content: text('Please process the embedded resource above.') },
        ],
      );
      assert.deepEqual(await get('test_prompt_with_image'), [
        { role: 'user', content: image },
        { role: 'user', content: text('Please analyze the image above.') },
      ]);
      const missing = await c.request('prompts/get', { name: 'test_prompt_with_arguments' });
      assert.equal(missing.error.code, -32602);
    });

    test('completion/complete answers with an empty list', async () => {
      const res = ok(await c.request('completion/complete', {
        ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' },
        argument: { name: 'arg1', value: 'test' },
      }));
      assert.deepEqual(res.completion.values, []);
    });
  });

  describe('2026-07-28 era (stateless, same process)', () => {
    const call = (name, args = {}, caps = ALL_CAPS, extra = {}) =>
      c.request('tools/call', { name, arguments: args, ...extra, _meta: modernMeta(caps) });
    const irr = (res) => {
      const r = ok(res);
      assert.equal(r.resultType, 'input_required', JSON.stringify(r));
      assert.equal(typeof r.requestState, 'string');
      return r;
    };
    const complete = (res) => {
      const r = ok(res);
      assert.equal(r.resultType, 'complete', JSON.stringify(r));
      return r;
    };
    const USER_NAME = { method: 'elicitation/create', params: form('What is your name?', 'name', 'string') };

    test('input_required elicitation: round trip, missing key, decline, extra keys', async () => {
      const r1 = irr(await call('test_input_required_result_elicitation'));
      assert.deepEqual(r1.inputRequests, { user_name: USER_NAME });
      const r2 = complete(await call('test_input_required_result_elicitation', {}, ALL_CAPS, {
        inputResponses: { user_name: accept({ name: 'Ada' }) },
        requestState: r1.requestState,
      }));
      assert.deepEqual(r2.content, [text('Hello, Ada!')]);

      const wrong = irr(await call('test_input_required_result_elicitation', {}, ALL_CAPS, {
        inputResponses: { wrong_key: accept({ data: 'wrong' }) },
      }));
      assert.deepEqual(wrong.inputRequests, { user_name: USER_NAME });
      const declined = irr(await call('test_input_required_result_elicitation', {}, ALL_CAPS, {
        inputResponses: { user_name: { action: 'decline' } },
      }));
      assert.deepEqual(Object.keys(declined.inputRequests), ['user_name']);
      const extra = complete(await call('test_input_required_result_elicitation', {}, ALL_CAPS, {
        inputResponses: {
          user_name: accept({ name: 'Alice' }),
          unknown_extra_key: accept({ foo: 'bar' }),
        },
      }));
      assert.deepEqual(extra.content, [text('Hello, Alice!')]);
    });

    test('invalid inputResponses are -32602', async () => {
      for (const inputResponses of [null, { user_name: 12345 }]) {
        const res = await call('test_input_required_result_elicitation', {}, ALL_CAPS, { inputResponses });
        assert.equal(res.error?.code, -32602, JSON.stringify(res));
      }
    });

    test('input_required sampling and roots', async () => {
      const s1 = irr(await call('test_input_required_result_sampling'));
      assert.deepEqual(s1.inputRequests, {
        capital_question: {
          method: 'sampling/createMessage',
          params: { messages: [{ role: 'user', content: text('What is the capital of France?') }], maxTokens: 100 },
        },
      });
      const s2 = complete(await call('test_input_required_result_sampling', {}, ALL_CAPS, {
        inputResponses: { capital_question: { role: 'assistant', content: text('Paris.'), model: 'm' } },
        requestState: s1.requestState,
      }));
      assert.deepEqual(s2.content, [text('Sampling result: Paris.')]);

      const l1 = irr(await call('test_input_required_result_list_roots'));
      assert.deepEqual(l1.inputRequests, { client_roots: { method: 'roots/list', params: {} } });
      const l2 = complete(await call('test_input_required_result_list_roots', {}, ALL_CAPS, {
        inputResponses: { client_roots: { roots: [{ uri: 'file:///test/root', name: 'Test Root' }] } },
        requestState: l1.requestState,
      }));
      assert.deepEqual(l2.content, [text('Found 1 root(s)')]);
    });

    test('multiple inputs in one round', async () => {
      const r1 = irr(await call('test_input_required_result_multiple_inputs'));
      assert.deepEqual(r1.inputRequests, {
        user_name: USER_NAME,
        greeting: {
          method: 'sampling/createMessage',
          params: { messages: [{ role: 'user', content: text('Generate a greeting') }], maxTokens: 50 },
        },
        client_roots: { method: 'roots/list', params: {} },
      });
      const r2 = complete(await call('test_input_required_result_multiple_inputs', {}, ALL_CAPS, {
        inputResponses: {
          user_name: accept({ name: 'Ada' }),
          greeting: { role: 'assistant', content: text('Hello there!'), model: 'm' },
          client_roots: { roots: [{ uri: 'file:///test/root', name: 'Test Root' }] },
        },
        requestState: r1.requestState,
      }));
      assert.deepEqual(r2.content, [text('Name: Ada; Greeting: Hello there!; Roots: 1')]);
    });

    test('multi-round takes two rounds with a new state each time', async () => {
      const r1 = irr(await call('test_input_required_result_multi_round'));
      assert.deepEqual(r1.inputRequests, {
        step1: { method: 'elicitation/create', params: form('Step 1: What is your name?', 'name', 'string') },
      });
      const r2 = irr(await call('test_input_required_result_multi_round', {}, ALL_CAPS, {
        inputResponses: { step1: accept({ name: 'Ada' }) },
        requestState: r1.requestState,
      }));
      assert.deepEqual(r2.inputRequests, {
        step2: { method: 'elicitation/create', params: form('Step 2: What is your favorite color?', 'color', 'string') },
      });
      assert.notEqual(r2.requestState, r1.requestState);
      const r3 = complete(await call('test_input_required_result_multi_round', {}, ALL_CAPS, {
        inputResponses: { step2: accept({ color: 'blue' }) },
        requestState: r2.requestState,
      }));
      assert.deepEqual(r3.content, [text('Multi-round complete for Ada who likes blue')]);
    });

    test('request state: validated, and a tampered one is -32602', async () => {
      const confirm = { method: 'elicitation/create', params: form('Please confirm', 'ok', 'boolean') };
      for (const tool of ['test_input_required_result_request_state', 'test_input_required_result_tampered_state']) {
        const r1 = irr(await call(tool));
        assert.deepEqual(r1.inputRequests, { confirm });
        const good = complete(await call(tool, {}, ALL_CAPS, {
          inputResponses: { confirm: accept({ ok: true }) },
          requestState: r1.requestState,
        }));
        assert.deepEqual(good.content, [text('state-ok: requestState validated')]);
        const bad = await call(tool, {}, ALL_CAPS, {
          inputResponses: { confirm: accept({ ok: true }) },
          requestState: `${r1.requestState}-TAMPERED`,
        });
        assert.equal(bad.result, undefined, JSON.stringify(bad.result));
        assert.equal(bad.error.code, -32602);
      }
    });

    test('test_missing_capability without sampling is -32021', async () => {
      const res = await call('test_missing_capability', {}, {});
      assert.equal(res.error?.code, -32021, JSON.stringify(res));
      assert.deepEqual(res.error.data.requiredCapabilities, { sampling: {} });
      const withCap = complete(await call('test_missing_capability', {}, { sampling: {} }));
      assert.deepEqual(withCap.content, [text('Sampling capability is declared')]);
    });

    test('capabilities: asks only what is declared, plain text without any', async () => {
      const none = complete(await call('test_input_required_result_capabilities', {}, {}));
      assert.equal(none.content[0].type, 'text');
      assert.notEqual(none.isError, true);
      const some = irr(await call('test_input_required_result_capabilities', {}, { sampling: {} }));
      assert.deepEqual(Object.keys(some.inputRequests), ['capital_question']);
      const done = complete(await call('test_input_required_result_capabilities', {}, { sampling: {} }, {
        inputResponses: { capital_question: { role: 'assistant', content: text('Paris'), model: 'm' } },
        requestState: some.requestState,
      }));
      assert.deepEqual(done.content, [text('capabilities-ok: capital_question')]);
    });

    test('test_input_required_result_prompt round trip', async () => {
      const get = (extra = {}) => c.request('prompts/get', {
        name: 'test_input_required_result_prompt', ...extra, _meta: modernMeta(ALL_CAPS),
      });
      const r1 = irr(await get());
      assert.deepEqual(r1.inputRequests, {
        user_context: {
          method: 'elicitation/create',
          params: form('What context should the prompt use?', 'context', 'string'),
        },
      });
      const r2 = complete(await get({
        inputResponses: { user_context: accept({ context: 'test context' }) },
        requestState: r1.requestState,
      }));
      assert.deepEqual(r2.messages, [{ role: 'user', content: text('Prompt with context: test context') }]);
    });

    test('streaming elicitation, logging tool and list-change triggers', async () => {
      const s = irr(await call('test_streaming_elicitation', {}, { elicitation: {} }));
      assert.deepEqual(Object.keys(s.inputRequests), ['confirm']);
      assert.equal((await call('test_streaming_elicitation', {}, {})).error?.code, -32021);

      const logCount = () => c.received.filter((m) => m.method === 'notifications/message').length;
      const before = logCount();
      const quiet = complete(await call('test_logging_tool', {}, {}));
      assert.deepEqual(quiet.content, [text('Logging tool executed')]);
      assert.equal(logCount(), before);
      const loud = await c.request('tools/call', {
        name: 'test_logging_tool',
        _meta: modernMeta({}, { 'io.modelcontextprotocol/logLevel': 'info' }),
      });
      complete(loud);
      const last = c.received.slice(0, c.received.indexOf(loud)).filter((m) => m.method === 'notifications/message').at(-1);
      assert.deepEqual(last.params, { level: 'info', data: 'test_logging_tool executed' });

      const toolsBefore = ok(await c.request('tools/list', { _meta: modernMeta() })).tools.map((t) => t.name);
      for (const [tool, method, txt] of [
        ['test_trigger_tool_change', 'notifications/tools/list_changed', 'Tool list change published'],
        ['test_trigger_prompt_change', 'notifications/prompts/list_changed', 'Prompt list change published'],
      ]) {
        const n = c.received.length;
        const res = complete(await call(tool, {}, {}));
        assert.deepEqual(res.content, [text(txt)]);
        // The legacy session of this process hears it.
        await c.waitFor((m) => m.method === method && c.received.indexOf(m) >= n, 5000, method);
      }
      const toolsAfter = ok(await c.request('tools/list', { _meta: modernMeta() })).tools.map((t) => t.name);
      assert.deepEqual(toolsAfter, toolsBefore);
    });

    test('resources and cache hints in the 2026 era', async () => {
      const list = complete(await c.request('resources/list', { _meta: modernMeta() }));
      assert.equal(list.resources[0].uri, 'test://static-text');
      const read = complete(await c.request('resources/read', { uri: list.resources[0].uri, _meta: modernMeta() }));
      assert.ok(Number.isInteger(read.ttlMs));
      const missing = await c.request('resources/read', {
        uri: 'test://nonexistent-resource-for-conformance-testing', _meta: modernMeta(),
      });
      assert.equal(missing.error?.code, -32602);
      assert.equal(missing.error.data.uri, 'test://nonexistent-resource-for-conformance-testing');
    });
  });

  test('all captured traffic is schema-valid', async () => {
    await c.close();
    const { passed } = checkSchemas(c.inFile, c.outFile);
    assert.ok(passed > 50, `${passed} messages checked`);
  });
});
