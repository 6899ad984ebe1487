/**
 * The shared rate-limit store on a real Redis (`GATEHOUSE_TEST_REDIS_URL`, by default the local server): the store
 * contract, then what only a shared store does — instances see each other's hits after a sync, hits of a window
 * left behind still reach it, pending hits go out on close, and an unreachable Redis leaves every instance
 * counting alone. Every store gets its own key prefix, and the test's keys are deleted at the end. When no Redis
 * answers, the run fails with a message saying how to provide one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redactUrl } from '../../../config/redact-url.ts';
import { createSharedStore, type SharedRateLimitStore } from './shared-store.ts';
import { probeRedis, TEST_REDIS_URL } from '../../../testing/redis.ts';
import { rateLimitStoreContract } from './store-contract.ts';

const redisUrl = TEST_REDIS_URL;
const runPrefix = `gatehouse-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
let stores = 0;
/** A prefix no other store of this run uses. */
const freshPrefix = () => `${runPrefix}${stores++}:`;

const T = 3_600_000 * 470_000;
const MINUTE = 60_000;
const unreachable = await probeRedis(redisUrl);

if (unreachable === undefined) {
  const admin = new Redis(redisUrl);
  after(async () => {
    const keys = await admin.keys(`${runPrefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    await admin.quit();
  });

  rateLimitStoreContract('shared (Redis)', () => createSharedStore({ url: redisUrl, prefix: freshPrefix() }));

  /** Stores on one prefix, as gateways that share limits; closed at the end of the test. */
  async function sharing<T>(n: number, fn: (stores: SharedRateLimitStore[], prefix: string) => Promise<T>, errors?: Error[]): Promise<T> {
    const prefix = freshPrefix();
    const all = Array.from({ length: n }, () => createSharedStore({ url: redisUrl, prefix, syncIntervalMs: 60_000, onError: (e) => errors?.push(e) }));
    try {
      await Promise.all(all.map((s) => s.sync()));
      await ready(all);
      return await fn(all, prefix);
    } finally {
      await Promise.all(all.map((s) => s.close()));
    }
  }

  /** Waits until every store's connection is up (a sync before then is skipped, not failed). */
  async function ready(all: SharedRateLimitStore[]): Promise<void> {
    await Promise.all(all.map((s) => s.connected()));
  }

  describe('shared rate-limit store across instances', () => {
    it("lets one instance see another's hits after a sync, so the limit holds in total", async () => {
      await sharing(2, async ([a, b]) => {
        for (let i = 0; i < 6; i++) assert.equal(a!.hit('k', 10, MINUTE, T + 1_000).allowed, true);
        await a!.sync();
        // b knows nothing yet: its first hit is decided on its own count, then the sync brings a's six.
        assert.equal(b!.hit('k', 10, MINUTE, T + 2_000).remaining, 9);
        await b!.sync();
        const decisions = [1, 2, 3, 4].map(() => b!.hit('k', 10, MINUTE, T + 3_000));
        assert.deepEqual(decisions.map((d) => [d.allowed, d.remaining]), [[true, 2], [true, 1], [true, 0], [false, 0]]);
        await b!.sync();
        await a!.sync();
        const last = a!.hit('k', 10, MINUTE, T + 4_000);
        assert.equal(last.allowed, false, 'a must know that b used the rest');
        assert.ok(last.retryAfterMs > 0);
      });
    });

    it('admits exactly the limit across three instances that sync after every hit', async () => {
      await sharing(3, async (all) => {
        let admitted = 0;
        for (let i = 0; i < 30; i++) {
          const s = all[i % 3]!;
          if (s.hit('org', 12, MINUTE, T + 1_000 + i).allowed) admitted++;
          await s.sync();
          for (const other of all) if (other !== s) await other.sync();
        }
        assert.equal(admitted, 12);
      });
    });

    it('counts the previous window with the hits of every instance, including hits never sent before the window ended', async () => {
      await sharing(2, async ([a, b]) => {
        for (let i = 0; i < 8; i++) a!.hit('k', 10, MINUTE, T + 50_000);
        // a moves to the next window before any sync: its eight hits must still reach the window they fell in.
        a!.hit('k', 10, MINUTE, T + MINUTE + 1);
        await a!.sync();
        b!.hit('k', 10, MINUTE, T + MINUTE + 30_000);
        await b!.sync();
        // Half-way through, the previous window's 8 weigh 4, plus a's 1 and b's 1: 6 of 10 used, so 4 remain, less this hit.
        assert.equal(b!.hit('k', 10, MINUTE, T + MINUTE + 30_000).remaining, 3);
      });
    });

    it('sends pending hits on close, so a restarted instance loses none from the shared count', async () => {
      const prefix = freshPrefix();
      const first = createSharedStore({ url: redisUrl, prefix, syncIntervalMs: 60_000 });
      await ready([first]);
      for (let i = 0; i < 5; i++) first.hit('k', 10, MINUTE, T + 1_000);
      await first.close();
      const second = createSharedStore({ url: redisUrl, prefix, syncIntervalMs: 60_000 });
      try {
        await ready([second]);
        second.hit('k', 10, MINUTE, T + 2_000);
        await second.sync();
        assert.equal(second.hit('k', 10, MINUTE, T + 3_000).remaining, 3);
      } finally {
        await second.close();
      }
    });

    it('keeps its counters under the prefix, expiring after two windows, with the names the policy gave', async () => {
      await sharing(1, async ([a], prefix) => {
        a!.hit('route\u0000key\u0000abcd', 10, MINUTE, Date.now());
        await a!.sync();
        const keys = await admin.keys(`${prefix}route*`);
        assert.equal(keys.length, 1);
        assert.ok(keys[0]!.startsWith(`${prefix}route\u0000key\u0000abcd\u0000${MINUTE}\u0000`));
        const ttl = await admin.pttl(keys[0]!);
        assert.ok(ttl > MINUTE && ttl <= 2 * MINUTE + 60_000 + 1_000, `ttl ${ttl}`);
      });
    });

    it('syncs by itself every syncInterval', async () => {
      const prefix = freshPrefix();
      const [a, b] = [createSharedStore({ url: redisUrl, prefix, syncIntervalMs: 20 }), createSharedStore({ url: redisUrl, prefix, syncIntervalMs: 20 })];
      try {
        await ready([a, b]);
        for (let i = 0; i < 4; i++) a.hit('auto', 5, MINUTE, T + 1_000);
        const counter = `${prefix}auto\u0000${MINUTE}\u0000${T}`;
        for (let i = 0; i < 200 && (await admin.get(counter)) !== '4'; i++) await new Promise((r) => setTimeout(r, 10));
        assert.equal(await admin.get(counter), '4', "a's timer sent its hits");
        // One hit of b's own: alone it would have 4 left. Its timer's sync brings a's four.
        assert.equal(b.hit('auto', 5, MINUTE, T + 1_000).remaining, 4);
        for (let i = 0; i < 200 && (await admin.get(counter)) !== '5'; i++) await new Promise((r) => setTimeout(r, 10));
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(b.hit('auto', 5, MINUTE, T + 1_000).allowed, false, "b's timer brought a's hits");
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  });

  describe('shared rate-limit store without Redis', () => {
    it('goes on deciding locally, reports the error, and closes at once', async () => {
      const port = await closedPort();
      const errors: Error[] = [];
      const store = createSharedStore({ url: `redis://127.0.0.1:${port}`, prefix: freshPrefix(), syncIntervalMs: 10, onError: (e) => errors.push(e) });
      try {
        const decisions = Array.from({ length: 4 }, () => store.hit('k', 3, MINUTE, T));
        assert.deepEqual(decisions.map((d) => d.allowed), [true, true, true, false]);
        await store.sync();
        for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
        assert.ok(errors.length > 0, 'the connection failure was reported');
        assert.ok(errors.every((e) => !e.message.includes('password')));
      } finally {
        const started = Date.now();
        await store.close();
        assert.ok(Date.now() - started < 1_500, 'close does not wait for an unreachable Redis');
      }
    });
  });
} else {
  // A real Redis is required: an unreachable one fails the run rather than passing it by skipping.
  it('runs the shared rate-limit store suite on Redis', () => {
    assert.fail(`Redis not reachable at ${redactUrl(redisUrl)} (${unreachable}): start one (redis-server) or set GATEHOUSE_TEST_REDIS_URL; .ci/run starts a local one when it can`);
  });
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
