/** The store contract: compiled configuration snapshots. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Store } from '../store.ts';
import { WS, snapshot, rejectsWithConflict } from './fixtures.ts';

export function snapshotsContract(store: Store): void {
  describe('snapshots', () => {
    it('returns the newest snapshot of a scope, and any one by version', async () => {
      assert.equal(await store.getLatestSnapshot(`${WS}/PROD/cloud`), undefined);
      await store.insertSnapshot(snapshot(1));
      await store.insertSnapshot(snapshot(10));
      await store.insertSnapshot(snapshot(2));
      await store.insertSnapshot(snapshot(99, `${WS}/PROD/edge:eu-1`));
      assert.deepEqual(await store.getLatestSnapshot(`${WS}/PROD/cloud`), snapshot(10), 'by number, not as text');
      assert.deepEqual(await store.getSnapshot(`${WS}/PROD/cloud`, 2), snapshot(2));
      assert.equal(await store.getSnapshot(`${WS}/PROD/cloud`, 3), undefined);
    });

    it('refuses a second snapshot with the same scope and version', async () => {
      await store.insertSnapshot(snapshot(1));
      await rejectsWithConflict(store.insertSnapshot(snapshot(1)), 'snapshot.version');
    });

    it('keeps snapshots ordered and prunes the oldest', async () => {
      const scope = `${WS}/PROD/cloud`;
      const other = `${WS}/TEST/cloud`;
      for (const v of [3, 1, 5, 2, 4]) await store.insertSnapshot(snapshot(v));
      await store.insertSnapshot(snapshot(1, other));
      assert.equal(await store.pruneSnapshots(scope, 2), 3);
      assert.deepEqual(await store.getSnapshot(scope, 3), undefined);
      assert.deepEqual(await store.getSnapshot(scope, 4), snapshot(4));
      assert.deepEqual(await store.getLatestSnapshot(scope), snapshot(5));
      assert.equal(await store.pruneSnapshots(scope, 2), 0);
      assert.deepEqual(await store.getSnapshot(other, 1), snapshot(1, other), 'other scopes are left alone');
      assert.equal(await store.pruneSnapshots(scope, 0), 2);
      assert.equal(await store.getLatestSnapshot(scope), undefined);
    });

    it('round-trips a large snapshot body byte for byte', async () => {
      const body = JSON.stringify({
        collections: Array.from({ length: 2000 }, (_, i) => ({ name: `c${i}`, note: 'ünïcødé ✓ \u2028' })),
      });
      const s = { ...snapshot(1), body };
      await store.insertSnapshot(s);
      assert.equal((await store.getLatestSnapshot(s.scope))!.body, body);
    });
  });
}
