/** The listener contains bugs on the request path to the one request (real sockets, in-process). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GatewayMetrics } from '../observability/metrics.ts';
import type { CompiledCollection, CompiledEndpoint, RouteTable } from '../snapshot/compiled.ts';
import { CollectionRouter, EndpointMatcher } from './router.ts';
import { GatewayServer } from './server.ts';
import { UpstreamPools } from './upstream-pools.ts';

describe('the gateway listener', () => {
  const errors: unknown[] = [];
  const metrics = new GatewayMetrics();
  const pools = new UpstreamPools();
  const server = new GatewayServer({
    accessLog: undefined,
    metrics,
    jwks: () => '{"keys":[]}',
    onError: (e) => errors.push(e),
  });
  let url = '';
  let table: RouteTable;

  before(async () => {
    const endpoints = new EndpointMatcher<CompiledCollection, CompiledEndpoint>();
    const collection = {
      name: 'c',
      basePath: '/c',
      baseDepth: 1,
      host: undefined,
      project: 'p',
      environment: 'PROD',
      stripBasePath: true,
      mountPath: '',
      websocket: false,
      authRequired: true,
      limits: {},
      endpoints,
      upstream: {
        origin: 'http://127.0.0.1:1',
        pathPrefix: '',
        pool: pools.get({ origin: 'http://127.0.0.1:1', connections: 1, connectTimeout: 1000 }),
        headersTimeout: 1000,
        bodyTimeout: 1000,
        egressDenied: undefined,
      },
      chain: [
        function brokenPolicy(): undefined {
          throw new Error('a bug in a policy');
        },
      ],
    } satisfies CompiledCollection;
    endpoints.add({
      id: 'c GET /x',
      method: 'GET',
      template: '/x',
      permission: 'x',
      cost: 1,
      collection,
      paramNames: [],
      chain: collection.chain,
    });
    const router = new CollectionRouter<CompiledCollection>();
    router.add(collection);
    table = {
      version: '1',
      router,
      collections: [collection],
      keys: new Map(),
      legacyKeys: new Map(),
      legacyKeyHeader: 'x-api-key',
      legacyEmailHeader: 'x-api-email',
    };
    server.setTable(table);
    const address = await server.listen(0, '127.0.0.1');
    url = `http://127.0.0.1:${address.port}`;
  });

  after(async () => {
    await server.close(0);
    await pools.close();
    metrics.close();
  });

  it('answers 500 GH_ERR_GATEWAY_INTERNAL when a policy throws, reports the error, and keeps serving', async () => {
    const res = await fetch(`${url}/c/x`);
    assert.equal(res.status, 500);
    const body = (await res.json()) as { code: string; detail?: string };
    assert.equal(body.code, 'GH_ERR_GATEWAY_INTERNAL');
    assert.equal(body.detail, undefined, 'no internal detail reaches the client');
    assert.match(String(errors[0]), /a bug in a policy/);
    assert.equal((await fetch(`${url}/c/unknown`)).status, 404);
  });

  it('serves the JWKS', async () => {
    const res = await fetch(`${url}/.well-known/jwks.json`);
    assert.equal(res.headers.get('content-type'), 'application/jwk-set+json');
    assert.deepEqual(await res.json(), { keys: [] });
  });

  it('matches a target it cached with the table of that time only: a new table starts without the old routes', async () => {
    assert.equal((await fetch(`${url}/c/x`)).status, 500, 'routed to the collection (whose policy throws)');
    server.setTable({ ...table, router: new CollectionRouter<CompiledCollection>(), collections: [] });
    try {
      const res = await fetch(`${url}/c/x`);
      assert.equal(res.status, 404);
      assert.equal(((await res.json()) as { code: string }).code, 'GH_ERR_ROUTE_NOT_FOUND');
    } finally {
      server.setTable(table);
    }
  });
});
