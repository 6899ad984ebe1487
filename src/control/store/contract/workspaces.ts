/** The store contract: workspaces and their projects. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StoreConflictError, type Store } from '../store.ts';
import { T0, T1, workspace, WS, WS2, rejectsWithConflict, withWorkspaces } from './fixtures.ts';

export function workspacesContract(store: Store): void {
  describe('workspaces and projects', () => {
    it('round-trips a workspace and finds it by id and by name', async () => {
      await store.insertWorkspace(workspace());
      assert.deepEqual(await store.getWorkspace({ id: WS }), workspace());
      assert.deepEqual(await store.getWorkspace({ name: 'acme' }), workspace());
      assert.equal(await store.getWorkspace({ name: 'nope' }), undefined);
    });

    it('refuses a second workspace with the same name', async () => {
      await store.insertWorkspace(workspace());
      await rejectsWithConflict(store.insertWorkspace(workspace({ id: WS2 })), 'workspace.name');
    });

    it('updates a workspace and refuses a rename onto a name already taken', async () => {
      await withWorkspaces(store);
      const renamed = workspace({ name: 'acme-corp', environments: ['DEV', 'PROD'] });
      await store.updateWorkspace(renamed);
      assert.deepEqual(await store.getWorkspace({ id: WS }), renamed);
      await rejectsWithConflict(store.updateWorkspace(workspace({ name: 'globex' })), 'workspace.name');
    });

    it('lists workspaces by name, upper case before lower case on both databases', async () => {
      await store.insertWorkspace(workspace({ id: 'wsp_cccccccccccccccccccc', name: 'zeta' }));
      await store.insertWorkspace(workspace({ id: 'wsp_dddddddddddddddddddd', name: 'Zeta' }));
      await store.insertWorkspace(workspace({ id: 'wsp_eeeeeeeeeeeeeeeeeeee', name: 'alpha' }));
      assert.deepEqual(
        (await store.listWorkspaces()).map((w) => w.name),
        ['Zeta', 'alpha', 'zeta'],
      );
    });

    it('round-trips projects with and without a description, sorted by name', async () => {
      await withWorkspaces(store);
      await store.insertProject({
        workspaceId: WS,
        name: 'payments',
        description: 'Money in, money out',
        createdAt: T1,
      });
      await store.insertProject({ workspaceId: WS, name: 'default', createdAt: T0 });
      await store.insertProject({ workspaceId: WS2, name: 'other', createdAt: T0 });
      assert.deepEqual(await store.listProjects(WS), [
        { workspaceId: WS, name: 'default', createdAt: T0 },
        { workspaceId: WS, name: 'payments', description: 'Money in, money out', createdAt: T1 },
      ]);
    });

    it('refuses a second project with the same name in one workspace but not in another', async () => {
      await withWorkspaces(store);
      await store.insertProject({ workspaceId: WS, name: 'default', createdAt: T0 });
      await rejectsWithConflict(
        store.insertProject({ workspaceId: WS, name: 'default', createdAt: T1 }),
        'project.name',
      );
      await store.insertProject({ workspaceId: WS2, name: 'default', createdAt: T0 });
    });

    it('deletes a project and says whether there was one', async () => {
      await withWorkspaces(store);
      await store.insertProject({ workspaceId: WS, name: 'default', createdAt: T0 });
      assert.equal(await store.deleteProject(WS, 'default'), true);
      assert.equal(await store.deleteProject(WS, 'default'), false);
      assert.deepEqual(await store.listProjects(WS), []);
    });

    it('refuses records of a workspace that does not exist', async () => {
      await assert.rejects(
        store.insertProject({ workspaceId: WS, name: 'default', createdAt: T0 }),
        (error) => !(error instanceof StoreConflictError),
      );
    });
  });
}
