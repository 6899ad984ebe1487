/** The store contract: console users, their roles and sessions. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Store } from '../store.ts';
import { T0, T1, T2, WS, WS2, user, session, rejectsWithConflict, withWorkspaces } from './fixtures.ts';

export function usersContract(store: Store): void {
  describe('users and sessions', () => {
    it('round-trips user roles sorted by name, refuses a duplicate name, and deletes one', async () => {
      await withWorkspaces(store);
      await store.insertUserRole({ workspaceId: WS, name: 'viewer', privileges: [], builtIn: false });
      await store.insertUserRole({
        workspaceId: WS,
        name: 'admin',
        privileges: ['clients', 'roles', 'collections', 'deploy', 'collaborators', 'gateways'],
        builtIn: true,
      });
      await store.insertUserRole({ workspaceId: WS2, name: 'viewer', privileges: ['gateways'], builtIn: false });
      assert.deepEqual(await store.listUserRoles(WS), [
        {
          workspaceId: WS,
          name: 'admin',
          privileges: ['clients', 'roles', 'collections', 'deploy', 'collaborators', 'gateways'],
          builtIn: true,
        },
        { workspaceId: WS, name: 'viewer', privileges: [], builtIn: false },
      ]);
      await rejectsWithConflict(
        store.insertUserRole({ workspaceId: WS, name: 'viewer', privileges: [], builtIn: false }),
        'userRole.name',
      );
      assert.equal(await store.deleteUserRole(WS, 'viewer'), true);
      assert.equal(await store.deleteUserRole(WS, 'viewer'), false);
      assert.deepEqual(
        (await store.listUserRoles(WS2)).map((r) => r.name),
        ['viewer'],
      );
    });

    it('round-trips a user with and without a name and finds one by id and by email', async () => {
      await withWorkspaces(store);
      const nameless = user();
      const named = user({
        id: 'usr_bbbbbbbbbbbbbbbbbbbb',
        email: 'grace@example.com',
        name: 'Grace Hopper',
        role: 'viewer',
      });
      await store.insertUser(named);
      await store.insertUser(nameless);
      assert.deepEqual(await store.getUser({ id: nameless.id }), nameless);
      assert.equal(Object.hasOwn((await store.getUser({ id: nameless.id }))!, 'name'), false);
      assert.deepEqual(await store.getUser({ workspaceId: WS, email: 'grace@example.com' }), named);
      assert.equal(await store.getUser({ workspaceId: WS2, email: 'grace@example.com' }), undefined);
      assert.deepEqual(await store.listUsers(WS), [nameless, named]);
    });

    it('refuses a second user with the same email in one workspace but not in another', async () => {
      await withWorkspaces(store);
      await store.insertUser(user());
      await rejectsWithConflict(store.insertUser(user({ id: 'usr_bbbbbbbbbbbbbbbbbbbb' })), 'user.email');
      await store.insertUser(user({ id: 'usr_cccccccccccccccccccc', workspaceId: WS2 }));
    });

    it('updates a user', async () => {
      await withWorkspaces(store);
      await store.insertUser(user({ name: 'Ada' }));
      const changed = user({
        email: 'ada@lovelace.example',
        role: 'viewer',
        passwordHash: 'scrypt$16384$8$1$bmV3$bmV3',
      });
      assert.equal(await store.updateUser(changed), true);
      assert.deepEqual(await store.getUser({ id: changed.id }), changed);
      assert.equal(await store.updateUser(user({ id: 'usr_missingmissingmiss' })), false);
    });

    it('round-trips a session and deletes it', async () => {
      await withWorkspaces(store);
      await store.insertUser(user());
      await store.insertSession(session());
      assert.deepEqual(await store.getSession(session().hash), session());
      await rejectsWithConflict(store.insertSession(session()), 'session.hash');
      assert.equal(await store.deleteSession(session().hash), true);
      assert.equal(await store.deleteSession(session().hash), false);
      assert.equal(await store.getSession(session().hash), undefined);
    });

    it('records when a session was last used', async () => {
      await withWorkspaces(store);
      await store.insertUser(user());
      await store.insertSession(session());
      assert.equal(await store.touchSession(session().hash, T1), true);
      assert.deepEqual(await store.getSession(session().hash), session({ lastSeenAt: T1 }));
      assert.equal(await store.touchSession('f'.repeat(64), T1), false);
    });

    it('deletes the sessions that expired by a given time, and only those', async () => {
      await withWorkspaces(store);
      await store.insertUser(user());
      await store.insertSession(session({ hash: '1'.repeat(64), expiresAt: T0 }));
      await store.insertSession(session({ hash: '2'.repeat(64), expiresAt: T1 }));
      await store.insertSession(session({ hash: '3'.repeat(64), expiresAt: T2 }));
      assert.equal(await store.deleteExpiredSessions(T1), 2);
      assert.equal(await store.getSession('2'.repeat(64)), undefined);
      assert.deepEqual(await store.getSession('3'.repeat(64)), session({ hash: '3'.repeat(64), expiresAt: T2 }));
      assert.equal(await store.deleteExpiredSessions(T1), 0);
    });

    it('deletes a user with its sessions', async () => {
      await withWorkspaces(store);
      await store.insertUser(user());
      await store.insertSession(session());
      assert.equal(await store.deleteUser(user().id), true);
      assert.equal(await store.deleteUser(user().id), false);
      assert.equal(await store.getSession(session().hash), undefined);
    });
  });
}
