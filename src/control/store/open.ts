/**
 * Opening the control plane's store: PostgreSQL when a `postgres://` URL is given, otherwise SQLite in the data
 * directory. Either way the schema is migrated before the store is returned. See docs/storage.md.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { redactUrl } from '../../config/redact-url.ts';
import type { KeyRing } from '../secrets/key-ring.ts';
import { migrateToLatest } from './migrations.ts';
import { NodeSqliteDialect } from './sqlite-dialect.ts';
import { SqlStore } from './sql-store.ts';
import type { Store } from './store.ts';
import type { Database } from './tables.ts';

export interface OpenStoreOptions {
  /**
   * `postgres://…` or `postgresql://…` selects PostgreSQL (usually from `DATABASE_URL`). A schema other than
   * `public` is chosen in the URL: `?options=-c%20search_path%3Dgatehouse`. Unset or empty: SQLite. `:memory:`:
   * an in-memory SQLite database (tests).
   */
  databaseUrl?: string;
  /** The directory of the SQLite file `gatehouse.db`, created with mode 0700 if missing. Default `data`. */
  dataDir?: string;
  /** Seals secret settings (the CA key, signing keys) at rest; without one they are stored as given. */
  keyRing?: KeyRing;
}

/** The store could not be opened: PostgreSQL unreachable, the SQLite file unusable, or a migration failed. */
export class StoreOpenError extends Error {
  override readonly name = 'StoreOpenError';
}

export const DEFAULT_DATA_DIR = 'data';
export const SQLITE_FILE_NAME = 'gatehouse.db';

/** Opens (and migrates) the store the options point at. Throws `StoreOpenError` with the URL's password redacted. */
export async function openStore(options: OpenStoreOptions = {}): Promise<SqlStore> {
  const url = options.databaseUrl?.trim() ?? '';
  if (isPostgresUrl(url)) return openPostgres(url, options.keyRing);
  if (url !== '' && url !== ':memory:') {
    throw new StoreOpenError(
      `unsupported database URL ${redactUrl(url)}: use postgres://… or postgresql://…, or leave it unset for SQLite`,
    );
  }
  const dataDir = options.dataDir ?? DEFAULT_DATA_DIR;
  return openSqlite(url === ':memory:' || dataDir === ':memory:' ? ':memory:' : dataDir, options.keyRing);
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

async function openSqlite(dir: string, ring: KeyRing | undefined): Promise<SqlStore> {
  let filename = ':memory:';
  if (dir !== ':memory:') {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new StoreOpenError(`cannot create the data directory ${dir}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    filename = join(dir, SQLITE_FILE_NAME);
  }
  const db = new Kysely<Database>({ dialect: new NodeSqliteDialect({ filename }) });
  try {
    await sql`select 1`.execute(db);
  } catch (error) {
    await db.destroy().catch(() => {});
    throw new StoreOpenError(`cannot open the SQLite database ${filename}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  await migrate(db, 'sqlite', filename);
  return new SqlStore(db, 'sqlite', undefined, ring);
}

async function openPostgres(url: string, ring: KeyRing | undefined): Promise<SqlStore> {
  const where = redactUrl(url);
  const pool = new pg.Pool({ connectionString: url, connectionTimeoutMillis: 10_000 });
  // An idle connection that breaks (server restart, network) is dropped from the pool and replaced on next use;
  // without a listener, the pool's 'error' event would end the process.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (error) {
    await db.destroy().catch(() => {});
    throw new StoreOpenError(`cannot reach PostgreSQL at ${where}: ${scrub(error, url)}`, { cause: error });
  }
  await migrate(db, 'postgres', where);
  const listen = async () => {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
    await client.connect();
    return client;
  };
  return new SqlStore(db, 'postgres', listen, ring);
}

async function migrate(db: Kysely<Database>, kind: Store['kind'], where: string): Promise<void> {
  try {
    await migrateToLatest(db as Kysely<unknown>, kind);
  } catch (error) {
    await db.destroy().catch(() => {});
    throw new StoreOpenError(`cannot migrate the database at ${where}: ${(error as Error).message}`, { cause: error });
  }
}

/** An error's message without the URL's password, should a driver ever echo it. */
function scrub(error: unknown, url: string): string {
  const message =
    error instanceof Error ? error.message || (error as NodeJS.ErrnoException).code || error.name : String(error);
  let password = '';
  try {
    password = decodeURIComponent(new URL(url).password);
  } catch {
    // no password to hide
  }
  return password === '' ? message : message.split(password).join('***');
}

export { redactUrl };
