/** Endpoints imported from OpenAPI compile like hand-written ones: permission sets (OR of ANDs) and public endpoints. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { SnapshotSchema } from '../../config/schema.ts';
import { generateKey } from '../../shared/api-key.ts';
import { UpstreamPools } from '../http/upstream-pools.ts';
import { createMemoryStore } from '../policies/rate-limit/memory-store.ts';
import { openSigningKeyStore } from '../tokens/keystore.ts';
import { createMinter } from '../tokens/minter.ts';
import { compileSnapshot } from './compile.ts';

describe('a snapshot with imported endpoints', async () => {
  const pools = new UpstreamPools();
  const store = createMemoryStore();
  const signing = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: 60_000 });
  after(async () => {
    await pools.close();
    store.close();
    signing.close();
  });
  const roles = { reader: ['pets:read'], writer: ['pets:read', 'pets:write'], admin: ['admin:pets'], all: ['pets:*'] };
  const keys = Object.fromEntries(Object.keys(roles).map((r) => [r, generateKey()]));
  const table = compileSnapshot(
    SnapshotSchema.parse({
      tokenExchange: { issuer: 'i', audience: 'a' },
      collections: [
        {
          name: 'pets',
          basePath: '/pets',
          upstream: 'http://127.0.0.1:1',
          project: 'p',
          environment: 'PROD',
          publicEndpoints: true,
          endpoints: [
            { method: 'GET', path: '/pets', permission: 'pets:read' },
            // (pets:read AND pets:write) OR admin:pets
            {
              method: 'PUT',
              path: '/pets/{id}',
              permission: 'pets:read',
              permissionSets: [['pets:read', 'pets:write'], ['admin:pets']],
            },
            { method: 'GET', path: '/health', permission: 'health', public: true },
          ],
        },
      ],
      roles: Object.entries(roles).map(([name, permissions]) => ({ name, permissions })),
      clients: Object.keys(roles).map((r) => ({
        id: r,
        role: r,
        environments: ['PROD'],
        projects: ['p'],
        keys: [{ hash: keys[r]!.hash }],
      })),
    }),
    {
      pools,
      rateLimitStore: store,
      minter: createMinter({ issuer: 'i', audience: 'a', ttlMs: 60_000, claims: [], keys: signing }),
      onTokenError: () => {},
    },
  );
  const grants = (role: string) => table.keys.get(keys[role]!.hash)!.principal.role.endpointIds;

  it('grants an endpoint with permission sets only to roles that hold every permission of one set', () => {
    assert.equal(grants('reader').has('pets PUT /pets/{id}'), false, 'pets:read alone is half of the AND');
    assert.equal(grants('writer').has('pets PUT /pets/{id}'), true);
    assert.equal(grants('admin').has('pets PUT /pets/{id}'), true, 'the other alternative');
    assert.equal(grants('all').has('pets PUT /pets/{id}'), true, 'a wildcard covers both of a set');
    assert.equal(grants('reader').has('pets GET /pets'), true);
  });

  it('gives a public endpoint a chain without authentication, and the others the collection’s', () => {
    const c = table.collections[0]!;
    const health = c.endpoints.match('GET', '/health');
    const list = c.endpoints.match('GET', '/pets');
    assert.ok(health && 'endpoint' in health && list && 'endpoint' in list);
    assert.deepEqual(
      health.endpoint.chain.map((p) => p.name),
      ['stripCredentialsPolicy'],
    );
    assert.equal(list.endpoint.chain, c.chain);
  });

  it('refuses a public endpoint in a collection that does not allow them', () => {
    const result = SnapshotSchema.safeParse({
      tokenExchange: { issuer: 'i', audience: 'a' },
      collections: [
        {
          name: 'x',
          basePath: '/x',
          upstream: 'http://127.0.0.1:1',
          project: 'p',
          environment: 'PROD',
          endpoints: [{ method: 'GET', path: '/h', permission: 'h', public: true }],
        },
      ],
    });
    assert.equal(result.success, false);
    assert.match(JSON.stringify(result.error!.issues), /does not allow public endpoints/);
  });
});
