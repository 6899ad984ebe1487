/**
 * The shared (leased) quota store on a real Redis: the store contract, then what sharing adds — instances that
 * share a prefix admit exactly the quota together under a concurrent burst (0 over), most debits are decided
 * without a promise, a closed instance gives back what it held while a cut-off one forfeits it, a store opened
 * again (a gateway restart) goes on from the count Redis kept, and with Redis cut off a quota fails closed or
 * open as configured, and what was admitted meanwhile is added to Redis once it answers again.
 */
import assert from 'node:assert/strict';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redactUrl } from '../../../config/redact-url.ts';
import type { QuotaDecision } from '../../../shared/quota-store.ts';
import { eventually } from '../../../testing/eventually.ts';
import { probeRedis, REDIS_HOW_TO, TEST_REDIS_URL, testPrefixes } from '../../../testing/redis.ts';
import { createLeasedQuotas, type LeasedQuotaStore } from './leased-quotas.ts';
import { counter, quotaStoreContract } from './quota-contract.ts';

const prefixes = testPrefixes('gatehouse-quota-test');
const freshPrefix = prefixes.fresh;
const unreachable = await probeRedis(TEST_REDIS_URL);

if (unreachable === undefined) {
  const admin = new Redis(TEST_REDIS_URL);
  after(async () => {
    await prefixes.cleanup(admin);
    await admin.quit();
  });
  const countOf = async (prefix: string, key: string) => Number(await admin.get(`${prefix}${key}\u0000d1`));

  quotaStoreContract('Redis', () => createLeasedQuotas({ url: TEST_REDIS_URL, prefix: freshPrefix() }));

  describe('quotas leased from Redis', () => {
    const instances = async (prefix: string, n = 3) => {
      const all = Array.from({ length: n }, () => createLeasedQuotas({ url: TEST_REDIS_URL, prefix }));
      await Promise.all(all.map((s) => s.connected()));
      return all;
    };

    it('admits exactly the quota across three instances under a concurrent burst (0 over)', async () => {
      const prefix = freshPrefix();
      const all = await instances(prefix);
      try {
        const decisions = await Promise.all(
          Array.from({ length: 600 }, (_, i) => all[i % 3]!.debit([counter('burst', 100)], 1, true)),
        );
        assert.equal(decisions.filter((d) => d.allowed).length, 100);
        assert.equal(decisions.filter((d) => d.unavailable === true).length, 0);
      } finally {
        await Promise.all(all.map((s) => s.close()));
      }
      assert.equal(await countOf(prefix, 'burst'), 100, 'every admitted unit is counted once');
    });

    it('admits no unit over the quota under a burst of costly debits, and counts what it admitted', async () => {
      const prefix = freshPrefix();
      const all = await instances(prefix);
      let decisions: QuotaDecision[];
      try {
        decisions = await Promise.all(
          Array.from({ length: 300 }, (_, i) => all[i % 3]!.debit([counter('burst', 100)], 1 + (i % 3), true)),
        );
      } finally {
        // Closing gives back what each instance holds: the count is then what was admitted.
        await Promise.all(all.map((s) => s.close()));
      }
      const admitted = decisions.reduce((sum, d, i) => (d.allowed ? sum + 1 + (i % 3) : sum), 0);
      assert.ok(admitted <= 100, `${admitted} units admitted of 100`);
      assert.ok(admitted >= 98, `${admitted}: the quota is used up to within one costly debit`);
      assert.equal(await countOf(prefix, 'burst'), admitted);
    });

    it('decides most debits without a promise (no Redis round trip)', async () => {
      const store = createLeasedQuotas({ url: TEST_REDIS_URL, prefix: freshPrefix() });
      try {
        await store.connected();
        let promises = 0;
        for (let i = 0; i < 1_000; i++) {
          const d = store.debit([counter('busy', 1_000_000), counter('org', 1_000_000)], 1, true);
          if (d instanceof Promise) {
            promises++;
            assert.equal((await d).allowed, true);
          } else assert.equal(d.allowed, true);
        }
        assert.ok(promises < 100, `${promises} of 1000 debits waited for Redis`);
      } finally {
        await store.close();
      }
    });

    it('refuses locally while a quota is used up, and re-checks it: units held idle elsewhere come back', async () => {
      const prefix = freshPrefix();
      const [a, b] = await instances(prefix, 2);
      try {
        assert.equal((await a!.debit([counter('k', 10)], 1, true)).allowed, true);
        await eventually(() => a!.calls() === 0, 5_000, 'no lease call in flight');
        const heldByA = a!.held('k', 'd1');
        assert.ok(heldByA > 0, 'the first instance holds units it has not spent');
        const first = await b!.debit([counter('k', 10)], 10 - 1 - heldByA + 1, true);
        assert.equal(first.allowed, false);
        const again = b!.debit([counter('k', 10)], 10 - 1 - heldByA + 1, true);
        assert.equal(again instanceof Promise, false, 'a refusal stands on the instance for a while');
        // Idle, the first instance gives its units back; the second one's re-check then finds them.
        await eventually(
          async () => (await b!.debit([counter('k', 10)], 10 - 1 - heldByA + 1, true)).allowed,
          5_000,
          'the units held idle to come back',
        );
        assert.equal(a!.held('k', 'd1'), 0);
      } finally {
        await Promise.all([a, b].map((s) => s!.close()));
      }
      assert.equal(await countOf(prefix, 'k'), 10);
    });

    it('does not strand the last units of two quotas held apart by two instances: unspent, they go back', async () => {
      const prefix = freshPrefix();
      const [x, y] = await instances(prefix, 2);
      try {
        // Each instance takes one unit of one quota (limit 2) alone, and spends it.
        assert.equal((await x!.debit([counter('a', 2)], 1, true)).allowed, true);
        assert.equal((await y!.debit([counter('b', 2)], 1, true)).allowed, true);
        await eventually(() => x!.calls() === 0 && y!.calls() === 0, 5_000, 'no lease call in flight');
        // Now both ask for a request that needs a unit of each: one more fits, whoever holds what.
        await eventually(
          async () => {
            const [dx, dy] = await Promise.all([
              x!.debit([counter('a', 2), counter('b', 2)], 1, true),
              y!.debit([counter('a', 2), counter('b', 2)], 1, true),
            ]);
            return dx.allowed || dy.allowed;
          },
          10_000,
          'one request needing both quotas to be admitted',
        );
      } finally {
        await Promise.all([x, y].map((s) => s!.close()));
      }
      assert.equal(await countOf(prefix, 'a'), 2);
      assert.equal(await countOf(prefix, 'b'), 2);
    });

    it('gives back what a closed instance held, and forfeits what a cut-off one held once its lease ends', async () => {
      const prefix = freshPrefix();
      const proxy = await tcpProxy(TEST_REDIS_URL);
      const options = { prefix, leaseTtlMs: 300, commandTimeoutMs: 200, connectTimeoutMs: 200 };
      const closing = createLeasedQuotas({ url: TEST_REDIS_URL, ...options });
      const cut = createLeasedQuotas({ url: `redis://127.0.0.1:${proxy.port}`, ...options });
      const other = createLeasedQuotas({ url: TEST_REDIS_URL, ...options });
      const q = counter('k', 1_000);
      const spendSome = async (s: LeasedQuotaStore) => {
        for (let i = 0; i < 20; i++) assert.equal((await s.debit([q], 1, true)).allowed, true);
        await eventually(() => s.calls() === 0, 5_000, 'no lease call in flight');
        assert.ok(s.held('k', 'd1') > 0, 'the instance holds units it has not spent');
        return s.held('k', 'd1');
      };
      try {
        await Promise.all([closing, cut, other].map((s) => s.connected()));
        await spendSome(closing);
        await closing.close();
        assert.equal(await countOf(prefix, 'k'), 20, 'a closed instance gives back what it did not spend');

        const forfeited = await spendSome(cut);
        proxy.cut();
        // Another instance's calls sweep the cut-off instance's holding once its lease period has passed.
        let spentByOther = 0;
        await eventually(
          async () => {
            if ((await other.debit([q], 1, true)).allowed) spentByOther++;
            return (await admin.hlen(`${prefix}k\u0000d1\u0000h`)) === 1;
          },
          5_000,
          "the cut-off instance's holding to expire",
        );
        await other.close();
        assert.equal(
          await countOf(prefix, 'k'),
          40 + forfeited + spentByOther,
          'the expired holding was not given back',
        );
        // Its units stay spendable where they were leased: they are counted in Redis.
        assert.equal(cut.debit([q], 1, true) instanceof Promise, false);
        await proxy.restore();
        await eventually(() => !cut.degraded, 10_000, 'the cut-off instance to reconnect');
        await cut.close();
        assert.equal(
          await countOf(prefix, 'k'),
          40 + forfeited + spentByOther,
          'the forfeited units stay counted (0 over), giving them back later returns nothing',
        );
      } finally {
        await Promise.all([closing, cut, other].map((s) => s.close()));
        await proxy.close();
      }
    });

    it('goes on from the count Redis kept when a store is opened again (a gateway restart)', async () => {
      const prefix = freshPrefix();
      const first = createLeasedQuotas({ url: TEST_REDIS_URL, prefix });
      for (let i = 0; i < 4; i++) assert.equal((await first.debit([counter('k', 10)], 2, true)).allowed, true);
      await first.close();
      const second = createLeasedQuotas({ url: TEST_REDIS_URL, prefix });
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
      const store: LeasedQuotaStore = createLeasedQuotas({
        url: `redis://127.0.0.1:${proxy.port}`,
        prefix,
        commandTimeoutMs: 200,
        connectTimeoutMs: 200,
      });
      try {
        await store.connected();
        for (let i = 0; i < 3; i++) assert.equal((await store.debit([counter('k', 10)], 2, true)).allowed, true);
        await eventually(() => store.calls() === 0, 5_000, 'no lease call in flight');
        const held = store.held('k', 'd1');
        proxy.cut();
        await eventually(
          async () => {
            await store.debit([counter('probe', 10)], 1, true);
            return store.degraded;
          },
          5_000,
          'the store to notice',
        );
        // Units already leased are still spent, even for a quota that fails closed.
        const debits: (QuotaDecision | Promise<QuotaDecision>)[] = [];
        for (let i = 0; i < held; i++) debits.push(store.debit([counter('k', 10)], 1, false));
        const closed = store.debit([counter('k', 10)], 1, false);
        assert.deepEqual([(closed as QuotaDecision).allowed, (closed as QuotaDecision).unavailable], [false, true]);
        // Open: decided here from the usage last known (6 of 10, and what it held), without waiting for Redis.
        for (let i = 6 + held; i < 10; i++) debits.push(store.debit([counter('k', 10)], 1, true));
        assert.ok(
          debits.every((d) => !(d instanceof Promise)),
          'no debit waits for Redis while it is down',
        );
        assert.deepEqual(
          debits.map((d) => (d as QuotaDecision).allowed),
          debits.map(() => true),
        );
        const last = store.debit([counter('k', 10)], 1, true) as QuotaDecision;
        assert.deepEqual([last.allowed, last.used], [false, [10]]);
        assert.ok(store.pending() >= 4 - held, `${store.pending()} units admitted alone`);
        await proxy.restore();
        await eventually(() => !store.degraded && store.pending() === 0, 10_000, 'the store to recover');
        assert.equal(await countOf(prefix, 'k'), 10, 'the units admitted while cut off were added');
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
