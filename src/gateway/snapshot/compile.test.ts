/** Compiling roles and client scopes: wildcards are expanded here, so the request path stays Set lookups. */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, describe, it } from 'node:test';
import { SnapshotSchema } from '../../config/schema.ts';
import type { Refusal } from '../../shared/errors.ts';
import { UpstreamPools } from '../http/upstream-pools.ts';
import { generateKey } from '../../shared/api-key.ts';
import { authorize } from '../policies/authorize.ts';
import type { RequestContext } from '../policies/policy.ts';
import { createMemoryStore } from '../policies/rate-limit/memory-store.ts';
import { openSigningKeyStore } from '../tokens/keystore.ts';
import { createMinter } from '../tokens/minter.ts';
import { compileSnapshot } from './compile.ts';

const keys = Object.fromEntries(
  ['invoicer', 'admin', 'all', 'everywhere', 'prodOnly', 'legacy'].map((n) => [n, generateKey()]),
);

describe('a compiled snapshot', async () => {
  const pools = new UpstreamPools();
  const store = createMemoryStore();
  const signing = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: 60_000 });
  after(async () => {
    await pools.close();
    store.close();
    signing.close();
  });

  const collection = (name: string, environment: string, project: string, permissions: string[]) => ({
    name,
    basePath: `/${name}`,
    upstream: 'http://127.0.0.1:1',
    project,
    environment,
    endpoints: permissions.map((permission, i) => ({ method: 'GET', path: `/e${i}`, permission })),
  });
  const client = (id: string, role: string, environments: string[], projects: string[]) => ({
    id,
    role,
    environments,
    projects,
    keys: [{ hash: keys[id]!.hash }],
  });
  const table = compileSnapshot(
    SnapshotSchema.parse({
      tokenExchange: { issuer: 'i', audience: 'a' },
      collections: [
        collection('billing', 'PROD', 'payments', [
          'invoices:read',
          'invoices:write',
          'invoices:items:read',
          'invoicesx:read',
          'invoices',
        ]),
        collection('admin', 'PROD', 'gatehouse', [
          'admin:clients:read',
          'admin:clients:write',
          'admin:roles:read',
          'audit:read',
        ]),
        collection('billing-test', 'TEST', 'payments', ['invoices:read']),
      ],
      roles: [
        { name: 'invoicer', permissions: ['invoices:*'] },
        { name: 'client-admin', permissions: ['admin:clients:*', 'audit:read'] },
        { name: 'all', permissions: ['*'] },
      ],
      clients: [
        client('invoicer', 'invoicer', ['PROD'], ['payments']),
        client('admin', 'client-admin', ['PROD'], ['gatehouse']),
        client('all', 'all', ['PROD'], ['payments', 'gatehouse']),
        client('everywhere', 'invoicer', ['*'], ['*']),
        client('prodOnly', 'invoicer', ['PROD'], ['*']),
      ],
      legacyClients: [
        {
          id: 'legacy',
          role: 'invoicer',
          environments: ['*'],
          projects: ['payments'],
          email: 'a@b.example',
          keyHash: keys.legacy!.hash,
        },
      ],
    }),
    {
      pools,
      rateLimitStore: store,
      minter: createMinter({ issuer: 'i', audience: 'a', ttlMs: 60_000, claims: [], keys: signing }),
      onTokenError: () => {},
    },
  );

  const granted = (role: string) => [...table.keys.get(keys[role]!.hash)!.principal.role.endpointIds].sort();
  /** Runs the authorize policy for `who` on endpoint `/e<n>` of `collectionName`. */
  const authorized = (who: string, collectionName: string, n = 0) => {
    const entry = table.keys.get(keys[who]!.hash) ?? table.legacyKeys.get(keys[who]!.hash)!;
    const c = table.collections.find((x) => x.name === collectionName)!;
    const match = c.endpoints.match('GET', `/e${n}`);
    assert.ok(match && 'endpoint' in match);
    const ctx = {
      req: {} as IncomingMessage,
      collection: c,
      endpoint: match.endpoint,
      principal: entry.principal,
    } as RequestContext;
    return (authorize()(ctx) as Refusal | undefined)?.code ?? 'ok'; // authorize answers synchronously
  };

  it('expands "invoices:*" to every endpoint whose permission starts with "invoices:", in every collection', () => {
    assert.deepEqual(granted('invoicer'), [
      'billing GET /e0',
      'billing GET /e1',
      'billing GET /e2',
      'billing-test GET /e0',
    ]);
  });

  it('expands "admin:clients:*" next to an exact permission', () => {
    assert.deepEqual(granted('admin'), ['admin GET /e0', 'admin GET /e1', 'admin GET /e3']);
  });

  it('expands "*" to every endpoint', () => {
    assert.equal(granted('all').length, 10);
  });

  it('authorizes by the expanded set and refuses what a wildcard does not cover', () => {
    assert.equal(authorized('invoicer', 'billing', 2), 'ok');
    assert.equal(authorized('invoicer', 'billing', 3), 'GH_ERR_AUTH_FORBIDDEN_ENDPOINT');
    assert.equal(authorized('admin', 'admin', 1), 'ok');
    assert.equal(authorized('admin', 'admin', 2), 'GH_ERR_AUTH_FORBIDDEN_ENDPOINT');
  });

  it('lets a client with "*" environments and projects reach collections of every environment and project', () => {
    assert.equal(authorized('everywhere', 'billing'), 'ok');
    assert.equal(authorized('everywhere', 'billing-test'), 'ok');
    assert.equal(authorized('legacy', 'billing-test'), 'ok');
    assert.equal(authorized('invoicer', 'billing-test'), 'GH_ERR_AUTH_FORBIDDEN_SCOPE');
    assert.equal(authorized('prodOnly', 'billing'), 'ok');
    assert.equal(authorized('prodOnly', 'billing-test'), 'GH_ERR_AUTH_FORBIDDEN_SCOPE');
    assert.equal(authorized('all', 'billing-test'), 'GH_ERR_AUTH_FORBIDDEN_SCOPE');
  });

  it("keeps the role's permissions as written for the token", () => {
    assert.deepEqual(table.keys.get(keys.invoicer!.hash)!.principal.role.permissions, ['invoices:*']);
  });
});
