/** The store contract: aPI clients and their keys. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Store } from '../store.ts';
import {
  T0,
  T1,
  T2,
  WS,
  WS2,
  client,
  fullClient,
  key,
  rejectsWithConflict,
  telemetry,
  withWorkspaces,
} from './fixtures.ts';

export function clientsContract(store: Store): void {
  describe('API clients and keys', () => {
    it('round-trips a client with every optional field absent', async () => {
      await withWorkspaces(store);
      await store.insertClient(client());
      const got = await store.getClient(client().id);
      assert.deepEqual(got, client());
      for (const field of ['allowedIps', 'userId', 'orgId', 'metadata', 'rateLimits', 'quotas', 'expiresAt', 'email']) {
        assert.equal(Object.hasOwn(got!, field), false, `${field} is absent, not undefined or null`);
      }
    });

    it('round-trips a legacy operator client with every optional field present', async () => {
      await withWorkspaces(store);
      await store.insertClient(fullClient());
      assert.deepEqual(await store.getClient(fullClient().id), fullClient());
    });

    it('lists the clients of one workspace by creation time, then id', async () => {
      await withWorkspaces(store);
      await store.insertClient(client({ id: 'cli_cccccccccccccccccccc', createdAt: T1 }));
      await store.insertClient(client({ id: 'cli_bbbbbbbbbbbbbbbbbbbb', createdAt: T1 }));
      await store.insertClient(client({ id: 'cli_zzzzzzzzzzzzzzzzzzzz', createdAt: T0 }));
      await store.insertClient(client({ id: 'cli_wwwwwwwwwwwwwwwwwwww', workspaceId: WS2 }));
      assert.deepEqual(
        (await store.listClients(WS)).map((c) => c.id),
        ['cli_zzzzzzzzzzzzzzzzzzzz', 'cli_bbbbbbbbbbbbbbbbbbbb', 'cli_cccccccccccccccccccc'],
      );
    });

    it('updates a client, dropping optional fields it no longer has', async () => {
      await withWorkspaces(store);
      await store.insertClient(fullClient());
      const trimmed = client({ id: fullClient().id, kind: 'legacy', name: 'Renamed', updatedAt: T1 });
      assert.equal(await store.updateClient(trimmed), true);
      assert.deepEqual(await store.getClient(trimmed.id), trimmed);
      assert.equal(await store.updateClient(client({ id: 'cli_missingmissingmiss' })), false);
    });

    it("keeps each client's last use from the telemetry reported: forward only, per workspace, gone with it", async () => {
      const M0 = '2025-01-01T00:00:00.000Z';
      const M1 = '2025-01-01T00:01:00.000Z';
      const M2 = '2025-01-01T00:02:00.000Z';
      const other = client({ id: 'cli_wwwwwwwwwwwwwwwwwwww', workspaceId: WS2 });
      await withWorkspaces(store);
      await store.insertClient(client());
      await store.insertClient(other);
      assert.deepEqual(await store.listClientUsage(WS), new Map());
      await store.addTelemetry([
        telemetry({ clientId: client().id, minute: M1 }),
        telemetry({ clientId: client().id, minute: M0, endpoint: 'GET /other' }),
        telemetry({ clientId: 'cli_gonegonegonegonegone', minute: M2 }),
        telemetry({ clientId: '', minute: M2, status: 401 }),
      ]);
      assert.deepEqual(await store.listClientUsage(WS), new Map([[client().id, M1]]));
      await store.addTelemetry([telemetry({ clientId: client().id, minute: M0 })]);
      assert.deepEqual(await store.listClientUsage(WS), new Map([[client().id, M1]]), 'an older report moves nothing');
      await store.recordClientUse([{ clientId: other.id, at: M2 }]);
      assert.deepEqual(await store.listClientUsage(WS2), new Map([[other.id, M2]]));
      assert.deepEqual(await store.listClientUsage(WS), new Map([[client().id, M1]]));
      await store.deleteClient(client().id);
      assert.deepEqual(await store.listClientUsage(WS), new Map());
    });

    it('refuses a second client with the same id', async () => {
      await withWorkspaces(store);
      await store.insertClient(client());
      await rejectsWithConflict(store.insertClient(client({ name: 'copy' })), 'client.id');
    });

    it('finds a key by hash together with its client', async () => {
      await withWorkspaces(store);
      await store.insertClient(fullClient());
      const k = key({ clientId: fullClient().id, expiresAt: T2 });
      await store.insertKey(k);
      assert.deepEqual(await store.findKey(k.hash), { key: k, client: fullClient() });
      assert.equal(await store.findKey('b'.repeat(64)), undefined);
    });

    it('refuses a key hash that is already in use, even by another client', async () => {
      await withWorkspaces(store);
      await store.insertClient(client());
      await store.insertClient(client({ id: 'cli_bbbbbbbbbbbbbbbbbbbb', workspaceId: WS2 }));
      await store.insertKey(key());
      await rejectsWithConflict(
        store.insertKey(key({ id: 'gh_live_other', clientId: 'cli_bbbbbbbbbbbbbbbbbbbb' })),
        'key.hash',
      );
    });

    it('refuses a second key with the same id for one client', async () => {
      await withWorkspaces(store);
      await store.insertClient(client());
      await store.insertKey(key());
      await rejectsWithConflict(store.insertKey(key({ hash: 'b'.repeat(64) })), 'key.id');
    });

    it("lists a client's keys oldest first, sets and clears a key's expiry, and deletes one key", async () => {
      await withWorkspaces(store);
      await store.insertClient(client());
      const older = key({ id: 'gh_live_old', hash: '1'.repeat(64), createdAt: T0 });
      const newer = key({ id: 'gh_live_new', hash: '2'.repeat(64), createdAt: T1 });
      await store.insertKey(newer);
      await store.insertKey(older);
      assert.deepEqual(await store.listKeys(client().id), [older, newer]);

      assert.equal(await store.updateKeyExpiry(client().id, older.id, T2), true);
      assert.deepEqual((await store.listKeys(client().id))[0], { ...older, expiresAt: T2 });
      assert.equal(await store.updateKeyExpiry(client().id, older.id, undefined), true);
      assert.deepEqual((await store.listKeys(client().id))[0], older);
      assert.equal(await store.updateKeyExpiry(client().id, 'gh_live_none', T2), false);

      assert.equal(await store.deleteKey(client().id, older.id), true);
      assert.equal(await store.deleteKey(client().id, older.id), false);
      assert.deepEqual(await store.listKeys(client().id), [newer]);
      assert.equal(await store.findKey(older.hash), undefined);
    });

    it('lists every key of a workspace and none of another workspace', async () => {
      await withWorkspaces(store);
      await store.insertClient(client());
      await store.insertClient(client({ id: 'cli_bbbbbbbbbbbbbbbbbbbb' }));
      await store.insertClient(client({ id: 'cli_wwwwwwwwwwwwwwwwwwww', workspaceId: WS2 }));
      const a = key({ hash: '1'.repeat(64) });
      const b = key({ clientId: 'cli_bbbbbbbbbbbbbbbbbbbb', hash: '2'.repeat(64) });
      const other = key({ clientId: 'cli_wwwwwwwwwwwwwwwwwwww', hash: '3'.repeat(64) });
      await store.insertKey(b);
      await store.insertKey(other);
      await store.insertKey(a);
      assert.deepEqual(await store.listWorkspaceKeys(WS), [a, b]);
      assert.deepEqual(await store.listWorkspaceKeys(WS2), [other]);
    });

    it("deletes a client's keys with the client", async () => {
      await withWorkspaces(store);
      await store.insertClient(client());
      await store.insertKey(key());
      await store.insertKey(key({ id: 'gh_live_second', hash: 'b'.repeat(64) }));
      assert.equal(await store.deleteClient(client().id), true);
      assert.equal(await store.deleteClient(client().id), false);
      assert.equal(await store.getClient(client().id), undefined);
      assert.deepEqual(await store.listKeys(client().id), []);
      assert.equal(await store.findKey(key().hash), undefined);
      // The hash is free again.
      await store.insertClient(client({ id: 'cli_bbbbbbbbbbbbbbbbbbbb' }));
      await store.insertKey(key({ clientId: 'cli_bbbbbbbbbbbbbbbbbbbb' }));
    });
  });
}
