/**
 * The shared rate-limit store on a real Redis (`GATEHOUSE_TEST_REDIS_URL`, by default the local server): the store
 * contract, then what only a shared store does — instances see each other's hits after a sync, hits of a window
 * left behind still reach it, pending hits go out on close, and an unreachable Redis leaves every instance
 * counting alone. Every store gets its own key prefix, and the test's keys are deleted at the end. When no Redis
 * answers, the run fails with a message saying how to provide one.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redactUrl } from '../../../config/redact-url.ts';
import {
  createSharedStore,
  storeErrorKind,
  type SharedRateLimitStore,
  type SharedStoreOptions,
  type SharedStoreState,
} from './shared-store.ts';
import { probeRedis, recordSyncs, REDIS_HOW_TO, TEST_REDIS_URL, testPrefixes } from '../../../testing/redis.ts';
import { resp, startBlackHole, startRedisProxy, startScriptedRedis } from '../../../testing/redis-faults.ts';
import { rateLimitStoreContract } from './store-contract.ts';

const redisUrl = TEST_REDIS_URL;
const prefixes = testPrefixes('gatehouse-test');
/** A prefix no other store of this run uses. */
const freshPrefix = prefixes.fresh;

const T = 3_600_000 * 470_000;
const MINUTE = 60_000;
const unreachable = await probeRedis(redisUrl);

if (unreachable === undefined) {
  const admin = new Redis(redisUrl);
  after(async () => {
    await prefixes.cleanup(admin);
    await admin.quit();
  });

  rateLimitStoreContract('shared (Redis)', () => createSharedStore({ url: redisUrl, prefix: freshPrefix() }));

  /** Stores on one prefix, as gateways that share limits; closed at the end of the test. */
  async function sharing<T>(
    n: number,
    fn: (stores: SharedRateLimitStore[], prefix: string) => Promise<T>,
    errors?: Error[],
  ): Promise<T> {
    const prefix = freshPrefix();
    const all = Array.from({ length: n }, () =>
      createSharedStore({ url: redisUrl, prefix, syncIntervalMs: 60_000, onError: (e) => errors?.push(e) }),
    );
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
        assert.deepEqual(
          decisions.map((d) => [d.allowed, d.remaining]),
          [
            [true, 2],
            [true, 1],
            [true, 0],
            [false, 0],
          ],
        );
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
      const recorder = await recordSyncs(prefix, redisUrl);
      const [a, b] = [
        createSharedStore({ url: redisUrl, prefix, syncIntervalMs: 20 }),
        createSharedStore({ url: redisUrl, prefix, syncIntervalMs: 20 }),
      ];
      try {
        await ready([a, b]);
        for (let i = 0; i < 4; i++) a.hit('auto', 5, MINUTE, T + 1_000);
        const counter = `${prefix}auto\u0000${MINUTE}\u0000${T}`;
        await until("a's timer sent its hits", async () => (await admin.get(counter)) === '4');
        // One hit of b's own: alone it would have 4 left. Its timer's sync brings a's four.
        assert.equal(b.hit('auto', 5, MINUTE, T + 1_000).remaining, 4);
        await until("b's timer sent its hit", async () => (await admin.get(counter)) === '5');
        // The sync that sent it read the total (5) back; b's next sync (one at a time) shows that answer applied.
        await until(
          'MONITOR saw both syncs with hits',
          () => recorder.syncs.filter((s) => s.hits > 0).reduce((n, s) => n + s.hits, 0) === 5,
        );
        const sent = recorder.syncs.findLastIndex((s) => s.hits > 0);
        await until("b's next sync", () =>
          recorder.syncs.slice(sent + 1).some((s) => s.source === recorder.syncs[sent]!.source),
        );
        assert.equal(b.hit('auto', 5, MINUTE, T + 1_000).allowed, false, "b's timer brought a's hits");
      } finally {
        recorder.close();
        await Promise.all([a.close(), b.close()]);
      }
    });
  });

  describe('shared rate-limit store without Redis', () => {
    it('goes on deciding locally, reports the error, and closes at once', async () => {
      const port = await closedPort();
      const errors: Error[] = [];
      const store = createSharedStore({
        url: `redis://127.0.0.1:${port}`,
        prefix: freshPrefix(),
        syncIntervalMs: 10,
        onError: (e) => errors.push(e),
      });
      try {
        const decisions = Array.from({ length: 4 }, () => store.hit('k', 3, MINUTE, T));
        assert.deepEqual(
          decisions.map((d) => d.allowed),
          [true, true, true, false],
        );
        await store.sync();
        await until('the connection failure was reported', () => errors.length > 0);
        assert.ok(errors.every((e) => !e.message.includes('password')));
      } finally {
        const started = Date.now();
        await store.close();
        assert.ok(Date.now() - started < 1_500, 'close does not wait for an unreachable Redis');
      }
    });
  });

  /** Polls `check` every 10 ms until it holds, failing with `what` after `ms` (generous: it only costs time when failing). */
  async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) assert.fail(`timed out after ${ms}ms waiting until ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** A store that records its errors and state changes; closed at the end of the test. */
  async function watched(
    options: Partial<SharedStoreOptions> & { url: string },
    fn: (store: SharedRateLimitStore, seen: { errors: Error[]; states: SharedStoreState[] }) => Promise<void>,
  ): Promise<void> {
    const seen = { errors: [] as Error[], states: [] as SharedStoreState[] };
    const store = createSharedStore({
      prefix: freshPrefix(),
      syncIntervalMs: 20,
      commandTimeoutMs: 200,
      connectTimeoutMs: 300,
      ...options,
      onError: (e) => seen.errors.push(e),
      onStateChange: (s) => seen.states.push(s),
    });
    try {
      await fn(store, seen);
    } finally {
      const started = Date.now();
      await store.close();
      assert.ok(Date.now() - started < 1_500, `close took ${Date.now() - started}ms`);
    }
  }

  /** `n` hits of `key` at once, each decided synchronously (no promise: nothing waits for Redis). */
  function hitNow(store: SharedRateLimitStore, key: string, n: number, now = T + 1_000): boolean[] {
    const out: boolean[] = [];
    for (let i = 0; i < n; i++) {
      const d = store.hit(key, 100, MINUTE, now);
      assert.ok(!(d instanceof Promise), 'a hit is decided without waiting');
      out.push(d.allowed);
    }
    return out;
  }

  describe('shared rate-limit store when Redis misbehaves', () => {
    it('notices a Redis that accepts connections and never answers: degraded by a timeout, decisions stay local and immediate', async () => {
      const hole = await startBlackHole();
      try {
        await watched({ url: hole.url }, async (store, seen) => {
          assert.equal(store.state().status, 'connecting');
          const started = performance.now();
          assert.deepEqual(hitNow(store, 'k', 3), [true, true, true]);
          assert.ok(performance.now() - started < 50, 'hits do not wait for the connection');
          await until('the store is degraded', () => store.degraded);
          assert.ok(hole.accepted >= 1, 'it did connect');
          const state = store.state();
          assert.equal(state.kind, 'timeout', JSON.stringify(state));
          assert.match(state.reason!, /no answer within 200ms|within \d+ms/);
          assert.ok(
            seen.errors.some((e) => storeErrorKind(e) === 'timeout'),
            seen.errors.map((e) => e.message).join('; '),
          );
          assert.deepEqual(
            seen.states.map((s) => s.status),
            ['degraded'],
            'reported once, not once per error',
          );
          // It keeps trying: the hole sees new connections.
          const before = hole.accepted;
          await until('it dials again', () => hole.accepted > before);
          assert.deepEqual(hitNow(store, 'k', 1), [true]);
        });
      } finally {
        await hole.close();
      }
    });

    it('gives up a connection whose TLS handshake never completes after connectTimeout', async () => {
      const hole = await startBlackHole();
      try {
        await watched(
          { url: `rediss://127.0.0.1:${hole.port}`, connectTimeoutMs: 300, commandTimeoutMs: 5_000 },
          async (store, seen) => {
            await until('the store is degraded', () => store.degraded);
            assert.equal(store.state().kind, 'timeout');
            assert.ok(
              seen.errors.some((e) => /ETIMEDOUT/.test(e.message)),
              seen.errors.map((e) => e.message).join('; '),
            );
          },
        );
      } finally {
        await hole.close();
      }
    });

    it('notices a Redis that stops answering mid-run, keeps the hits, and sends them exactly once when it answers again', async () => {
      const proxy = await startRedisProxy(redisUrl);
      const prefix = freshPrefix();
      const counter = `${prefix}k\u0000${MINUTE}\u0000${T}`;
      try {
        await watched({ url: proxy.url, prefix, syncIntervalMs: 60_000 }, async (store, seen) => {
          await store.connected();
          hitNow(store, 'k', 2);
          await store.sync();
          assert.equal(store.state().status, 'ok');
          assert.equal(await admin.get(counter), '2');

          proxy.mode = 'hang';
          hitNow(store, 'k', 3);
          const started = Date.now();
          await store.sync(); // without a command timeout this never settles
          assert.ok(Date.now() - started < 1_000, `the sync gave up after ${Date.now() - started}ms`);
          assert.equal(store.state().status, 'degraded');
          assert.equal(store.state().kind, 'timeout');
          assert.equal(await admin.get(counter), '2', 'nothing got through');

          proxy.mode = 'pass';
          // The hung connection is dropped (no data while an answer was due) and dialled again.
          await until('the store has reconnected and synced', async () => {
            await store.sync();
            return store.state().status === 'ok';
          });
          assert.equal(await admin.get(counter), '5', 'the three hits went out once, neither lost nor resent twice');
          assert.deepEqual(
            seen.states.map((s) => s.status),
            ['ok', 'degraded', 'ok'],
          );
        });
      } finally {
        await proxy.close();
      }
    });

    it('notices a hung Redis with no traffic at all, through its health PING', async () => {
      const proxy = await startRedisProxy(redisUrl);
      try {
        await watched({ url: proxy.url }, async (store) => {
          await until('the store is ok', () => store.state().status === 'ok');
          proxy.mode = 'hang';
          await until('the store is degraded', () => store.degraded);
          proxy.mode = 'pass';
          await until('the store is ok again', () => store.state().status === 'ok');
        });
      } finally {
        await proxy.close();
      }
    });

    it('stays healthy while Redis answers within the command timeout, and degrades once it answers later than that', async () => {
      const proxy = await startRedisProxy(redisUrl);
      try {
        await watched({ url: proxy.url, syncIntervalMs: 60_000, commandTimeoutMs: 300 }, async (store, seen) => {
          await store.connected();
          proxy.mode = 'slow';
          proxy.delayMs = 60;
          for (let i = 0; i < 3; i++) {
            hitNow(store, 'k', 1);
            await store.sync();
          }
          assert.equal(store.state().status, 'ok', seen.errors.map((e) => e.message).join('; '));
          proxy.delayMs = 600;
          hitNow(store, 'k', 1);
          await store.sync();
          assert.equal(store.state().status, 'degraded');
          assert.equal(store.state().kind, 'timeout');
          proxy.mode = 'pass';
          await until('the store recovers', async () => {
            await store.sync();
            return store.state().status === 'ok';
          });
        });
      } finally {
        await proxy.close();
      }
    });

    it('counts alone while Redis is gone, and gives the shared total every hit once when it is back', async () => {
      const proxy = await startRedisProxy(redisUrl);
      const prefix = freshPrefix();
      const counter = `${prefix}k\u0000${MINUTE}\u0000${T}`;
      try {
        await watched({ url: proxy.url, prefix, syncIntervalMs: 20 }, async (store) => {
          await store.connected();
          hitNow(store, 'k', 1);
          await until('the first hit is in Redis', async () => (await admin.get(counter)) === '1');
          proxy.mode = 'down';
          await until('the store is degraded', () => store.degraded);
          assert.equal(store.state().kind, 'connection');
          hitNow(store, 'k', 4);
          proxy.mode = 'pass';
          await until('the store is ok again', () => store.state().status === 'ok');
          await until('every hit is in Redis', async () => (await admin.get(counter)) === '5');
          await store.sync();
          assert.equal(await admin.get(counter), '5');
        });
      } finally {
        await proxy.close();
      }
    });

    for (const [answer, extra] of [
      ['NOSCRIPT No matching script. Please use EVAL.', ''],
      ["READONLY You can't write against a read only replica.", ' and dials again (a failover left it on a replica)'],
      ["OOM command not allowed when used memory > 'maxmemory'.", ''],
    ] as const) {
      const code = answer.split(' ')[0]!;
      it(`reports a Redis that answers ${code} as degraded, keeps the hits${extra}, and sends them once it answers`, async () => {
        let failing = true;
        const sent: number[] = [];
        const fake = await startScriptedRedis((command) => {
          if (command[0] !== 'EVALSHA' && command[0] !== 'EVAL') return resp.error(`ERR unexpected ${command[0]}`);
          if (failing) return resp.error(answer);
          const hits = Number(command[5]);
          sent.push(hits);
          return resp.array([resp.integer(sent.reduce((a, b) => a + b, 0)), resp.integer(0)]);
        });
        try {
          await watched({ url: fake.url, syncIntervalMs: 60_000 }, async (store, seen) => {
            await store.connected();
            hitNow(store, 'k', 3);
            await store.sync();
            assert.equal(store.state().status, 'degraded');
            assert.equal(store.state().kind, 'reply');
            assert.equal(store.state().reason, `Redis answered ${code}`);
            assert.ok(seen.errors.some((e) => storeErrorKind(e) === 'reply'));
            if (code === 'READONLY') await until('it dials again', () => fake.accepted >= 2);
            failing = false;
            await until('the store recovers', async () => {
              await store.connected();
              await store.sync();
              return store.state().status === 'ok';
            });
            // Later syncs re-read the key with 0 new hits.
            assert.deepEqual(
              sent.filter((n) => n > 0),
              [3],
              'the three hits went out once, after the failures',
            );
          });
        } finally {
          await fake.close();
        }
      });
    }
  });
} else {
  // A real Redis is required: an unreachable one fails the run rather than passing it by skipping.
  it('runs the shared rate-limit store suite on Redis', () => {
    assert.fail(`Redis not reachable at ${redactUrl(redisUrl)} (${unreachable}): ${REDIS_HOW_TO}`);
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
