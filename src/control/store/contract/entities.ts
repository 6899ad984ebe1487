/** The store contract: relationship data of resource policies (entities per collection). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EntityRecord, Store } from '../store.ts';
import { T0, T1, collection, withWorkspaces } from './fixtures.ts';

function entity(over: Partial<EntityRecord> = {}): EntityRecord {
  return {
    collectionId: collection().id,
    type: 'Document',
    id: '9',
    attrs: { owner: { __entity: { type: 'User', id: '7' } }, tags: ['a', 'b'], meta: { level: 3, open: true } },
    parents: [{ type: 'Org', id: 'acme' }],
    updatedAt: T0,
    ...over,
  };
}

export function entitiesContract(store: Store): void {
  describe('policy entities', () => {
    it('round-trips entities, replaces one upserted again (idempotent), and lists them by type and id', async () => {
      await withWorkspaces(store);
      await store.insertCollection(collection());
      const doc = entity();
      const org = entity({ type: 'Org', id: 'acme', attrs: {}, parents: [] });
      await store.upsertEntities([doc, org]);
      await store.upsertEntities([doc]);
      assert.deepEqual(await store.listEntities(doc.collectionId), [doc, org]);
      const changed = entity({ attrs: {}, parents: [], updatedAt: T1 });
      await store.upsertEntities([changed]);
      assert.deepEqual(await store.getEntity(doc.collectionId, { type: 'Document', id: '9' }), changed);
      assert.equal(await store.countEntities(doc.collectionId), 2);
      assert.deepEqual(await store.listEntities(doc.collectionId, { offset: 1, limit: 1 }), [org]);
    });

    it('writes batches larger than one statement', async () => {
      await withWorkspaces(store);
      await store.insertCollection(collection());
      const many = Array.from({ length: 1234 }, (_, i) => entity({ id: String(i).padStart(5, '0') }));
      await store.upsertEntities(many);
      assert.equal(await store.countEntities(collection().id), 1234);
    });

    it('versions every write of a collection and reads what changed since a version, deletions included', async () => {
      await withWorkspaces(store);
      await store.insertCollection(collection());
      const id = collection().id;
      assert.deepEqual(await store.entitySetVersion(id), { version: 0, floor: 0 });
      await store.upsertEntities([entity(), entity({ id: '10' })]);
      await store.upsertEntities([entity({ id: '11' })]);
      assert.deepEqual(await store.entitySetVersion(id), { version: 2, floor: 0 });
      assert.deepEqual(
        (await store.entityChangesSince(id, 0, 100)).map((c) => [c.id, c.version, c.deleted]),
        [
          ['10', 1, false],
          ['9', 1, false],
          ['11', 2, false],
        ],
      );
      await store.transaction(async (tx) => {
        await tx.deleteEntities(id, [{ type: 'Document', id: '9' }]);
        await tx.upsertEntities([entity({ id: '10', attrs: { n: 1 } })]);
      });
      const since = await store.entityChangesSince(id, 2, 100);
      assert.deepEqual(
        since.map((c) => [c.id, c.version, c.deleted]),
        [
          ['9', 3, true],
          ['10', 4, false],
        ],
      );
      assert.deepEqual(since[1]!.attrs, { n: 1 });
      assert.deepEqual(await store.entityChangesSince(id, 4, 100), []);
      // A deleted entity is gone from reads, and written again it is back.
      assert.equal(await store.getEntity(id, { type: 'Document', id: '9' }), undefined);
      assert.equal(await store.countEntities(id), 2);
      await store.upsertEntities([entity()]);
      assert.equal(await store.countEntities(id), 3);
      // The same entity twice in one call: written once, the last one wins, counted once.
      await store.upsertEntities([entity({ id: '12' }), entity({ id: '12', attrs: { last: true } })]);
      assert.equal(await store.countEntities(id), 4);
      assert.deepEqual((await store.getEntity(id, { type: 'Document', id: '12' }))?.attrs, { last: true });
      await store.deleteEntities(id, [{ type: 'Document', id: '12' }]);
      // A page ends on a whole version, and keyset paging lists what follows a uid.
      assert.deepEqual(
        (await store.entityChangesSince(id, 0, 1)).map((c) => c.id),
        ['11'],
        'the first page is the oldest version still current (2), whole',
      );
      assert.deepEqual(
        (await store.listEntities(id, { after: { type: 'Document', id: '10' } })).map((e) => e.id),
        ['11', '9'],
      );
      const json = await store.listEntitiesJson(id, { after: { type: 'Document', id: '10' }, limit: 1 });
      assert.deepEqual(
        json.map((e) => JSON.parse(e.json) as unknown),
        [{ uid: { type: 'Document', id: '11' }, attrs: entity().attrs, parents: entity().parents }],
      );
    });

    it('deletes by uid, absent ones being no error, and with their collection', async () => {
      await withWorkspaces(store);
      await store.insertCollection(collection());
      await store.upsertEntities([entity(), entity({ id: '10' })]);
      assert.equal(
        await store.deleteEntities(collection().id, [
          { type: 'Document', id: '9' },
          { type: 'Document', id: 'nope' },
        ]),
        1,
      );
      assert.equal(await store.deleteEntities(collection().id, [{ type: 'Document', id: '9' }]), 0);
      assert.equal(await store.countEntities(collection().id), 1);
      await store.deleteCollection(collection().id);
      assert.equal(await store.countEntities(collection().id), 0);
    });
  });
}
