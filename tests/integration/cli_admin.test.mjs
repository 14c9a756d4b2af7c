// The administration commands (`mcpgate user|client|keys|audit`) against a real SQLite database
// in a temporary directory: what they print, their exit statuses (0, 1 for an error with one line
// on stderr, 2 for a usage error), the file modes of the database and the master key, and that
// no secret lands anywhere it should not (the client secret is printed once and only its hash is
// stored; passwords are never echoed).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { BIN } from './helpers.mjs';

let dir;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-cli-admin-'));
});

after(() => {
  if (dir && !process.env.MCPGATE_KEEP_CAPTURES) fs.rmSync(dir, { recursive: true, force: true });
});

// Runs the binary in the temporary directory, without the environment's database or master
// key; input goes to stdin. Returns { status, stdout, stderr }.
function run(args, { input = '', env = {} } = {}) {
  const base = { ...process.env };
  delete base.MCPGATE_DB;
  delete base.MCPGATE_MASTER_KEY;
  const r = spawnSync(BIN, args, {
    cwd: dir,
    input,
    encoding: 'utf8',
    env: { ...base, ...env },
    timeout: 30000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Asserts an exit status, showing the output when it differs.
function expectStatus(r, status, what) {
  assert.equal(r.status, status, `${what}: exit ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
}

// An error: exit 1 and exactly one line on stderr, matching re.
function expectError(r, re, what) {
  expectStatus(r, 1, what);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `${what}: expected one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], re, what);
}

const mode = (file) => fs.statSync(file).mode & 0o777;

// The database and the files SQLite keeps next to it (WAL), as bytes.
function databaseBytes(db) {
  return [db, `${db}-wal`, `${db}-shm`, `${db}-journal`]
    .filter((f) => fs.existsSync(f))
    .map((f) => ({ file: f, bytes: fs.readFileSync(f) }));
}

describe('mcpgate user', () => {
  const db = () => path.join(dir, 'users.db');
  const dbArgs = () => ['--db', `sqlite:${db()}`];

  test('add with --password-stdin, duplicate refused', () => {
    const r = run(['user', 'add', 'alice', '--password-stdin', ...dbArgs()], {
      input: 'correct horse battery\n',
    });
    expectStatus(r, 0, 'user add');
    assert.match(r.stdout, /alice/);
    assert.ok(!`${r.stdout}${r.stderr}`.includes('correct horse'), 'the password was printed');

    const dup = run(['user', 'add', 'alice', '--password-stdin', ...dbArgs()], {
      input: 'another password\n',
    });
    expectError(dup, /user alice already exists/, 'duplicate user add');
  });

  test('the database file is mode 0600', () => {
    assert.equal(mode(db()), 0o600, `mode ${mode(db()).toString(8)}`);
  });

  test('list shows the user, --json parses', () => {
    const r = run(['user', 'list', ...dbArgs()]);
    expectStatus(r, 0, 'user list');
    assert.match(r.stdout, /^.*\balice$/m);

    const j = run(['user', 'list', '--json', ...dbArgs()]);
    expectStatus(j, 0, 'user list --json');
    const users = JSON.parse(j.stdout);
    assert.ok(Array.isArray(users));
    assert.deepEqual(
      users.map((u) => u.username),
      ['alice'],
    );
    assert.equal(typeof users[0].created_at, 'number');
    assert.ok(!j.stdout.includes('argon2'), 'user list shows password hashes');
  });

  test('passwords shorter than 8 characters, empty, or too long are refused', () => {
    expectError(
      run(['user', 'add', 'bob', '--password-stdin', ...dbArgs()], { input: 'short12\n' }),
      /at least 8 characters/,
      'short password',
    );
    expectError(
      run(['user', 'add', 'bob', '--password-stdin', ...dbArgs()], { input: '\n' }),
      /empty password/,
      'empty password',
    );
    expectError(
      run(['user', 'add', 'bob', '--password-stdin', ...dbArgs()], { input: `${'x'.repeat(1025)}\n` }),
      /longer than 1024/,
      'long password',
    );
    const list = JSON.parse(run(['user', 'list', '--json', ...dbArgs()]).stdout);
    assert.ok(!list.some((u) => u.username === 'bob'), 'a refused user was added');
  });

  test('without --password-stdin and without a terminal, a clear error', (t) => {
    // setsid: no controlling terminal, even when the tests run from one.
    const setsid = ['/usr/bin/setsid', '/bin/setsid'].find((f) => fs.existsSync(f));
    if (!setsid) {
      t.skip('setsid is not installed');
      return;
    }
    const r = spawnSync(setsid, ['-w', BIN, 'user', 'add', 'carol', ...dbArgs()], {
      cwd: dir,
      encoding: 'utf8',
      input: 'password1234\n',
    });
    expectError(r, /--password-stdin/, 'user add without a terminal');
  });

  test('passwd changes the password, remove removes the user', () => {
    expectStatus(
      run(['user', 'passwd', 'alice', '--password-stdin', ...dbArgs()], { input: 'new password 2\n' }),
      0,
      'user passwd',
    );
    expectError(
      run(['user', 'passwd', 'nobody', '--password-stdin', ...dbArgs()], { input: 'whatever123\n' }),
      /no user nobody/,
      'passwd of an unknown user',
    );
    expectStatus(run(['user', 'remove', 'alice', ...dbArgs()]), 0, 'user remove');
    const users = JSON.parse(run(['user', 'list', '--json', ...dbArgs()]).stdout);
    assert.deepEqual(users, []);
    expectError(run(['user', 'remove', 'alice', ...dbArgs()]), /no user alice/, 'remove twice');
  });

  test('usage errors exit 2', () => {
    expectStatus(run(['user', 'add', ...dbArgs()]), 2, 'missing NAME');
    expectStatus(run(['user', 'add', 'bad name', '--password-stdin', ...dbArgs()]), 2, 'bad name');
    expectStatus(run(['user', 'add', 'x'.repeat(65), '--password-stdin', ...dbArgs()]), 2, 'long name');
    expectStatus(run(['user', 'list', '--bogus', ...dbArgs()]), 2, 'unknown option');
    expectStatus(run(['user', 'list', '--db']), 2, '--db without a value');
    expectStatus(run(['user', 'frobnicate']), 2, 'unknown subcommand');
    expectStatus(run(['user']), 2, 'no subcommand');
    const help = run(['user', 'add', '--help']);
    expectStatus(help, 0, 'user add --help');
    assert.match(help.stdout, /usage: mcpgate user add/);
  });

  test('the database comes from MCPGATE_DB, else ./mcpgate.db', () => {
    const r = run(['user', 'list', '--json'], { env: { MCPGATE_DB: `sqlite:${db()}` } });
    expectStatus(r, 0, 'user list with MCPGATE_DB');
    // A listing does not create a database: the default ./mcpgate.db does not exist yet.
    expectError(run(['user', 'list']), /no database/, 'user list without a database');
    assert.ok(!fs.existsSync(path.join(dir, 'mcpgate.db')));
    expectStatus(run(['user', 'add', 'dora', '--password-stdin'], { input: 'password 1234\n' }), 0,
      'user add in ./mcpgate.db');
    assert.equal(mode(path.join(dir, 'mcpgate.db')), 0o600);
  });
});

describe('mcpgate client', () => {
  const db = () => path.join(dir, 'clients.db');
  const dbArgs = () => ['--db', `sqlite:${db()}`];
  let secret;

  test('add a public client: a client_id, no secret', () => {
    const r = run(['client', 'add', '--name', 'Public App', '--redirect-uri',
      'http://127.0.0.1:8976/callback', ...dbArgs()]);
    expectStatus(r, 0, 'client add (public)');
    assert.match(r.stdout, /^client_id: [A-Za-z0-9_-]{22}$/m);
    assert.ok(!/secret/i.test(r.stdout), `a public client got a secret:\n${r.stdout}`);
  });

  test('add a confidential client: the secret is printed once', () => {
    const r = run(['client', 'add', '--name', 'Confidential App', '--redirect-uri',
      'https://app.example.com/oauth/callback', '--redirect-uri', 'https://app.example.com/cb2',
      '--confidential', '--first-party', '--scope', 'mcp', '--client-id', 'conf-app', ...dbArgs()]);
    expectStatus(r, 0, 'client add (confidential)');
    assert.match(r.stdout, /^client_id: conf-app$/m);
    const m = /^client_secret: (\S+)$/m.exec(r.stdout);
    assert.ok(m, `no client_secret line:\n${r.stdout}`);
    secret = m[1];
    assert.ok(secret.length >= 43, 'a short secret');
    assert.equal(r.stdout.split(secret).length - 1, 1, 'the secret was printed more than once');
    assert.ok(!r.stderr.includes(secret), 'the secret went to stderr');
    assert.match(r.stderr, /only this once/);

    expectError(
      run(['client', 'add', '--name', 'Again', '--redirect-uri', 'https://b.example/cb',
        '--client-id', 'conf-app', ...dbArgs()]),
      /client ID conf-app already exists/,
      'duplicate client_id',
    );
  });

  test('list shows both clients and never the secret', () => {
    const text = run(['client', 'list', ...dbArgs()]);
    expectStatus(text, 0, 'client list');
    assert.match(text.stdout, /conf-app/);
    assert.match(text.stdout, /Public App/);
    assert.match(text.stdout, /https:\/\/app\.example\.com\/oauth\/callback/);
    assert.ok(!text.stdout.includes(secret), 'client list shows the secret');

    const j = run(['client', 'list', '--json', ...dbArgs()]);
    expectStatus(j, 0, 'client list --json');
    assert.ok(!j.stdout.includes(secret), 'client list --json shows the secret');
    const clients = JSON.parse(j.stdout);
    assert.equal(clients.length, 2);
    const conf = clients.find((c) => c.client_id === 'conf-app');
    assert.equal(conf.name, 'Confidential App');
    assert.equal(conf.kind, 'static');
    assert.equal(conf.first_party, true);
    assert.equal(conf.confidential, true);
    assert.deepEqual(conf.redirect_uris, [
      'https://app.example.com/oauth/callback',
      'https://app.example.com/cb2',
    ]);
    const pub = clients.find((c) => c.client_id !== 'conf-app');
    assert.equal(pub.confidential, false);
    assert.equal(pub.first_party, false);
    assert.deepEqual(pub.grant_types, ['authorization_code', 'refresh_token']);
  });

  test('the database does not contain the secret', () => {
    const files = databaseBytes(db());
    assert.ok(files.length > 0);
    for (const { file, bytes } of files)
      assert.equal(bytes.indexOf(Buffer.from(secret)), -1, `${file} contains the client secret`);
  });

  test('a javascript: redirect URI is refused, naming it', () => {
    const uri = 'javascript:alert(document.cookie)';
    const r = run(['client', 'add', '--name', 'Evil', '--redirect-uri', 'https://ok.example/cb',
      '--redirect-uri', uri, ...dbArgs()]);
    expectError(r, /redirect URI/, 'javascript: redirect URI');
    assert.ok(r.stderr.includes(uri), `the message does not name the URI:\n${r.stderr}`);
    const clients = JSON.parse(run(['client', 'list', '--json', ...dbArgs()]).stdout);
    assert.ok(!clients.some((c) => c.name === 'Evil'), 'the refused client was stored');
  });

  test('remove', () => {
    expectStatus(run(['client', 'remove', 'conf-app', ...dbArgs()]), 0, 'client remove');
    expectError(run(['client', 'remove', 'conf-app', ...dbArgs()]), /no client conf-app/,
      'remove twice');
    const clients = JSON.parse(run(['client', 'list', '--json', ...dbArgs()]).stdout);
    assert.equal(clients.length, 1);
  });

  test('usage errors exit 2', () => {
    expectStatus(run(['client', 'add', '--redirect-uri', 'https://a.example/cb', ...dbArgs()]), 2,
      'missing --name');
    expectStatus(run(['client', 'add', '--name', 'x', ...dbArgs()]), 2, 'missing --redirect-uri');
    expectStatus(run(['client', 'add', '--name', 'x', '--redirect-uri', 'https://a.example/cb',
      '--client-id', 'https://evil.example/x', ...dbArgs()]), 2, 'a URL as --client-id');
    expectStatus(run(['client', 'remove', ...dbArgs()]), 2, 'missing CLIENT_ID');
  });
});

describe('mcpgate keys', () => {
  const db = () => path.join(dir, 'keys.db');
  const dbArgs = () => ['--db', `sqlite:${db()}`];

  test('rotate twice: three keys, one current; the master key file is 0600', () => {
    const kids = [];
    for (let i = 0; i < 2; i++) {
      const r = run(['keys', 'rotate', ...dbArgs()]);
      expectStatus(r, 0, `keys rotate #${i + 1}`);
      const kid = r.stdout.trim();
      assert.match(kid, /^[A-Za-z0-9_-]{43}$/);
      kids.push(kid);
    }
    assert.notEqual(kids[0], kids[1]);
    const keyFile = `${db()}.key`;
    assert.ok(fs.existsSync(keyFile), 'no master key file next to the database');
    assert.equal(mode(keyFile), 0o600, `master key file mode ${mode(keyFile).toString(8)}`);
    assert.equal(mode(db()), 0o600);

    const text = run(['keys', 'list', ...dbArgs()]);
    expectStatus(text, 0, 'keys list');
    const rows = text.stdout.split('\n').filter((l) => /ES256/.test(l));
    assert.equal(rows.length, 3, text.stdout);
    assert.equal(rows.filter((l) => /\bcurrent\b/.test(l)).length, 1, text.stdout);
    assert.match(rows[0], new RegExp(`^${kids[1]}\\b.*\\bcurrent\\b`));

    const keys = JSON.parse(run(['keys', 'list', '--json', ...dbArgs()]).stdout);
    assert.equal(keys.length, 3);
    assert.equal(keys.filter((k) => k.current).length, 1);
    assert.equal(keys.find((k) => k.current).kid, kids[1]);
    for (const k of keys) assert.deepEqual(Object.keys(k).sort(), ['alg', 'created_at', 'current', 'kid', 'retired_at']);
  });

  test('rotate refuses a master key that does not open the current key', () => {
    const r = run(['keys', 'rotate', ...dbArgs()], {
      env: { MCPGATE_MASTER_KEY: Buffer.alloc(32, 7).toString('base64url') },
    });
    expectStatus(r, 1, 'keys rotate with another master key');
    assert.match(r.stderr, /master key/);
    const keys = JSON.parse(run(['keys', 'list', '--json', ...dbArgs()]).stdout);
    assert.equal(keys.length, 3, 'a key was added under the wrong master key');
  });

  test('--master-key-file', () => {
    const other = path.join(dir, 'other.db');
    const keyFile = path.join(dir, 'elsewhere.key');
    expectStatus(run(['keys', 'rotate', '--db', other, '--master-key-file', keyFile]), 0,
      'keys rotate --master-key-file');
    assert.equal(mode(keyFile), 0o600);
    assert.ok(!fs.existsSync(`${other}.key`));
  });
});

describe('mcpgate audit', () => {
  const db = () => path.join(dir, 'audit.db');
  const dbArgs = () => ['--db', `sqlite:${db()}`];

  before(() => {
    expectStatus(run(['user', 'add', 'erin', '--password-stdin', ...dbArgs()], {
      input: 'password 5678\n',
    }), 0, 'user add');
  });

  test('runs on a database without events; --json gives an array', () => {
    const r = run(['audit', ...dbArgs()]);
    expectStatus(r, 0, 'audit');
    // The commands themselves record nothing: no line, or at most a header.
    assert.ok(r.stdout.split('\n').filter((l) => l !== '').length <= 1, r.stdout);

    const j = run(['audit', '--json', '--since', '7d', '--user', 'erin', '--limit', '10', ...dbArgs()]);
    expectStatus(j, 0, 'audit --json');
    assert.ok(Array.isArray(JSON.parse(j.stdout)));

    for (const since of ['1700000000', '2026-11-23', '2026-11-23T10:00:00Z', '30m', '2h'])
      expectStatus(run(['audit', '--since', since, ...dbArgs()]), 0, `--since ${since}`);
  });

  test('usage errors exit 2', () => {
    for (const since of ['yesterday', '2026-02-30', '2026-11-23T25:00:00Z', '5x', '-1'])
      expectStatus(run(['audit', '--since', since, ...dbArgs()]), 2, `--since ${since}`);
    expectStatus(run(['audit', '--limit', '0', ...dbArgs()]), 2, '--limit 0');
    expectStatus(run(['audit', '--limit', '10001', ...dbArgs()]), 2, '--limit 10001');
    expectStatus(run(['audit', 'extra', ...dbArgs()]), 2, 'extra argument');
  });
});
