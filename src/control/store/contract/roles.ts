/** The store contract: client roles. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Store } from '../store.ts';
import { T1, WS, WS2, role, client, rejectsWithConflict, withWorkspaces } from './fixtures.ts';

export function rolesContract(store: Store): void {
  describe('client roles', () => {
    it('round-trips a role with and without a description', async () => {
      await withWorkspaces(store);
      const plain = role();
      const described = role({
        id: 'rol_bbbbbbbbbbbbbbbbbbbb',
        name: 'writer',
        description: 'Can write',
        permissions: ['*'],
        endpoints: [],
      });
      await store.insertRole(plain);
      await store.insertRole(described);
      assert.deepEqual(await store.getRole({ id: plain.id }), plain);
      assert.deepEqual(await store.getRole({ workspaceId: WS, name: 'writer' }), described);
      assert.deepEqual(await store.listRoles(WS), [plain, described]);
    });

    it('refuses a second role with the same name in one workspace', async () => {
      await withWorkspaces(store);
      await store.insertRole(role());
      await rejectsWithConflict(store.insertRole(role({ id: 'rol_bbbbbbbbbbbbbbbbbbbb' })), 'role.name');
      await store.insertRole(role({ id: 'rol_cccccccccccccccccccc', workspaceId: WS2 }));
      assert.equal((await store.listRoles(WS2)).length, 1);
    });

    it('updates a role, removes a description it no longer has, and refuses a taken name', async () => {
      await withWorkspaces(store);
      await store.insertRole(role({ description: 'old' }));
      await store.insertRole(role({ id: 'rol_bbbbbbbbbbbbbbbbbbbb', name: 'writer' }));
      const updated = role({ permissions: [], endpoints: [], updatedAt: T1 });
      assert.equal(await store.updateRole(updated), true);
      assert.deepEqual(await store.getRole({ id: updated.id }), updated);
      await rejectsWithConflict(store.updateRole(role({ name: 'writer' })), 'role.name');
      assert.equal(await store.updateRole(role({ id: 'rol_missingmissingmiss' })), false);
    });

    it('deletes a role and leaves its clients holding the dangling role id', async () => {
      await withWorkspaces(store);
      await store.insertRole(role());
      await store.insertClient(client());
      assert.equal(await store.deleteRole(role().id), true);
      assert.equal(await store.deleteRole(role().id), false);
      assert.equal(await store.getRole({ id: role().id }), undefined);
      assert.deepEqual(await store.getClient(client().id), client());
    });
  });
}
