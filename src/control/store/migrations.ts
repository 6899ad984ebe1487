/**
 * Length (about 740 lines): every migration in order in one list, and the migrator that runs them; the schema's
 * history reads best in one place. Migrations are written out in full on purpose (what `duplicates` sees repeat is
 * columns of different tables): a helper shared by shipped migrations could later change what one already run does.
 *
 * The schema, as one ordered list of migrations that runs unchanged on SQLite and PostgreSQL (kysely's schema
 * builder and `Migrator`, with the migrations in code so that nothing is read from disk at start).
 *
 * Rules: a migration that has shipped is never edited; a change is a new entry with the next number. Names sort in
 * the order they run. Column types are the few both databases share: text (also for JSON and ISO timestamps),
 * integer, boolean, and double precision for measured durations (fractional milliseconds).
 */
import { sql, type DatabaseIntrospector, type Kysely } from 'kysely';
import { Migrator, type Migration } from 'kysely/migration';
import { BELOW_COLUMNS, createRollupTables } from './sql/rollups.ts';

/** Where kysely records which migrations ran (own names, so another kysely app in the same schema is no clash). */
const MIGRATION_TABLE = 'gatehouse_migration';
const MIGRATION_LOCK_TABLE = 'gatehouse_migration_lock';

/** A migration failed; the database is as it was before the batch (both databases have transactional DDL). */
export class MigrationError extends Error {
  override readonly name = 'MigrationError';
  readonly migration: string | undefined;
  constructor(migration: string | undefined, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(
      migration === undefined ? `migrating the database failed: ${reason}` : `migration ${migration} failed: ${reason}`,
      { cause },
    );
    this.migration = migration;
  }
}

/**
 * Runs every migration not yet applied, in one transaction. Concurrent starts wait for each other: on PostgreSQL
 * the whole run — kysely's creation of its own tables included, which it does before taking its lock — holds a
 * session advisory lock of the schema on one connection, so two replicas starting at once never both migrate
 * (the second finds nothing left to do). Kysely's migrator reads the catalog of every schema of the database
 * (and `has_schema_privilege` fails on a schema dropped meanwhile): here it sees the store's schema only.
 */
export async function migrateToLatest(db: Kysely<unknown>, kind: 'sqlite' | 'postgres'): Promise<string[]> {
  if (kind === 'sqlite') return runMigrator(db, kind, undefined);
  const schema = await currentSchema(db);
  return db.connection().execute(async (connection) => {
    await sql`select pg_advisory_lock(hashtext(${`gatehouse-migrate:${schema}`}))`.execute(connection);
    try {
      return await runMigrator(withSchemaIntrospection(connection, schema), kind, schema);
    } finally {
      await sql`select pg_advisory_unlock(hashtext(${`gatehouse-migrate:${schema}`}))`.execute(connection);
    }
  });
}

async function runMigrator(db: Kysely<unknown>, kind: 'sqlite' | 'postgres', schema: string | undefined) {
  const all = migrations(kind);
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => all },
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
    // Kysely looks for its tables in every schema unless told which one: with two installations in two schemas
    // of one database, the second would believe the first one's tables were its own.
    migrationTableSchema: schema,
  });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const unknown =
      error instanceof Error ? /previously executed migration (\S+) is missing/.exec(error.message)?.[1] : undefined;
    if (unknown !== undefined) {
      throw new MigrationError(
        undefined,
        new Error(
          `the database was migrated by a newer Gatehouse (migration ${unknown} is unknown to this version); upgrade, or restore a backup taken before the upgrade`,
        ),
      );
    }
    throw new MigrationError(results.find((r) => r.status === 'Error')?.migrationName, error);
  }
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/**
 * `db` whose `introspection` sees one schema: the migrator asks it whether its tables and their schema exist.
 * (Kysely's PostgreSQL introspector lists the tables of every schema, and fails when another installation drops
 * a schema while it reads.) Everything else is `db`'s own, bound to it (its fields are private).
 */
function withSchemaIntrospection(db: Kysely<unknown>, schema: string): Kysely<unknown> {
  const introspection: DatabaseIntrospector = {
    async getSchemas() {
      const { rows } = await sql<{ name: string }>`
        select nspname as name from pg_catalog.pg_namespace where nspname = ${schema}`.execute(db);
      return rows;
    },
    async getTables() {
      const { rows } = await sql<{ name: string }>`
        select c.relname as name from pg_catalog.pg_class c
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where n.nspname = ${schema} and c.relkind in ('r', 'p', 'v', 'f')`.execute(db);
      return rows.map((r) => ({ name: r.name, schema, isView: false, isForeign: false, columns: [] }));
    },
  };
  return new Proxy(db, {
    get(target, property) {
      if (property === 'introspection') return introspection;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

async function currentSchema(db: Kysely<unknown>): Promise<string> {
  const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
  const schema = rows[0]?.schema;
  if (!schema)
    throw new MigrationError(
      undefined,
      new Error('no schema of the search_path exists (create it, or fix the search_path)'),
    );
  return schema;
}

/** The names of all migrations this build knows, oldest first. */
export function migrationNames(): string[] {
  return Object.keys(migrations('sqlite')).sort();
}

function migrations(kind: 'sqlite' | 'postgres'): Record<string, Migration> {
  /**
   * Text compares bytewise on both: SQLite's default (BINARY) does, PostgreSQL's database collation usually does
   * not (en_US sorts "a" before "B"), and lists must come back in the same order from either store.
   */
  const text = kind === 'postgres' ? sql`text collate "C"` : sql`text`;

  return {
    '0001-initial': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('settings')
          .addColumn('key', text, (c) => c.primaryKey())
          .addColumn('value', text, (c) => c.notNull())
          .execute();

        await db.schema
          .createTable('workspaces')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('name', text, (c) => c.notNull())
          .addColumn('environments', text, (c) => c.notNull())
          .addColumn('dev_environment', text, (c) => c.notNull())
          .addColumn('created_at', text, (c) => c.notNull())
          .addUniqueConstraint('workspaces_name_key', ['name'])
          .execute();

        await db.schema
          .createTable('projects')
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('name', text, (c) => c.notNull())
          .addColumn('description', text)
          .addColumn('created_at', text, (c) => c.notNull())
          .addPrimaryKeyConstraint('projects_pkey', ['workspace_id', 'name'])
          .execute();

        await db.schema
          .createTable('collections')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('environment', text, (c) => c.notNull())
          .addColumn('name', text, (c) => c.notNull())
          .addColumn('project', text, (c) => c.notNull())
          .addColumn('target', text, (c) => c.notNull())
          .addColumn('spec', text, (c) => c.notNull())
          .addColumn('revision', 'integer', (c) => c.notNull())
          .addColumn('published_version', 'integer')
          .addColumn('created_at', text, (c) => c.notNull())
          .addColumn('updated_at', text, (c) => c.notNull())
          // Also the index of listCollections (workspace, then environment and name order).
          .addUniqueConstraint('collections_workspace_id_environment_name_key', ['workspace_id', 'environment', 'name'])
          .execute();

        await db.schema
          .createTable('collection_versions')
          .addColumn('collection_id', text, (c) => c.notNull().references('collections.id').onDelete('cascade'))
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('spec', text, (c) => c.notNull())
          .addColumn('published_at', text, (c) => c.notNull())
          .addColumn('published_by', text)
          .addColumn('restored_from', 'integer')
          .addPrimaryKeyConstraint('collection_versions_pkey', ['collection_id', 'version'])
          .execute();

        await db.schema
          .createTable('roles')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('name', text, (c) => c.notNull())
          .addColumn('description', text)
          .addColumn('permissions', text, (c) => c.notNull())
          .addColumn('endpoints', text, (c) => c.notNull())
          .addColumn('created_at', text, (c) => c.notNull())
          .addColumn('updated_at', text, (c) => c.notNull())
          .addUniqueConstraint('roles_workspace_id_name_key', ['workspace_id', 'name'])
          .execute();

        // role_id has no foreign key on purpose: a client whose role was deleted keeps the dangling id (store.ts).
        await db.schema
          .createTable('clients')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('kind', text, (c) => c.notNull())
          .addColumn('name', text, (c) => c.notNull())
          .addColumn('role_id', text, (c) => c.notNull())
          .addColumn('environments', text, (c) => c.notNull())
          .addColumn('projects', text, (c) => c.notNull())
          .addColumn('allowed_ips', text)
          .addColumn('user_id', text)
          .addColumn('org_id', text)
          .addColumn('metadata', text)
          .addColumn('rate_limits', text)
          .addColumn('expires_at', text)
          .addColumn('status', text, (c) => c.notNull())
          .addColumn('operator', 'boolean', (c) => c.notNull())
          .addColumn('email', text)
          .addColumn('created_at', text, (c) => c.notNull())
          .addColumn('updated_at', text, (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('clients_workspace_id_created_at_idx')
          .on('clients')
          .columns(['workspace_id', 'created_at', 'id'])
          .execute();
        await db.schema.createIndex('clients_role_id_idx').on('clients').column('role_id').execute();

        await db.schema
          .createTable('client_keys')
          .addColumn('client_id', text, (c) => c.notNull().references('clients.id').onDelete('cascade'))
          .addColumn('id', text, (c) => c.notNull())
          .addColumn('hash', text, (c) => c.notNull())
          .addColumn('created_at', text, (c) => c.notNull())
          .addColumn('expires_at', text)
          .addPrimaryKeyConstraint('client_keys_pkey', ['client_id', 'id'])
          .addUniqueConstraint('client_keys_hash_key', ['hash'])
          .execute();

        await db.schema
          .createTable('user_roles')
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('name', text, (c) => c.notNull())
          .addColumn('privileges', text, (c) => c.notNull())
          .addColumn('built_in', 'boolean', (c) => c.notNull())
          .addPrimaryKeyConstraint('user_roles_pkey', ['workspace_id', 'name'])
          .execute();

        await db.schema
          .createTable('users')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('email', text, (c) => c.notNull())
          .addColumn('name', text)
          .addColumn('role', text, (c) => c.notNull())
          .addColumn('password_hash', text, (c) => c.notNull())
          .addColumn('created_at', text, (c) => c.notNull())
          .addUniqueConstraint('users_workspace_id_email_key', ['workspace_id', 'email'])
          .execute();

        await db.schema
          .createTable('sessions')
          .addColumn('hash', text, (c) => c.primaryKey())
          .addColumn('user_id', text, (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('created_at', text, (c) => c.notNull())
          .addColumn('expires_at', text, (c) => c.notNull())
          .execute();
        await db.schema.createIndex('sessions_user_id_idx').on('sessions').column('user_id').execute();
        await db.schema.createIndex('sessions_workspace_id_idx').on('sessions').column('workspace_id').execute();
        await db.schema.createIndex('sessions_expires_at_idx').on('sessions').column('expires_at').execute();

        await db.schema
          .createTable('snapshots')
          .addColumn('scope', text, (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('hash', text, (c) => c.notNull())
          .addColumn('body', text, (c) => c.notNull())
          .addColumn('created_at', text, (c) => c.notNull())
          .addPrimaryKeyConstraint('snapshots_pkey', ['scope', 'version'])
          .execute();
      },
    },

    '0002-edge-gateways': {
      async up(db: Kysely<unknown>) {
        // Both unique keys: a name is unique per workspace, and an environment has at most one gateway.
        await db.schema
          .createTable('gateways')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('environment', text, (c) => c.notNull())
          .addColumn('name', text, (c) => c.notNull())
          .addColumn('install_method', text, (c) => c.notNull())
          .addColumn('created_at', text, (c) => c.notNull())
          .addColumn('updated_at', text, (c) => c.notNull())
          .addUniqueConstraint('gateways_workspace_id_name_key', ['workspace_id', 'name'])
          .addUniqueConstraint('gateways_workspace_id_environment_key', ['workspace_id', 'environment'])
          .execute();

        await db.schema
          .createTable('registration_tokens')
          .addColumn('hash', text, (c) => c.primaryKey())
          .addColumn('gateway_id', text, (c) => c.notNull().references('gateways.id').onDelete('cascade'))
          .addColumn('created_at', text, (c) => c.notNull())
          .addColumn('expires_at', text, (c) => c.notNull())
          .addColumn('used_at', text)
          .execute();
        await db.schema
          .createIndex('registration_tokens_gateway_id_idx')
          .on('registration_tokens')
          .column('gateway_id')
          .execute();

        // No foreign key on purpose: a deleted gateway's certificates stay, marked revoked, so that a gateway
        // presenting one is told it was revoked rather than that it is unknown.
        await db.schema
          .createTable('gateway_certificates')
          .addColumn('serial', text, (c) => c.primaryKey())
          .addColumn('gateway_id', text, (c) => c.notNull())
          .addColumn('not_before', text, (c) => c.notNull())
          .addColumn('not_after', text, (c) => c.notNull())
          .addColumn('revoked_at', text)
          .execute();
        await db.schema
          .createIndex('gateway_certificates_gateway_id_idx')
          .on('gateway_certificates')
          .column('gateway_id')
          .execute();

        await db.schema
          .createTable('gateway_instances')
          .addColumn('gateway_id', text, (c) => c.notNull().references('gateways.id').onDelete('cascade'))
          .addColumn('instance_id', text, (c) => c.notNull())
          .addColumn('hostname', text)
          .addColumn('software_version', text, (c) => c.notNull())
          .addColumn('applied_version', 'integer', (c) => c.notNull())
          .addColumn('applied_hash', text)
          .addColumn('nacked_version', 'integer')
          .addColumn('last_error', text)
          .addColumn('connected', 'boolean', (c) => c.notNull())
          .addColumn('first_seen_at', text, (c) => c.notNull())
          .addColumn('last_seen_at', text, (c) => c.notNull())
          .addColumn('last_synced_at', text)
          .addPrimaryKeyConstraint('gateway_instances_pkey', ['gateway_id', 'instance_id'])
          .execute();

        // gateway_id has no foreign key: it may be `cloud`, and counts outlive a deleted gateway until pruned.
        await db.schema
          .createTable('telemetry')
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('gateway_id', text, (c) => c.notNull())
          .addColumn('minute', text, (c) => c.notNull())
          .addColumn('collection', text, (c) => c.notNull())
          .addColumn('endpoint', text, (c) => c.notNull())
          .addColumn('client_id', text, (c) => c.notNull())
          .addColumn('status', 'integer', (c) => c.notNull())
          .addColumn('count', 'integer', (c) => c.notNull())
          .addColumn('duration_ms_sum', 'double precision', (c) => c.notNull())
          .addColumn('duration_ms_max', 'double precision', (c) => c.notNull())
          .addPrimaryKeyConstraint('telemetry_pkey', [
            'workspace_id',
            'gateway_id',
            'minute',
            'collection',
            'endpoint',
            'client_id',
            'status',
          ])
          .execute();
        await db.schema
          .createIndex('telemetry_workspace_id_minute_idx')
          .on('telemetry')
          .columns(['workspace_id', 'minute'])
          .execute();
        await db.schema.createIndex('telemetry_minute_idx').on('telemetry').column('minute').execute();

        await db.schema
          .createTable('security_events')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('gateway_id', text, (c) => c.notNull())
          .addColumn('at', text, (c) => c.notNull())
          .addColumn('kind', text, (c) => c.notNull())
          .addColumn('reason', text, (c) => c.notNull())
          .addColumn('collection', text)
          .addColumn('client_id', text)
          .addColumn('key_label', text)
          .addColumn('ip', text)
          .execute();
        await db.schema
          .createIndex('security_events_workspace_id_at_idx')
          .on('security_events')
          .columns(['workspace_id', 'at'])
          .execute();

        await db.schema
          .createTable('alerts')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('gateway_id', text)
          .addColumn('kind', text, (c) => c.notNull())
          .addColumn('key', text, (c) => c.notNull())
          .addColumn('message', text, (c) => c.notNull())
          .addColumn('details', text)
          .addColumn('raised_at', text, (c) => c.notNull())
          .addColumn('resolved_at', text)
          .addColumn('delivered_at', text)
          .addColumn('delivery_attempts', 'integer', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('alerts_workspace_id_raised_at_idx')
          .on('alerts')
          .columns(['workspace_id', 'raised_at'])
          .execute();
        // One open alert per key, kept by the database too: two raisers racing cannot both open one.
        await db.schema
          .createIndex('alerts_workspace_id_key_open_key')
          .on('alerts')
          .columns(['workspace_id', 'key'])
          .unique()
          .where(sql.ref('resolved_at'), 'is', null)
          .execute();
      },
    },
    '0003-security-events-at': {
      // Security events are deleted past their retention across workspaces (`pruneSecurityEvents`), as telemetry
      // is through telemetry_minute_idx.
      async up(db) {
        await db.schema.createIndex('security_events_at_idx').on('security_events').column('at').execute();
      },
    },
    '0004-console': {
      // The web console: sessions expire after a stretch without requests (last_seen_at; NULL on sessions made
      // before, read as their created_at), and the audit log of every change made through the admin API.
      async up(db) {
        await db.schema.alterTable('sessions').addColumn('last_seen_at', text).execute();

        // workspace_id has no foreign key on purpose: the entry recording a workspace's deletion outlives it.
        await db.schema
          .createTable('audit_log')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('workspace_id', text, (c) => c.notNull())
          .addColumn('at', text, (c) => c.notNull())
          .addColumn('actor_kind', text, (c) => c.notNull())
          .addColumn('actor_id', text, (c) => c.notNull())
          .addColumn('actor_name', text)
          .addColumn('action', text, (c) => c.notNull())
          .addColumn('resource_type', text, (c) => c.notNull())
          .addColumn('resource_id', text)
          .addColumn('before', text)
          .addColumn('after', text)
          .addColumn('request_id', text, (c) => c.notNull())
          .addColumn('ip', text)
          .execute();
        // Pages newest first: (workspace, at, id) is both the order and the cursor.
        await db.schema
          .createIndex('audit_log_workspace_id_at_id_idx')
          .on('audit_log')
          .columns(['workspace_id', 'at', 'id'])
          .execute();
        await db.schema.createIndex('audit_log_at_idx').on('audit_log').column('at').execute();

        // The console's analytics read roll-ups of telemetry (sql/rollups.ts), filled by addTelemetry from now on.
        await createRollupTables(db, text);
      },
    },
    '0007-policies': {
      // Relationship data of resource policies: entities per collection, gone with their collection.
      async up(db) {
        await db.schema
          .createTable('policy_entities')
          .addColumn('collection_id', text, (c) => c.notNull().references('collections.id').onDelete('cascade'))
          .addColumn('entity_type', text, (c) => c.notNull())
          .addColumn('entity_id', text, (c) => c.notNull())
          .addColumn('attrs', text, (c) => c.notNull())
          .addColumn('parents', text, (c) => c.notNull())
          .addColumn('updated_at', text, (c) => c.notNull())
          .addPrimaryKeyConstraint('policy_entities_pkey', ['collection_id', 'entity_type', 'entity_id'])
          .execute();
      },
    },
    '0009-replicas': {
      // High availability: secrets sealed with the operator's key carry the key's id (rotation finds the rows
      // sealed with an older key), and every replica records where edge gateways reach it.
      async up(db) {
        await db.schema.alterTable('settings').addColumn('key_id', text).execute();
        await db.schema
          .createTable('control_replicas')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('bootstrap', text, (c) => c.notNull())
          .addColumn('sync', text, (c) => c.notNull())
          .addColumn('telemetry', text, (c) => c.notNull())
          .addColumn('started_at', text, (c) => c.notNull())
          .addColumn('seen_at', text, (c) => c.notNull())
          .execute();
      },
    },
    '0010-entity-stream': {
      // Relationship data travels to gateways as its own incremental stream (docs/policies.md): every write to a
      // collection's entities takes the collection's next entity version, in the same transaction, and stamps the
      // rows it touches with it; a delete leaves a tombstone, so that "what changed since version N" is one
      // indexed read of the changed rows. `floor`: tombstones up to it were pruned, so a gateway behind it needs
      // the full set.
      async up(db) {
        await db.schema
          .alterTable('policy_entities')
          .addColumn('seq', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema
          .alterTable('policy_entities')
          .addColumn('deleted', 'boolean', (c) => c.notNull().defaultTo(false))
          .execute();
        await db.schema
          .createIndex('policy_entities_collection_id_seq_idx')
          .on('policy_entities')
          .columns(['collection_id', 'seq'])
          .execute();
        await db.schema
          .createTable('policy_entity_sets')
          .addColumn('collection_id', text, (c) => c.primaryKey().references('collections.id').onDelete('cascade'))
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('floor', 'integer', (c) => c.notNull())
          .addColumn('count', 'integer', (c) => c.notNull())
          .execute();
        // Entities written before: version 1 of their collection's set.
        await db.updateTable('policy_entities').set({ seq: 1 }).execute();
        await db
          .insertInto('policy_entity_sets')
          .columns(['collection_id', 'version', 'floor', 'count'])
          .expression((eb) =>
            eb
              .selectFrom('policy_entities')
              .select((s) => [
                'collection_id',
                sql<number>`1`.as('version'),
                sql<number>`0`.as('floor'),
                s.fn.countAll<number>().as('count'),
              ])
              .groupBy('collection_id'),
          )
          .execute();
      },
    },
    '0011-alert-rules': {
      // Alerts routed by rules to webhook destinations of each workspace, with a durable queue of deliveries.
      async up(db) {
        await db.schema
          .createTable('alert_destinations')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('name', text, (c) => c.notNull())
          .addColumn('url', text, (c) => c.notNull())
          .addColumn('secret', text, (c) => c.notNull())
          .addColumn('created_at', text, (c) => c.notNull())
          .addColumn('updated_at', text, (c) => c.notNull())
          .addUniqueConstraint('alert_destinations_workspace_id_name_key', ['workspace_id', 'name'])
          .execute();
        await db.schema
          .createTable('alert_rules')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('name', text, (c) => c.notNull())
          .addColumn('kind', text, (c) => c.notNull())
          .addColumn('gateway_id', text)
          .addColumn('threshold', 'integer')
          .addColumn('destination_ids', text, (c) => c.notNull())
          .addColumn('enabled', 'boolean', (c) => c.notNull())
          .addColumn('created_at', text, (c) => c.notNull())
          .addColumn('updated_at', text, (c) => c.notNull())
          .addUniqueConstraint('alert_rules_workspace_id_name_key', ['workspace_id', 'name'])
          .execute();
        await db.schema
          .createTable('alert_deliveries')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('alert_id', text, (c) => c.notNull().references('alerts.id').onDelete('cascade'))
          .addColumn('destination_id', text, (c) => c.notNull().references('alert_destinations.id').onDelete('cascade'))
          .addColumn('state', text, (c) => c.notNull())
          .addColumn('payload', text, (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull())
          .addColumn('next_attempt_at', text, (c) => c.notNull())
          .addColumn('delivered_at', text)
          .addColumn('last_status', 'integer')
          .addColumn('last_error', text)
          .addColumn('created_at', text, (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('alert_deliveries_due_idx')
          .on('alert_deliveries')
          .columns(['next_attempt_at'])
          .where(sql.ref('delivered_at'), 'is', null)
          .execute();
        await db.schema
          .createIndex('alert_deliveries_alert_id_idx')
          .on('alert_deliveries')
          .column('alert_id')
          .execute();
      },
    },
    '0012-agents': {
      // Agent credentials: traffic is attributed per agent and session (telemetry rows get both in their key,
      // security events carry them), and single derived credentials can be revoked, each row until every
      // credential it matches has expired.
      async up(db) {
        const key = ['workspace_id', 'gateway_id', 'minute', 'collection', 'endpoint', 'client_id'] as const;
        if (kind === 'postgres') {
          await db.schema
            .alterTable('telemetry')
            .addColumn('agent', text, (c) => c.notNull().defaultTo('-'))
            .execute();
          await db.schema
            .alterTable('telemetry')
            .addColumn('session', text, (c) => c.notNull().defaultTo('-'))
            .execute();
          await db.schema.alterTable('telemetry').dropConstraint('telemetry_pkey').execute();
          await db.schema
            .alterTable('telemetry')
            .addPrimaryKeyConstraint('telemetry_pkey', [...key, 'agent', 'session', 'status'])
            .execute();
        } else {
          // SQLite cannot change a primary key: the table is made again and its rows copied.
          await sql`alter table telemetry rename to telemetry_before_agents`.execute(db);
          await db.schema
            .createTable('telemetry')
            .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
            .addColumn('gateway_id', text, (c) => c.notNull())
            .addColumn('minute', text, (c) => c.notNull())
            .addColumn('collection', text, (c) => c.notNull())
            .addColumn('endpoint', text, (c) => c.notNull())
            .addColumn('client_id', text, (c) => c.notNull())
            .addColumn('agent', text, (c) => c.notNull().defaultTo('-'))
            .addColumn('session', text, (c) => c.notNull().defaultTo('-'))
            .addColumn('status', 'integer', (c) => c.notNull())
            .addColumn('count', 'integer', (c) => c.notNull())
            .addColumn('duration_ms_sum', 'double precision', (c) => c.notNull())
            .addColumn('duration_ms_max', 'double precision', (c) => c.notNull())
            .addPrimaryKeyConstraint('telemetry_pkey', [...key, 'agent', 'session', 'status'])
            .execute();
          await sql`insert into telemetry (workspace_id, gateway_id, minute, collection, endpoint, client_id, status, count, duration_ms_sum, duration_ms_max)
            select workspace_id, gateway_id, minute, collection, endpoint, client_id, status, count, duration_ms_sum, duration_ms_max
            from telemetry_before_agents`.execute(db);
          await sql`drop table telemetry_before_agents`.execute(db);
          await db.schema
            .createIndex('telemetry_workspace_id_minute_idx')
            .on('telemetry')
            .columns(['workspace_id', 'minute'])
            .execute();
          await db.schema.createIndex('telemetry_minute_idx').on('telemetry').column('minute').execute();
        }
        await db.schema.alterTable('security_events').addColumn('agent', text).execute();
        await db.schema.alterTable('security_events').addColumn('session', text).execute();

        await db.schema
          .createTable('derived_revocations')
          .addColumn('id', text, (c) => c.primaryKey())
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('client_id', text, (c) => c.notNull().references('clients.id').onDelete('cascade'))
          .addColumn('credential', text)
          .addColumn('agent', text)
          .addColumn('session', text)
          .addColumn('issued_before', text)
          .addColumn('reason', text)
          .addColumn('revoked_at', text, (c) => c.notNull())
          .addColumn('expires_at', text, (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('derived_revocations_workspace_id_expires_at_idx')
          .on('derived_revocations')
          .columns(['workspace_id', 'expires_at'])
          .execute();
      },
    },
    '0013-client-usage': {
      // "Last used" of API clients, from the telemetry gateways report: one row per client that made a request,
      // gone with the client.
      async up(db) {
        await db.schema
          .createTable('client_usage')
          .addColumn('client_id', text, (c) => c.primaryKey().references('clients.id').onDelete('cascade'))
          .addColumn('last_used_at', text, (c) => c.notNull())
          .execute();
      },
    },
    '0014-quota-usage': {
      // Quota usage per calendar period as gateways report it (telemetry): the authoritative count; and a client's
      // own quota.
      async up(db) {
        await db.schema.alterTable('clients').addColumn('quotas', text).execute();
        await db.schema
          .createTable('quota_usage')
          .addColumn('workspace_id', text, (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
          .addColumn('collection', text, (c) => c.notNull())
          .addColumn('scope', text, (c) => c.notNull())
          .addColumn('subject', text, (c) => c.notNull())
          .addColumn('period', text, (c) => c.notNull())
          .addColumn('period_id', text, (c) => c.notNull())
          .addColumn('units', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', text, (c) => c.notNull())
          .addPrimaryKeyConstraint('quota_usage_pkey', [
            'workspace_id',
            'scope',
            'subject',
            'period',
            'period_id',
            'collection',
          ])
          .execute();
      },
    },
    '0015-rollup-totals': {
      // Roll-ups of a workspace's whole traffic per 5 minutes and per minute (sql/rollups.ts), filled from the
      // existing roll-ups by gateway and collection, and by addTelemetry from now on.
      async up(db) {
        await createRollupTables(db, text, '0015-rollup-totals');
        const sums = ['count', 's4xx', 's5xx', 's429', 'duration_ms_sum', ...BELOW_COLUMNS];
        for (const [to, from, keys] of [
          ['telemetry_total_minute', 'telemetry_by_minute', []],
          ['telemetry_total_5m', 'telemetry_by_5m', []],
          ['telemetry_by_gateway_5m', 'telemetry_by_5m', ['gateway_id']],
        ] as const) {
          const group = ['workspace_id', 'bucket', ...keys];
          const columns = [...group, ...sums, 'duration_ms_max'];
          await sql`insert into ${sql.table(to)} (${sql.join(columns.map((c) => sql.ref(c)))})
            select ${sql.join(group.map((c) => sql.ref(c)))}, ${sql.join(sums.map((c) => sql`sum(${sql.ref(c)})`))},
              max(duration_ms_max)
            from ${sql.table(from)} group by ${sql.join(group.map((c) => sql.ref(c)))}`.execute(db);
        }
      },
    },
    '0016-telemetry-batches': {
      // The telemetry batches already stored, so that a batch resent to another replica is not counted twice.
      async up(db) {
        await db.schema
          .createTable('telemetry_batches')
          .addColumn('gateway_id', text, (c) => c.notNull())
          .addColumn('instance_id', text, (c) => c.notNull())
          .addColumn('sequence', 'bigint', (c) => c.notNull())
          .addColumn('received_at', text, (c) => c.notNull())
          .addPrimaryKeyConstraint('telemetry_batches_pkey', ['gateway_id', 'instance_id', 'sequence'])
          .execute();
        await db.schema
          .createIndex('telemetry_batches_received_at')
          .on('telemetry_batches')
          .column('received_at')
          .execute();
      },
    },
  };
}
