import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  clientsFilePath,
  type ClientsFileReferences,
  type ClientsFileTarget,
  fastClient,
  parseClientLine,
  readClientsFile,
} from './clients-file.ts';
import { ConfigError, parseGatewayFile } from './load.ts';
import { type Client, ClientSchema, formatPath } from './schema.ts';
import { prng } from '../testing/prng.ts';

const HEX = 'a3f1c2d4e5b60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';

/** Values for each field: mostly valid ones, and the invalid ones a hand-written check is likely to get wrong. */
const VALUES = {
  name: [
    'c1',
    'Client.one_2-x',
    '9lives',
    'x'.repeat(128),
    '',
    '-x',
    '.x',
    'a b',
    'x'.repeat(129),
    'é',
    'a/b',
    5,
    null,
    true,
    ['c1'],
    {},
  ],
  label: ['ACME Corp', '', 'x'.repeat(256), 'x'.repeat(257), 'é'.repeat(256), 7, null, ['x']],
  environments: [
    ['PROD'],
    ['PROD', 'DEV'],
    ['TEST_2'],
    ['A'.repeat(32)],
    ['*'],
    ['*', 'PROD'],
    [],
    ['prod'],
    ['Prod'],
    ['A'.repeat(33)],
    ['1PROD'],
    ['PROD', 7],
    ['**'],
    [' *'],
    ['*', 'prod'],
    '*',
    'PROD',
    null,
    [['PROD']],
    [null],
  ],
  projects: [
    ['p'],
    ['billing', 'shop.v2'],
    ['*'],
    ['p', '*'],
    [],
    ['-p'],
    ['p q'],
    ['p*'],
    ['**'],
    ['*', '-p'],
    'p',
    '*',
    [1],
    ['x'.repeat(129)],
    [null],
  ],
  allowedIps: [
    ['10.0.0.0/8'],
    ['2001:db8::/32', '192.168.1.0/24'],
    [],
    ['10.0.0.0/33'],
    ['1.2.3.4'],
    ['::1/129'],
    'x',
    [7],
    ['256.0.0.0/8'],
    ['10.1.2.3/8'],
    ['2001:db8::1/32'],
  ],
  metadata: [
    { plan: 'pro', seats: 5, beta: true },
    {},
    { n: 1.5 },
    { x: null },
    { x: [] },
    { ['k'.repeat(128)]: 'v' },
    { ['k'.repeat(129)]: 'v' },
    { v: 'x'.repeat(1024) },
    { v: 'x'.repeat(1025) },
    [],
    'x',
    3,
    { x: {} },
  ],
  rateLimits: [
    { key: { limit: 10, window: '1m' } },
    { client: { limit: 5, window: 30 } },
    {},
    { org: { limit: 1, window: '1m' } },
    { key: { limit: 0, window: '1m' } },
    { key: { limit: 1.5, window: '1m' } },
    { key: { limit: 1, window: '10 minutes' } },
    { key: { limit: 1 } },
    'x',
  ],
  datetime: [
    '2027-06-30T00:00:00Z',
    '2027-06-30T00:00:00.123Z',
    '2027-06-30T00:00:00+02:00',
    '2027-06-30',
    '2027-06-30T00:00:00',
    '2027-02-30T00:00:00Z',
    'soon',
    5,
    null,
  ],
  status: ['active', 'disabled', 'ACTIVE', 'Active', '', null, 1],
  hash: [
    HEX,
    HEX.toUpperCase(),
    `sha256:${HEX}`,
    `SHA256:${HEX}`,
    `Sha256:${HEX.toUpperCase()}`,
    `sha256:${HEX.slice(0, 32)}${HEX.slice(32).toUpperCase()}`,
    HEX.slice(1),
    `${HEX}0`,
    `sha256:${HEX.slice(1)}`,
    `${HEX.slice(1)}g`,
    `sha256 ${HEX}`,
    `sha512:${HEX}`,
    `\u0013ha256:${HEX}`,
    `sha\u0012\u0015\u0016\u001a${HEX}`.slice(0, 71),
    `${HEX.slice(1)}\uff41`, // fullwidth 'a'
    `\u212aha256:${HEX}`, // Kelvin sign, lower-cases to 'k'
    ` ${HEX}`,
    `${HEX}\n`,
    '',
    64,
    null,
  ],
  keyId: [
    'abc123',
    '',
    'x'.repeat(64),
    'x'.repeat(65),
    1,
    null,
    'ghk_OYD2bW6pY21HpMITxjvPCsGSwSb2qSlk17CIdB',
    'key ghk_OYD2bW6pY21H',
  ],
};

function pick<T>(random: () => number, values: readonly T[]): T {
  return values[Math.floor(random() * values.length)]!;
}

/** A client-like object: required fields usually present and usually valid, optional ones sometimes, now and then an unknown key. */
function generate(random: () => number): Record<string, unknown> {
  const valid = random() < 0.5; // half the cases stay in the valid range of each value list
  const value = <T>(values: readonly T[], goodCount: number): T =>
    pick(random, valid ? values.slice(0, goodCount) : values);
  const maybe = (p: number) => random() < p;
  const client: Record<string, unknown> = {};
  if (maybe(0.97)) client.id = value(VALUES.name, 4);
  if (maybe(0.2)) client.name = value(VALUES.label, 3);
  if (maybe(0.97)) client.role = value(VALUES.name, 4);
  if (maybe(0.97)) client.environments = value(VALUES.environments, 4);
  if (maybe(0.97)) client.projects = value(VALUES.projects, 2);
  if (maybe(0.15)) client.allowedIps = value(VALUES.allowedIps, 3);
  if (maybe(0.2)) client.userId = value(VALUES.label, 3);
  if (maybe(0.2)) client.orgId = value(VALUES.label, 3);
  if (maybe(0.15)) client.metadata = value(VALUES.metadata, 3);
  if (maybe(0.1)) client.rateLimits = value(VALUES.rateLimits, 3);
  if (maybe(0.15)) client.expiresAt = value(VALUES.datetime, 3);
  if (maybe(0.3)) client.status = value(VALUES.status, 2);
  if (maybe(0.97)) {
    const keys = [];
    const n = maybe(0.05) ? 0 : 1 + Math.floor(random() * 3);
    for (let i = 0; i < n; i++) {
      const key: Record<string, unknown> = {};
      if (maybe(0.98)) key.hash = value(VALUES.hash, 6);
      if (maybe(0.2)) key.id = value(VALUES.keyId, 3);
      if (maybe(0.1)) key.expiresAt = value(VALUES.datetime, 3);
      if (maybe(0.02)) key.label = 'x';
      keys.push(key);
    }
    client.keys = maybe(0.02) ? 'k' : keys;
  }
  if (maybe(0.02)) client.extra = 1;
  if (maybe(0.02)) client.Id = 'c1';
  return client;
}

/** What zod says about a line: the output, or the problems formatted as the loader formats them. */
function zodLine(line: string) {
  const result = ClientSchema.safeParse(JSON.parse(line));
  return result.success
    ? { ok: true as const, client: result.data }
    : {
        ok: false as const,
        problems: result.error.issues.map((i) => `${formatPath(i.path) || '(root)'}: ${i.message}`),
      };
}

describe('a line of a clients file', () => {
  it('gives exactly what ClientSchema gives, for 20,000 generated valid and invalid clients', () => {
    const random = prng(20261122);
    let fast = 0;
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const line = JSON.stringify(generate(random));
      const expected = zodLine(line);
      const actual = parseClientLine(line);
      assert.deepEqual(actual, expected, line);
      if (actual.ok) {
        accepted++;
        // Same fields in the same order, not only deep-equal.
        assert.equal(JSON.stringify(actual.client), JSON.stringify(expected.client), line);
      }
      if (fastClient(JSON.parse(line)) !== undefined) fast++;
    }
    // The comparison means something only if both paths are taken often.
    assert.ok(accepted > 4_000, `only ${accepted} valid cases`);
    assert.ok(fast > 3_000, `the fast path took only ${fast} cases`);
  });

  it('never lets the fast path accept what zod refuses, whatever a single field holds', () => {
    const base = { id: 'c1', role: 'r', environments: ['PROD'], projects: ['p'], keys: [{ hash: HEX }] };
    const fields: Record<string, readonly unknown[]> = {
      id: VALUES.name,
      name: VALUES.label,
      role: VALUES.name,
      environments: VALUES.environments,
      projects: VALUES.projects,
      allowedIps: VALUES.allowedIps,
      userId: VALUES.label,
      orgId: VALUES.label,
      metadata: VALUES.metadata,
      rateLimits: VALUES.rateLimits,
      expiresAt: VALUES.datetime,
      status: VALUES.status,
    };
    const lines: string[] = [];
    for (const [field, values] of Object.entries(fields))
      for (const v of values) lines.push(JSON.stringify({ ...base, [field]: v }));
    for (const hash of VALUES.hash) lines.push(JSON.stringify({ ...base, keys: [{ hash }] }));
    for (const id of VALUES.keyId) lines.push(JSON.stringify({ ...base, keys: [{ hash: HEX, id }] }));
    for (const expiresAt of VALUES.datetime) lines.push(JSON.stringify({ ...base, keys: [{ hash: HEX, expiresAt }] }));
    lines.push(
      '{"id":"c1","role":"r","environments":["PROD"],"projects":["p"],"keys":[{"hash":"' +
        HEX +
        '"}],"__proto__":{"x":1}}',
    );
    lines.push(
      '{"id":"c1","role":"r","environments":["PROD"],"projects":["p"],"keys":[{"hash":"' +
        HEX +
        '"}],"metadata":{"__proto__":"x","a":1}}',
    );
    lines.push(
      '{"id":"c1","id":"c2","role":"r","environments":["PROD"],"projects":["p"],"keys":[{"hash":"' + HEX + '"}]}',
    );
    lines.push('[]', 'null', '"c1"', '{}', `{"keys":[{"hash":"${HEX}"}]}`);
    for (const line of lines) {
      const expected = zodLine(line);
      const fast = fastClient(JSON.parse(line));
      if (fast !== undefined) {
        assert.ok(expected.ok, `the fast path accepted what zod refuses: ${line}`);
        assert.equal(JSON.stringify(fast), JSON.stringify(expected.client), line);
      }
      assert.deepEqual(parseClientLine(line), expected, line);
    }
  });

  it('normalizes the hash as zod does: lower case, without "sha256:"', () => {
    const line = JSON.stringify({
      id: 'c1',
      role: 'r',
      environments: ['PROD'],
      projects: ['p'],
      keys: [{ hash: `SHA256:${HEX.toUpperCase()}` }],
    });
    const parsed = parseClientLine(line);
    assert.ok(parsed.ok);
    assert.equal(parsed.client.keys[0]!.hash, HEX);
    assert.equal(parsed.client.status, 'active');
  });

  it('takes an admin client with "*" environments and projects on the fast path', () => {
    const value = { id: 'admin', role: 'r', environments: ['*'], projects: ['*', 'p'], keys: [{ hash: HEX }] };
    assert.deepEqual(fastClient(value), ClientSchema.parse(value));
    assert.equal(fastClient({ ...value, environments: ['*', 'prod'] }), undefined);
  });

  it('reports a JSON syntax error as such', () => {
    const parsed = parseClientLine('{"id": "c1",');
    assert.ok(!parsed.ok);
    assert.equal(parsed.problems[0], 'invalid JSON at column 13: unexpected end of the file');
  });

  it('reports a JSON syntax error by its column, never quoting the line: it may hold a key', () => {
    const key = 'ghk_OYD2bW6pY21HpMITxjvPCsGSwSb2qSlk17CIdB';
    for (const [line, expected] of [
      [`not json ${key}`, 'invalid JSON at column 2: expected null'],
      [
        `{"id": "c1", "keys": [{"hash": ${key}}]}`,
        'invalid JSON at column 32: expected a value (an object, array, string, number, true, false or null)',
      ],
      [`{"id": "${key}`, 'invalid JSON at column 51: unexpected end of the file: a string is not closed'],
    ]) {
      assert.deepEqual(parseClientLine(line!), { ok: false, problems: [expected] }, line);
    }
  });

  it('refuses a key label that is the key itself, on the fast path too, without repeating it', () => {
    const key = 'ghk_OYD2bW6pY21HpMITxjvPCsGSwSb2qSlk17CIdB';
    const parsed = parseClientLine(
      JSON.stringify({ id: 'c1', role: 'r', environments: ['PROD'], projects: ['p'], keys: [{ hash: HEX, id: key }] }),
    );
    assert.ok(!parsed.ok);
    assert.match(parsed.problems.join('\n'), /^keys\[0\]\.id: must not be the key itself/);
    assert.ok(!parsed.problems.join('\n').includes(key.slice(0, 13)));
  });
});

describe('a clients file', () => {
  let dir: string;
  const refs: ClientsFileReferences = {
    roles: [{ name: 'reader', permissions: [], endpoints: [] }],
    clients: [
      {
        id: 'inline',
        role: 'reader',
        environments: ['PROD'],
        projects: ['p'],
        status: 'active',
        keys: [{ hash: 'f'.repeat(64) }],
      },
    ],
    legacyClients: [],
  };
  const hash = (i: number) => i.toString(16).padStart(64, '0');
  const client = (i: number, extra: Record<string, unknown> = {}) => ({
    id: `c${i}`,
    role: 'reader',
    environments: ['PROD'],
    projects: ['p'],
    keys: [{ hash: `sha256:${hash(i)}` }],
    ...extra,
  });
  const lines = (...xs: unknown[]) => xs.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join('\n');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-clients-file-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A target like the gateway's compilation: it collects clients and knows the keys of the config file and of what it got. */
  function target(): ClientsFileTarget & { clients: Client[] } {
    const hashes = new Set(refs.clients.flatMap((c) => c.keys.map((k) => k.hash)));
    const clients: Client[] = [];
    return {
      clients,
      add(client) {
        clients.push(client);
        for (const k of client.keys) hashes.add(k.hash);
      },
      hasKey: (hash) => hashes.has(hash),
    };
  }

  async function read(name: string, text: string | Buffer) {
    const file = join(dir, name);
    await writeFile(file, text);
    const into = target();
    const summary = await readClientsFile(file, refs, into);
    return { file, clients: into.clients, summary };
  }

  /** The error, the same with and without a target (the target's key index stands in for the loader's own). */
  async function errorOf(name: string, text: string): Promise<{ file: string; message: string; calls: number }> {
    const file = join(dir, name);
    await writeFile(file, text);
    const into = target();
    const messages: string[] = [];
    for (const t of [into, undefined]) {
      await assert.rejects(readClientsFile(file, refs, t), (error: Error) => {
        assert.ok(error instanceof ConfigError, String(error));
        messages.push(error.message);
        return true;
      });
    }
    assert.equal(messages[0], messages[1]);
    return { file, message: messages[0]!, calls: into.clients.length };
  }

  it('yields every client as ClientSchema outputs it, skipping blank lines and comments', async () => {
    const text = `\uFEFF# clients of tenant A\n${lines(client(1), '', '   ', '  # indented comment', client(2, { status: 'disabled', allowedIps: ['10.0.0.0/8'] }))}\r\n${JSON.stringify(client(3))}`;
    const { clients, summary } = await read('valid.ndjson', text);
    assert.deepEqual(
      clients.map((c) => c.id),
      ['c1', 'c2', 'c3'],
    );
    assert.deepEqual(
      clients,
      [client(1), client(2, { status: 'disabled', allowedIps: ['10.0.0.0/8'] }), client(3)].map((c) =>
        ClientSchema.parse(c),
      ),
    );
    assert.equal(clients[0]!.keys[0]!.hash, hash(1));
    assert.equal(summary.clients, 3);
    assert.equal(summary.keys, 3);
  });

  it('reads lines across chunk boundaries and lines longer than a chunk', async () => {
    const many = Array.from({ length: 12_000 }, (_, i) => JSON.stringify(client(i + 10))); // ~1.6 MB
    const metadata = Object.fromEntries(Array.from({ length: 2_000 }, (_, i) => [`k${i}`, 'v'.repeat(1000)])); // a 2 MB line
    const { clients } = await read('big.ndjson', `${many.join('\n')}\n${JSON.stringify(client(1, { metadata }))}\n`);
    assert.equal(clients.length, 12_001);
    assert.equal(clients[11_999]!.id, 'c12009');
    assert.equal(Object.keys(clients[12_000]!.metadata!).length, 2_000);

    // The last line, longer than the pieces it is decoded in, without a final newline.
    const huge = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, 'v'.repeat(1000)])); // a 100 KB line
    const { clients: two } = await read(
      'huge-last.ndjson',
      `${JSON.stringify(client(1))}\n${JSON.stringify(client(2, { metadata: huge }))}`,
    );
    assert.deepEqual(
      two.map((c) => c.id),
      ['c1', 'c2'],
    );
  });

  it("names the file, line and field of a bad line, in zod's words", async () => {
    const { file, message, calls } = await errorOf(
      'bad-hash.ndjson',
      lines('# first line', client(1), client(2, { keys: [{ hash: 'abc' }] })),
    );
    assert.match(message, /invalid clients file/);
    assert.ok(
      message.includes(`${file}:3: keys[0].hash: must be a SHA-256 hash: 64 hex digits, optionally prefixed "sha256:"`),
      message,
    );
    assert.equal(calls, 1, 'clients after the first problem are not handed on');
  });

  it('refuses a key hash already used in the config file, earlier in the file or in the same client', async () => {
    const twice = { keys: [{ hash: hash(4) }, { hash: `SHA256:${hash(4)}` }] };
    const { file, message } = await errorOf(
      'dup-hash.ndjson',
      lines(
        client(2),
        client(1, { keys: [{ hash: 'F'.repeat(64) }] }),
        client(3, { keys: [{ hash: hash(2) }] }),
        client(4, twice),
        client(5, { keys: [{ hash: hash(4) }] }),
      ),
    );
    assert.ok(message.includes(`${file}:2: keys[0].hash: this key hash is already used by another key`), message);
    assert.ok(message.includes(`${file}:3: keys[0].hash: this key hash is already used by another key`), message);
    assert.ok(message.includes(`${file}:4: keys[1].hash: this key hash is already used by another key`), message);
    // A hash first seen after the first problem (line 4, not handed to the target) still counts.
    assert.ok(message.includes(`${file}:5: keys[0].hash: this key hash is already used by another key`), message);
  });

  it('refuses duplicate client ids, within the file and against the config file', async () => {
    const { file, message } = await errorOf(
      'dup-id.ndjson',
      lines(client(1, { id: 'inline' }), client(2), client(3, { id: 'c2' })),
    );
    assert.ok(message.includes(`${file}:1: id: duplicate client id "inline" (also in the config file)`), message);
    assert.ok(message.includes(`${file}:3: id: duplicate client id "c2"`), message);
  });

  it('refuses a role the config file does not define', async () => {
    const { file, message } = await errorOf('role.ndjson', lines(client(1, { role: 'writer' })));
    assert.ok(message.includes(`${file}:1: role: unknown role "writer"`), message);
  });

  it('reports JSON syntax errors and unknown fields with their line', async () => {
    const { file, message } = await errorOf(
      'syntax.ndjson',
      lines(client(1), '{"id": "c2",', client(3, { extra: true })),
    );
    assert.ok(message.includes(`${file}:2: invalid JSON at column 13: unexpected end of the file`), message);
    assert.ok(message.includes(`${file}:3: (root): unknown field "extra": remove it, or check its spelling`), message);
  });

  it('lists the first 20 problems and counts the rest', async () => {
    const bad = Array.from({ length: 25 }, (_, i) => client(i, { role: 'nobody' }));
    const { message } = await errorOf('many.ndjson', lines(...bad));
    assert.equal(message.split('\n').filter((l) => l.includes('unknown role')).length, 20);
    assert.match(message, /… and 5 more$/);
  });

  it('refuses a line longer than 16 MiB, skipping it without holding it, and goes on counting lines', async () => {
    const long = JSON.stringify(client(2, { name: 'x'.repeat(16 * 2 ** 20) }));
    const { file, message } = await errorOf(
      'long-line.ndjson',
      lines(client(1), long, client(3, { role: 'nobody' }), `{"id":"c4","name":"${'y'.repeat(17 * 2 ** 20)}`),
    );
    assert.ok(message.includes(`${file}:2: the line is longer than the 16 MiB limit`), message);
    assert.ok(message.includes(`${file}:3: role: unknown role "nobody"`), message);
    assert.ok(message.includes(`${file}:4: the line is longer than the 16 MiB limit`), message);
    // A line just below the limit is read.
    const metadata = Object.fromEntries(Array.from({ length: 16_000 }, (_, i) => [`k${i}`, 'v'.repeat(1000)]));
    const near = JSON.stringify(client(5, { metadata }));
    assert.ok(near.length > 16_000_000 && near.length < 16 * 2 ** 20);
    const { clients } = await read('near-limit.ndjson', `${near}\n${JSON.stringify(client(6))}\n`);
    assert.deepEqual(
      clients.map((c) => c.id),
      ['c5', 'c6'],
    );
  });

  it('refuses what is not a regular file, clearly', async () => {
    await assert.rejects(
      readClientsFile('/dev/zero', refs),
      (error: Error) =>
        error instanceof ConfigError &&
        error.message === '/dev/zero: the clients file is a character device, not a regular file',
    );
    await assert.rejects(
      readClientsFile(dir, refs),
      (error: Error) =>
        error instanceof ConfigError && error.message === `${dir}: the clients file is a directory, not a regular file`,
    );
  });

  it('says so when the file cannot be read', async () => {
    await assert.rejects(
      readClientsFile(join(dir, 'missing.ndjson'), refs),
      (error: Error) =>
        error instanceof ConfigError && /missing\.ndjson: cannot read the clients file \(ENOENT\)/.test(error.message),
    );
  });

  it('is found relative to the config file', () => {
    const config = parseGatewayFile(
      JSON.stringify({ tokenExchange: { issuer: 'i', audience: 'a' }, clientsFile: 'clients.ndjson' }),
      'conf/gw.json',
    );
    assert.equal(clientsFilePath('conf/gw.json', config), join('conf', 'clients.ndjson'));
    assert.equal(clientsFilePath('conf/gw.json', { clientsFile: '/data/clients.ndjson' }), '/data/clients.ndjson');
    assert.equal(clientsFilePath('conf/gw.json', {}), undefined);
  });
});
