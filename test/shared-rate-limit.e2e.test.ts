/**
 * Rate limits shared by gateway instances (`server.rateLimitStore: redis`) on a real Redis: two gateway processes
 * on one config admit a key's limit once in total, whichever of them the requests reach; and a gateway whose
 * Redis cannot be reached — refused, or accepting connections and never answering — serves anyway without waiting
 * for it, counting alone, and says so in its log, its metrics and its /readyz (degraded, still ready); limits set
 * to `onStoreFailure: closed` refuse with 503 meanwhile.
 * When no Redis answers, the run fails with a message saying how to provide one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redactUrl } from '../src/config/redact-url.ts';
import { eventually, waitForValue } from '../src/testing/eventually.ts';
import { probeRedis, recordSyncs, REDIS_HOW_TO, TEST_REDIS_URL } from '../src/testing/redis.ts';
import { startBlackHole, type FaultServer } from '../src/testing/redis-faults.ts';
import { startControlPlane } from './control-helpers.ts';
import {
  expectProblem,
  metricValue,
  newKey,
  startGateway,
  startUpstream,
  TOKEN_EXCHANGE,
  waitForLine,
  type GatewayProcess,
  type Upstream,
} from './helpers.ts';

const unreachable = await probeRedis();
const caller = newKey();

function config(upstream: Upstream, rateLimitStore: Record<string, unknown>) {
  return {
    server: { rateLimitStore },
    tokenExchange: TOKEN_EXCHANGE,
    collections: [
      {
        name: 'shared',
        basePath: '/shared',
        upstream: upstream.url,
        project: 'p',
        environment: 'PROD',
        rateLimits: { key: { limit: 5, window: '1m' } },
        endpoints: [{ method: 'GET', path: '/things', permission: 'things:read' }],
      },
      {
        name: 'strict',
        basePath: '/strict',
        upstream: upstream.url,
        project: 'p',
        environment: 'PROD',
        rateLimits: { key: { limit: 5, window: '1m', onStoreFailure: 'closed' } },
        endpoints: [{ method: 'GET', path: '/things', permission: 'things:read' }],
      },
    ],
    roles: [{ name: 'reader', permissions: ['things:read'] }],
    clients: [{ id: 'sharer', role: 'reader', environments: ['PROD'], projects: ['p'], keys: [{ hash: caller.hash }] }],
  };
}

const get = (gw: GatewayProcess, collection = 'shared') =>
  fetch(`${gw.url}/${collection}/things`, { headers: { authorization: `Bearer ${caller.key}` } });

interface Readyz {
  status: string;
  checks: Record<string, { status: string; detail?: string }>;
}
const readyz = async (gw: GatewayProcess) => {
  const res = await fetch(`${gw.opsUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as Readyz };
};

if (unreachable === undefined) {
  describe('rate limits shared by two gateways through Redis', () => {
    const prefix = `gatehouse-e2e:${process.pid}:${randomBytes(4).toString('hex')}:`;
    const admin = new Redis(TEST_REDIS_URL);
    let upstream: Upstream;
    let one: GatewayProcess;
    let two: GatewayProcess;

    before(async () => {
      upstream = await startUpstream();
      // The default interval: a gateway keeps reading a key's total for ten syncs after its last hit of it, so the
      // interval must stay long next to a request's latency on a busy machine (at 20 ms it lapsed between hits).
      const settings = { type: 'redis', url: TEST_REDIS_URL, prefix, mode: 'sync', syncInterval: '100ms' };
      [one, two] = await Promise.all([
        startGateway(config(upstream, settings)),
        startGateway(config(upstream, settings)),
      ]);
      await Promise.all([
        waitForLine(one, /rate-limit store connected/, 0),
        waitForLine(two, /rate-limit store connected/, 0),
      ]);
    });
    after(async () => {
      await Promise.all([one?.stop(), two?.stop()]);
      await upstream?.close();
      const keys = await admin.keys(`${prefix}*`);
      if (keys.length > 0) await admin.del(...keys);
      await admin.quit();
    });

    it('admits the key limit once in total across both, then refuses on both with 429', async () => {
      const recorder = await recordSyncs(prefix);
      const statuses: number[] = [];
      /** Each gateway's Redis connection, learnt from the sync that carried its first hit. */
      const sources = new Map<GatewayProcess, string>();
      try {
        for (let i = 0; i < 8; i++) {
          const [gw, other] = i % 2 === 0 ? [one, two] : [two, one];
          const from = recorder.syncs.length;
          const res = await get(gw);
          await res.text();
          statuses.push(res.status);
          if (res.status === 429) assert.ok(Number(res.headers.get('retry-after')) >= 1);
          if (res.status !== 200) continue;
          // Wait on the gateways, not for a while: the sync that carries this hit to Redis, then two syncs of that
          // counter by the other gateway (the first reads the new total; a store runs one sync at a time, so the
          // second shows the first's answer applied). A gateway that never saw the key does not sync it.
          const sent = await waitForValue(
            () => {
              const at = recorder.syncs.findIndex((s, j) => j >= from && s.hits > 0);
              return at === -1 ? undefined : at;
            },
            10_000,
            `the sync carrying hit ${i}`,
          );
          const { source, key } = recorder.syncs[sent]!;
          sources.set(gw, source);
          const heard = sources.get(other);
          if (heard !== undefined)
            await eventually(
              () => recorder.syncs.slice(sent + 1).filter((s) => s.source === heard && s.key === key).length >= 2,
              10_000,
              `the other gateway's view of hit ${i}`,
            );
        }
      } finally {
        recorder.close();
      }
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
      assert.equal(upstream.requests.length, 5);
    });

    it('keeps only hashes and ids in Redis, never the key', async () => {
      const keys = await admin.keys(`${prefix}*`);
      assert.ok(keys.length > 0);
      assert.ok(
        keys.some((k) => k.includes(caller.hash.replace(/^sha256:/, ''))),
        "counted by the key's hash",
      );
      assert.ok(keys.every((k) => !k.includes(caller.key)));
    });
  });

  it("the control plane's cloud gateway uses the Redis named by GATEHOUSE_RATE_LIMIT_REDIS_URL", async () => {
    const plane = await startControlPlane({ env: { GATEHOUSE_RATE_LIMIT_REDIS_URL: TEST_REDIS_URL } });
    try {
      await eventually(
        () => plane.output.some((l) => l.includes('rate-limit store connected')),
        10_000,
        'the store connected',
      ).catch(() => {});
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
      const line = JSON.parse(await waitForLine(gw, /rate-limit store degraded/, 0)) as Record<string, unknown>;
      assert.equal(line.store, redactUrl(url));
      assert.equal(line.kind, 'connection');
      assert.ok(!gw.output.join('\n').includes('s3cret-password'), 'the password never reaches the log');
      assert.ok((await metricValue(gw.opsUrl, 'gatehouse_rate_limit_store_errors_total{kind="connection"}')) > 0);
      assert.equal(await metricValue(gw.opsUrl, 'gatehouse_rate_limit_store_degraded'), 1);
      const ready = await readyz(gw);
      assert.equal(ready.status, 200);
      assert.equal(ready.body.checks.rateLimitStore?.status, 'degraded');
      assert.ok(!JSON.stringify(ready.body).includes('s3cret-password'));
    });
  });

  describe('a gateway whose Redis accepts connections and never answers', () => {
    let upstream: Upstream;
    let hole: FaultServer;
    let gw: GatewayProcess;

    before(async () => {
      upstream = await startUpstream();
      hole = await startBlackHole();
      // A long command timeout: requests must not wait for it (mode sync: no request ever waits for Redis; the
      // lease mode's wait, at most one command timeout per key, is tested in exact-limits.e2e.test.ts).
      gw = await startGateway(
        config(upstream, {
          type: 'redis',
          url: hole.url,
          mode: 'sync',
          syncInterval: '20ms',
          commandTimeout: '1500ms',
          connectTimeout: '1s',
        }),
      );
    });
    after(async () => {
      await gw?.stop();
      await upstream?.close();
      await hole?.close();
    });

    it('answers at once, counting alone, while the store is not answering', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const started = performance.now();
        const res = await get(gw);
        await res.text();
        statuses.push(res.status);
        assert.ok(performance.now() - started < 500, `request ${i} took ${Math.round(performance.now() - started)}ms`);
      }
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
    });

    it('logs the degradation, counts the timeout, and reports it in /readyz while staying ready', async () => {
      const line = JSON.parse(await waitForLine(gw, /rate-limit store degraded/, 0, 10_000)) as Record<string, unknown>;
      assert.equal(line.kind, 'timeout');
      assert.match(String(line.reason), /no answer within 1500ms/);
      assert.ok((await metricValue(gw.opsUrl, 'gatehouse_rate_limit_store_errors_total{kind="timeout"}')) > 0);
      assert.equal(await metricValue(gw.opsUrl, 'gatehouse_rate_limit_store_degraded'), 1);
      const ready = await readyz(gw);
      assert.equal(ready.status, 200, JSON.stringify(ready.body));
      assert.equal(ready.body.status, 'ready');
      assert.equal(ready.body.checks.rateLimitStore?.status, 'degraded');
      assert.match(
        ready.body.checks.rateLimitStore!.detail!,
        /no answer within 1500ms.*counting locally.*onStoreFailure: closed refuse with 503/,
      );
    });

    it('refuses requests under a limit that fails closed with 503 and a clear code, and serves the others', async () => {
      await waitForLine(gw, /rate-limit store degraded/, 0, 10_000);
      const forwarded = upstream.requests.length;
      const strict = await get(gw, 'strict');
      const body = await expectProblem(strict, 503, 'GH_ERR_RATE_LIMIT_STORE_UNAVAILABLE');
      assert.match(String(body.detail), /key rate limit cannot be checked/);
      assert.equal(strict.headers.get('retry-after'), '1');
      assert.equal(upstream.requests.length, forwarded, 'nothing reached the upstream');
      const open = await get(gw);
      await open.text();
      assert.notEqual(open.status, 503, 'a limit that fails open still answers');
    });
  });
} else {
  // A real Redis is required: an unreachable one fails the run rather than passing it by skipping.
  it('runs the shared rate-limit end-to-end tests on Redis', () => {
    assert.fail(`Redis not reachable at ${redactUrl(TEST_REDIS_URL)} (${unreachable}): ${REDIS_HOW_TO}`);
  });
}
