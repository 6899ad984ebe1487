/**
 * Concurrency slots leased from a real Redis: instances sharing a prefix never hold more slots than the cap
 * together, slots given back are taken elsewhere, a dead instance's slots return after its lease period, and with
 * Redis unreachable an instance takes slots from its local share.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redactUrl } from '../../../config/redact-url.ts';
import { eventually } from '../../../testing/eventually.ts';
import { probeRedis, REDIS_HOW_TO, TEST_REDIS_URL, testPrefixes } from '../../../testing/redis.ts';
import { connectLeases } from '../rate-limit/redis-leases.ts';
import { createMemorySlots } from './memory-slots.ts';
import { createSharedSlots, type SharedSlots } from './shared-slots.ts';

const prefixes = testPrefixes('gatehouse-slots-test');
const freshPrefix = prefixes.fresh;
const unreachable = await probeRedis(TEST_REDIS_URL);

describe('concurrency slots in memory', () => {
  it('takes up to the cap and gives slots back on release', () => {
    const slots = createMemorySlots();
    assert.deepEqual(
      [1, 2, 3].map(() => slots.acquire('k', 2)),
      [true, true, false],
    );
    slots.release('k');
    assert.equal(slots.acquire('k', 2), true);
    assert.equal(slots.taken('k'), 2);
    slots.close();
  });

  it('keeps a counter at 0 until the sweep drops it, and never goes below 0', () => {
    const slots = createMemorySlots();
    assert.equal(slots.acquire('a', 1), true);
    assert.equal(slots.acquire('b', 1), true);
    slots.release('a');
    slots.release('a');
    assert.equal(slots.taken('a'), 0);
    assert.equal(slots.size, 2);
    slots.sweep();
    assert.equal(slots.size, 1, 'the counter at 0 is dropped, the one in use stays');
    assert.equal(slots.taken('b'), 1);
    assert.equal(slots.acquire('a', 1), true);
    slots.close();
  });
});

if (unreachable === undefined) {
  const admin = new Redis(TEST_REDIS_URL);
  after(async () => {
    await prefixes.cleanup(admin);
    await admin.quit();
  });

  async function sharing(count: number, fn: (all: SharedSlots[], prefix: string) => Promise<void>): Promise<void> {
    const prefix = freshPrefix();
    const all = Array.from({ length: count }, () => createSharedSlots({ url: TEST_REDIS_URL, prefix }));
    try {
      await Promise.all(all.map((s) => s.connected()));
      await fn(all, prefix);
    } finally {
      await Promise.all(all.map((s) => s.close()));
    }
  }

  describe('concurrency slots leased from Redis', () => {
    it('grants exactly the cap across three instances asked at once, and the freed slots again', async () => {
      await sharing(3, async (all) => {
        const taken = await Promise.all(Array.from({ length: 30 }, (_, i) => all[i % 3]!.acquire('k', 5)));
        assert.equal(taken.filter(Boolean).length, 5);
        // Release two on whichever instances hold them; two more requests elsewhere get them.
        const holders = all.filter((s) => s.leased('k').inUse > 0);
        holders[0]!.release('k');
        holders[holders.length - 1]!.release('k');
        await eventually(
          async () => {
            const more = await Promise.all(all.map((s) => s.acquire('k', 5)));
            for (const [i, t] of more.entries()) if (t) all[i]!.release('k');
            return more.some(Boolean);
          },
          5_000,
          'a freed slot to be taken on another instance',
        );
        const inUse = all.reduce((sum, s) => sum + s.leased('k').inUse, 0);
        assert.equal(inUse, 3);
        const again = await Promise.all(Array.from({ length: 9 }, (_, i) => all[i % 3]!.acquire('k', 5)));
        assert.equal(again.filter(Boolean).length, 2, 'two slots were free, no more');
      });
    });

    it("gives a dead instance's slots back after its lease period", async () => {
      await sharing(1, async ([slots], prefix) => {
        const dead = connectLeases({
          url: TEST_REDIS_URL,
          instance: 'dead',
          leaseTtlMs: 300,
          commandTimeoutMs: 1_000,
          connectTimeoutMs: 1_000,
          onError: () => {},
          onReady: () => {},
        });
        try {
          await new Promise((r) => dead.redis.once('ready', r));
          const count = `${prefix}c:k`;
          for (let i = 0; i < 3; i++)
            await dead.lease({
              count,
              holdings: `${count}\u0000h`,
              held: i,
              release: 0,
              want: 1,
              limit: 3,
              windowMs: 0,
              leftMs: 0,
              keyTtlMs: 10_000,
            });
          dead.redis.disconnect();
          assert.equal(await slots!.acquire('k', 3), false, 'the dead instance holds all three');
          await eventually(async () => (await slots!.acquire('k', 3)) === true, 5_000, 'the lease to expire');
        } finally {
          dead.redis.disconnect();
        }
      });
    });
  });

  describe('concurrency slots without Redis', () => {
    it('takes slots from the local share at once, and says it is degraded', async () => {
      const server = createServer();
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const { port } = server.address() as { port: number };
      await new Promise<void>((r) => server.close(() => r()));
      const slots = createSharedSlots({
        url: `redis://127.0.0.1:${port}`,
        prefix: freshPrefix(),
        connectTimeoutMs: 100,
        commandTimeoutMs: 100,
      });
      try {
        await eventually(() => slots.degraded, 5_000, 'degraded');
        const taken = [1, 2, 3].map(() => slots.acquire('k', 2));
        assert.deepEqual(taken, [true, true, false]);
      } finally {
        await slots.close();
      }
    });
  });
} else {
  it('runs the concurrency slot suite on Redis', () => {
    assert.fail(`Redis not reachable at ${redactUrl(TEST_REDIS_URL)} (${unreachable}): ${REDIS_HOW_TO}`);
  });
}
