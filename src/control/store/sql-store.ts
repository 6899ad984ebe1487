/**
 * The `Store` over kysely: one implementation for SQLite and PostgreSQL. The SQL that differs between the two is
 * kysely's business; what differs in behaviour is handled so that both pass the same contract suite. This file
 * holds the connection and transaction machinery; the reads and writes of each resource live in `sql/` (one module
 * per resource, each given the one `Run` of `sql/statement-runner.ts`):
 *
 * - Transactions are serialized on both. SQLite has one connection (kysely queues everything behind an open
 *   transaction); on PostgreSQL each transaction first takes a transaction-scoped advisory lock, so transactions
 *   of every control-plane replica sharing the database run one after another. Control-plane writes are few; this
 *   buys the same simple semantics on both backends and no serialization-failure retries.
 * - A failed statement ends its transaction on both (`sql/statement-runner.ts`).
 * - Unique violations become `StoreConflictError` with a readable constraint name (`sql/conflicts.ts`).
 * - Optional fields are NULL in the table and absent from records (`sql/rows.ts`).
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
  type UnknownRow,
} from 'kysely';
import type { KeyRing } from '../secrets/key-ring.ts';
import type { Store, StoreOps } from './store.ts';
import type { Database } from './tables.ts';
import { alertQueries } from './sql/alerts.ts';
import { analyticsQueries } from './sql/analytics.ts';
import { auditQueries } from './sql/audit.ts';
import { clientQueries } from './sql/clients.ts';
import { collectionQueries } from './sql/collections.ts';
import { entityQueries } from './sql/entities.ts';
import { gatewayQueries } from './sql/gateways.ts';
import { roleQueries } from './sql/roles.ts';
import { replicaQueries } from './sql/replicas.ts';
import { isSecretSetting, settingQueries } from './sql/settings.ts';
import { revocationQueries } from './sql/revocations.ts';
import { snapshotQueries } from './sql/snapshots.ts';
import { StatementRunner, type Run } from './sql/statement-runner.ts';
import { telemetryQueries } from './sql/telemetry.ts';
import { quotaUsageQueries } from './sql/quota-usage.ts';
import { userQueries } from './sql/users.ts';
import { workspaceQueries } from './sql/workspaces.ts';

type Kind = Store['kind'];

/** Set while a `transaction()` callback runs, to catch use of the store itself (instead of `tx`) inside it. */
const openTransaction = new AsyncLocalStorage<{ open: boolean }>();

/** Every read and write, each resource's from its module, all running their statements through `run`. */
function sqlOps(run: Run, ring: KeyRing | undefined): StoreOps {
  return {
    ...settingQueries(run, ring),
    ...replicaQueries(run),
    ...workspaceQueries(run),
    ...collectionQueries(run),
    ...entityQueries(run),
    ...revocationQueries(run),
    ...roleQueries(run),
    ...clientQueries(run),
    ...userQueries(run),
    ...gatewayQueries(run),
    ...telemetryQueries(run),
    ...alertQueries(run, ring),
    ...quotaUsageQueries(run),
    ...auditQueries(run),
    ...analyticsQueries(run),
    ...snapshotQueries(run),
  };
}

/** A base class whose instances carry the given reads and writes as their own methods. */
const WithOps = class {
  constructor(ops: StoreOps) {
    Object.assign(this, ops);
  }
} as new (ops: StoreOps) => StoreOps;

export class SqlStore extends WithOps implements Store {
  readonly kind: Kind;
  readonly #db: Kysely<Database>;
  /** PostgreSQL: how to open the dedicated LISTEN connection. */
  readonly #listenConnection: (() => Promise<ListenConnection>) | undefined;
  /** Tags this process's notifications, so it ignores its own. */
  readonly #replica = randomUUID();
  readonly #listeners = new Set<() => Promise<void>>();
  readonly #ring: KeyRing | undefined;

  /**
   * `db` is owned by the store from now on: `close()` destroys it. Its schema must be migrated (`migrateToLatest`).
   * `listenConnection` (PostgreSQL) opens a dedicated connection for LISTEN. `ring` seals secret settings.
   */
  constructor(db: Kysely<Database>, kind: Kind, listenConnection?: () => Promise<ListenConnection>, ring?: KeyRing) {
    super(sqlOps(new StatementRunner(db.withPlugin(new OutsideTransactionGuard()), kind, false).run, ring));
    this.#db = db;
    this.kind = kind;
    this.#listenConnection = listenConnection;
    this.#ring = ring;
  }

  /**
   * Seals every secret setting again with the key ring's active key: those sealed with an older key and those
   * stored before encryption at rest (plaintext). One transaction; returns how many were rewritten.
   */
  async resealSecrets(): Promise<number> {
    const ring = this.#ring;
    if (!ring) throw new Error('the store has no encryption key ring to seal with');
    const rows = await this.#db.selectFrom('settings').select(['key', 'key_id']).execute();
    const stale = rows.filter((r) => isSecretSetting(r.key) && r.key_id !== ring.activeKid).map((r) => r.key);
    // Alert destinations' signing secrets: sealed with another key, or stored before encryption at rest.
    const destinations = (
      await this.#db.selectFrom('alert_destinations').select(['id', 'workspace_id', 'secret']).execute()
    ).filter((d) => ring.kidOf(d.secret) !== ring.activeKid);
    return this.transaction(async (tx) => {
      let n = 0;
      for (const key of stale) {
        const value = await tx.getSetting(key); // opens it with whichever key of the ring sealed it
        if (value === undefined) continue;
        await tx.setSetting(key, value);
        n++;
      }
      for (const row of destinations) {
        const d = await tx.getAlertDestination(row.workspace_id, { id: row.id }); // opened like a setting
        if (d === undefined) continue;
        await tx.updateAlertDestination(d); // sealed again with the active key
        n++;
      }
      return n;
    });
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
    return `gatehouse_${createHash('sha256')
      .update(rows[0]?.schema ?? 'public')
      .digest('hex')
      .slice(0, 16)}`;
  }

  async transaction<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    if (openTransaction.getStore()?.open) throw new Error('store transactions do not nest: use the tx you were given');
    return this.#db.transaction().execute(async (trx) => {
      if (this.kind === 'postgres') {
        // One lock per schema: serializes the transactions of every replica that shares this database and schema.
        await sql`select pg_advisory_xact_lock(hashtext('gatehouse:' || current_schema()))`.execute(trx);
      }
      const runner = new StatementRunner(trx, this.kind, true);
      const context = { open: true };
      try {
        const result = await openTransaction.run(context, () => fn(sqlOps(runner.run, this.#ring)));
        runner.settle();
        return result;
      } finally {
        context.open = false;
        runner.end();
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
