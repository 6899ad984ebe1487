/**
 * The behaviour every RateLimitStore must show, as one suite run against each store (memory, and the shared store
 * on a real Redis): `rateLimitStoreContract('memory', () => createMemoryStore())` from the store's own test file.
 *
 * Every hit passes an explicit `now`, so the suite never sleeps; a shared store must therefore take time from the
 * caller rather than from its server. Hits are awaited so a store whose `hit` returns a promise runs the same suite.
 * `makeStore` must return an isolated store (e.g. its own Redis key prefix); each test clears and closes it.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { RateLimitDecision, RateLimitStore } from '../../../shared/rate-limit-store.ts';

/** A time aligned to windows of 1s, 1min and 1h, so tests can reason in offsets from a window start. */
const T = 3_600_000 * 470_000;
const SECOND = 1_000;
const MINUTE = 60_000;

export function rateLimitStoreContract(name: string, makeStore: () => RateLimitStore): void {
  describe(`rate-limit store contract: ${name}`, () => {
    let store: RateLimitStore;
    beforeEach(() => {
      store = makeStore();
      store.clear();
    });
    afterEach(async () => {
      await store.close();
    });

    /** `n` hits at the same instant. */
    async function hits(
      key: string,
      n: number,
      limit: number,
      windowMs: number,
      now: number,
    ): Promise<RateLimitDecision[]> {
      const out: RateLimitDecision[] = [];
      for (let i = 0; i < n; i++) out.push(await store.hit(key, limit, windowMs, now));
      return out;
    }

    it('allows hits up to the limit within a window, counting remaining down to zero', async () => {
      const decisions = await hits('k', 5, 5, MINUTE, T + 10 * SECOND);
      assert.deepEqual(
        decisions.map((d) => [d.allowed, d.remaining, d.retryAfterMs, d.limit]),
        [
          [true, 4, 0, 5],
          [true, 3, 0, 5],
          [true, 2, 0, 5],
          [true, 1, 0, 5],
          [true, 0, 0, 5],
        ],
      );
    });

    it('refuses the hit after the limit with no remaining and a positive retry delay', async () => {
      await hits('k', 5, 5, MINUTE, T);
      const refused = await store.hit('k', 5, MINUTE, T + 30 * SECOND);
      assert.equal(refused.allowed, false);
      assert.equal(refused.remaining, 0);
      assert.equal(refused.limit, 5);
      assert.ok(refused.retryAfterMs > 0);
    });

    it('does not count refused hits', async () => {
      await hits('k', 5, 5, SECOND, T);
      const refused = await hits('k', 100, 5, SECOND, T + 500);
      assert.ok(refused.every((d) => !d.allowed));
      // 200ms into the next window the previous 5 weigh 5 × 0.8 = 4: one more fits. Had the 100 refusals counted,
      // the previous window would weigh 84.
      assert.equal((await store.hit('k', 5, SECOND, T + 1_199)).allowed, false);
      const allowed = await store.hit('k', 5, SECOND, T + 1_200);
      assert.equal(allowed.allowed, true);
      assert.equal(allowed.remaining, 0);
    });

    it("weighs the previous window's hits by how much of it the sliding window still covers", async () => {
      await hits('k', 10, 10, MINUTE, T);
      // 15s into the next window, the previous 10 hits weigh 10 × 45/60 = 7.5: two more fit (8.5, 9.5), not three.
      const decisions = await hits('k', 3, 10, MINUTE, T + MINUTE + 15 * SECOND);
      assert.deepEqual(
        decisions.map((d) => [d.allowed, d.remaining]),
        [
          [true, 1],
          [true, 0],
          [false, 0],
        ],
      );
    });

    it('gives the full limit back once the previous window has slid out of view', async () => {
      await hits('k', 10, 10, MINUTE, T + 59 * SECOND);
      const later = await store.hit('k', 10, MINUTE, T + 2 * MINUTE);
      assert.equal(later.allowed, true);
      assert.equal(later.remaining, 9);
    });

    it('forgets hits two or more windows back', async () => {
      await hits('k', 10, 10, MINUTE, T);
      const decision = await store.hit('k', 10, MINUTE, T + 7 * MINUTE + 30 * SECOND);
      assert.equal(decision.remaining, 9);
    });

    it('reports no retry delay on allowed hits', async () => {
      for (const d of await hits('k', 3, 3, MINUTE, T + 1)) assert.equal(d.retryAfterMs, 0);
    });

    it('refuses until exactly retryAfterMs has passed, then allows', async () => {
      const scenarios: { limit: number; windowMs: number; setup: [offset: number, n: number][]; at: number }[] = [
        // Limit 1: a hit weighs until the end of the next window.
        { limit: 1, windowMs: SECOND, setup: [[100, 1]], at: 200 },
        // Full in the current window, nothing before.
        { limit: 10, windowMs: MINUTE, setup: [[0, 10]], at: 20 * SECOND },
        // Room in the current window; the previous window's weight blocks.
        {
          limit: 10,
          windowMs: MINUTE,
          setup: [
            [0, 10],
            [MINUTE + 1, 2],
          ],
          at: MINUTE + 5 * SECOND,
        },
        // The previous window was full and the current one filled up while it still weighed a little.
        {
          limit: 7,
          windowMs: SECOND,
          setup: [
            [0, 7],
            [SECOND + 900, 6],
          ],
          at: SECOND + 950,
        },
        // A window that does not divide evenly: the previous hits weigh 3 × left / 7000.
        { limit: 3, windowMs: 7_000, setup: [[6_999, 3]], at: 7_001 },
      ];
      for (const [i, s] of scenarios.entries()) {
        const key = `scenario-${i}`;
        for (const [offset, n] of s.setup) await hits(key, n, s.limit, s.windowMs, T + offset);
        const refused = await store.hit(key, s.limit, s.windowMs, T + s.at);
        assert.equal(refused.allowed, false, `scenario ${i} should be refused`);
        assert.ok(
          Number.isInteger(refused.retryAfterMs) && refused.retryAfterMs > 0,
          `scenario ${i}: ${refused.retryAfterMs}`,
        );
        assert.equal(
          (await store.hit(key, s.limit, s.windowMs, T + s.at + refused.retryAfterMs - 1)).allowed,
          false,
          `scenario ${i}: too early`,
        );
        assert.equal(
          (await store.hit(key, s.limit, s.windowMs, T + s.at + refused.retryAfterMs)).allowed,
          true,
          `scenario ${i}: on time`,
        );
      }
    });

    it('gives a retry delay that is right for random histories', async () => {
      let seed = 42;
      const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
      for (let round = 0; round < 200; round++) {
        const key = `random-${round}`;
        const limit = 1 + Math.floor(random() * 20);
        const windowMs = 100 + Math.floor(random() * 5_000);
        let now = T + Math.floor(random() * windowMs);
        let refused: RateLimitDecision | undefined;
        for (let i = 0; i < 200 && refused === undefined; i++) {
          now += Math.floor(random() * (windowMs / limit) * 1.5);
          const d = await store.hit(key, limit, windowMs, now);
          if (!d.allowed) refused = d;
        }
        if (refused === undefined) continue;
        const early = await store.hit(key, limit, windowMs, now + refused.retryAfterMs - 1);
        assert.equal(early.allowed, false, `round ${round}: allowed before retryAfterMs=${refused.retryAfterMs}`);
        const onTime = await store.hit(key, limit, windowMs, now + refused.retryAfterMs);
        assert.equal(onTime.allowed, true, `round ${round}: refused after retryAfterMs=${refused.retryAfterMs}`);
      }
    });

    it('reports in resetMs when the full limit is available again', async () => {
      const now = T + 20 * SECOND;
      // Two keys with the same history: probing one moment early counts a hit, so each key is probed once.
      const last = (await hits('early', 4, 10, MINUTE, now)).at(-1)!;
      await hits('on-time', 4, 10, MINUTE, now);
      assert.equal(last.resetMs, 40 * SECOND + MINUTE);
      assert.equal((await store.hit('early', 10, MINUTE, now + last.resetMs - 1)).remaining, 8);
      assert.equal((await store.hit('on-time', 10, MINUTE, now + last.resetMs)).remaining, 9);
    });

    it('reports a resetMs no shorter than retryAfterMs on refusal', async () => {
      await hits('k', 3, 3, MINUTE, T);
      const refused = await store.hit('k', 3, MINUTE, T + 10 * SECOND);
      assert.equal(refused.allowed, false);
      assert.ok(refused.resetMs >= refused.retryAfterMs, `${refused.resetMs} < ${refused.retryAfterMs}`);
    });

    it('counts each key on its own', async () => {
      await hits('a', 2, 2, MINUTE, T);
      assert.equal((await store.hit('a', 2, MINUTE, T)).allowed, false);
      const b = await store.hit('b', 2, MINUTE, T);
      assert.equal(b.allowed, true);
      assert.equal(b.remaining, 1);
    });

    it('applies a changed limit to the hits already counted', async () => {
      await hits('k', 5, 5, MINUTE, T);
      assert.equal((await store.hit('k', 5, MINUTE, T)).allowed, false);
      const raised = await store.hit('k', 8, MINUTE, T);
      assert.equal(raised.allowed, true);
      assert.equal(raised.remaining, 2);
    });

    it('starts afresh when the window of a key changes', async () => {
      await hits('k', 5, 5, MINUTE, T);
      const decision = await store.hit('k', 5, SECOND, T + SECOND);
      assert.equal(decision.allowed, true);
      assert.equal(decision.remaining, 4);
    });

    it('forgets every key on clear', async () => {
      await hits('a', 3, 3, MINUTE, T);
      await hits('b', 3, 3, MINUTE, T);
      store.clear();
      assert.equal((await store.hit('a', 3, MINUTE, T)).remaining, 2);
      assert.equal((await store.hit('b', 3, MINUTE, T)).remaining, 2);
    });

    it('returns whole, non-negative numbers in every decision', async () => {
      let now = T;
      for (let i = 0; i < 300; i++) {
        now += 137;
        const d = await store.hit('k', 7, 3_000, now);
        for (const value of [d.remaining, d.retryAfterMs, d.resetMs])
          assert.ok(Number.isInteger(value) && value >= 0, JSON.stringify(d));
        assert.ok(d.remaining < d.limit);
        assert.equal(d.retryAfterMs === 0, d.allowed);
      }
    });

    it('spends the cost of a hit: a hit of cost 3 counts three times, and remaining says so', async () => {
      const decisions: RateLimitDecision[] = [];
      for (let i = 0; i < 4; i++) decisions.push(await store.hit('k', 10, MINUTE, T + SECOND, 3));
      assert.deepEqual(
        decisions.map((d) => [d.allowed, d.remaining]),
        [
          [true, 7],
          [true, 4],
          [true, 1],
          [false, 0],
        ],
      );
      // The refused hit of cost 3 was not counted: one unit is left for a hit of cost 1.
      const cheap = await store.hit('k', 10, MINUTE, T + SECOND, 1);
      assert.deepEqual([cheap.allowed, cheap.remaining], [true, 0]);
      assert.equal((await store.hit('k', 10, MINUTE, T + SECOND, 1)).allowed, false);
    });

    it('refuses a hit whose cost exceeds what remains, until exactly retryAfterMs has passed', async () => {
      await store.hit('k', 5, SECOND, T, 2);
      await store.hit('k', 5, SECOND, T, 2);
      const refused = await store.hit('k', 5, SECOND, T + 100, 2);
      assert.equal(refused.allowed, false);
      assert.equal(refused.remaining, 0);
      assert.ok(refused.retryAfterMs > 0 && Number.isInteger(refused.retryAfterMs), String(refused.retryAfterMs));
      // Next window, the previous 4 units weigh 4 × left/1000: a hit of 2 fits once that is ≤ 3, at 250ms in.
      assert.equal(refused.retryAfterMs, SECOND + 250 - 100);
      assert.equal((await store.hit('k', 5, SECOND, T + 100 + refused.retryAfterMs - 1, 2)).allowed, false);
      const onTime = await store.hit('k', 5, SECOND, T + 100 + refused.retryAfterMs, 2);
      assert.deepEqual([onTime.allowed, onTime.remaining], [true, 0]);
    });

    it('never allows a hit that costs more than the whole limit, and does not count it', async () => {
      const refused = await store.hit('k', 3, MINUTE, T, 4);
      assert.equal(refused.allowed, false);
      assert.ok(refused.retryAfterMs > 0);
      const d = await store.hit('k', 3, MINUTE, T, 3);
      assert.deepEqual([d.allowed, d.remaining], [true, 0]);
    });

    it('gives a retry delay that is right for random histories of hits of random costs', async () => {
      let seed = 7;
      const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
      for (let round = 0; round < 100; round++) {
        const key = `costly-${round}`;
        const limit = 4 + Math.floor(random() * 20);
        const windowMs = 100 + Math.floor(random() * 5_000);
        let now = T + Math.floor(random() * windowMs);
        let refused: RateLimitDecision | undefined;
        let cost = 1;
        for (let i = 0; i < 200 && refused === undefined; i++) {
          now += Math.floor(random() * (windowMs / limit) * 3);
          cost = 1 + Math.floor(random() * 4);
          const d = await store.hit(key, limit, windowMs, now, cost);
          if (!d.allowed) refused = d;
          else assert.ok(d.remaining <= limit - cost, `round ${round}: ${JSON.stringify(d)} after a hit of ${cost}`);
        }
        if (refused === undefined) continue;
        const early = await store.hit(key, limit, windowMs, now + refused.retryAfterMs - 1, cost);
        assert.equal(early.allowed, false, `round ${round}: allowed before retryAfterMs=${refused.retryAfterMs}`);
        const onTime = await store.hit(key, limit, windowMs, now + refused.retryAfterMs, cost);
        assert.equal(onTime.allowed, true, `round ${round}: refused after retryAfterMs=${refused.retryAfterMs}`);
      }
    });

    it('refuses a cost that is not a whole number of at least 1 as a bug', async () => {
      for (const cost of [0, -1, 1.5, Number.NaN])
        await assert.rejects(async () => store.hit('k', 5, MINUTE, T, cost), RangeError);
    });

    it('can be closed twice', async () => {
      await store.close();
      await store.close();
    });
  });
}
