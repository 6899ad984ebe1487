/** The store contract: installation settings. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Store } from '../store.ts';

export function settingsContract(store: Store): void {
  describe('settings', () => {
    it('returns nothing for a setting never set, and the last value set', async () => {
      assert.equal(await store.getSetting('installation.id'), undefined);
      await store.setSetting('installation.id', 'one');
      await store.setSetting('installation.id', 'two');
      assert.equal(await store.getSetting('installation.id'), 'two');
    });
  });
}
