/**
 * The `Store` over kysely: one implementation for SQLite and PostgreSQL. The SQL that differs between the two is
 * kysely's business; what differs in behaviour is handled here, so that both pass the same contract suite:
 *
 * - Transactions are serialized on both. SQLite has one connection (kysely queues everything behind an open
 *   transaction); on PostgreSQL each transaction first takes a transaction-scoped advisory lock, so transactions
 *   of every control-plane replica sharing the database run one after another. Control-plane writes are few; this
 *   buys the same simple semantics on both backends and no serialization-failure retries.
 * - A failed statement ends its transaction on both (PostgreSQL refuses further statements in an aborted
 *   transaction; SQLite would carry on), so code that swallows an error inside `transaction()` fails in tests on
 *   SQLite too, not only in production on PostgreSQL.
 * - Unique violations become `StoreConflictError` with a readable constraint name.
 * - Optional fields are NULL in the table and absent from records.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomUUID } from 'node:crypto';
import {
  sql,
  type Kysely,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  type Insertable,
  type Selectable,
  type UnknownRow,
} from 'kysely';
import {
  StoreConflictError,
  type AlertRecord,
  type ClientRecord,
  type CollectionRecord,
  type CollectionVersionRecord,
  type GatewayCertificateRecord,
  type GatewayInstanceRecord,
  type GatewayRecord,
  type KeyRecord,
  type ProjectRecord,
  type RegistrationTokenRecord,
  type RoleRecord,
  type SecurityEventRecord,
  type SessionRecord,
  type SnapshotRecord,
  type Store,
  type StoreOps,
  type TelemetryRecord,
  type UserRecord,
  type UserRoleRecord,
  type WorkspaceRecord,
} from './store.ts';
import type {
  AlertsTable,
  ClientKeysTable,
  ClientsTable,
  CollectionsTable,
  CollectionVersionsTable,
  Database,
  GatewayInstancesTable,
  GatewaysTable,
  RolesTable,
  SecurityEventsTable,
  TelemetryTable,
  UsersTable,
  WorkspacesTable,
} from './tables.ts';

type Kind = Store['kind'];

/** Set while a `transaction()` callback runs, to catch use of the store itself (instead of `tx`) inside it. */
const openTransaction = new AsyncLocalStorage<{ open: boolean }>();

class SqlOps implements StoreOps {
  readonly #db: Kysely<Database>;
  readonly #kind: Kind;
  /** Inside a transaction: why it can run nothing more (it failed, or it ended). */
  #unusable: string | undefined;
  /** Inside a transaction: the error of a statement that failed, even if the callback caught it. */
  #failure: unknown;
  readonly #inTransaction: boolean;

  constructor(db: Kysely<Database>, kind: Kind, inTransaction: boolean) {
    this.#db = db;
    this.#kind = kind;
    this.#inTransaction = inTransaction;
  }

  /** Every statement runs through here: checks the transaction is usable, maps errors, and poisons it on failure. */
  async #run<T>(query: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    if (this.#unusable !== undefined) throw new Error(`store transaction ${this.#unusable}; nothing more can run in it`, { cause: this.#failure });
    try {
      return await query(this.#db);
    } catch (error) {
      const mapped = toStoreError(error, this.#kind);
      if (this.#inTransaction) {
        this.#unusable = `failed (${error instanceof Error ? error.message : String(error)})`;
        this.#failure = mapped;
      }
      throw mapped;
    }
  }

  /**
   * Called when the callback returned: a transaction in which a statement failed must not commit, even if the
   * callback caught the error (PostgreSQL would silently roll back; SQLite would commit the rest).
   */
  settle(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Called when the transaction commits or rolls back. */
  end(): void {
    if (this.#inTransaction) this.#unusable ??= 'has ended';
  }

  // ── settings ──────────────────────────────────────────────────────────────────────────────────────────────────

  async getSetting(key: string): Promise<string | undefined> {
    const row = await this.#run((db) => db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst());
    return row?.value;
  }

  async setSetting(key: string, value: string): Promise<void> {
    await this.#run((db) =>
      db
        .insertInto('settings')
        .values({ key, value })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
        .execute(),
    );
  }

  // ── workspaces and projects ───────────────────────────────────────────────────────────────────────────────────

  async insertWorkspace(w: WorkspaceRecord): Promise<void> {
    await this.#run((db) => db.insertInto('workspaces').values(workspaceRow(w)).execute());
  }

  async updateWorkspace(w: WorkspaceRecord): Promise<void> {
    const { id: _id, ...row } = workspaceRow(w);
    await this.#run((db) => db.updateTable('workspaces').set(row).where('id', '=', w.id).execute());
  }

  async getWorkspace(by: { id: string } | { name: string }): Promise<WorkspaceRecord | undefined> {
    const row = await this.#run((db) => {
      const q = db.selectFrom('workspaces').selectAll();
      return ('id' in by ? q.where('id', '=', by.id) : q.where('name', '=', by.name)).executeTakeFirst();
    });
    return row && toWorkspace(row);
  }

  async listWorkspaces(): Promise<WorkspaceRecord[]> {
    const rows = await this.#run((db) => db.selectFrom('workspaces').selectAll().orderBy('name').execute());
    return rows.map(toWorkspace);
  }

  async insertProject(p: ProjectRecord): Promise<void> {
    await this.#run((db) =>
      db
        .insertInto('projects')
        .values({ workspace_id: p.workspaceId, name: p.name, description: p.description ?? null, created_at: p.createdAt })
        .execute(),
    );
  }

  async listProjects(workspaceId: string): Promise<ProjectRecord[]> {
    const rows = await this.#run((db) => db.selectFrom('projects').selectAll().where('workspace_id', '=', workspaceId).orderBy('name').execute());
    return rows.map((r) => withOptional({ workspaceId: r.workspace_id, name: r.name, createdAt: r.created_at }, { description: r.description }));
  }

  async deleteProject(workspaceId: string, name: string): Promise<boolean> {
    const result = await this.#run((db) => db.deleteFrom('projects').where('workspace_id', '=', workspaceId).where('name', '=', name).executeTakeFirst());
    return result.numDeletedRows > 0n;
  }

  // ── collections ───────────────────────────────────────────────────────────────────────────────────────────────

  async insertCollection(c: CollectionRecord): Promise<void> {
    await this.#run((db) => db.insertInto('collections').values(collectionRow(c)).execute());
  }

  async updateCollection(c: CollectionRecord, expectedRevision?: number): Promise<boolean> {
    const { id: _id, ...row } = collectionRow(c);
    const result = await this.#run((db) => {
      let q = db.updateTable('collections').set(row).where('id', '=', c.id);
      if (expectedRevision !== undefined) q = q.where('revision', '=', expectedRevision);
      return q.executeTakeFirst();
    });
    return result.numUpdatedRows > 0n;
  }

  async getCollection(by: { id: string } | { workspaceId: string; environment: string; name: string }): Promise<CollectionRecord | undefined> {
    const row = await this.#run((db) => {
      const q = db.selectFrom('collections').selectAll();
      return (
        'id' in by
          ? q.where('id', '=', by.id)
          : q.where('workspace_id', '=', by.workspaceId).where('environment', '=', by.environment).where('name', '=', by.name)
      ).executeTakeFirst();
    });
    return row && toCollection(row);
  }

  async listCollections(workspaceId: string, filter?: { environment?: string }): Promise<CollectionRecord[]> {
    const rows = await this.#run((db) => {
      let q = db.selectFrom('collections').selectAll().where('workspace_id', '=', workspaceId);
      if (filter?.environment !== undefined) q = q.where('environment', '=', filter.environment);
      return q.orderBy('environment').orderBy('name').execute();
    });
    return rows.map(toCollection);
  }

  async deleteCollection(id: string): Promise<boolean> {
    // Its versions go with it (ON DELETE CASCADE).
    const result = await this.#run((db) => db.deleteFrom('collections').where('id', '=', id).executeTakeFirst());
    return result.numDeletedRows > 0n;
  }

  async insertCollectionVersion(v: CollectionVersionRecord): Promise<void> {
    await this.#run((db) =>
      db
        .insertInto('collection_versions')
        .values({
          collection_id: v.collectionId,
          version: v.version,
          spec: JSON.stringify(v.spec),
          published_at: v.publishedAt,
          published_by: v.publishedBy ?? null,
          restored_from: v.restoredFrom ?? null,
        })
        .execute(),
    );
  }

  async listCollectionVersions(collectionId: string): Promise<CollectionVersionRecord[]> {
    const rows = await this.#run((db) =>
      db.selectFrom('collection_versions').selectAll().where('collection_id', '=', collectionId).orderBy('version', 'desc').execute(),
    );
    return rows.map(toCollectionVersion);
  }

  async getCollectionVersion(collectionId: string, version: number): Promise<CollectionVersionRecord | undefined> {
    const row = await this.#run((db) =>
      db.selectFrom('collection_versions').selectAll().where('collection_id', '=', collectionId).where('version', '=', version).executeTakeFirst(),
    );
    return row && toCollectionVersion(row);
  }

  // ── client roles ──────────────────────────────────────────────────────────────────────────────────────────────

  async insertRole(r: RoleRecord): Promise<void> {
    await this.#run((db) => db.insertInto('roles').values(roleRow(r)).execute());
  }

  async updateRole(r: RoleRecord): Promise<boolean> {
    const { id: _id, ...row } = roleRow(r);
    const result = await this.#run((db) => db.updateTable('roles').set(row).where('id', '=', r.id).executeTakeFirst());
    return result.numUpdatedRows > 0n;
  }

  async getRole(by: { id: string } | { workspaceId: string; name: string }): Promise<RoleRecord | undefined> {
    const row = await this.#run((db) => {
      const q = db.selectFrom('roles').selectAll();
      return ('id' in by ? q.where('id', '=', by.id) : q.where('workspace_id', '=', by.workspaceId).where('name', '=', by.name)).executeTakeFirst();
    });
    return row && toRole(row);
  }

  async listRoles(workspaceId: string): Promise<RoleRecord[]> {
    const rows = await this.#run((db) => db.selectFrom('roles').selectAll().where('workspace_id', '=', workspaceId).orderBy('name').execute());
    return rows.map(toRole);
  }

  async deleteRole(id: string): Promise<boolean> {
    const result = await this.#run((db) => db.deleteFrom('roles').where('id', '=', id).executeTakeFirst());
    return result.numDeletedRows > 0n;
  }

  // ── API clients and their keys ────────────────────────────────────────────────────────────────────────────────

  async insertClient(c: ClientRecord): Promise<void> {
    await this.#run((db) => db.insertInto('clients').values(clientRow(c)).execute());
  }

  async updateClient(c: ClientRecord): Promise<boolean> {
    const { id: _id, ...row } = clientRow(c);
    const result = await this.#run((db) => db.updateTable('clients').set(row).where('id', '=', c.id).executeTakeFirst());
    return result.numUpdatedRows > 0n;
  }

  async getClient(id: string): Promise<ClientRecord | undefined> {
    const row = await this.#run((db) => db.selectFrom('clients').selectAll().where('id', '=', id).executeTakeFirst());
    return row && toClient(row);
  }

  async listClients(workspaceId: string): Promise<ClientRecord[]> {
    const rows = await this.#run((db) =>
      db.selectFrom('clients').selectAll().where('workspace_id', '=', workspaceId).orderBy('created_at').orderBy('id').execute(),
    );
    return rows.map(toClient);
  }

  async deleteClient(id: string): Promise<boolean> {
    // Its keys go with it (ON DELETE CASCADE).
    const result = await this.#run((db) => db.deleteFrom('clients').where('id', '=', id).executeTakeFirst());
    return result.numDeletedRows > 0n;
  }

  async insertKey(k: KeyRecord): Promise<void> {
    await this.#run((db) =>
      db
        .insertInto('client_keys')
        .values({ client_id: k.clientId, id: k.id, hash: k.hash, created_at: k.createdAt, expires_at: k.expiresAt ?? null })
        .execute(),
    );
  }

  async listKeys(clientId: string): Promise<KeyRecord[]> {
    const rows = await this.#run((db) =>
      db.selectFrom('client_keys').selectAll().where('client_id', '=', clientId).orderBy('created_at').orderBy('id').execute(),
    );
    return rows.map(toKey);
  }

  async listWorkspaceKeys(workspaceId: string): Promise<KeyRecord[]> {
    const rows = await this.#run((db) =>
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
  }

  async updateKeyExpiry(clientId: string, keyId: string, expiresAt: string | undefined): Promise<boolean> {
    const result = await this.#run((db) =>
      db
        .updateTable('client_keys')
        .set({ expires_at: expiresAt ?? null })
        .where('client_id', '=', clientId)
        .where('id', '=', keyId)
        .executeTakeFirst(),
    );
    return result.numUpdatedRows > 0n;
  }

  async deleteKey(clientId: string, keyId: string): Promise<boolean> {
    const result = await this.#run((db) => db.deleteFrom('client_keys').where('client_id', '=', clientId).where('id', '=', keyId).executeTakeFirst());
    return result.numDeletedRows > 0n;
  }

  async findKey(hash: string): Promise<{ key: KeyRecord; client: ClientRecord } | undefined> {
    const row = await this.#run((db) =>
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
      key: toKey({ id: key_id, client_id: key_client_id, hash: key_hash, created_at: key_created_at, expires_at: key_expires_at }),
      client: toClient(client),
    };
  }

  // ── console users ─────────────────────────────────────────────────────────────────────────────────────────────

  async insertUserRole(r: UserRoleRecord): Promise<void> {
    await this.#run((db) =>
      db
        .insertInto('user_roles')
        .values({ workspace_id: r.workspaceId, name: r.name, privileges: JSON.stringify(r.privileges), built_in: r.builtIn })
        .execute(),
    );
  }

  async listUserRoles(workspaceId: string): Promise<UserRoleRecord[]> {
    const rows = await this.#run((db) => db.selectFrom('user_roles').selectAll().where('workspace_id', '=', workspaceId).orderBy('name').execute());
    return rows.map((r) => ({ workspaceId: r.workspace_id, name: r.name, privileges: JSON.parse(r.privileges), builtIn: Boolean(r.built_in) }));
  }

  async deleteUserRole(workspaceId: string, name: string): Promise<boolean> {
    const result = await this.#run((db) => db.deleteFrom('user_roles').where('workspace_id', '=', workspaceId).where('name', '=', name).executeTakeFirst());
    return result.numDeletedRows > 0n;
  }

  async insertUser(u: UserRecord): Promise<void> {
    await this.#run((db) => db.insertInto('users').values(userRow(u)).execute());
  }

  async updateUser(u: UserRecord): Promise<boolean> {
    const { id: _id, ...row } = userRow(u);
    const result = await this.#run((db) => db.updateTable('users').set(row).where('id', '=', u.id).executeTakeFirst());
    return result.numUpdatedRows > 0n;
  }

  async getUser(by: { id: string } | { workspaceId: string; email: string }): Promise<UserRecord | undefined> {
    const row = await this.#run((db) => {
      const q = db.selectFrom('users').selectAll();
      return ('id' in by ? q.where('id', '=', by.id) : q.where('workspace_id', '=', by.workspaceId).where('email', '=', by.email)).executeTakeFirst();
    });
    return row && toUser(row);
  }

  async listUsers(workspaceId: string): Promise<UserRecord[]> {
    const rows = await this.#run((db) => db.selectFrom('users').selectAll().where('workspace_id', '=', workspaceId).orderBy('email').execute());
    return rows.map(toUser);
  }

  async deleteUser(id: string): Promise<boolean> {
    // Its sessions go with it (ON DELETE CASCADE).
    const result = await this.#run((db) => db.deleteFrom('users').where('id', '=', id).executeTakeFirst());
    return result.numDeletedRows > 0n;
  }

  async insertSession(s: SessionRecord): Promise<void> {
    await this.#run((db) =>
      db
        .insertInto('sessions')
        .values({ hash: s.hash, user_id: s.userId, workspace_id: s.workspaceId, created_at: s.createdAt, expires_at: s.expiresAt })
        .execute(),
    );
  }

  async getSession(hash: string): Promise<SessionRecord | undefined> {
    const r = await this.#run((db) => db.selectFrom('sessions').selectAll().where('hash', '=', hash).executeTakeFirst());
    return r && { hash: r.hash, userId: r.user_id, workspaceId: r.workspace_id, createdAt: r.created_at, expiresAt: r.expires_at };
  }

  async deleteSession(hash: string): Promise<boolean> {
    const result = await this.#run((db) => db.deleteFrom('sessions').where('hash', '=', hash).executeTakeFirst());
    return result.numDeletedRows > 0n;
  }

  async deleteExpiredSessions(now: string): Promise<number> {
    const result = await this.#run((db) => db.deleteFrom('sessions').where('expires_at', '<=', now).executeTakeFirst());
    return Number(result.numDeletedRows);
  }

  // ── edge gateways ─────────────────────────────────────────────────────────────────────────────────────────────

  async insertGateway(g: GatewayRecord): Promise<void> {
    await this.#run((db) => db.insertInto('gateways').values(gatewayRow(g)).execute());
  }

  async updateGateway(g: GatewayRecord): Promise<boolean> {
    const { id: _id, ...row } = gatewayRow(g);
    const result = await this.#run((db) => db.updateTable('gateways').set(row).where('id', '=', g.id).executeTakeFirst());
    return result.numUpdatedRows > 0n;
  }

  async getGateway(
    by: { id: string } | { workspaceId: string; name: string } | { workspaceId: string; environment: string },
  ): Promise<GatewayRecord | undefined> {
    const row = await this.#run((db) => {
      const q = db.selectFrom('gateways').selectAll();
      if ('id' in by) return q.where('id', '=', by.id).executeTakeFirst();
      const inWorkspace = q.where('workspace_id', '=', by.workspaceId);
      return ('name' in by ? inWorkspace.where('name', '=', by.name) : inWorkspace.where('environment', '=', by.environment)).executeTakeFirst();
    });
    return row && toGateway(row);
  }

  async listGateways(workspaceId: string): Promise<GatewayRecord[]> {
    const rows = await this.#run((db) =>
      db.selectFrom('gateways').selectAll().where('workspace_id', '=', workspaceId).orderBy('environment').orderBy('name').execute(),
    );
    return rows.map(toGateway);
  }

  async deleteGateway(id: string, revokedAt: string): Promise<boolean> {
    // Revoke first: should the delete not happen, a certificate revoked too early is safer than one left valid.
    await this.#run((db) =>
      db.updateTable('gateway_certificates').set({ revoked_at: revokedAt }).where('gateway_id', '=', id).where('revoked_at', 'is', null).execute(),
    );
    // Its registration tokens and instances go with it (ON DELETE CASCADE).
    const result = await this.#run((db) => db.deleteFrom('gateways').where('id', '=', id).executeTakeFirst());
    return result.numDeletedRows > 0n;
  }

  async insertRegistrationToken(t: RegistrationTokenRecord): Promise<void> {
    await this.#run((db) =>
      db
        .insertInto('registration_tokens')
        .values({ hash: t.hash, gateway_id: t.gatewayId, created_at: t.createdAt, expires_at: t.expiresAt, used_at: t.usedAt ?? null })
        .execute(),
    );
  }

  async getRegistrationToken(hash: string): Promise<RegistrationTokenRecord | undefined> {
    const r = await this.#run((db) => db.selectFrom('registration_tokens').selectAll().where('hash', '=', hash).executeTakeFirst());
    return r && withOptional({ hash: r.hash, gatewayId: r.gateway_id, createdAt: r.created_at, expiresAt: r.expires_at }, { usedAt: r.used_at });
  }

  async consumeRegistrationToken(hash: string, now: string): Promise<boolean> {
    // One conditional UPDATE: of two concurrent callers, the database lets exactly one change the row.
    const result = await this.#run((db) =>
      db
        .updateTable('registration_tokens')
        .set({ used_at: now })
        .where('hash', '=', hash)
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst(),
    );
    return result.numUpdatedRows > 0n;
  }

  async deleteRegistrationTokens(gatewayId: string): Promise<number> {
    const result = await this.#run((db) =>
      db.deleteFrom('registration_tokens').where('gateway_id', '=', gatewayId).where('used_at', 'is', null).executeTakeFirst(),
    );
    return Number(result.numDeletedRows);
  }

  async insertGatewayCertificate(c: GatewayCertificateRecord): Promise<void> {
    await this.#run((db) =>
      db
        .insertInto('gateway_certificates')
        .values({ serial: c.serial, gateway_id: c.gatewayId, not_before: c.notBefore, not_after: c.notAfter, revoked_at: c.revokedAt ?? null })
        .execute(),
    );
  }

  async getGatewayCertificate(serial: string): Promise<GatewayCertificateRecord | undefined> {
    const r = await this.#run((db) => db.selectFrom('gateway_certificates').selectAll().where('serial', '=', serial).executeTakeFirst());
    return r && withOptional({ serial: r.serial, gatewayId: r.gateway_id, notBefore: r.not_before, notAfter: r.not_after }, { revokedAt: r.revoked_at });
  }

  async upsertGatewayInstance(i: GatewayInstanceRecord): Promise<void> {
    const row = gatewayInstanceRow(i);
    const { gateway_id: _gatewayId, instance_id: _instanceId, ...rest } = row;
    await this.#run((db) =>
      db
        .insertInto('gateway_instances')
        .values(row)
        .onConflict((oc) => oc.columns(['gateway_id', 'instance_id']).doUpdateSet(rest))
        .execute(),
    );
  }

  async listGatewayInstances(gatewayId: string): Promise<GatewayInstanceRecord[]> {
    const rows = await this.#run((db) =>
      db.selectFrom('gateway_instances').selectAll().where('gateway_id', '=', gatewayId).orderBy('instance_id').execute(),
    );
    return rows.map(toGatewayInstance);
  }

  async pruneGatewayInstances(before: string): Promise<number> {
    const result = await this.#run((db) =>
      db.deleteFrom('gateway_instances').where('last_seen_at', '<', before).where('connected', '=', false).executeTakeFirst(),
    );
    return Number(result.numDeletedRows);
  }

  // ── telemetry, security events and alerts ─────────────────────────────────────────────────────────────────────

  async addTelemetry(rows: readonly TelemetryRecord[]): Promise<void> {
    // PostgreSQL refuses an INSERT … ON CONFLICT that touches one row twice, so equal keys are added up here first.
    const merged = mergeTelemetry(rows);
    for (let i = 0; i < merged.length; i += TELEMETRY_BATCH) {
      const batch = merged.slice(i, i + TELEMETRY_BATCH);
      await this.#run((db) =>
        db
          .insertInto('telemetry')
          .values(batch)
          .onConflict((oc) =>
            oc.columns(['workspace_id', 'gateway_id', 'minute', 'collection', 'endpoint', 'client_id', 'status']).doUpdateSet((eb) => ({
              count: eb(eb.ref('telemetry.count'), '+', eb.ref('excluded.count')),
              duration_ms_sum: eb(eb.ref('telemetry.duration_ms_sum'), '+', eb.ref('excluded.duration_ms_sum')),
              // CASE rather than greatest() (PostgreSQL) or max() (SQLite): the same SQL on both.
              duration_ms_max: eb
                .case()
                .when(eb.ref('excluded.duration_ms_max'), '>', eb.ref('telemetry.duration_ms_max'))
                .then(eb.ref('excluded.duration_ms_max'))
                .else(eb.ref('telemetry.duration_ms_max'))
                .end(),
            })),
          )
          .execute(),
      );
    }
  }

  async listTelemetry(workspaceId: string, filter: { since: string; gatewayId?: string }): Promise<TelemetryRecord[]> {
    const rows = await this.#run((db) => {
      let q = db.selectFrom('telemetry').selectAll().where('workspace_id', '=', workspaceId).where('minute', '>=', filter.since);
      if (filter.gatewayId !== undefined) q = q.where('gateway_id', '=', filter.gatewayId);
      return q.orderBy('minute').orderBy('gateway_id').orderBy('collection').orderBy('endpoint').orderBy('client_id').orderBy('status').execute();
    });
    return rows.map(toTelemetry);
  }

  async pruneTelemetry(before: string): Promise<number> {
    const result = await this.#run((db) => db.deleteFrom('telemetry').where('minute', '<', before).executeTakeFirst());
    return Number(result.numDeletedRows);
  }

  async insertSecurityEvents(events: readonly SecurityEventRecord[]): Promise<void> {
    for (let i = 0; i < events.length; i += SECURITY_EVENT_BATCH) {
      const batch = events.slice(i, i + SECURITY_EVENT_BATCH).map(securityEventRow);
      await this.#run((db) => db.insertInto('security_events').values(batch).execute());
    }
  }

  async listSecurityEvents(workspaceId: string, filter: { since: string; gatewayId?: string; limit?: number }): Promise<SecurityEventRecord[]> {
    const rows = await this.#run((db) => {
      let q = db.selectFrom('security_events').selectAll().where('workspace_id', '=', workspaceId).where('at', '>=', filter.since);
      if (filter.gatewayId !== undefined) q = q.where('gateway_id', '=', filter.gatewayId);
      q = q.orderBy('at', 'desc').orderBy('id', 'desc');
      if (filter.limit !== undefined) q = q.limit(Math.max(0, Math.trunc(filter.limit)));
      return q.execute();
    });
    return rows.map(toSecurityEvent);
  }

  async countSecurityEvents(workspaceId: string, filter: { since: string; gatewayId?: string; kind?: string }): Promise<number> {
    const row = await this.#run((db) => {
      let q = db
        .selectFrom('security_events')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('workspace_id', '=', workspaceId)
        .where('at', '>=', filter.since);
      if (filter.gatewayId !== undefined) q = q.where('gateway_id', '=', filter.gatewayId);
      if (filter.kind !== undefined) q = q.where('kind', '=', filter.kind);
      return q.executeTakeFirstOrThrow();
    });
    // PostgreSQL returns count(*) as a bigint string.
    return Number(row.n);
  }

  async pruneSecurityEvents(before: string): Promise<number> {
    const result = await this.#run((db) => db.deleteFrom('security_events').where('at', '<', before).executeTakeFirst());
    return Number(result.numDeletedRows);
  }

  async insertAlert(a: AlertRecord): Promise<void> {
    await this.#run((db) => db.insertInto('alerts').values(alertRow(a)).execute());
  }

  async updateAlert(a: AlertRecord): Promise<boolean> {
    const { id: _id, ...row } = alertRow(a);
    const result = await this.#run((db) => db.updateTable('alerts').set(row).where('id', '=', a.id).executeTakeFirst());
    return result.numUpdatedRows > 0n;
  }

  async getOpenAlert(workspaceId: string, key: string): Promise<AlertRecord | undefined> {
    const row = await this.#run((db) =>
      db.selectFrom('alerts').selectAll().where('workspace_id', '=', workspaceId).where('key', '=', key).where('resolved_at', 'is', null).executeTakeFirst(),
    );
    return row && toAlert(row);
  }

  async listAlerts(workspaceId: string, filter?: { open?: boolean; limit?: number }): Promise<AlertRecord[]> {
    const rows = await this.#run((db) => {
      let q = db.selectFrom('alerts').selectAll().where('workspace_id', '=', workspaceId);
      if (filter?.open !== undefined) q = q.where('resolved_at', filter.open ? 'is' : 'is not', null);
      q = q.orderBy('raised_at', 'desc').orderBy('id', 'desc');
      if (filter?.limit !== undefined) q = q.limit(Math.max(0, Math.trunc(filter.limit)));
      return q.execute();
    });
    return rows.map(toAlert);
  }

  async listUndeliveredAlerts(limit: number): Promise<AlertRecord[]> {
    const rows = await this.#run((db) =>
      db
        .selectFrom('alerts')
        .selectAll()
        .where('delivered_at', 'is', null)
        .orderBy('raised_at')
        .orderBy('id')
        .limit(Math.max(0, Math.trunc(limit)))
        .execute(),
    );
    return rows.map(toAlert);
  }

  // ── snapshots ─────────────────────────────────────────────────────────────────────────────────────────────────

  async getLatestSnapshot(scope: string): Promise<SnapshotRecord | undefined> {
    const row = await this.#run((db) =>
      db.selectFrom('snapshots').selectAll().where('scope', '=', scope).orderBy('version', 'desc').limit(1).executeTakeFirst(),
    );
    return row && toSnapshot(row);
  }

  async getSnapshot(scope: string, version: number): Promise<SnapshotRecord | undefined> {
    const row = await this.#run((db) => db.selectFrom('snapshots').selectAll().where('scope', '=', scope).where('version', '=', version).executeTakeFirst());
    return row && toSnapshot(row);
  }

  async insertSnapshot(s: SnapshotRecord): Promise<void> {
    await this.#run((db) =>
      db.insertInto('snapshots').values({ scope: s.scope, version: s.version, hash: s.hash, body: s.body, created_at: s.createdAt }).execute(),
    );
  }

  async pruneSnapshots(scope: string, keep: number): Promise<number> {
    const result = await this.#run((db) =>
      db
        .deleteFrom('snapshots')
        .where('scope', '=', scope)
        .where('version', 'not in', db.selectFrom('snapshots').select('version').where('scope', '=', scope).orderBy('version', 'desc').limit(Math.max(0, Math.trunc(keep))))
        .executeTakeFirst(),
    );
    return Number(result.numDeletedRows);
  }
}

export class SqlStore extends SqlOps implements Store {
  readonly kind: Kind;
  readonly #db: Kysely<Database>;
  /** PostgreSQL: how to open the dedicated LISTEN connection. */
  readonly #listenConnection: (() => Promise<ListenConnection>) | undefined;
  /** Tags this process's notifications, so it ignores its own. */
  readonly #replica = randomUUID();
  readonly #listeners = new Set<() => Promise<void>>();

  /**
   * `db` is owned by the store from now on: `close()` destroys it. Its schema must be migrated (`migrateToLatest`).
   * `listenConnection` (PostgreSQL) opens a dedicated connection for LISTEN.
   */
  constructor(db: Kysely<Database>, kind: Kind, listenConnection?: () => Promise<ListenConnection>) {
    super(db.withPlugin(new OutsideTransactionGuard()), kind, false);
    this.#db = db;
    this.kind = kind;
    this.#listenConnection = listenConnection;
  }

  async notifyChange(workspaceId: string): Promise<void> {
    if (this.kind !== 'postgres') return;
    const channel = await this.#channel();
    await sql`select pg_notify(${channel}, ${`${this.#replica} ${workspaceId}`})`.execute(this.#db);
  }

  async onRemoteChange(listener: (workspaceId: string) => void): Promise<() => Promise<void>> {
    const open = this.#listenConnection;
    if (this.kind !== 'postgres' || !open) return async () => {};
    const channel = await this.#channel();
    let stopped = false;
    let connection: ListenConnection | undefined;
    let retry: NodeJS.Timeout | undefined;
    let attempt = 0;
    const connect = async (reconnect: boolean): Promise<void> => {
      const c = await open();
      c.on('notification', (n) => {
        if (n.channel !== channel || !n.payload) return;
        const space = n.payload.indexOf(' ');
        if (n.payload.slice(0, space) !== this.#replica) listener(n.payload.slice(space + 1));
      });
      c.on('error', () => {
        if (stopped || connection !== c) return;
        connection = undefined;
        c.end().catch(() => {});
        schedule();
      });
      await c.query(`LISTEN "${channel}"`);
      connection = c;
      attempt = 0;
      // Notifications sent while no connection listened are lost: have everything recompiled.
      if (reconnect) listener('*');
    };
    const schedule = () => {
      // Jittered exponential backoff, 250 ms up to 30 s.
      const delay = Math.random() * Math.min(30_000, 250 * 2 ** attempt++);
      retry = setTimeout(() => void connect(true).catch(() => !stopped && schedule()), delay);
      retry.unref();
    };
    await connect(false);
    const stop = async () => {
      stopped = true;
      clearTimeout(retry);
      this.#listeners.delete(stop);
      await connection?.end().catch(() => {});
    };
    this.#listeners.add(stop);
    return stop;
  }

  /** One channel per schema, so two installations in two schemas of one database do not hear each other. */
  async #channel(): Promise<string> {
    const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(this.#db);
    return `gatehouse_${createHash('sha256').update(rows[0]?.schema ?? 'public').digest('hex').slice(0, 16)}`;
  }

  async transaction<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    if (openTransaction.getStore()?.open) throw new Error('store transactions do not nest: use the tx you were given');
    return this.#db.transaction().execute(async (trx) => {
      if (this.kind === 'postgres') {
        // One lock per schema: serializes the transactions of every replica that shares this database and schema.
        await sql`select pg_advisory_xact_lock(hashtext('gatehouse:' || current_schema()))`.execute(trx);
      }
      const ops = new SqlOps(trx, this.kind, true);
      const context = { open: true };
      try {
        const result = await openTransaction.run(context, () => fn(ops));
        ops.settle();
        return result;
      } finally {
        context.open = false;
        ops.end();
      }
    });
  }

  async close(): Promise<void> {
    for (const stop of [...this.#listeners]) await stop();
    await this.#db.destroy();
  }
}

/** The part of a `pg.Client` that LISTEN needs. */
export interface ListenConnection {
  query(text: string): Promise<unknown>;
  on(event: 'notification', listener: (n: { channel: string; payload?: string }) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  end(): Promise<void>;
}

/**
 * Refuses statements on the store itself while a `transaction()` callback of the same async flow is running: on
 * SQLite such a statement would wait for the transaction that is waiting for it (a hang), and on PostgreSQL it
 * would run outside the transaction and not see its writes. Inside the callback, use `tx`; work that should see
 * the committed result belongs after `transaction()` returns.
 */
class OutsideTransactionGuard implements KyselyPlugin {
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    if (openTransaction.getStore()?.open) {
      throw new Error('the store was used inside its own transaction() callback: use the tx argument instead');
    }
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

// ── unique constraints → readable names ─────────────────────────────────────────────────────────────────────────

/** [table, columns (as SQLite names them), PostgreSQL constraint name (migrations.ts), readable name] */
const CONSTRAINTS: ReadonlyArray<readonly [string, string, string, string]> = [
  ['workspaces', 'id', 'workspaces_pkey', 'workspace.id'],
  ['workspaces', 'name', 'workspaces_name_key', 'workspace.name'],
  ['projects', 'workspace_id,name', 'projects_pkey', 'project.name'],
  ['collections', 'id', 'collections_pkey', 'collection.id'],
  ['collections', 'workspace_id,environment,name', 'collections_workspace_id_environment_name_key', 'collection.name'],
  ['collection_versions', 'collection_id,version', 'collection_versions_pkey', 'collectionVersion.version'],
  ['roles', 'id', 'roles_pkey', 'role.id'],
  ['roles', 'workspace_id,name', 'roles_workspace_id_name_key', 'role.name'],
  ['clients', 'id', 'clients_pkey', 'client.id'],
  ['client_keys', 'client_id,id', 'client_keys_pkey', 'key.id'],
  ['client_keys', 'hash', 'client_keys_hash_key', 'key.hash'],
  ['user_roles', 'workspace_id,name', 'user_roles_pkey', 'userRole.name'],
  ['users', 'id', 'users_pkey', 'user.id'],
  ['users', 'workspace_id,email', 'users_workspace_id_email_key', 'user.email'],
  ['sessions', 'hash', 'sessions_pkey', 'session.hash'],
  ['snapshots', 'scope,version', 'snapshots_pkey', 'snapshot.version'],
  ['gateways', 'id', 'gateways_pkey', 'gateway.id'],
  ['gateways', 'workspace_id,name', 'gateways_workspace_id_name_key', 'gateway.name'],
  ['gateways', 'workspace_id,environment', 'gateways_workspace_id_environment_key', 'gateway.environment'],
  ['registration_tokens', 'hash', 'registration_tokens_pkey', 'registrationToken.hash'],
  ['gateway_certificates', 'serial', 'gateway_certificates_pkey', 'certificate.serial'],
  ['gateway_instances', 'gateway_id,instance_id', 'gateway_instances_pkey', 'gatewayInstance.id'],
  ['security_events', 'id', 'security_events_pkey', 'securityEvent.id'],
  ['alerts', 'id', 'alerts_pkey', 'alert.id'],
  ['alerts', 'workspace_id,key', 'alerts_workspace_id_key_open_key', 'alert.key'],
];
const BY_SQLITE_COLUMNS = new Map(CONSTRAINTS.map(([table, columns, , name]) => [`${table}(${columns})`, name]));
const BY_PG_CONSTRAINT = new Map(CONSTRAINTS.map(([, , pg, name]) => [pg, name]));

const SQLITE_CONSTRAINT_UNIQUE = 2067;
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555;
const PG_UNIQUE_VIOLATION = '23505';

/** A unique violation as `StoreConflictError`; anything else unchanged. */
function toStoreError(error: unknown, kind: Kind): unknown {
  if (typeof error !== 'object' || error === null) return error;
  const e = error as { errcode?: unknown; code?: unknown; constraint?: unknown; message?: unknown };
  if (kind === 'sqlite' && (e.errcode === SQLITE_CONSTRAINT_UNIQUE || e.errcode === SQLITE_CONSTRAINT_PRIMARYKEY)) {
    // "UNIQUE constraint failed: roles.workspace_id, roles.name"
    const columns = String(e.message).replace(/^.*constraint failed: /, '').split(', ');
    const table = columns[0]?.split('.')[0] ?? '';
    const key = `${table}(${columns.map((c) => c.slice(table.length + 1)).join(',')})`;
    const name = BY_SQLITE_COLUMNS.get(key) ?? key;
    return new StoreConflictError(name, `${name} is already taken`);
  }
  if (kind === 'postgres' && e.code === PG_UNIQUE_VIOLATION) {
    const constraint = String(e.constraint ?? 'unknown');
    const name = BY_PG_CONSTRAINT.get(constraint) ?? constraint;
    return new StoreConflictError(name, `${name} is already taken`);
  }
  return error;
}

// ── rows ⇄ records ──────────────────────────────────────────────────────────────────────────────────────────────

/** Adds each optional field whose column is not NULL, so that absent fields stay absent (deep-equal round trips). */
function withOptional<T extends object, O extends Record<string, unknown>>(record: T, optional: O): T & { [K in keyof O]?: NonNullable<O[K]> } {
  const out: Record<string, unknown> = record as Record<string, unknown>;
  for (const [key, value] of Object.entries(optional)) if (value !== null && value !== undefined) out[key] = value;
  return out as T & { [K in keyof O]?: NonNullable<O[K]> };
}

function json(value: unknown): string;
function json(value: unknown | undefined): string | null;
function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

function parsed<T>(text: string | null): T | undefined {
  return text === null ? undefined : (JSON.parse(text) as T);
}

function workspaceRow(w: WorkspaceRecord): WorkspacesTable {
  return { id: w.id, name: w.name, environments: json(w.environments), dev_environment: w.devEnvironment, created_at: w.createdAt };
}

function toWorkspace(r: Selectable<WorkspacesTable>): WorkspaceRecord {
  return { id: r.id, name: r.name, environments: JSON.parse(r.environments), devEnvironment: r.dev_environment, createdAt: r.created_at };
}

function collectionRow(c: CollectionRecord): CollectionsTable {
  return {
    id: c.id,
    workspace_id: c.workspaceId,
    environment: c.environment,
    name: c.name,
    project: c.project,
    target: json(c.target),
    spec: json(c.spec),
    revision: c.revision,
    published_version: c.publishedVersion ?? null,
    created_at: c.createdAt,
    updated_at: c.updatedAt,
  };
}

function toCollection(r: Selectable<CollectionsTable>): CollectionRecord {
  return withOptional(
    {
      id: r.id,
      workspaceId: r.workspace_id,
      environment: r.environment,
      name: r.name,
      project: r.project,
      target: JSON.parse(r.target) as CollectionRecord['target'],
      spec: JSON.parse(r.spec) as CollectionRecord['spec'],
      revision: r.revision,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    },
    { publishedVersion: r.published_version },
  );
}

function toCollectionVersion(r: Selectable<CollectionVersionsTable>): CollectionVersionRecord {
  return withOptional(
    { collectionId: r.collection_id, version: r.version, spec: JSON.parse(r.spec), publishedAt: r.published_at },
    { publishedBy: r.published_by, restoredFrom: r.restored_from },
  );
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
      expiresAt: r.expires_at,
      email: r.email,
    },
  );
}

function toKey(r: Selectable<ClientKeysTable>): KeyRecord {
  return withOptional({ id: r.id, clientId: r.client_id, hash: r.hash, createdAt: r.created_at }, { expiresAt: r.expires_at });
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
    { id: r.id, workspaceId: r.workspace_id, email: r.email, role: r.role, passwordHash: r.password_hash, createdAt: r.created_at },
    { name: r.name },
  );
}

function toSnapshot(r: Selectable<Database['snapshots']>): SnapshotRecord {
  return { scope: r.scope, version: r.version, hash: r.hash, body: r.body, createdAt: r.created_at };
}

function gatewayRow(g: GatewayRecord): GatewaysTable {
  return {
    id: g.id,
    workspace_id: g.workspaceId,
    environment: g.environment,
    name: g.name,
    install_method: g.installMethod,
    created_at: g.createdAt,
    updated_at: g.updatedAt,
  };
}

function toGateway(r: Selectable<GatewaysTable>): GatewayRecord {
  return {
    id: r.id,
    workspaceId: r.workspace_id,
    environment: r.environment,
    name: r.name,
    installMethod: r.install_method as GatewayRecord['installMethod'],
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function gatewayInstanceRow(i: GatewayInstanceRecord): Insertable<GatewayInstancesTable> {
  return {
    gateway_id: i.gatewayId,
    instance_id: i.instanceId,
    hostname: i.hostname ?? null,
    software_version: i.softwareVersion,
    applied_version: i.appliedVersion,
    applied_hash: i.appliedHash ?? null,
    nacked_version: i.nackedVersion ?? null,
    last_error: i.lastError ?? null,
    connected: i.connected,
    first_seen_at: i.firstSeenAt,
    last_seen_at: i.lastSeenAt,
    last_synced_at: i.lastSyncedAt ?? null,
  };
}

function toGatewayInstance(r: Selectable<GatewayInstancesTable>): GatewayInstanceRecord {
  return withOptional(
    {
      gatewayId: r.gateway_id,
      instanceId: r.instance_id,
      softwareVersion: r.software_version,
      appliedVersion: r.applied_version,
      connected: Boolean(r.connected),
      firstSeenAt: r.first_seen_at,
      lastSeenAt: r.last_seen_at,
    },
    { hostname: r.hostname, appliedHash: r.applied_hash, nackedVersion: r.nacked_version, lastError: r.last_error, lastSyncedAt: r.last_synced_at },
  );
}

/** Rows per INSERT: well below SQLite's and PostgreSQL's limits on bound parameters. */
const TELEMETRY_BATCH = 500;
const SECURITY_EVENT_BATCH = 500;

/** The rows as table rows, those with equal keys added up (counts and sums added, the maximum kept). */
function mergeTelemetry(rows: readonly TelemetryRecord[]): TelemetryTable[] {
  const byKey = new Map<string, TelemetryTable>();
  for (const t of rows) {
    const key = JSON.stringify([t.workspaceId, t.gatewayId, t.minute, t.collection, t.endpoint, t.clientId, t.status]);
    const seen = byKey.get(key);
    if (seen === undefined) {
      byKey.set(key, {
        workspace_id: t.workspaceId,
        gateway_id: t.gatewayId,
        minute: t.minute,
        collection: t.collection,
        endpoint: t.endpoint,
        client_id: t.clientId,
        status: t.status,
        count: t.count,
        duration_ms_sum: t.durationMsSum,
        duration_ms_max: t.durationMsMax,
      });
    } else {
      seen.count += t.count;
      seen.duration_ms_sum += t.durationMsSum;
      seen.duration_ms_max = Math.max(seen.duration_ms_max, t.durationMsMax);
    }
  }
  return [...byKey.values()];
}

function toTelemetry(r: Selectable<TelemetryTable>): TelemetryRecord {
  return {
    workspaceId: r.workspace_id,
    gatewayId: r.gateway_id,
    minute: r.minute,
    collection: r.collection,
    endpoint: r.endpoint,
    clientId: r.client_id,
    status: r.status,
    count: r.count,
    durationMsSum: r.duration_ms_sum,
    durationMsMax: r.duration_ms_max,
  };
}

function securityEventRow(e: SecurityEventRecord): SecurityEventsTable {
  return {
    id: e.id,
    workspace_id: e.workspaceId,
    gateway_id: e.gatewayId,
    at: e.at,
    kind: e.kind,
    reason: e.reason,
    collection: e.collection ?? null,
    client_id: e.clientId ?? null,
    key_label: e.keyLabel ?? null,
    ip: e.ip ?? null,
  };
}

function toSecurityEvent(r: Selectable<SecurityEventsTable>): SecurityEventRecord {
  return withOptional(
    { id: r.id, workspaceId: r.workspace_id, gatewayId: r.gateway_id, at: r.at, kind: r.kind, reason: r.reason },
    { collection: r.collection, clientId: r.client_id, keyLabel: r.key_label, ip: r.ip },
  );
}

function alertRow(a: AlertRecord): AlertsTable {
  return {
    id: a.id,
    workspace_id: a.workspaceId,
    gateway_id: a.gatewayId ?? null,
    kind: a.kind,
    key: a.key,
    message: a.message,
    details: json(a.details),
    raised_at: a.raisedAt,
    resolved_at: a.resolvedAt ?? null,
    delivered_at: a.deliveredAt ?? null,
    delivery_attempts: a.deliveryAttempts,
  };
}

function toAlert(r: Selectable<AlertsTable>): AlertRecord {
  return withOptional(
    {
      id: r.id,
      workspaceId: r.workspace_id,
      kind: r.kind,
      key: r.key,
      message: r.message,
      raisedAt: r.raised_at,
      deliveryAttempts: r.delivery_attempts,
    },
    {
      gatewayId: r.gateway_id,
      details: parsed<Record<string, unknown>>(r.details),
      resolvedAt: r.resolved_at,
      deliveredAt: r.delivered_at,
    },
  );
}
