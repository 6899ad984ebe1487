/**
 * The behaviour every QuotaStore must show, as one suite run against each store (memory, and Redis):
 * `quotaStoreContract('memory', () => createMemoryQuotas())` from the store's own test file. `makeStore` must
 * return an isolated store (its own Redis key prefix); each test closes it.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { QuotaCounter, QuotaDecision, QuotaStore } from '../../../shared/quota-store.ts';

const END = Date.now() + 86_400_000;

/** A counter of the period `d1` (or `period`) with `limit`. */
export const counter = (key: string, limit: number, period = 'd1', endsAt = END): QuotaCounter => ({
  key,
  limit,
  period,
  endsAt,
});

export function quotaStoreContract(name: string, makeStore: () => QuotaStore): void {
  describe(`quota store contract: ${name}`, () => {
    let store: QuotaStore;
    beforeEach(() => {
      store = makeStore();
    });
    afterEach(async () => {
      await store.close();
    });
    const debit = async (q: QuotaCounter | QuotaCounter[], cost: number): Promise<QuotaDecision> =>
      store.debit(Array.isArray(q) ? q : [q], cost, true);

    it('allows debits up to the quota, counting the cost of each', async () => {
      const decisions = [];
      for (const cost of [1, 4, 5]) decisions.push(await debit(counter('k', 10), cost));
      assert.deepEqual(
        decisions.map((d) => [d.allowed, d.used, d.refused]),
        [
          [true, [1], -1],
          [true, [5], -1],
          [true, [10], -1],
        ],
      );
      const refused = await debit(counter('k', 10), 1);
      assert.deepEqual([refused.allowed, refused.used, refused.refused], [false, [10], 0]);
      assert.notEqual(refused.unavailable, true);
    });

    it('refuses a debit that costs more than what remains, without counting it', async () => {
      await debit(counter('k', 10), 7);
      const refused = await debit(counter('k', 10), 4);
      assert.deepEqual([refused.allowed, refused.used], [false, [7]]);
      const fits = await debit(counter('k', 10), 3);
      assert.deepEqual([fits.allowed, fits.used], [true, [10]]);
    });

    it('never allows a debit that costs more than the whole quota', async () => {
      assert.equal((await debit(counter('k', 3), 4)).allowed, false);
      assert.equal((await debit(counter('k', 3), 3)).allowed, true);
    });

    it('debits several quotas all or nothing, and names the first that had no room', async () => {
      const both = [counter('client', 10), counter('org', 4)];
      assert.deepEqual((await debit(both, 3)).used, [3, 3]);
      const refused = await debit(both, 2);
      assert.deepEqual([refused.allowed, refused.refused, refused.used], [false, 1, [3, 3]]);
      // The org's refusal took nothing from the client's quota.
      assert.deepEqual((await debit(counter('client', 10), 7)).used, [10]);
    });

    it('starts each period from zero and counts each key on its own', async () => {
      for (let i = 0; i < 3; i++) await debit(counter('k', 3), 1);
      assert.equal((await debit(counter('k', 3), 1)).allowed, false);
      const next = await debit(counter('k', 3, 'd2', END + 86_400_000), 1);
      assert.deepEqual([next.allowed, next.used], [true, [1]]);
      const other = await debit(counter('other', 3, 'd2'), 2);
      assert.deepEqual([other.allowed, other.used], [true, [2]]);
    });

    it('applies a raised quota to the units already used', async () => {
      for (let i = 0; i < 3; i++) await debit(counter('k', 3), 1);
      assert.equal((await debit(counter('k', 3), 1)).allowed, false);
      const raised = await debit(counter('k', 5), 1);
      assert.deepEqual([raised.allowed, raised.used], [true, [4]]);
    });

    it('treats a cost that is not a whole number of at least 1 as a bug', async () => {
      for (const cost of [0, 1.5, Number.NaN])
        await assert.rejects(async () => debit(counter('k', 5), cost), RangeError);
    });
  });
}
