/**
 * The exact shared rate-limit store on a real Redis: the store contract, then what leasing adds — instances that
 * share a prefix admit exactly the limit together under a concurrent burst, a dead instance's unspent lease comes
 * back after its lease period, and with Redis unreachable each instance counts alone with its share of the limit.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redactUrl } from '../../../config/redact-url.ts';
import { eventually } from '../../../testing/eventually.ts';
import { probeRedis, REDIS_HOW_TO, TEST_REDIS_URL, testPrefixes } from '../../../testing/redis.ts';
import { createLeaseStore, type LeaseRateLimitStore } from './lease-store.ts';
import { connectLeases } from './redis-leases.ts';
import { rateLimitStoreContract } from './store-contract.ts';
import { windowStart } from './sliding-window.ts';

const prefixes = testPrefixes('gatehouse-lease-test');
const freshPrefix = prefixes.fresh;
const MINUTE = 60_000;
const unreachable = await probeRedis(TEST_REDIS_URL);

if (unreachable === undefined) {
  const admin = new Redis(TEST_REDIS_URL);
  after(async () => {
    await prefixes.cleanup(admin);
    await admin.quit();
  });

  rateLimitStoreContract('lease (Redis)', () => createLeaseStore({ url: TEST_REDIS_URL, prefix: freshPrefix() }));

  async function sharing<T>(n: number, fn: (stores: LeaseRateLimitStore[], prefix: string) => Promise<T>): Promise<T> {
    const prefix = freshPrefix();
    const all = Array.from({ length: n }, () => createLeaseStore({ url: TEST_REDIS_URL, prefix }));
    try {
      await Promise.all(all.map((s) => s.connected()));
      return await fn(all, prefix);
    } finally {
      await Promise.all(all.map((s) => s.close()));
    }
  }

  describe('exact rate limits leased from Redis', () => {
    it('admits exactly the limit across three instances under a concurrent burst of six times the limit', async () => {
      await sharing(3, async (all) => {
        const now = Date.now();
        const decisions = await Promise.all(
          Array.from({ length: 600 }, (_, i) => all[i % 3]!.hit('burst', 100, MINUTE, now)),
        );
        assert.equal(decisions.filter((d) => d.allowed).length, 100);
        const refused = decisions.find((d) => !d.allowed)!;
        assert.ok(refused.retryAfterMs > 0 && refused.remaining === 0);
      });
    });

    it('admits exactly the limit when the hits come one after another, alternating between instances', async () => {
      await sharing(3, async (all) => {
        let admitted = 0;
        for (let i = 0; i < 90; i++) if ((await all[i % 3]!.hit('paced', 40, MINUTE)).allowed) admitted++;
        assert.equal(admitted, 40);
      });
    });

    it('decides most hits without Redis: a steady key leases several units at a time', async () => {
      await sharing(1, async ([store]) => {
        let waited = 0;
        for (let i = 0; i < 200; i++) {
          const d = store!.hit('steady', 10_000, MINUTE);
          if (d instanceof Promise) {
            waited++;
            await d;
          }
        }
        assert.ok(waited < 40, `${waited} of 200 hits waited for Redis`);
      });
    });

    it("gives a dead instance's unspent units back after its lease period", async () => {
      await sharing(1, async ([store], prefix) => {
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
          const now = Date.now();
          const base = `${prefix}k\u0000${MINUTE}\u0000${windowStart(MINUTE, now)}`;
          const prev = `${prefix}k\u0000${MINUTE}\u0000${windowStart(MINUTE, now) - MINUTE}`;
          await new Promise((r) => dead.redis.once('ready', r));
          const taken = await dead.lease({
            count: base,
            holdings: `${base}\u0000h`,
            previousCount: prev,
            previousHoldings: `${prev}\u0000h`,
            held: 0,
            release: 0,
            want: 6,
            limit: 10,
            windowMs: MINUTE,
            leftMs: 30_000,
            keyTtlMs: 3 * MINUTE,
          });
          assert.equal(taken.granted, 5, 'a fair share: half of what is available to the first holder');
          dead.redis.disconnect();
          let admitted = 0;
          for (let i = 0; i < 8; i++) if ((await store!.hit('k', 10, MINUTE)).allowed) admitted++;
          assert.equal(admitted, 5, 'the dead instance still holds five');
          await eventually(async () => (await store!.hit('k', 10, MINUTE)).allowed, 5_000, 'the lease to expire');
          for (let i = 0; i < 4; i++) assert.equal((await store!.hit('k', 10, MINUTE)).allowed, true);
          assert.equal((await store!.hit('k', 10, MINUTE)).allowed, false);
        } finally {
          dead.redis.disconnect();
        }
      });
    });

    it('gives unspent units back when closed, so another instance can spend them', async () => {
      const prefix = freshPrefix();
      const first = createLeaseStore({ url: TEST_REDIS_URL, prefix });
      const second = createLeaseStore({ url: TEST_REDIS_URL, prefix });
      try {
        for (let i = 0; i < 20; i++) assert.equal((await first.hit('k', 100, MINUTE)).allowed, true);
        assert.ok(first.held('k') > 0, 'the first instance holds units it has not spent');
        await first.close();
        let admitted = 0;
        for (let i = 0; i < 120; i++) if ((await second.hit('k', 100, MINUTE)).allowed) admitted++;
        assert.equal(admitted, 80);
      } finally {
        await Promise.all([first.close(), second.close()]);
      }
    });
  });

  describe('the lease store without Redis', () => {
    it('waits at most a lease period, then counts alone with its share of the limit, without waiting', async () => {
      const port = await closedPort();
      const errors: Error[] = [];
      const store = createLeaseStore({
        url: `redis://127.0.0.1:${port}`,
        prefix: freshPrefix(),
        connectTimeoutMs: 100,
        commandTimeoutMs: 100,
        leaseTtlMs: 200,
        onError: (e) => errors.push(e),
      });
      try {
        // A first hit waits while the failure is younger than a lease period, then is decided alone.
        assert.equal((await store.hit('k', 3, MINUTE)).allowed, true);
        await eventually(
          () => store.degraded && Date.now() - store.state().since >= 200,
          5_000,
          'the store to be degraded for a lease period',
        );
        const decisions = [];
        for (let i = 0; i < 3; i++) decisions.push(store.hit('k', 3, MINUTE));
        assert.ok(
          decisions.every((d) => !(d instanceof Promise)),
          'no hit waits for Redis any longer',
        );
        assert.deepEqual(
          decisions.map((d) => (d as { allowed: boolean }).allowed),
          [true, true, false],
        );
        assert.ok(errors.length > 0);
      } finally {
        await store.close();
      }
    });
  });
} else {
  it('runs the lease store suite on Redis', () => {
    assert.fail(`Redis not reachable at ${redactUrl(TEST_REDIS_URL)} (${unreachable}): ${REDIS_HOW_TO}`);
  });
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
