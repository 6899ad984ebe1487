/**
 * The behaviour every QuotaStore must show, as one suite run against each store (memory, and Redis):
 * `quotaStoreContract('memory', () => createMemoryQuotas())` from the store's own test file. `makeStore` must
 * return an isolated store (its own Redis key prefix); each test closes it.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { QuotaStore } from '../../../shared/quota-store.ts';

const END = Date.now() + 86_400_000;

export function quotaStoreContract(name: string, makeStore: () => QuotaStore): void {
  describe(`quota store contract: ${name}`, () => {
    let store: QuotaStore;
    beforeEach(() => {
      store = makeStore();
    });
    afterEach(async () => {
      await store.close();
    });

    it('allows debits up to the quota, counting the cost of each', async () => {
      const decisions = [];
      for (const cost of [1, 4, 5]) decisions.push(await store.debit('k', 10, 'd1', END, cost, true));
      assert.deepEqual(
        decisions.map((d) => [d.allowed, d.used, d.remaining, d.limit]),
        [
          [true, 1, 9, 10],
          [true, 5, 5, 10],
          [true, 10, 0, 10],
        ],
      );
      const refused = await store.debit('k', 10, 'd1', END, 1, true);
      assert.deepEqual([refused.allowed, refused.used, refused.remaining], [false, 10, 0]);
      assert.notEqual(refused.unavailable, true);
    });

    it('refuses a debit that costs more than what remains, without counting it', async () => {
      await store.debit('k', 10, 'd1', END, 7, true);
      const refused = await store.debit('k', 10, 'd1', END, 4, true);
      assert.deepEqual([refused.allowed, refused.used, refused.remaining], [false, 7, 3]);
      const fits = await store.debit('k', 10, 'd1', END, 3, true);
      assert.deepEqual([fits.allowed, fits.used, fits.remaining], [true, 10, 0]);
    });

    it('never allows a debit that costs more than the whole quota', async () => {
      assert.equal((await store.debit('k', 3, 'd1', END, 4, true)).allowed, false);
      assert.equal((await store.debit('k', 3, 'd1', END, 3, true)).allowed, true);
    });

    it('starts each period from zero and counts each key on its own', async () => {
      for (let i = 0; i < 3; i++) await store.debit('k', 3, 'd1', END, 1, true);
      assert.equal((await store.debit('k', 3, 'd1', END, 1, true)).allowed, false);
      const next = await store.debit('k', 3, 'd2', END + 86_400_000, 1, true);
      assert.deepEqual([next.allowed, next.used], [true, 1]);
      const other = await store.debit('other', 3, 'd2', END + 86_400_000, 2, true);
      assert.deepEqual([other.allowed, other.used], [true, 2]);
    });

    it('applies a raised quota to the units already used', async () => {
      for (let i = 0; i < 3; i++) await store.debit('k', 3, 'd1', END, 1, true);
      assert.equal((await store.debit('k', 3, 'd1', END, 1, true)).allowed, false);
      // A raise is seen at once in memory and within the one-second re-check of a refusal with Redis.
      let raised = await store.debit('k', 5, 'd1', END, 1, true);
      for (let i = 0; i < 30 && !raised.allowed; i++) {
        await new Promise((r) => setTimeout(r, 100));
        raised = await store.debit('k', 5, 'd1', END, 1, true);
      }
      assert.deepEqual([raised.allowed, raised.used, raised.remaining], [true, 4, 1]);
    });

    it('treats a cost that is not a whole number of at least 1 as a bug', async () => {
      for (const cost of [0, 1.5, Number.NaN])
        await assert.rejects(async () => store.debit('k', 5, 'd1', END, cost, true), RangeError);
    });
  });
}
