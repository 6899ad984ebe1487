/** Workspaces and their projects in SQL, and the mapping between their rows and records. */
import type { Selectable } from 'kysely';
import type { ProjectRecord, WorkspaceOps, WorkspaceRecord } from '../store.ts';
import type { WorkspacesTable } from '../tables.ts';
import { json, withOptional } from './rows.ts';
import type { Run } from './statement-runner.ts';

export function workspaceQueries(run: Run): WorkspaceOps {
  return {
    async insertWorkspace(w: WorkspaceRecord): Promise<void> {
      await run((db) => db.insertInto('workspaces').values(workspaceRow(w)).execute());
    },

    async updateWorkspace(w: WorkspaceRecord): Promise<void> {
      const { id: _id, ...row } = workspaceRow(w);
      await run((db) => db.updateTable('workspaces').set(row).where('id', '=', w.id).execute());
    },

    async getWorkspace(by: { id: string } | { name: string }): Promise<WorkspaceRecord | undefined> {
      const row = await run((db) => {
        const q = db.selectFrom('workspaces').selectAll();
        return ('id' in by ? q.where('id', '=', by.id) : q.where('name', '=', by.name)).executeTakeFirst();
      });
      return row && toWorkspace(row);
    },

    async listWorkspaces(): Promise<WorkspaceRecord[]> {
      const rows = await run((db) => db.selectFrom('workspaces').selectAll().orderBy('name').execute());
      return rows.map(toWorkspace);
    },

    async insertProject(p: ProjectRecord): Promise<void> {
      await run((db) =>
        db
          .insertInto('projects')
          .values({
            workspace_id: p.workspaceId,
            name: p.name,
            description: p.description ?? null,
            created_at: p.createdAt,
          })
          .execute(),
      );
    },

    async listProjects(workspaceId: string): Promise<ProjectRecord[]> {
      const rows = await run((db) =>
        db.selectFrom('projects').selectAll().where('workspace_id', '=', workspaceId).orderBy('name').execute(),
      );
      return rows.map((r) =>
        withOptional(
          { workspaceId: r.workspace_id, name: r.name, createdAt: r.created_at },
          { description: r.description },
        ),
      );
    },

    async deleteProject(workspaceId: string, name: string): Promise<boolean> {
      const result = await run((db) =>
        db.deleteFrom('projects').where('workspace_id', '=', workspaceId).where('name', '=', name).executeTakeFirst(),
      );
      return result.numDeletedRows > 0n;
    },
  };
}

function workspaceRow(w: WorkspaceRecord): WorkspacesTable {
  return {
    id: w.id,
    name: w.name,
    environments: json(w.environments),
    dev_environment: w.devEnvironment,
    created_at: w.createdAt,
  };
}

function toWorkspace(r: Selectable<WorkspacesTable>): WorkspaceRecord {
  return {
    id: r.id,
    name: r.name,
    environments: JSON.parse(r.environments),
    devEnvironment: r.dev_environment,
    createdAt: r.created_at,
  };
}
