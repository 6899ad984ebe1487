/** API clients and their keys in SQL, and the mapping between their rows and records. */
import type { Insertable, Selectable } from 'kysely';
import type { ClientOps, ClientRecord, KeyRecord } from '../store.ts';
import type { ClientKeysTable, ClientsTable } from '../tables.ts';
import { json, parsed, withOptional } from './rows.ts';
import type { Run } from './statement-runner.ts';

export function clientQueries(run: Run): ClientOps {
  return {
    async insertClient(c: ClientRecord): Promise<void> {
      await run((db) => db.insertInto('clients').values(clientRow(c)).execute());
    },

    async updateClient(c: ClientRecord): Promise<boolean> {
      const { id: _id, ...row } = clientRow(c);
      const result = await run((db) => db.updateTable('clients').set(row).where('id', '=', c.id).executeTakeFirst());
      return result.numUpdatedRows > 0n;
    },

    async getClient(id: string): Promise<ClientRecord | undefined> {
      const row = await run((db) => db.selectFrom('clients').selectAll().where('id', '=', id).executeTakeFirst());
      return row && toClient(row);
    },

    async listClients(workspaceId: string): Promise<ClientRecord[]> {
      const rows = await run((db) =>
        db
          .selectFrom('clients')
          .selectAll()
          .where('workspace_id', '=', workspaceId)
          .orderBy('created_at')
          .orderBy('id')
          .execute(),
      );
      return rows.map(toClient);
    },

    async deleteClient(id: string): Promise<boolean> {
      // Its keys go with it (ON DELETE CASCADE).
      const result = await run((db) => db.deleteFrom('clients').where('id', '=', id).executeTakeFirst());
      return result.numDeletedRows > 0n;
    },

    async recordClientUse(uses: readonly { clientId: string; at: string }[]): Promise<void> {
      const latest = new Map<string, string>();
      for (const u of uses) if ((latest.get(u.clientId) ?? '') < u.at) latest.set(u.clientId, u.at);
      for (const [clientId, at] of latest)
        await run((db) =>
          db
            .insertInto('client_usage')
            .columns(['client_id', 'last_used_at'])
            .expression(
              db
                .selectFrom('clients')
                .select((eb) => ['id', eb.val(at).as('last_used_at')])
                .where('id', '=', clientId),
            )
            .onConflict((oc) =>
              oc.column('client_id').doUpdateSet((eb) => ({
                // CASE rather than greatest() (PostgreSQL) or max() (SQLite): the same SQL on both.
                last_used_at: eb
                  .case()
                  .when(eb.ref('excluded.last_used_at'), '>', eb.ref('client_usage.last_used_at'))
                  .then(eb.ref('excluded.last_used_at'))
                  .else(eb.ref('client_usage.last_used_at'))
                  .end(),
              })),
            )
            .execute(),
        );
    },

    async listClientUsage(workspaceId: string): Promise<Map<string, string>> {
      const rows = await run((db) =>
        db
          .selectFrom('client_usage')
          .innerJoin('clients', 'clients.id', 'client_usage.client_id')
          .select(['client_usage.client_id', 'client_usage.last_used_at'])
          .where('clients.workspace_id', '=', workspaceId)
          .execute(),
      );
      return new Map(rows.map((r) => [r.client_id, r.last_used_at]));
    },

    async insertKey(k: KeyRecord): Promise<void> {
      await run((db) =>
        db
          .insertInto('client_keys')
          .values({
            client_id: k.clientId,
            id: k.id,
            hash: k.hash,
            created_at: k.createdAt,
            expires_at: k.expiresAt ?? null,
          })
          .execute(),
      );
    },

    async listKeys(clientId: string): Promise<KeyRecord[]> {
      const rows = await run((db) =>
        db
          .selectFrom('client_keys')
          .selectAll()
          .where('client_id', '=', clientId)
          .orderBy('created_at')
          .orderBy('id')
          .execute(),
      );
      return rows.map(toKey);
    },

    async listWorkspaceKeys(workspaceId: string): Promise<KeyRecord[]> {
      const rows = await run((db) =>
        db
          .selectFrom('client_keys')
          .innerJoin('clients', 'clients.id', 'client_keys.client_id')
          .selectAll('client_keys')
          .where('clients.workspace_id', '=', workspaceId)
          .orderBy('client_keys.client_id')
          .orderBy('client_keys.created_at')
          .orderBy('client_keys.id')
          .execute(),
      );
      return rows.map(toKey);
    },

    async updateKeyExpiry(clientId: string, keyId: string, expiresAt: string | undefined): Promise<boolean> {
      const result = await run((db) =>
        db
          .updateTable('client_keys')
          .set({ expires_at: expiresAt ?? null })
          .where('client_id', '=', clientId)
          .where('id', '=', keyId)
          .executeTakeFirst(),
      );
      return result.numUpdatedRows > 0n;
    },

    async deleteKey(clientId: string, keyId: string): Promise<boolean> {
      const result = await run((db) =>
        db.deleteFrom('client_keys').where('client_id', '=', clientId).where('id', '=', keyId).executeTakeFirst(),
      );
      return result.numDeletedRows > 0n;
    },

    async findKey(hash: string): Promise<{ key: KeyRecord; client: ClientRecord } | undefined> {
      const row = await run((db) =>
        db
          .selectFrom('client_keys')
          .innerJoin('clients', 'clients.id', 'client_keys.client_id')
          .selectAll('clients')
          .select([
            'client_keys.id as key_id',
            'client_keys.client_id as key_client_id',
            'client_keys.hash as key_hash',
            'client_keys.created_at as key_created_at',
            'client_keys.expires_at as key_expires_at',
          ])
          .where('client_keys.hash', '=', hash)
          .executeTakeFirst(),
      );
      if (row === undefined) return undefined;
      const { key_id, key_client_id, key_hash, key_created_at, key_expires_at, ...client } = row;
      return {
        key: toKey({
          id: key_id,
          client_id: key_client_id,
          hash: key_hash,
          created_at: key_created_at,
          expires_at: key_expires_at,
        }),
        client: toClient(client),
      };
    },
  };
}

function clientRow(c: ClientRecord): Insertable<ClientsTable> {
  return {
    id: c.id,
    workspace_id: c.workspaceId,
    kind: c.kind,
    name: c.name,
    role_id: c.roleId,
    environments: json(c.environments),
    projects: json(c.projects),
    allowed_ips: json(c.allowedIps),
    user_id: c.userId ?? null,
    org_id: c.orgId ?? null,
    metadata: json(c.metadata),
    rate_limits: json(c.rateLimits),
    quotas: json(c.quotas),
    expires_at: c.expiresAt ?? null,
    status: c.status,
    operator: c.operator,
    email: c.email ?? null,
    created_at: c.createdAt,
    updated_at: c.updatedAt,
  };
}

function toClient(r: Selectable<ClientsTable>): ClientRecord {
  return withOptional(
    {
      id: r.id,
      workspaceId: r.workspace_id,
      kind: r.kind as ClientRecord['kind'],
      name: r.name,
      roleId: r.role_id,
      environments: JSON.parse(r.environments) as string[],
      projects: JSON.parse(r.projects) as string[],
      status: r.status as ClientRecord['status'],
      operator: Boolean(r.operator),
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    },
    {
      allowedIps: parsed<string[]>(r.allowed_ips),
      userId: r.user_id,
      orgId: r.org_id,
      metadata: parsed<NonNullable<ClientRecord['metadata']>>(r.metadata),
      rateLimits: parsed<NonNullable<ClientRecord['rateLimits']>>(r.rate_limits),
      quotas: parsed<NonNullable<ClientRecord['quotas']>>(r.quotas ?? null),
      expiresAt: r.expires_at,
      email: r.email,
    },
  );
}

function toKey(r: Selectable<ClientKeysTable>): KeyRecord {
  return withOptional(
    { id: r.id, clientId: r.client_id, hash: r.hash, createdAt: r.created_at },
    { expiresAt: r.expires_at },
  );
}
