/**
 * The shared quota store on a real Redis: the store contract, then what sharing adds — instances that share a
 * prefix admit exactly the quota together under a concurrent burst (0 over), a store opened again (a gateway
 * restart) goes on from the count Redis kept, and with Redis cut off a quota fails closed or open as configured,
 * and what was admitted meanwhile is added to Redis once it answers again.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redactUrl } from '../../../config/redact-url.ts';
import { eventually } from '../../../testing/eventually.ts';
import { probeRedis, REDIS_HOW_TO, TEST_REDIS_URL } from '../../../testing/redis.ts';
import { counter, quotaStoreContract } from './quota-contract.ts';
import { createRedisQuotas, type RedisQuotaStore } from './redis-quotas.ts';

const runPrefix = `gatehouse-quota-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
let stores = 0;
const freshPrefix = () => `${runPrefix}${stores++}:`;
const unreachable = await probeRedis(TEST_REDIS_URL);

if (unreachable === undefined) {
  const admin = new Redis(TEST_REDIS_URL);
  after(async () => {
    const keys = await admin.keys(`${runPrefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    await admin.quit();
  });

  quotaStoreContract('Redis', () => createRedisQuotas({ url: TEST_REDIS_URL, prefix: freshPrefix() }));

  describe('quotas shared through Redis', () => {
    it('admits exactly the quota across three instances under a concurrent burst of costly debits', async () => {
      const prefix = freshPrefix();
      const all = Array.from({ length: 3 }, () => createRedisQuotas({ url: TEST_REDIS_URL, prefix }));
      try {
        await Promise.all(all.map((s) => s.connected()));
        const decisions = await Promise.all(
          Array.from({ length: 300 }, (_, i) => all[i % 3]!.debit([counter('burst', 100)], 1 + (i % 3), true)),
        );
        const admitted = decisions.reduce((sum, d, i) => (d.allowed ? sum + 1 + (i % 3) : sum), 0);
        const used = Number(await admin.get(`${prefix}burst\u0000d1`));
        assert.equal(admitted, used, 'every admitted unit is counted once');
        assert.ok(used <= 100, `${used} units admitted of 100`);
        assert.ok(used >= 98, `${used}: the quota is used up to within one costly debit`);
        assert.equal(Math.max(...decisions.map((d) => d.used[0]!)), used);
      } finally {
        await Promise.all(all.map((s) => s.close()));
      }
    });

    it('goes on from the count Redis kept when a store is opened again (a gateway restart)', async () => {
      const prefix = freshPrefix();
      const first = createRedisQuotas({ url: TEST_REDIS_URL, prefix });
      for (let i = 0; i < 4; i++) assert.equal((await first.debit([counter('k', 10)], 2, true)).allowed, true);
      await first.close();
      const second = createRedisQuotas({ url: TEST_REDIS_URL, prefix });
      try {
        const d = await second.debit([counter('k', 10)], 2, true);
        assert.deepEqual([d.allowed, d.used], [true, [10]]);
        assert.equal((await second.debit([counter('k', 10)], 1, true)).allowed, false);
        assert.ok((await admin.pttl(`${prefix}k\u0000d1`)) > 86_400_000, 'kept a day past the end of its period');
      } finally {
        await second.close();
      }
    });
  });

  describe('the quota store while Redis is cut off', () => {
    it('refuses closed quotas as unavailable, counts open ones locally and adds them to Redis once it is back', async () => {
      const proxy = await tcpProxy(TEST_REDIS_URL);
      const prefix = freshPrefix();
      const store: RedisQuotaStore = createRedisQuotas({
        url: `redis://127.0.0.1:${proxy.port}`,
        prefix,
        commandTimeoutMs: 200,
        connectTimeoutMs: 200,
      });
      try {
        await store.connected();
        for (let i = 0; i < 3; i++) assert.equal((await store.debit([counter('k', 10)], 2, true)).allowed, true);
        proxy.cut();
        await eventually(
          async () => {
            await store.debit([counter('probe', 10)], 1, true);
            return store.degraded;
          },
          5_000,
          'the store to notice',
        );
        const closed = await store.debit([counter('k', 10)], 1, false);
        assert.deepEqual([closed.allowed, closed.unavailable], [false, true]);
        // Open: decided here from the last known usage (6 of 10), without waiting for Redis.
        const open = [store.debit([counter('k', 10)], 2, true), store.debit([counter('k', 10)], 2, true)];
        assert.ok(
          open.every((d) => !(d instanceof Promise)),
          'no debit waits for Redis while it is down',
        );
        assert.deepEqual(
          open.map((d) => (d as { allowed: boolean }).allowed),
          [true, true],
        );
        assert.equal((store.debit([counter('k', 10)], 1, true) as { allowed: boolean }).allowed, false);
        assert.ok(store.pending() >= 4);
        await proxy.restore();
        await eventually(() => !store.degraded && store.pending() === 0, 10_000, 'the store to recover');
        assert.equal(Number(await admin.get(`${prefix}k\u0000d1`)), 10, 'the units admitted while cut off were added');
      } finally {
        await store.close();
        await proxy.close();
      }
    });
  });
} else {
  it('runs the quota store suite on Redis', () => {
    assert.fail(`Redis not reachable at ${redactUrl(TEST_REDIS_URL)} (${unreachable}): ${REDIS_HOW_TO}`);
  });
}

/** A TCP proxy to Redis that can be cut (connections dropped, new ones refused) and restored on the same port. */
async function tcpProxy(url: string) {
  const target = new URL(url);
  const sockets = new Set<Socket>();
  let server: Server;
  let port = 0;
  const listen = async () => {
    server = createServer((client) => {
      const upstream = createConnection(Number(target.port || 6379), target.hostname);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  };
  await listen();
  return {
    get port() {
      return port;
    },
    cut() {
      server.close();
      for (const s of sockets) s.destroy();
    },
    restore: listen,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
