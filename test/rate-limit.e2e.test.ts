/**
 * Rate limits end to end on real sockets: per key, per client (all its keys), per org (all its clients), a
 * client's own override, the IETF RateLimit-Policy / RateLimit headers on allowed and refused answers, and the
 * refusal counter in /metrics. Each scope has its own collection, since counters are per collection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newKey, startGateway, startUpstream, TOKEN_EXCHANGE, type GatewayProcess, type Upstream } from './helpers.ts';

const solo = newKey();
const twinA = newKey();
const twinB = newKey();
const acmeOne = newKey();
const acmeTwo = newKey();
const globex = newKey();
const strict = newKey();
const unlimited = newKey();
const searcher = newKey();
const reader = newKey();

const MINUTE = { limit: 3, window: '1m' };

describe('rate limits on a running gateway', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    const collection = (
      name: string,
      rateLimits: Record<string, unknown> | undefined,
      endpoints: Record<string, unknown>[] = [{ method: 'GET', path: '/things/{id}', permission: 'things:read' }],
    ) => ({
      name,
      basePath: `/${name}`,
      upstream: `${upstream.url}/${name}`,
      project: 'payments',
      environment: 'PROD',
      ...(rateLimits ? { rateLimits } : {}),
      endpoints,
    });
    const client = (id: string, keys: { hash: string }[], extra: Record<string, unknown> = {}) => ({
      id,
      role: 'reader',
      environments: ['PROD'],
      projects: ['payments'],
      keys: keys.map((k) => ({ hash: k.hash })),
      ...extra,
    });
    gw = await startGateway({
      tokenExchange: TOKEN_EXCHANGE,
      collections: [
        collection('per-key', { key: MINUTE }),
        collection('per-client', { client: MINUTE }),
        collection('per-org', { org: MINUTE }),
        collection('override', { key: { limit: 100, window: '1m' } }),
        collection('open', undefined),
        collection('costly', { key: { limit: 10, window: '1m' } }, [
          { method: 'GET', path: '/things/{id}', permission: 'things:read' },
          { method: 'POST', path: '/search', permission: 'things:read', cost: 4 },
        ]),
      ],
      roles: [{ name: 'reader', permissions: ['things:read'] }],
      clients: [
        client('solo', [solo]),
        client('twins', [twinA, twinB]),
        client('acme-one', [acmeOne], { orgId: 'acme' }),
        client('acme-two', [acmeTwo], { orgId: 'acme' }),
        client('globex', [globex], { orgId: 'globex' }),
        client('strict', [strict], { rateLimits: { key: { limit: 2, window: '1m' } } }),
        client('unlimited', [unlimited]),
        client('searcher', [searcher]),
        client('reader', [reader]),
      ],
    });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  const get = (path: string, key: { key: string }) =>
    fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${key.key}` } });

  /** How many requests the upstream saw under `prefix`. */
  const seen = (prefix: string) => upstream.requests.filter((r) => r.url.startsWith(prefix)).length;

  /** Asserts an allowed answer and its rate-limit headers: `policy` exactly, `ratelimit` for `name` with `remaining`. */
  async function allowed(res: Response, policy: string, name: string, remaining: number): Promise<void> {
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.equal(res.headers.get('x-upstream'), 'yes');
    assert.equal(res.headers.get('ratelimit-policy'), policy);
    const live = res.headers.get('ratelimit') ?? '';
    const m = /^"([a-z]+)";r=(\d+);t=(\d+)$/.exec(live);
    assert.ok(m, `ratelimit header ${JSON.stringify(live)}`);
    assert.equal(m[1], name);
    assert.equal(Number(m[2]), remaining);
    // t: seconds until every counted hit stops weighing; in a sliding window of 60 s that is within (60, 120].
    assert.ok(Number(m[3]) > 60 && Number(m[3]) <= 120, `t=${m[3]}`);
    assert.equal(res.headers.get('retry-after'), null);
  }

  /** Asserts a 429 GH_ERR_RATE_LIMITED refusal by the `name` limit, with Retry-After and the rate-limit headers. */
  async function limited(res: Response, policy: string, name: string): Promise<void> {
    const text = await res.text();
    assert.equal(res.status, 429, text);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    const body = JSON.parse(text) as Record<string, unknown>;
    assert.equal(body.code, 'GH_ERR_RATE_LIMITED');
    assert.equal(body.status, 429);
    assert.match(String(body.detail), new RegExp(`^The ${name} rate limit of \\d+ requests per 60s is exhausted\\.$`));
    const retryAfter = res.headers.get('retry-after');
    assert.match(retryAfter ?? '', /^\d+$/);
    assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= 120, `retry-after ${retryAfter}`);
    assert.equal(res.headers.get('ratelimit-policy'), policy);
    assert.match(res.headers.get('ratelimit') ?? '', new RegExp(`^"${name}";r=0;t=\\d+$`));
    assert.equal(res.headers.get('x-upstream'), null, 'a refusal must come from the gateway');
  }

  it('allows 3 requests per key per minute, then refuses with 429 and Retry-After', async () => {
    const policy = '"key";q=3;w=60';
    for (let i = 0; i < 3; i++) await allowed(await get(`/per-key/things/${i}`, solo), policy, 'key', 2 - i);
    await limited(await get('/per-key/things/3', solo), policy, 'key');
    await limited(await get('/per-key/things/4', solo), policy, 'key');
    assert.equal(seen('/per-key/'), 3, 'refused requests reached the upstream');
  });

  it('counts each key on its own', async () => {
    // "solo" is exhausted on this collection; another client's key is not.
    await allowed(await get('/per-key/things/1', unlimited), '"key";q=3;w=60', 'key', 2);
    assert.equal(seen('/per-key/'), 4);
  });

  it('counts a client limit across all keys of the client', async () => {
    const policy = '"client";q=3;w=60';
    await allowed(await get('/per-client/things/1', twinA), policy, 'client', 2);
    await allowed(await get('/per-client/things/2', twinB), policy, 'client', 1);
    await allowed(await get('/per-client/things/3', twinA), policy, 'client', 0);
    await limited(await get('/per-client/things/4', twinB), policy, 'client');
    await limited(await get('/per-client/things/5', twinA), policy, 'client');
    assert.equal(seen('/per-client/'), 3, 'refused requests reached the upstream');
    // Another client has its own budget.
    await allowed(await get('/per-client/things/6', solo), policy, 'client', 2);
  });

  it('counts an org limit across all clients of the org and leaves other orgs alone', async () => {
    const policy = '"org";q=3;w=60';
    await allowed(await get('/per-org/things/1', acmeOne), policy, 'org', 2);
    await allowed(await get('/per-org/things/2', acmeTwo), policy, 'org', 1);
    await allowed(await get('/per-org/things/3', acmeTwo), policy, 'org', 0);
    await limited(await get('/per-org/things/4', acmeOne), policy, 'org');
    await limited(await get('/per-org/things/5', acmeTwo), policy, 'org');
    assert.equal(seen('/per-org/'), 3, 'refused requests reached the upstream');
    await allowed(await get('/per-org/things/6', globex), policy, 'org', 2);
    assert.equal(seen('/per-org/'), 4);
  });

  it('applies no org limit to a client without an org', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await get(`/per-org/things/${i}`, solo);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('ratelimit'), null);
      await res.arrayBuffer();
    }
  });

  it('lets a client override the key limit of the collection', async () => {
    const policy = '"key";q=2;w=60';
    await allowed(await get('/override/things/1', strict), policy, 'key', 1);
    await allowed(await get('/override/things/2', strict), policy, 'key', 0);
    await limited(await get('/override/things/3', strict), policy, 'key');
    assert.equal(seen('/override/'), 2, 'refused requests reached the upstream');
    // Clients without an override keep the collection's limit of 100.
    await allowed(await get('/override/things/1', solo), '"key";q=100;w=60', 'key', 99);
  });

  it('applies a client override even on a collection without limits of its own', async () => {
    const policy = '"key";q=2;w=60';
    await allowed(await get('/open/things/1', strict), policy, 'key', 1);
    await allowed(await get('/open/things/2', strict), policy, 'key', 0);
    await limited(await get('/open/things/3', strict), policy, 'key');
    // A client without an override is not limited there, and gets no rate-limit headers.
    const res = await get('/open/things/1', solo);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('ratelimit-policy'), null);
    await res.arrayBuffer();
  });

  it("spends an operation's cost: a search of cost 4 uses a limit of 10 up after two, reads after ten", async () => {
    const policy = '"key";q=10;w=60';
    const search = () =>
      fetch(`${gw.url}/costly/search`, {
        method: 'POST',
        headers: { authorization: `Bearer ${searcher.key}`, 'content-type': 'application/json' },
        body: '{"q":"x"}',
      });
    await allowed(await search(), policy, 'key', 6);
    await allowed(await search(), policy, 'key', 2);
    const refused = await search();
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('x-upstream'), null);
    const body = (await refused.json()) as { code: string; detail: string };
    assert.equal(body.code, 'GH_ERR_RATE_LIMITED');
    assert.match(body.detail, /This operation costs 4 units\.$/);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    // The refused search was not counted: the two units left still admit two cheap reads.
    await allowed(await get('/costly/things/1', searcher), policy, 'key', 1);
    await allowed(await get('/costly/things/2', searcher), policy, 'key', 0);
    await limited(await get('/costly/things/3', searcher), policy, 'key');
    // A key that only reads gets ten calls out of the same limit.
    for (let i = 0; i < 10; i++) await allowed(await get(`/costly/things/${i}`, reader), policy, 'key', 9 - i);
    await limited(await get('/costly/things/10', reader), policy, 'key');
    assert.equal(seen('/costly/search'), 2, 'the refused search reached the upstream');
  });

  it('counts refusals by scope and collection in /metrics', async () => {
    const metrics = await (await fetch(`${gw.opsUrl}/metrics`)).text();
    const count = (scope: string, collection: string) =>
      Number(
        new RegExp(`^gatehouse_rate_limited_total\\{scope="${scope}",collection="${collection}"\\} (\\d+)$`, 'm').exec(
          metrics,
        )?.[1],
      );
    assert.equal(count('key', 'per-key'), 2);
    assert.equal(count('client', 'per-client'), 2);
    assert.equal(count('org', 'per-org'), 2);
    assert.equal(count('key', 'override'), 1);
    assert.equal(count('key', 'open'), 1);
    assert.match(
      metrics,
      /gatehouse_requests_total\{collection="per-key",route="\/things\/\{id\}",method="GET",status="429"\} 2/,
    );
  });
});
