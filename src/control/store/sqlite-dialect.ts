/**
 * A kysely dialect for Node's built-in `node:sqlite` (`DatabaseSync`).
 *
 * Hand-written because kysely's own `SqliteDialect` targets better-sqlite3 and no maintained dialect for
 * `node:sqlite` exists. The two APIs differ in small ways: better-sqlite3 takes parameters as one array and tells
 * through `stmt.reader` whether a statement returns rows; `node:sqlite` takes them spread and has no `reader`, so
 * a statement returns rows when it has result columns (`stmt.columns()`, which also covers `… RETURNING`).
 * Everything else (query compiler, introspector, savepoints, the one-connection mutex that queues concurrent
 * transactions) is kysely's own SQLite code.
 */
import { closeSync, openSync } from 'node:fs';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import {
  CompiledQuery,
  SqliteAdapter,
  SqliteDriver,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type SqliteDatabase,
  type SqliteStatement,
} from 'kysely';

export interface NodeSqliteOptions {
  /** A file path, or `:memory:`. */
  filename: string;
  /** How long a write waits for another process's lock on the same file before failing, in ms. Default 5000. */
  busyTimeoutMs?: number;
}

/** The one-connection `node:sqlite` dialect; the database opens (and the file is created) on the first query. */
export class NodeSqliteDialect implements Dialect {
  readonly #options: NodeSqliteOptions;

  constructor(options: NodeSqliteOptions) {
    this.#options = options;
  }

  createDriver(): Driver {
    const options = this.#options;
    return new NodeSqliteDriver({ database: async () => openDatabase(options) });
  }

  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new NodeSqliteAdapter();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
}

/**
 * `BEGIN IMMEDIATE` instead of kysely's deferred `BEGIN`: a transaction takes the write lock when it starts, so
 * when another process holds the file, it waits out `busy_timeout` instead of failing midway with SQLITE_BUSY when
 * a read turns into a write.
 */
class NodeSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

/** SQLite's DDL is transactional: let kysely's Migrator run each migration batch in a transaction (all or none). */
class NodeSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

function openDatabase(options: NodeSqliteOptions): SqliteDatabase {
  const { filename } = options;
  if (filename !== ':memory:') createPrivateFile(filename);
  const db = new DatabaseSync(filename, { enableForeignKeyConstraints: true });
  db.exec(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
  db.exec('PRAGMA foreign_keys = ON');
  if (filename !== ':memory:') db.exec('PRAGMA journal_mode = WAL');
  // WAL is durable across application crashes with synchronous=NORMAL; only a power loss can lose the last commits.
  db.exec('PRAGMA synchronous = NORMAL');
  return adapt(db);
}

/** Creates the file with mode 0600 unless it exists; SQLite gives its -wal and -shm files the same mode. */
function createPrivateFile(filename: string): void {
  try {
    closeSync(openSync(filename, 'wx', 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/** At most this many prepared statements are kept; the store issues a few dozen distinct queries. */
const STATEMENT_CACHE_SIZE = 256;

/** better-sqlite3's shape, which kysely's SqliteDriver calls, over a `node:sqlite` database. */
function adapt(db: DatabaseSync): SqliteDatabase {
  const cache = new Map<string, StatementSync>();

  function prepare(sql: string): SqliteStatement {
    let stmt = cache.get(sql);
    if (stmt === undefined) {
      stmt = db.prepare(sql);
      if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
      cache.set(sql, stmt);
    }
    const statement = stmt;
    return {
      reader: statement.columns().length > 0,
      all: (parameters) => statement.all(...bindable(parameters)),
      run: (parameters) => statement.run(...bindable(parameters)),
      iterate: (parameters) => statement.iterate(...bindable(parameters)),
    };
  }

  return {
    prepare,
    close() {
      cache.clear();
      if (db.isOpen) db.close();
    },
  };
}

type SqliteValue = null | number | bigint | string | NodeJS.ArrayBufferView;

/** node:sqlite binds booleans as 1/0 but refuses `undefined`; kysely leaves neither in a compiled query normally. */
function bindable(parameters: ReadonlyArray<unknown>): SqliteValue[] {
  return parameters.map((value) => (value === undefined ? null : value)) as SqliteValue[];
}
