/** The store contract: control-plane replicas recording where gateways reach them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Store } from '../store.ts';

export function replicasContract(store: Store): void {
  describe('replicas', () => {
    const replica = (id: string, startedAt: string, seenAt: string) => ({
      id,
      bootstrap: `https://${id}.example:8443`,
      sync: `${id}.example:8444`,
      telemetry: `${id}.example:8444`,
      startedAt,
      seenAt,
    });

    it('lists the replicas seen since a time, oldest start first, with their latest endpoints', async () => {
      await store.upsertReplica(replica('b', '2026-01-01T00:00:02.000Z', '2026-01-01T00:01:00.000Z'));
      await store.upsertReplica(replica('a', '2026-01-01T00:00:01.000Z', '2026-01-01T00:00:10.000Z'));
      await store.upsertReplica({
        ...replica('a', '2026-01-01T00:00:01.000Z', '2026-01-01T00:01:05.000Z'),
        sync: 'a2.example:8444',
      });
      await store.upsertReplica(replica('gone', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:30.000Z'));
      const live = await store.listReplicas('2026-01-01T00:00:45.000Z');
      assert.deepEqual(
        live.map((r) => [r.id, r.sync, r.seenAt]),
        [
          ['a', 'a2.example:8444', '2026-01-01T00:01:05.000Z'],
          ['b', 'b.example:8444', '2026-01-01T00:01:00.000Z'],
        ],
      );
      await store.deleteReplica('a');
      assert.deepEqual(
        (await store.listReplicas('2026-01-01T00:00:00.000Z')).map((r) => r.id),
        ['gone', 'b'],
      );
    });
  });
}
