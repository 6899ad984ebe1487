/** The compiled policy chain, called directly (the e2e tests in test/ cover the same over real sockets). */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, describe, it } from 'node:test';
import { SnapshotSchema } from '../../config/schema.ts';
import { UpstreamPools } from '../http/upstream-pools.ts';
import { generateKey } from '../../shared/api-key.ts';
import { compileSnapshot } from '../snapshot/compile.ts';
import { openSigningKeyStore } from '../tokens/keystore.ts';
import { createMinter } from '../tokens/minter.ts';
import type { RequestContext } from './policy.ts';
import { createMemoryStore } from './rate-limit/memory-store.ts';

const v6 = generateKey();
const v4 = generateKey();
const kept = generateKey();

describe('the compiled policy chain', async () => {
  const pools = new UpstreamPools();
  const store = createMemoryStore();
  const keys = await openSigningKeyStore({ algorithm: 'ES256', tokenTtlMs: 60_000 });
  const minter = createMinter({ issuer: 'i', audience: 'a', ttlMs: 60_000, claims: ['client_id'], keys });
  after(async () => {
    await pools.close();
    store.close();
    keys.close();
  });

  const snapshot = SnapshotSchema.parse({
    tokenExchange: { issuer: 'i', audience: 'a' },
    collections: [
      {
        name: 'c',
        basePath: '/c',
        upstream: 'http://127.0.0.1:1',
        project: 'p',
        environment: 'PROD',
        endpoints: [{ method: 'GET', path: '/x', permission: 'x:read' }],
      },
    ],
    roles: [{ name: 'r', permissions: ['x:read'] }],
    rateLimits: { key: { limit: 2, window: '1m' } },
    clients: [
      {
        id: 'v6-client',
        role: 'r',
        environments: ['PROD'],
        projects: ['p'],
        allowedIps: ['2001:db8::/32', '::1/128'],
        keys: [{ hash: v6.hash }],
      },
      {
        id: 'v4-client',
        role: 'r',
        environments: ['PROD'],
        projects: ['p'],
        allowedIps: ['192.168.0.0/16'],
        keys: [{ hash: v4.hash }],
      },
      { id: 'kept-client', role: 'r', environments: ['PROD'], projects: ['p'], keys: [{ hash: kept.hash }] },
    ],
  });
  const table = compileSnapshot(snapshot, { pools, rateLimitStore: store, minter, onTokenError: () => {} });
  const collection = table.collections[0]!;
  const match = collection.endpoints.match('GET', '/x');
  assert.ok(match && 'endpoint' in match);
  const endpoint = match.endpoint;

  /** One policy-chain run; `socket` stands for the client connection (a new one per call unless given). */
  async function run(
    key: string,
    clientIp: string,
    socket: object = {},
    headers: Record<string, string> = { authorization: `Bearer ${key}` },
  ) {
    const ctx: RequestContext = {
      req: { headers, socket } as unknown as IncomingMessage,
      res: null,
      requestId: 'r',
      clientIp,
      collection,
      endpoint,
      forwardPath: '/x',
      principal: undefined,
      key: undefined,
      credentialHeaders: undefined,
      responseHeaders: undefined,
      upstreamAuthorization: undefined,
      forwardedHost: undefined,
    };
    for (const policy of collection.chain) {
      const result = await policy(ctx);
      if (result) return { code: result.code, ctx };
    }
    return { code: undefined, ctx };
  }

  it('checks IPv6 ranges', async () => {
    assert.equal((await run(v6.key, '2001:db8::5')).code, undefined);
    assert.equal((await run(v6.key, '2001:db9::5')).code, 'GH_ERR_AUTH_IP_NOT_ALLOWED');
  });

  it('checks IPv4 ranges and does not let an IPv6 address match them', async () => {
    assert.equal((await run(v4.key, '192.168.4.4')).code, undefined);
    assert.equal((await run(v4.key, '10.0.0.1')).code, 'GH_ERR_AUTH_IP_NOT_ALLOWED');
    assert.equal((await run(v4.key, '::1')).code, 'GH_ERR_AUTH_IP_NOT_ALLOWED');
  });

  it('does not count a request refused by the IP allow-list against the rate limit', async () => {
    // v4-client made one allowed call and two refused ones above; only the allowed one counted.
    assert.equal((await run(v4.key, '192.168.4.4')).code, undefined);
    assert.equal((await run(v4.key, '192.168.4.4')).code, 'GH_ERR_RATE_LIMITED');
  });

  it('mints a token and names the headers to strip', async () => {
    const { code, ctx } = await run(v6.key, '::1');
    assert.equal(code, undefined);
    assert.match(ctx.upstreamAuthorization ?? '', /^Bearer ey/);
    assert.ok(ctx.credentialHeaders?.includes('x-api-key'));
    assert.match(ctx.responseHeaders?.[ctx.responseHeaders.indexOf('ratelimit') + 1] ?? '', /"key";r=\d+;t=\d+/);
  });

  describe('on a keep-alive connection', () => {
    const other = generateKey();

    it('resolves the key it saw before on the connection again, and counts every request', async () => {
      const connection = {};
      const codes = [];
      for (let i = 0; i < 3; i++) {
        const { code, ctx } = await run(kept.key, '10.1.1.1', connection);
        assert.equal(ctx.principal?.id, 'kept-client');
        codes.push(code);
      }
      assert.deepEqual(codes, [undefined, undefined, 'GH_ERR_RATE_LIMITED'], 'the key limit of 2 per minute holds');
    });

    it('checks a different key on the same connection for itself', async () => {
      const connection = {};
      await run(v4.key, '192.168.1.1', connection);
      const unknown = await run(other.key, '192.168.1.1', connection);
      assert.equal(unknown.code, 'GH_ERR_AUTH_INVALID_KEY');
      assert.equal(unknown.ctx.principal, undefined);
      const malformed = await run(
        `${v4.key.slice(0, -1)}${v4.key.endsWith('x') ? 'y' : 'x'}`,
        '192.168.1.1',
        connection,
      );
      assert.equal(malformed.code, 'GH_ERR_AUTH_MALFORMED_KEY');
    });

    it('does not take an X-API-Key for the Authorization value it remembered, or the other way round', async () => {
      const connection = {};
      await run(v6.key, '::2', connection, { 'x-api-key': v6.key });
      const both = await run(other.key, '::2', connection, {
        authorization: `Bearer ${other.key}`,
        'x-api-key': v6.key,
      });
      assert.equal(
        both.code,
        'GH_ERR_AUTH_INVALID_KEY',
        'Authorization wins over X-API-Key, as without a remembered key',
      );
    });

    it('does not serve a key from an older snapshot', async () => {
      const connection = {};
      await run(v4.key, '192.168.1.1', connection);
      const revoked = compileSnapshot(
        { ...snapshot, clients: snapshot.clients.filter((c) => c.id !== 'v4-client') },
        { pools, rateLimitStore: store, minter, onTokenError: () => {} },
      );
      const ctx: RequestContext = {
        req: { headers: { authorization: `Bearer ${v4.key}` }, socket: connection } as unknown as IncomingMessage,
        res: null,
        requestId: 'r',
        clientIp: '192.168.1.1',
        collection: revoked.collections[0]!,
        endpoint,
        forwardPath: '/x',
        principal: undefined,
        key: undefined,
        credentialHeaders: undefined,
        responseHeaders: undefined,
        upstreamAuthorization: undefined,
        forwardedHost: undefined,
      };
      assert.equal((await revoked.collections[0]!.chain[0]!(ctx))?.code, 'GH_ERR_AUTH_INVALID_KEY');
    });
  });
});
