/** A gateway instance fed snapshot objects directly, on real loopback sockets in front of a real upstream. */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import pino from 'pino';
import { ConfigError } from '../config/load.ts';
import { ServerSchema, type Snapshot, SnapshotSchema, type SnapshotInput } from '../config/schema.ts';
import { type GatewayInstance, createGatewayInstance } from './instance.ts';
import { generateKey } from '../shared/api-key.ts';
import { startCompile } from './snapshot/compile.ts';

const alice = generateKey();
const bob = generateKey();
const TOKEN_EXCHANGE = { issuer: 'https://gatehouse.test', audience: 'instance-test' };

describe('a gateway instance fed snapshots', () => {
  const logs: Record<string, unknown>[] = [];
  const seen: IncomingHttpHeaders[] = [];
  let upstream: Server;
  let upstreamUrl = '';
  let gateway: GatewayInstance;
  let api = '';
  let ops = '';

  /** A snapshot with one collection; `clients` are [id, key] pairs with the role `reader` unless given. */
  const snapshot = (
    version: number,
    clients: [string, { hash: string }, string?][],
    overrides: Partial<SnapshotInput> = {},
  ): Snapshot =>
    SnapshotSchema.parse({
      version,
      tokenExchange: TOKEN_EXCHANGE,
      collections: [
        {
          name: 'billing',
          basePath: '/billing',
          upstream: upstreamUrl,
          project: 'payments',
          environment: 'PROD',
          endpoints: [
            { method: 'GET', path: '/invoices', permission: 'invoices:read' },
            { method: 'POST', path: '/invoices', permission: 'invoices:write' },
          ],
        },
      ],
      roles: [
        { name: 'reader', permissions: ['invoices:read'] },
        { name: 'writer', permissions: ['invoices:read', 'invoices:write'] },
      ],
      clients: clients.map(([id, key, role]) => ({
        id,
        role: role ?? 'reader',
        environments: ['PROD'],
        projects: ['payments'],
        keys: [{ hash: key.hash }],
      })),
      ...overrides,
    });
  const call = async (key: string | undefined, method = 'GET') => {
    const res = await fetch(`${api}/billing/invoices`, {
      method,
      headers: key ? { authorization: `Bearer ${key}` } : {},
    });
    const body = (await res.json()) as { code?: string };
    return { status: res.status, code: body.code };
  };
  const readyz = async () => (await fetch(`${ops}/readyz`)).status;
  const jwks = async () => (await (await fetch(`${api}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
  const lastToken = () => String(seen.at(-1)?.authorization).replace(/^Bearer /, '');

  before(async () => {
    upstream = createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          for (const line of chunk.toString().split('\n'))
            if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
          done();
        },
      }),
    );
    gateway = await createGatewayInstance({
      logger,
      server: ServerSchema.parse({}),
      tokenExchange: SnapshotSchema.shape.tokenExchange.parse(TOKEN_EXCHANGE),
    });
    const addresses = await gateway.listen({ port: 0, host: '127.0.0.1', opsPort: 0, opsHost: '127.0.0.1' });
    api = `http://127.0.0.1:${addresses.api.port}`;
    ops = `http://127.0.0.1:${addresses.ops!.port}`;
  });

  after(async () => {
    await gateway?.close({ drainMs: 0 });
    await new Promise<void>((r) => {
      upstream.close(() => r());
      upstream.closeAllConnections();
    });
  });

  it('is not ready and serves nothing before a first snapshot, and says so when a first one is rejected', async () => {
    assert.equal(gateway.version, undefined);
    assert.equal(gateway.ready(), false);
    assert.equal(await readyz(), 503);
    assert.equal((await fetch(`${ops}/healthz`)).status, 200);
    const early = await fetch(`${api}/billing/invoices`, { headers: { authorization: `Bearer ${alice.key}` } });
    assert.equal(early.status, 503);
    assert.equal(early.headers.get('retry-after'), '2');
    assert.equal(((await early.json()) as { code: string }).code, 'GH_ERR_GATEWAY_NOT_READY');
    gateway.setCheck('config', { status: 'failing', detail: 'waiting for the control plane' });
    const body = (await (await fetch(`${ops}/readyz`)).json()) as {
      status: string;
      checks: Record<string, { status: string; detail?: string }>;
    };
    assert.deepEqual(body, {
      status: 'not ready',
      checks: { config: { status: 'failing', detail: 'waiting for the control plane' } },
    });
    const explained = (await (await fetch(`${api}/billing/invoices`)).json()) as { detail: string };
    assert.match(explained.detail, /\(waiting for the control plane\)/);
    gateway.setCheck('config', undefined);

    const broken = snapshot(0, [['alice', alice]]);
    const result = await gateway.apply({
      ...broken,
      collections: [{ ...broken.collections[0]!, upstream: { ...broken.collections[0]!.upstream, url: 'not a URL' } }],
    });
    assert.equal(result.applied, false);
    assert.match(result.error ?? '', /^the configuration cannot be compiled: /);
    assert.match(String(logs.at(-1)?.msg), /^config rejected, no config is in force yet: /);
    assert.equal(await readyz(), 503);
  });

  it('serves an applied snapshot: the request reaches the upstream with a token the served JWKS verifies', async () => {
    const result = await gateway.apply(snapshot(1, [['alice', alice]]), { log: { origin: 'test' } });
    assert.deepEqual(result, { applied: true, version: '1' });
    assert.equal(gateway.version, '1');
    assert.equal(await readyz(), 200);
    assert.deepEqual(logs.at(-1), {
      ...logs.at(-1),
      msg: 'config applied',
      origin: 'test',
      version: '1',
      collections: 1,
      keys: 1,
    });

    assert.equal((await call(alice.key)).status, 200);
    const { payload } = await jwtVerify(lastToken(), createLocalJWKSet(await jwks()), {
      issuer: TOKEN_EXCHANGE.issuer,
      audience: TOKEN_EXCHANGE.audience,
    });
    assert.equal(payload.client_id, 'alice');
    assert.deepEqual(payload.permissions, ['invoices:read']);
    assert.equal((await call(bob.key)).status, 401);
  });

  it('refuses a client removed by the next snapshot with 401 as soon as apply resolves', async () => {
    assert.equal((await call(alice.key)).status, 200);
    assert.equal((await gateway.apply(snapshot(2, [['bob', bob]]))).applied, true);
    assert.deepEqual(await call(alice.key), { status: 401, code: 'GH_ERR_AUTH_INVALID_KEY' });
    assert.equal((await call(bob.key)).status, 200);
  });

  it('mints a new token after a snapshot changes the role: no token outlives the permissions it carries', async () => {
    assert.equal((await call(bob.key)).status, 200);
    const before = lastToken();
    assert.equal((await call(bob.key, 'POST')).code, 'GH_ERR_AUTH_FORBIDDEN_ENDPOINT');

    assert.equal((await gateway.apply(snapshot(3, [['bob', bob, 'writer']]))).applied, true);
    assert.equal((await call(bob.key, 'POST')).status, 200);
    assert.notEqual(lastToken(), before);
    assert.deepEqual(decodeJwt(lastToken()).permissions, ['invoices:read', 'invoices:write']);
  });

  it('rejects a snapshot that cannot be compiled and keeps serving the one in force, signing keys included', async () => {
    const keysBefore = await jwks();
    const kid = gateway.keys.current().kid;
    const rejectedBefore = logs.filter((l) => String(l.msg).startsWith('config rejected')).length;
    const next = snapshot(4, [['alice', alice]], { tokenExchange: { ...TOKEN_EXCHANGE, algorithm: 'ES256' } });
    const broken = {
      ...next,
      collections: [{ ...next.collections[0]!, upstream: { ...next.collections[0]!.upstream, url: 'not a URL' } }],
    };

    const result = await gateway.apply(broken, { source: 'control plane v4' });
    assert.equal(result.applied, false);
    assert.equal(result.version, '3');
    assert.match(result.error ?? '', /^control plane v4: the configuration cannot be compiled: /);
    assert.match(String(logs.at(-1)?.msg), /^config rejected, the previous config stays in force: control plane v4: /);
    assert.equal(logs.filter((l) => String(l.msg).startsWith('config rejected')).length, rejectedBefore + 1);

    assert.equal(gateway.version, '3');
    assert.equal(gateway.keys.current().kid, kid);
    assert.deepEqual(await jwks(), keysBefore);
    assert.equal((await call(bob.key)).status, 200);
    assert.equal((await call(alice.key)).status, 401);
  });

  it('rejects what a source function throws, and does nothing when it has nothing new', async () => {
    const thrown = await gateway.apply(
      async () => {
        throw new ConfigError('gateway.yaml: invalid configuration');
      },
      { source: 'gateway.yaml' },
    );
    assert.deepEqual(thrown, { applied: false, version: '3', error: 'gateway.yaml: invalid configuration' });

    const logged = logs.length;
    assert.deepEqual(await gateway.apply(async () => undefined), { applied: false, version: '3' });
    assert.equal(logs.length, logged, 'nothing new is not logged');

    // A source function streams clients into a compilation it started.
    const result = await gateway.apply(async () => {
      const compilation = startCompile(snapshot(5, [['bob', bob]]));
      compilation.add({
        id: 'alice',
        role: 'reader',
        environments: ['PROD'],
        projects: ['payments'],
        status: 'active',
        keys: [{ hash: alice.hash }],
      });
      return compilation;
    });
    assert.deepEqual(result, { applied: true, version: '5' });
    assert.equal((await call(alice.key)).status, 200);
  });

  it('applies snapshots one at a time, in the order given', async () => {
    // The first one takes longer to prepare; the second still waits for it.
    const results = await Promise.all([
      gateway.apply(async () => {
        // The scenario, not a wait: however long this takes on a busy machine, the second snapshot must wait for it.
        await new Promise((r) => setTimeout(r, 50));
        return startCompile(snapshot(6, [['alice', alice]]));
      }),
      gateway.apply(snapshot(7, [['bob', bob]])),
    ]);
    assert.deepEqual(
      results.map((r) => r.version),
      ['6', '7'],
    );
    assert.equal(gateway.version, '7');
    assert.equal((await call(alice.key)).status, 401);
    assert.equal((await call(bob.key)).status, 200);
  });

  it('signs with a key of the new algorithm once a snapshot that changes it is applied', async () => {
    assert.equal(gateway.keys.current().alg, 'EdDSA');
    const result = await gateway.apply(
      snapshot(8, [['bob', bob]], { tokenExchange: { ...TOKEN_EXCHANGE, algorithm: 'ES256' } }),
    );
    assert.equal(result.applied, true);
    assert.equal(gateway.keys.current().alg, 'ES256');
    assert.equal((await call(bob.key)).status, 200);
    const { protectedHeader } = await jwtVerify(lastToken(), createLocalJWKSet(await jwks()), {
      issuer: TOKEN_EXCHANGE.issuer,
      audience: TOKEN_EXCHANGE.audience,
    });
    assert.equal(protectedHeader.alg, 'ES256');
  });

  it('stops being ready when it closes, and applies nothing after', async () => {
    const closing = gateway.close({ drainMs: 0 });
    assert.equal(gateway.ready(), false);
    await closing;
    const result = await gateway.apply(snapshot(9, [['alice', alice]]));
    assert.equal(result.applied, false);
    assert.equal(gateway.version, '8');
  });
});
