/**
 * An admin API server on a loopback port over a real store (SQLite in memory, or a fresh PostgreSQL schema), with
 * a clock the test moves, a workspace `acme` (DEV, PROD), its admin API client's token, and a console user
 * `ada@example.com` (role admin, password `correct horse battery`). For tests of the admin API through real
 * sockets without starting the whole control plane.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import pino from 'pino';
import { newId, nowIso } from '../control/ids.ts';
import { hashPassword } from '../control/passwords.ts';
import type { ControlContext, SessionSettings } from '../control/api/operation.ts';
import { OPERATIONS } from '../control/api/operations.ts';
import { createAdminServer } from '../control/api/server.ts';
import { openStore } from '../control/store/open.ts';
import type { Store, UserRecord, WorkspaceRecord } from '../control/store/store.ts';
import { createAdminClient, createWorkspace } from '../control/workspaces.ts';
import { TEST_DATABASE_URL } from './postgres.ts';

export const USER_PASSWORD = 'correct horse battery';

export interface AdminPlane {
  readonly base: string;
  /** What the server's handlers reach (to serve the same plane on another listener). */
  readonly context: ControlContext;
  readonly store: Store;
  readonly workspace: WorkspaceRecord;
  readonly user: UserRecord;
  /** The workspace's admin API client token. */
  readonly token: string;
  /** The clock the server reads; move it with `advance`. */
  now(): number;
  advance(ms: number): void;
  close(): Promise<void>;
}

export const T0 = Date.parse('2026-03-01T10:00:00.000Z');

/** A fresh PostgreSQL schema and a URL whose connections use it; `drop()` removes it. */
export async function freshPostgresSchema(): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = `gh_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`create schema "${schema}"`);
  const url = new URL(TEST_DATABASE_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    async drop() {
      await admin.query(`drop schema if exists "${schema}" cascade`);
      await admin.end();
    },
  };
}

export async function startAdminPlane(
  options: {
    database?: 'sqlite' | 'postgres';
    sessions?: SessionSettings;
    /** The console's built files (default: the package's console/dist). */
    consoleDir?: string;
    /** The control plane's version (default 0.0.0-test). */
    softwareVersion?: string;
  } = {},
): Promise<AdminPlane> {
  const pgSchema = options.database === 'postgres' ? await freshPostgresSchema() : undefined;
  const store = await openStore({ databaseUrl: pgSchema?.url ?? ':memory:' });
  let clock = T0;
  const workspace = await store.transaction((tx) =>
    createWorkspace(
      tx,
      { name: 'acme', environments: ['DEV', 'PROD'], devEnvironment: 'DEV', projects: ['payments'] },
      clock,
    ),
  );
  const { token } = await store.transaction((tx) => createAdminClient(tx, workspace, { name: 'admin' }, clock));
  const user: UserRecord = {
    id: newId('usr'),
    workspaceId: workspace.id,
    email: 'ada@example.com',
    name: 'Ada',
    role: 'admin',
    passwordHash: await hashPassword(USER_PASSWORD),
    createdAt: nowIso(clock),
  };
  await store.insertUser(user);
  const plane: ControlContext = {
    edge: {
      caPin: 'sha256:' + '0'.repeat(64),
      endpoints: { bootstrap: 'https://127.0.0.1:1', sync: '127.0.0.1:1', telemetry: '127.0.0.1:1', serverName: 'x' },
      softwareVersion: options.softwareVersion ?? '0.0.0-test',
      disconnectGateway: () => {},
    },
    store,
    logger: pino({ level: 'silent' }),
    now: () => clock,
    cloudUrl: 'http://127.0.0.1:1',
    changed: async () => {},
    entitiesChanged: async () => {},
    ...(options.sessions ? { sessions: options.sessions } : {}),
  };
  const server: Server = createAdminServer({
    plane,
    operations: OPERATIONS,
    checkResponses: true,
    ...(options.consoleDir !== undefined ? { consoleDir: options.consoleDir } : {}),
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    context: plane,
    store,
    workspace,
    user,
    token,
    now: () => clock,
    advance(ms) {
      clock += ms;
    },
    async close() {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      await store.close();
      await pgSchema?.drop();
    },
  };
}
