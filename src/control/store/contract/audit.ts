/** The store contract: the audit log (filters, newest-first pages with a cursor, retention). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditEntryRecord, Store } from '../store.ts';
import { T0, T1, T2, WS, WS2 } from './fixtures.ts';

function entry(over: Partial<AuditEntryRecord> = {}): AuditEntryRecord {
  return {
    id: 'aud_0001',
    workspaceId: WS,
    at: T1,
    actor: { kind: 'user', id: 'usr_aaaaaaaaaaaaaaaaaaaa', name: 'ada@example.com' },
    action: 'createClient',
    resourceType: 'client',
    resourceId: 'cli_1',
    after: { name: 'billing', environments: ['PROD'] },
    requestId: 'req-1',
    ip: '127.0.0.1',
    ...over,
  };
}

export function auditContract(store: Store): void {
  describe('audit log', () => {
    it('round-trips an entry, with and without its optional fields', async () => {
      const full = entry({ before: { name: 'old' } });
      const bare: AuditEntryRecord = {
        id: 'aud_0002',
        workspaceId: WS,
        at: T1,
        actor: { kind: 'client', id: 'cli_admin' },
        action: 'rotateSigningKeys',
        resourceType: 'signing-key',
        requestId: 'req-2',
      };
      await store.insertAuditEntry(full);
      await store.insertAuditEntry(bare);
      assert.deepEqual(await store.listAuditLog(WS, { limit: 10 }), [bare, full]);
    });

    it('filters by actor, action, resource and time, newest first, and pages with a cursor', async () => {
      const entries = [
        entry({ id: 'aud_a', at: T0, action: 'createRole', resourceType: 'role', resourceId: 'rol_1' }),
        entry({ id: 'aud_b', at: T1 }),
        entry({ id: 'aud_c', at: T1, actor: { kind: 'client', id: 'cli_admin' } }),
        entry({ id: 'aud_d', at: T2, action: 'deleteClient', resourceId: 'cli_2' }),
        entry({ id: 'aud_e', at: T2, workspaceId: WS2 }),
      ];
      for (const e of entries) await store.insertAuditEntry(e);
      const ids = (list: AuditEntryRecord[]) => list.map((e) => e.id);
      assert.deepEqual(ids(await store.listAuditLog(WS, { limit: 10 })), ['aud_d', 'aud_c', 'aud_b', 'aud_a']);
      assert.deepEqual(ids(await store.listAuditLog(WS2, { limit: 10 })), ['aud_e']);
      assert.deepEqual(ids(await store.listAuditLog(WS, { limit: 10, actorId: 'cli_admin' })), ['aud_c']);
      assert.deepEqual(ids(await store.listAuditLog(WS, { limit: 10, action: 'createRole' })), ['aud_a']);
      assert.deepEqual(ids(await store.listAuditLog(WS, { limit: 10, resourceType: 'client' })), [
        'aud_d',
        'aud_c',
        'aud_b',
      ]);
      assert.deepEqual(ids(await store.listAuditLog(WS, { limit: 10, resourceId: 'cli_2' })), ['aud_d']);
      assert.deepEqual(ids(await store.listAuditLog(WS, { limit: 10, since: T1, until: T2 })), ['aud_c', 'aud_b']);
      // Pages of two: the cursor is the last entry's (at, id); entries with equal times split across pages.
      const first = await store.listAuditLog(WS, { limit: 2 });
      assert.deepEqual(ids(first), ['aud_d', 'aud_c']);
      const last = first.at(-1)!;
      assert.deepEqual(ids(await store.listAuditLog(WS, { limit: 2, before: { at: last.at, id: last.id } })), [
        'aud_b',
        'aud_a',
      ]);
    });

    it('prunes the entries of every workspace made before a time', async () => {
      await store.insertAuditEntry(entry({ id: 'aud_a', at: T0 }));
      await store.insertAuditEntry(entry({ id: 'aud_b', at: T0, workspaceId: WS2 }));
      await store.insertAuditEntry(entry({ id: 'aud_c', at: T2 }));
      assert.equal(await store.pruneAuditLog(T1), 2);
      assert.deepEqual(
        (await store.listAuditLog(WS, { limit: 10 })).map((e) => e.id),
        ['aud_c'],
      );
    });
  });
}
