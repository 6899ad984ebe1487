/** The store contract: aPI collections, their drafts and published versions. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Store, type CollectionVersionRecord } from '../store.ts';
import { T0, T1, T2, WS, WS2, spec, collection, rejectsWithConflict, withWorkspaces } from './fixtures.ts';

export function collectionsContract(store: Store): void {
  describe('collections', () => {
    it('round-trips a draft collection with publishedVersion absent, and a published one', async () => {
      await withWorkspaces(store);
      const draft = collection();
      const published = collection({
        name: 'orders',
        environment: 'PROD',
        target: { type: 'edge', gateway: 'eu-1' },
        spec: spec('orders', {
          host: 'api.example.com',
          description: 'Orders',
          rateLimits: { org: { limit: 5, window: 1000 } },
        }),
        revision: 7,
        publishedVersion: 3,
        updatedAt: T1,
      });
      await store.insertCollection(draft);
      await store.insertCollection(published);
      const got = await store.getCollection({ id: draft.id });
      assert.deepEqual(got, draft);
      assert.equal(Object.hasOwn(got!, 'publishedVersion'), false);
      assert.deepEqual(await store.getCollection({ id: published.id }), published);
    });

    it('finds a collection by workspace, environment and name', async () => {
      await withWorkspaces(store);
      await store.insertCollection(collection());
      assert.deepEqual(
        await store.getCollection({ workspaceId: WS, environment: 'DEV', name: 'billing' }),
        collection(),
      );
      assert.equal(await store.getCollection({ workspaceId: WS, environment: 'PROD', name: 'billing' }), undefined);
      assert.equal(await store.getCollection({ workspaceId: WS2, environment: 'DEV', name: 'billing' }), undefined);
    });

    it('refuses a second collection with the same name in one environment but not in another', async () => {
      await withWorkspaces(store);
      await store.insertCollection(collection());
      await rejectsWithConflict(store.insertCollection(collection({ id: 'col_other' })), 'collection.name');
      await store.insertCollection(collection({ id: 'col_prod', environment: 'PROD' }));
      await store.insertCollection(collection({ id: 'col_ws2', workspaceId: WS2 }));
    });

    it('updates a collection only while its revision is the expected one', async () => {
      await withWorkspaces(store);
      await store.insertCollection(collection());
      const second = collection({
        revision: 2,
        spec: spec('billing', { websocket: true }),
        publishedVersion: 1,
        updatedAt: T1,
      });
      assert.equal(await store.updateCollection(second, 1), true);
      assert.deepEqual(await store.getCollection({ id: second.id }), second);

      const stale = collection({ revision: 2, spec: spec('billing', { authRequired: false }), updatedAt: T2 });
      assert.equal(await store.updateCollection(stale, 1), false, 'a writer holding revision 1 lost the race');
      assert.deepEqual(await store.getCollection({ id: second.id }), second);

      const unpublished = collection({ revision: 3, updatedAt: T2 });
      assert.equal(await store.updateCollection(unpublished), true, 'without an expected revision it always writes');
      assert.deepEqual(await store.getCollection({ id: second.id }), unpublished, 'publishedVersion removed again');
      assert.equal(await store.updateCollection(collection({ id: 'col_missing' })), false);
    });

    it('refuses renaming a collection onto a name taken in its environment', async () => {
      await withWorkspaces(store);
      await store.insertCollection(collection());
      await store.insertCollection(collection({ name: 'orders' }));
      await rejectsWithConflict(
        store.updateCollection(collection({ id: collection().id, name: 'orders' })),
        'collection.name',
      );
    });

    it('lists collections by environment, then name, optionally of one environment', async () => {
      await withWorkspaces(store);
      await store.insertCollection(collection({ name: 'orders', environment: 'PROD' }));
      await store.insertCollection(collection({ id: 'col_ordersdev', name: 'orders' }));
      await store.insertCollection(collection({ name: 'billing', environment: 'PROD', id: 'col_billingprod' }));
      await store.insertCollection(collection({ name: 'audit' }));
      await store.insertCollection(collection({ name: 'elsewhere', workspaceId: WS2 }));
      const all = await store.listCollections(WS);
      assert.deepEqual(
        all.map((c) => `${c.environment}/${c.name}`),
        ['DEV/audit', 'DEV/orders', 'PROD/billing', 'PROD/orders'],
      );
      const prod = await store.listCollections(WS, { environment: 'PROD' });
      assert.deepEqual(
        prod.map((c) => c.name),
        ['billing', 'orders'],
      );
      assert.deepEqual(prod[1], collection({ name: 'orders', environment: 'PROD' }));
    });

    it('lists versions newest first and round-trips their optional fields', async () => {
      await withWorkspaces(store);
      const c = collection();
      await store.insertCollection(c);
      const v1: CollectionVersionRecord = { collectionId: c.id, version: 1, spec: spec('billing'), publishedAt: T0 };
      const v2: CollectionVersionRecord = {
        collectionId: c.id,
        version: 2,
        spec: spec('billing', { websocket: true }),
        publishedAt: T1,
        publishedBy: 'usr_aaaaaaaaaaaaaaaaaaaa',
      };
      const v3: CollectionVersionRecord = {
        collectionId: c.id,
        version: 3,
        spec: spec('billing'),
        publishedAt: T2,
        publishedBy: 'cli_aaaaaaaaaaaaaaaaaaaa',
        restoredFrom: 1,
      };
      await store.insertCollectionVersion(v1);
      await store.insertCollectionVersion(v3);
      await store.insertCollectionVersion(v2);
      assert.deepEqual(await store.listCollectionVersions(c.id), [v3, v2, v1]);
      assert.deepEqual(await store.getCollectionVersion(c.id, 1), v1);
      assert.equal(await store.getCollectionVersion(c.id, 4), undefined);
    });

    it('refuses a second version with the same number', async () => {
      await withWorkspaces(store);
      await store.insertCollection(collection());
      const v1: CollectionVersionRecord = {
        collectionId: collection().id,
        version: 1,
        spec: spec('billing'),
        publishedAt: T0,
      };
      await store.insertCollectionVersion(v1);
      await rejectsWithConflict(store.insertCollectionVersion({ ...v1, publishedAt: T1 }), 'collectionVersion.version');
    });

    it('deletes a collection with its versions', async () => {
      await withWorkspaces(store);
      const c = collection();
      await store.insertCollection(c);
      await store.insertCollectionVersion({ collectionId: c.id, version: 1, spec: c.spec, publishedAt: T0 });
      assert.equal(await store.deleteCollection(c.id), true);
      assert.equal(await store.getCollection({ id: c.id }), undefined);
      assert.deepEqual(await store.listCollectionVersions(c.id), []);
      assert.equal(await store.deleteCollection(c.id), false);
      // The name is free again, and the new collection starts without the old one's versions.
      await store.insertCollection(c);
      assert.deepEqual(await store.listCollectionVersions(c.id), []);
    });
  });
}
