/** Client roles in SQL, and the mapping between their rows and records. */
import type { Selectable } from 'kysely';
import type { RoleOps, RoleRecord } from '../store.ts';
import type { RolesTable } from '../tables.ts';
import { json, withOptional } from './rows.ts';
import type { Run } from './statement-runner.ts';

export function roleQueries(run: Run): RoleOps {
  return {
    async insertRole(r: RoleRecord): Promise<void> {
      await run((db) => db.insertInto('roles').values(roleRow(r)).execute());
    },

    async updateRole(r: RoleRecord): Promise<boolean> {
      const { id: _id, ...row } = roleRow(r);
      const result = await run((db) => db.updateTable('roles').set(row).where('id', '=', r.id).executeTakeFirst());
      return result.numUpdatedRows > 0n;
    },

    async getRole(by: { id: string } | { workspaceId: string; name: string }): Promise<RoleRecord | undefined> {
      const row = await run((db) => {
        const q = db.selectFrom('roles').selectAll();
        return (
          'id' in by
            ? q.where('id', '=', by.id)
            : q.where('workspace_id', '=', by.workspaceId).where('name', '=', by.name)
        ).executeTakeFirst();
      });
      return row && toRole(row);
    },

    async listRoles(workspaceId: string): Promise<RoleRecord[]> {
      const rows = await run((db) =>
        db.selectFrom('roles').selectAll().where('workspace_id', '=', workspaceId).orderBy('name').execute(),
      );
      return rows.map(toRole);
    },

    async deleteRole(id: string): Promise<boolean> {
      const result = await run((db) => db.deleteFrom('roles').where('id', '=', id).executeTakeFirst());
      return result.numDeletedRows > 0n;
    },
  };
}

function roleRow(r: RoleRecord): RolesTable {
  return {
    id: r.id,
    workspace_id: r.workspaceId,
    name: r.name,
    description: r.description ?? null,
    permissions: json(r.permissions),
    endpoints: json(r.endpoints),
    created_at: r.createdAt,
    updated_at: r.updatedAt,
  };
}

function toRole(r: Selectable<RolesTable>): RoleRecord {
  return withOptional(
    {
      id: r.id,
      workspaceId: r.workspace_id,
      name: r.name,
      permissions: JSON.parse(r.permissions) as string[],
      endpoints: JSON.parse(r.endpoints) as RoleRecord['endpoints'],
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    },
    { description: r.description },
  );
}
