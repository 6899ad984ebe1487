/** Console users in SQL: their roles, accounts and sessions, and the mapping between their rows and records. */
import type { Selectable } from 'kysely';
import type { SessionRecord, UserOps, UserRecord, UserRoleRecord } from '../store.ts';
import type { UsersTable } from '../tables.ts';
import { withOptional } from './rows.ts';
import type { Run } from './statement-runner.ts';

export function userQueries(run: Run): UserOps {
  return {
    async insertUserRole(r: UserRoleRecord): Promise<void> {
      await run((db) =>
        db
          .insertInto('user_roles')
          .values({
            workspace_id: r.workspaceId,
            name: r.name,
            privileges: JSON.stringify(r.privileges),
            built_in: r.builtIn,
          })
          .execute(),
      );
    },

    async listUserRoles(workspaceId: string): Promise<UserRoleRecord[]> {
      const rows = await run((db) =>
        db.selectFrom('user_roles').selectAll().where('workspace_id', '=', workspaceId).orderBy('name').execute(),
      );
      return rows.map((r) => ({
        workspaceId: r.workspace_id,
        name: r.name,
        privileges: JSON.parse(r.privileges),
        builtIn: Boolean(r.built_in),
      }));
    },

    async deleteUserRole(workspaceId: string, name: string): Promise<boolean> {
      const result = await run((db) =>
        db.deleteFrom('user_roles').where('workspace_id', '=', workspaceId).where('name', '=', name).executeTakeFirst(),
      );
      return result.numDeletedRows > 0n;
    },

    async insertUser(u: UserRecord): Promise<void> {
      await run((db) => db.insertInto('users').values(userRow(u)).execute());
    },

    async updateUser(u: UserRecord): Promise<boolean> {
      const { id: _id, ...row } = userRow(u);
      const result = await run((db) => db.updateTable('users').set(row).where('id', '=', u.id).executeTakeFirst());
      return result.numUpdatedRows > 0n;
    },

    async getUser(by: { id: string } | { workspaceId: string; email: string }): Promise<UserRecord | undefined> {
      const row = await run((db) => {
        const q = db.selectFrom('users').selectAll();
        return (
          'id' in by
            ? q.where('id', '=', by.id)
            : q.where('workspace_id', '=', by.workspaceId).where('email', '=', by.email)
        ).executeTakeFirst();
      });
      return row && toUser(row);
    },

    async listUsers(workspaceId: string): Promise<UserRecord[]> {
      const rows = await run((db) =>
        db.selectFrom('users').selectAll().where('workspace_id', '=', workspaceId).orderBy('email').execute(),
      );
      return rows.map(toUser);
    },

    async deleteUser(id: string): Promise<boolean> {
      // Its sessions go with it (ON DELETE CASCADE).
      const result = await run((db) => db.deleteFrom('users').where('id', '=', id).executeTakeFirst());
      return result.numDeletedRows > 0n;
    },

    async insertSession(s: SessionRecord): Promise<void> {
      await run((db) =>
        db
          .insertInto('sessions')
          .values({
            hash: s.hash,
            user_id: s.userId,
            workspace_id: s.workspaceId,
            created_at: s.createdAt,
            expires_at: s.expiresAt,
            last_seen_at: s.lastSeenAt,
          })
          .execute(),
      );
    },

    async getSession(hash: string): Promise<SessionRecord | undefined> {
      const r = await run((db) => db.selectFrom('sessions').selectAll().where('hash', '=', hash).executeTakeFirst());
      return (
        r && {
          hash: r.hash,
          userId: r.user_id,
          workspaceId: r.workspace_id,
          createdAt: r.created_at,
          expiresAt: r.expires_at,
          lastSeenAt: r.last_seen_at ?? r.created_at,
        }
      );
    },

    async deleteSession(hash: string): Promise<boolean> {
      const result = await run((db) => db.deleteFrom('sessions').where('hash', '=', hash).executeTakeFirst());
      return result.numDeletedRows > 0n;
    },

    async touchSession(hash: string, lastSeenAt: string): Promise<boolean> {
      const result = await run((db) =>
        db.updateTable('sessions').set({ last_seen_at: lastSeenAt }).where('hash', '=', hash).executeTakeFirst(),
      );
      return result.numUpdatedRows > 0n;
    },

    async deleteExpiredSessions(now: string): Promise<number> {
      const result = await run((db) => db.deleteFrom('sessions').where('expires_at', '<=', now).executeTakeFirst());
      return Number(result.numDeletedRows);
    },
  };
}

function userRow(u: UserRecord): UsersTable {
  return {
    id: u.id,
    workspace_id: u.workspaceId,
    email: u.email,
    name: u.name ?? null,
    role: u.role,
    password_hash: u.passwordHash,
    created_at: u.createdAt,
  };
}

function toUser(r: Selectable<UsersTable>): UserRecord {
  return withOptional(
    {
      id: r.id,
      workspaceId: r.workspace_id,
      email: r.email,
      role: r.role,
      passwordHash: r.password_hash,
      createdAt: r.created_at,
    },
    { name: r.name },
  );
}
