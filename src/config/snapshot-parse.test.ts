import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SnapshotSchema } from './schema.ts';
import { parseSnapshot } from './snapshot-parse.ts';

const hex = (n: number) => n.toString(16).padStart(64, '0');

function snapshot(): Record<string, unknown> {
  return {
    version: 3,
    collections: [
      {
        name: 'orders',
        basePath: '/orders',
        upstream: 'http://127.0.0.1:9',
        project: 'p',
        environment: 'PROD',
        endpoints: [{ method: 'GET', path: '/items', permission: 'orders:read' }],
      },
    ],
    roles: [{ name: 'reader', permissions: ['orders:read'] }],
    clients: [
      { id: 'c1', role: 'reader', environments: ['PROD'], projects: ['p'], keys: [{ hash: hex(1) }] },
      {
        id: 'c2',
        name: 'two',
        role: 'reader',
        environments: ['PROD'],
        projects: ['p'],
        status: 'disabled',
        keys: [{ hash: `SHA256:${hex(2).toUpperCase()}`, id: 'ghk_abc' }],
      },
      {
        id: 'c3',
        role: 'reader',
        environments: ['PROD'],
        projects: ['p'],
        rateLimits: { key: { limit: 5, window: '1m' } },
        keys: [{ hash: hex(3) }, { hash: hex(4) }],
      },
    ],
    legacyClients: [
      { id: 'l1', role: 'reader', environments: ['PROD'], projects: ['p'], email: 'a@example.com', keyHash: hex(9) },
    ],
    tokenExchange: { issuer: 'https://gatehouse', audience: 'api', ttl: '5m' },
  };
}

/** parseSnapshot must agree with the schema: same success, same output, and zod's issues when it fails. */
function same(value: unknown): void {
  const expected = SnapshotSchema.safeParse(value);
  const actual = parseSnapshot(value);
  assert.equal(actual.success, expected.success, JSON.stringify(expected.error?.issues));
  if (expected.success) assert.deepEqual(actual.data, expected.data);
  else assert.deepEqual(actual.error?.issues, expected.error.issues);
}

describe('parseSnapshot', () => {
  it('outputs what SnapshotSchema outputs for a valid snapshot (key hashes normalised, defaults filled in)', () => {
    same(snapshot());
    same({ ...snapshot(), clients: [] });
    const { clients: _clients, ...noClients } = snapshot();
    same(noClients);
  });

  it("refuses what the schema refuses, with the schema's issues: cross-references of the clients and the rest", () => {
    const s = snapshot();
    const clients = s.clients as Record<string, unknown>[];
    const legacy = (s.legacyClients as Record<string, unknown>[])[0]!;
    same({ ...s, clients: [...clients, { ...clients[0], id: 'c9', role: 'nobody' }] }); // unknown role
    same({ ...s, clients: [...clients, { ...clients[0], id: 'c9' }] }); // a key hash used twice
    same({ ...s, clients: [...clients, { ...clients[0], id: 'c9', keys: [{ hash: hex(9) }] }] }); // the legacy client's hash
    same({ ...s, clients: [...clients, { ...clients[0], id: 'l1', keys: [{ hash: hex(10) }] }] }); // the legacy client's id
    same({ ...s, clients: [...clients, { ...clients[0], id: 'c1', keys: [{ hash: hex(10) }] }] }); // a duplicate id
    same({ ...s, clients: [{ ...clients[0], keys: [{ hash: hex(1) }, { hash: hex(1) }] }] }); // twice in one client
    same({ ...s, clients: [{ ...clients[0], extra: true }] }); // unknown field: zod decides
    same({ ...s, clients: [{ ...clients[0], keys: [] }] });
    same({ ...s, legacyClients: [{ ...legacy, role: 'nobody' }] });
    same({ ...s, roles: [] });
    same({ ...s, tokenExchange: undefined });
    same({ ...s, clients: 'none' });
    same(null);
  });
});
