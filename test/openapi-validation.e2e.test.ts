/**
 * Request validation on real sockets: a `gatehouse gateway run` whose config file points its collections at OpenAPI
 * documents (`openapi: FILE`) — the real Swagger Petstore (3.0) and a small 3.0 document for the dialect —
 * validates path and query parameters and JSON bodies, refuses with 400 problem+json naming each field by JSON
 * pointer without echoing what was sent, refuses oversized bodies with 413, and forwards the body it validated.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { newKey, startGateway, startUpstream, TOKEN_EXCHANGE, type GatewayProcess, type Upstream } from './helpers.ts';

const keeper = newKey();
const PETSTORE = new URL('fixtures/openapi/petstore.yaml', import.meta.url).pathname;

/** OpenAPI 3.0's dialect: `nullable` and the boolean `exclusiveMinimum`. */
const DIALECT = {
  openapi: '3.0.3',
  info: { title: 'dialect', version: '1' },
  paths: {
    '/items': {
      post: {
        'x-gatehouse-permission': 'items:write',
        parameters: [
          { name: 'n', in: 'query', schema: { type: 'integer', minimum: 0, exclusiveMinimum: true } },
          {
            name: 'tags',
            in: 'query',
            style: 'pipeDelimited',
            explode: false,
            schema: { type: 'array', items: { type: 'string', maxLength: 3 } },
          },
          { name: 'x-tenant', in: 'header', required: true, schema: { type: 'string', pattern: '^t-[0-9]+$' } },
        ],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['name'],
                properties: { name: { type: 'string', nullable: true }, secret: { type: 'string', maxLength: 4 } },
              },
            },
          },
        },
        responses: { '200': { description: 'ok' } },
      },
    },
  },
};

describe('request validation from OpenAPI at a running gateway', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;
  const bodies: string[] = [];
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-openapi-'));
    await writeFile(join(dir, 'dialect.yaml'), stringify(DIALECT));
    upstream = await startUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push(Buffer.concat(chunks).toString('utf8'));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ url: req.url }));
      });
      return true;
    });
    gw = await startGateway({
      tokenExchange: TOKEN_EXCHANGE,
      collections: [
        {
          name: 'pets',
          basePath: '/v2',
          stripBasePath: false,
          upstream: upstream.url,
          project: 'p',
          environment: 'PROD',
          validateRequests: true,
          maxBodyBytes: 2048,
          openapi: PETSTORE,
        },
        {
          name: 'dialect',
          basePath: '/dialect',
          upstream: upstream.url,
          project: 'p',
          environment: 'PROD',
          validateRequests: true,
          openapi: join(dir, 'dialect.yaml'),
        },
      ],
      roles: [{ name: 'keeper', permissions: ['*'] }],
      clients: [
        { id: 'keeper', role: 'keeper', environments: ['PROD'], projects: ['p'], keys: [{ hash: keeper.hash }] },
      ],
    });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const call = async (path: string, init: RequestInit & { key?: string | null } = {}) => {
    const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
    if (init.key !== null) headers.authorization = `Bearer ${init.key ?? keeper.key}`;
    const res = await fetch(`${gw.url}${path}`, { ...init, headers });
    const text = await res.text();
    return { status: res.status, text, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  };

  it('lets a request through that matches its operation', async () => {
    const res = await call('/v2/pet/findByStatus?status=available&status=sold');
    assert.equal(res.status, 200, res.text);
    assert.equal((await call('/v2/store/order/5')).status, 200);
  });

  it('refuses a query value outside its enum and a path parameter above its maximum, naming each field', async () => {
    const enumRes = await call('/v2/pet/findByStatus?status=s3cr3t-value');
    assert.equal(enumRes.status, 400, enumRes.text);
    assert.equal(enumRes.json!.code, 'GH_ERR_REQUEST_VALIDATION');
    assert.deepEqual(
      (enumRes.json!.errors as { pointer: string }[]).map((e) => e.pointer),
      ['/query/status/0'],
    );
    assert.doesNotMatch(enumRes.text, /s3cr3t/, 'the value sent is never echoed');
    const path = await call('/v2/store/order/11');
    assert.equal(path.status, 400);
    assert.match(path.text, /\/path\/orderId/);
    assert.match(path.text, /must be <= 10/);
  });

  it('validates a JSON body and forwards exactly the bytes it validated', async () => {
    const bad = await call('/v2/pet', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ photoUrls: ['p'], status: 'hunter2-secret' }),
    });
    assert.equal(bad.status, 400, bad.text);
    const pointers = (bad.json!.errors as { pointer: string }[]).map((e) => e.pointer).sort();
    assert.deepEqual(pointers, ['/body/name', '/body/status']);
    assert.doesNotMatch(bad.text, /hunter2/);
    const body = JSON.stringify({ name: 'rex', photoUrls: ['p'], status: 'available' });
    const before = bodies.length;
    const ok = await call('/v2/pet', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(bodies[before], body);
  });

  it('refuses a body above maxBodyBytes with 413 before parsing it', async () => {
    const res = await call('/v2/pet', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x'.repeat(4096), photoUrls: [] }),
    });
    assert.equal(res.status, 413, res.text);
    assert.equal(res.json!.code, 'GH_ERR_REQUEST_BODY_TOO_LARGE');
  });

  it('authenticates and authorizes before validating', async () => {
    const res = await call('/v2/store/order/11', { key: null });
    assert.equal(res.status, 401);
  });

  it("reads OpenAPI 3.0's nullable and boolean exclusiveMinimum, pipe-delimited queries and headers", async () => {
    const post = (query: string, body: unknown, tenant = 't-1') =>
      call(`/dialect/items${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-tenant': tenant },
        body: JSON.stringify(body),
      });
    assert.equal((await post('?n=1&tags=a|bb', { name: null })).status, 200, 'nullable: null is allowed');
    const zero = await post('?n=0', { name: 'x' });
    assert.equal(zero.status, 400);
    assert.match(zero.text, /\/query\/n.*must be > 0/);
    const tags = await post('?tags=a|toolong', { name: 'x' });
    assert.match(tags.text, /\/query\/tags\/1/);
    const tenant = await post('', { name: 'x', secret: 'longer-than-four' }, 'acme');
    assert.equal(tenant.status, 400);
    const pointers = (tenant.json!.errors as { pointer: string }[]).map((e) => e.pointer).sort();
    assert.deepEqual(pointers, ['/body/secret', '/header/x-tenant']);
    assert.doesNotMatch(tenant.text, /longer-than-four|acme/);
  });
});
