#!/usr/bin/env node
// The client under test for the official conformance suite's client scenarios: the suite runs
// `node conformance_client.mjs URL` once per scenario, with MCP_CONFORMANCE_SCENARIO,
// MCP_CONFORMANCE_PROTOCOL_VERSION and (some scenarios) MCP_CONFORMANCE_CONTEXT set. This
// script only chooses what a user would type: which `mcpgate tools|call` command, which tool
// and arguments the scenario's mock server expects. Everything the scenarios score (discovery,
// registration, PKCE, iss, scopes, headers, sessions, resumption, MRTR) is mcpgate's own work.
//
// The sign-in's "browser" is curl following the authorization endpoint's redirect to mcpgate's
// loopback listener (the mock approves at once). Environment: MCPGATE_BIN.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const url = process.argv.at(-1);
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? '';
const version = process.env.MCP_CONFORMANCE_PROTOCOL_VERSION ?? '2025-11-25';
const ctx = process.env.MCP_CONFORMANCE_CONTEXT ? JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT)
  : {};
const BIN = process.env.MCPGATE_BIN;
const config = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-conf-client-'));

const common = ['--protocol-version', version, '--config-dir', config,
  '--browser', 'curl -s -o /dev/null -L', '--auth-timeout', '20', '--timeout', '20',
  '--client-metadata-url', 'https://conformance-test.local/client-metadata.json',
  '--elicitation', 'accept-defaults'];

function mcpgate(...args) {
  const r = spawnSync(BIN, [...args, ...common], { stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8', timeout: 28000 });
  process.stdout.write(r.stdout ?? '');
  return r.status ?? 1;
}

function run() {
  switch (scenario) {
    case 'initialize':
    case 'request-metadata':
    case 'json-schema-ref-no-deref':
      return mcpgate('tools', url);
    case 'tools_call':
      return mcpgate('call', url, 'add_numbers', 'a=2', 'b=3');
    case 'elicitation-sep1034-client-defaults':
      return mcpgate('call', url, 'test_client_elicitation_defaults');
    case 'sse-retry':
      return mcpgate('call', url, 'test_reconnection');
    case 'sep-2322-client-request-state':
      return ['test_mrtr_echo_state', 'test_mrtr_no_state', 'test_mrtr_unrelated',
        'test_mrtr_no_result_type'].map((t) => mcpgate('call', url, t)).find((s) => s) ?? 0;
    case 'http-standard-headers':
      return mcpgate('call', url, 'test_headers');
    case 'http-custom-headers':
      return ctx.toolCalls.map((c) => mcpgate('call', url, c.name, JSON.stringify(c.arguments)))
        .find((s) => s) ?? 0;
    case 'http-invalid-tool-headers':
      return mcpgate('call', url, 'valid_tool', '{"region":"x"}');
    case 'json-schema-2020-12-preservation': {
      const r = spawnSync(BIN, ['tools', url, '--json', ...common], { encoding: 'utf8' });
      const tool = JSON.parse(r.stdout).find((t) => t.name === 'json_schema_2020_12_tool');
      return mcpgate('call', url, 'json_schema_echo', JSON.stringify({ schema: tool.inputSchema }));
    }
    case 'auth/pre-registration':
      return mcpgate('call', url, 'test-tool', '--static-oauth-client-info',
        JSON.stringify({ client_id: ctx.client_id, client_secret: ctx.client_secret }));
    case 'auth/client-credentials-basic':
      return mcpgate('call', url, 'test-tool', '--client-credentials',
        '--static-oauth-client-info',
        JSON.stringify({ client_id: ctx.client_id, client_secret: ctx.client_secret }));
    default:
      if (scenario.startsWith('auth/'))
        return mcpgate('call', url, 'test-tool');
      process.stderr.write(`conformance_client: scenario ${scenario} is not supported\n`);
      return 1;
  }
}

const status = run();
fs.rmSync(config, { recursive: true, force: true });
process.exit(status);
