/**
 * Rate limits shared by gateway instances (`server.rateLimitStore: redis`) on a real Redis: two gateway processes
 * on one config admit a key's limit once in total, whichever of them the requests reach; and a gateway whose
 * Redis cannot be reached serves anyway, counting alone, says so in its log and its metrics, and stays ready.
 * When no Redis answers, the run fails with a message saying how to provide one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { redactUrl } from '../src/config/redact-url.ts';
import { probeRedis, TEST_REDIS_URL } from '../src/testing/redis.ts';
import { startControlPlane } from './control-helpers.ts';
import { metricValue, newKey, startGateway, startUpstream, TOKEN_EXCHANGE, waitForLine, type GatewayProcess, type Upstream } from './helpers.ts';

const unreachable = await probeRedis();
const caller = newKey();

function config(upstream: Upstream, rateLimitStore: Record<string, unknown>) {
  return {
    server: { rateLimitStore },
    tokenExchange: TOKEN_EXCHANGE,
    collections: [{ name: 'shared', basePath: '/shared', upstream: upstream.url, project: 'p', environment: 'PROD', rateLimits: { key: { limit: 5, window: '1m' } }, endpoints: [{ method: 'GET', path: '/things', permission: 'things:read' }] }],
    roles: [{ name: 'reader', permissions: ['things:read'] }],
    clients: [{ id: 'sharer', role: 'reader', environments: ['PROD'], projects: ['p'], keys: [{ hash: caller.hash }] }],
  };
}

const get = (gw: GatewayProcess) => fetch(`${gw.url}/shared/things`, { headers: { authorization: `Bearer ${caller.key}` } });

if (unreachable === undefined) {
  describe('rate limits shared by two gateways through Redis', () => {
    const prefix = `gatehouse-e2e:${process.pid}:${randomBytes(4).toString('hex')}:`;
    const admin = new Redis(TEST_REDIS_URL);
    let upstream: Upstream;
    let one: GatewayProcess;
    let two: GatewayProcess;

    before(async () => {
      upstream = await startUpstream();
      const settings = { type: 'redis', url: TEST_REDIS_URL, prefix, syncInterval: '20ms' };
      [one, two] = await Promise.all([startGateway(config(upstream, settings)), startGateway(config(upstream, settings))]);
      await Promise.all([waitForLine(one, /rate-limit store connected/, 0), waitForLine(two, /rate-limit store connected/, 0)]);
    });
    after(async () => {
      await Promise.all([one?.stop(), two?.stop()]);
      await upstream?.close();
      const keys = await admin.keys(`${prefix}*`);
      if (keys.length > 0) await admin.del(...keys);
      await admin.quit();
    });

    it('admits the key limit once in total across both, then refuses on both with 429', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) {
        const res = await get(i % 2 === 0 ? one : two);
        await res.text();
        statuses.push(res.status);
        if (res.status === 429) assert.ok(Number(res.headers.get('retry-after')) >= 1);
        await sleep(80); // a few sync intervals: each gateway has heard of the other's hits
      }
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
      assert.equal(upstream.requests.length, 5);
    });

    it('keeps only hashes and ids in Redis, never the key', async () => {
      const keys = await admin.keys(`${prefix}*`);
      assert.ok(keys.length > 0);
      assert.ok(keys.some((k) => k.includes(caller.hash.replace(/^sha256:/, ''))), "counted by the key's hash");
      assert.ok(keys.every((k) => !k.includes(caller.key)));
    });
  });

  it('the control plane\'s cloud gateway uses the Redis named by GATEHOUSE_RATE_LIMIT_REDIS_URL', async () => {
    const plane = await startControlPlane({ env: { GATEHOUSE_RATE_LIMIT_REDIS_URL: TEST_REDIS_URL } });
    try {
      for (let i = 0; i < 200 && !plane.output.some((l) => l.includes('rate-limit store connected')); i++) await sleep(25);
      const line = plane.output.find((l) => l.includes('rate-limit store connected'));
      assert.ok(line, plane.output.join('\n'));
      assert.equal((JSON.parse(line) as Record<string, unknown>).store, redactUrl(TEST_REDIS_URL));
    } finally {
      await plane.stop();
    }
  });

  describe('a gateway whose Redis cannot be reached', () => {
    let upstream: Upstream;
    let gw: GatewayProcess;
    let url: string;

    before(async () => {
      upstream = await startUpstream();
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as { port: number };
      await new Promise<void>((resolve) => server.close(() => resolve()));
      url = `redis://gatehouse:s3cret-password@127.0.0.1:${port}`;
      gw = await startGateway(config(upstream, { type: 'redis', url, syncInterval: '20ms' }));
    });
    after(async () => {
      await gw?.stop();
      await upstream?.close();
    });

    it('serves with the limit held by this instance alone, logs it without the password, counts it, and stays ready', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) {
        const res = await get(gw);
        await res.text();
        statuses.push(res.status);
      }
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429]);
      const line = JSON.parse(await waitForLine(gw, /rate-limit store unreachable/, 0)) as Record<string, unknown>;
      assert.equal(line.store, redactUrl(url));
      assert.ok(!gw.output.join('\n').includes('s3cret-password'), 'the password never reaches the log');
      assert.ok((await metricValue(gw.opsUrl, 'gatehouse_rate_limit_store_errors_total')) > 0);
      assert.equal((await fetch(`${gw.opsUrl}/readyz`)).status, 200);
    });
  });
} else {
  // A real Redis is required: an unreachable one fails the run rather than passing it by skipping.
  it('runs the shared rate-limit end-to-end tests on Redis', () => {
    assert.fail(`Redis not reachable at ${redactUrl(TEST_REDIS_URL)} (${unreachable}): start one (redis-server) or set GATEHOUSE_TEST_REDIS_URL; .ci/run starts a local one when it can`);
  });
}
