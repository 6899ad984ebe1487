/**
 * The store contract against SQLite (a fresh data directory per test) and PostgreSQL (a fresh schema per test,
 * all dropped at the end, so parallel runs never collide). PostgreSQL is `GATEHOUSE_TEST_DATABASE_URL`, by
 * default the local server; when none answers the PostgreSQL suite is skipped with a notice, except under CI
 * (`CI` set), where that is a failure.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { migrationNames } from './migrations.ts';
import { openStore, redactUrl, SQLITE_FILE_NAME, StoreOpenError } from './open.ts';
import { eventually } from '../../testing/eventually.ts';
import { POSTGRES_HOW_TO, probePostgres, TEST_DATABASE_URL } from '../../testing/postgres.ts';
import { storeContract } from './store-contract.ts';

const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-store-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(tmp, `store-${++dirs}`);

storeContract('SQLite', () => openStore({ dataDir: freshDir() }));

describe('openStore', () => {
  it('creates the data directory with mode 0700 and the database file with mode 0600', async () => {
    const dir = join(freshDir(), 'nested');
    const store = await openStore({ dataDir: dir });
    try {
      assert.equal(store.kind, 'sqlite');
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      assert.equal(statSync(join(dir, SQLITE_FILE_NAME)).mode & 0o777, 0o600);
    } finally {
      await store.close();
    }
  });

  it('keeps what was written across a restart and migrates only once', async () => {
    const dir = freshDir();
    const first = await openStore({ dataDir: dir });
    await first.setSetting('installation.id', 'ins_1');
    await first.close();
    const second = await openStore({ dataDir: dir });
    try {
      assert.equal(await second.getSetting('installation.id'), 'ins_1');
    } finally {
      await second.close();
    }
  });

  it('refuses to start on a database that a newer Gatehouse migrated, saying so', async () => {
    const dir = freshDir();
    await (await openStore({ dataDir: dir })).close();
    const db = new DatabaseSync(join(dir, SQLITE_FILE_NAME));
    db.prepare('insert into gatehouse_migration (name, timestamp) values (?, ?)').run(
      '9999-from-the-future',
      new Date().toISOString(),
    );
    db.close();
    await assert.rejects(openStore({ dataDir: dir }), (error: unknown) => {
      assert.ok(error instanceof StoreOpenError);
      assert.match(
        error.message,
        /migrated by a newer Gatehouse \(migration 9999-from-the-future is unknown to this version\)/,
      );
      return true;
    });
  });

  it('opens an in-memory SQLite database for ":memory:"', async () => {
    const store = await openStore({ databaseUrl: ':memory:' });
    try {
      await store.setSetting('a', 'b');
      assert.equal(await store.getSetting('a'), 'b');
    } finally {
      await store.close();
    }
  });

  it('refuses a database URL it does not support, without showing its password', async () => {
    await assert.rejects(openStore({ databaseUrl: 'mysql://gh:s3cret@db.internal/gatehouse' }), (error: unknown) => {
      assert.ok(error instanceof StoreOpenError);
      assert.match(error.message, /unsupported database URL mysql:\/\/gh:\*\*\*@db\.internal\/gatehouse/);
      assert.doesNotMatch(error.message, /s3cret/);
      return true;
    });
  });

  it('says clearly that PostgreSQL cannot be reached, with the password redacted', async () => {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    await assert.rejects(openStore({ databaseUrl: 'postgres://gh:s3cret@127.0.0.1:1/gatehouse' }), (error: unknown) => {
      assert.ok(error instanceof StoreOpenError);
      assert.match(error.message, /^cannot reach PostgreSQL at postgres:\/\/gh:\*\*\*@127\.0\.0\.1:1\/gatehouse: .+/);
      assert.doesNotMatch(error.message, /s3cret/);
      return true;
    });
  });

  it('redacts the password of a URL in the authority and in a password parameter', () => {
    assert.equal(
      redactUrl('postgres://gh:p%40ss@db:5432/gh?sslmode=require'),
      'postgres://gh:***@db:5432/gh?sslmode=require',
    );
    assert.equal(redactUrl('postgresql://db/gh?user=gh&password=hunter2'), 'postgresql://db/gh?user=gh&password=***');
    assert.equal(redactUrl('postgres://db/gh'), 'postgres://db/gh');
  });
});

// ── PostgreSQL ──────────────────────────────────────────────────────────────────────────────────────────────────

const pgUrl = TEST_DATABASE_URL;
// Retries with back-off (up to 30 s) before declaring PostgreSQL absent: a busy machine is slow to accept.
const unreachable = await probePostgres(pgUrl);

if (unreachable === undefined) {
  const prefix = `gh_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const schemas: string[] = [];
  const admin = new pg.Client({ connectionString: pgUrl });
  await admin.connect();
  after(async () => {
    for (const schema of schemas) await admin.query(`drop schema if exists "${schema}" cascade`);
    await admin.end();
  });

  /** A new empty schema and a URL whose connections use it. */
  async function freshSchema(): Promise<string> {
    const schema = `${prefix}_${schemas.length}`;
    schemas.push(schema);
    await admin.query(`create schema "${schema}"`);
    const url = new URL(pgUrl);
    url.searchParams.set('options', `-c search_path=${schema}`);
    return url.toString();
  }

  storeContract('PostgreSQL', async () => openStore({ databaseUrl: await freshSchema() }));

  describe('openStore on PostgreSQL', () => {
    it('migrates a schema once when two control planes start at the same time', async () => {
      const url = await freshSchema();
      const [a, b] = await Promise.all([openStore({ databaseUrl: url }), openStore({ databaseUrl: url })]);
      try {
        assert.equal(a.kind, 'postgres');
        await a.setSetting('k', 'v');
        assert.equal(await b.getSetting('k'), 'v');
        const { rows } = await admin.query(`select name from "${schemas.at(-1)}".gatehouse_migration order by name`);
        assert.deepEqual(
          rows.map((r: { name: string }) => r.name),
          migrationNames(),
        );
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    it('migrates once while other installations create and drop their schemas (kysely reads this schema only)', async () => {
      const url = await freshSchema();
      // Another installation's schemas come and go meanwhile: kysely's own introspection of every schema fails
      // with "schema … does not exist" when one is dropped while it reads the catalog.
      let churning = true;
      const churn = (async () => {
        const client = new pg.Client({ connectionString: pgUrl });
        await client.connect();
        for (let i = 0; churning; i++) {
          const name = `${prefix}_churn_${i}`;
          // Separate statements, each committed: the schema is visible to the migrator between them.
          await client.query(`create schema "${name}"`);
          await client.query(`create table "${name}".t (a int)`);
          await client.query(`drop schema "${name}" cascade`);
        }
        await client.end();
      })();
      try {
        const stores = await Promise.all([1, 2, 3, 4].map(() => openStore({ databaseUrl: url })));
        await Promise.all(stores.map((s) => s.close()));
        const { rows } = await admin.query(`select name from "${schemas.at(-1)}".gatehouse_migration order by name`);
        assert.deepEqual(
          rows.map((r: { name: string }) => r.name),
          migrationNames(),
        );
      } finally {
        churning = false;
        await churn;
      }
    });

    it('serializes the transactions of two stores sharing one database (two replicas)', async () => {
      const url = await freshSchema();
      const [a, b] = await Promise.all([openStore({ databaseUrl: url }), openStore({ databaseUrl: url })]);
      try {
        await a.setSetting('counter', '0');
        const bump = (store: typeof a) =>
          store.transaction(async (tx) => {
            const n = Number(await tx.getSetting('counter'));
            // Widens the window between read and write (the scenario, not a wait): correct serialization passes
            // whatever the timing.
            await new Promise((resolve) => setTimeout(resolve, 5));
            await tx.setSetting('counter', String(n + 1));
          });
        await Promise.all([bump(a), bump(b), bump(a), bump(b)]);
        assert.equal(await a.getSetting('counter'), '4');
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    it("tells a replica about another replica's changes, not about its own, and not another schema's", async () => {
      const url = await freshSchema();
      const other = await openStore({ databaseUrl: await freshSchema() });
      const [a, b] = await Promise.all([openStore({ databaseUrl: url }), openStore({ databaseUrl: url })]);
      const heardByA: string[] = [];
      const heardByB: string[] = [];
      try {
        const stopA = await a.onRemoteChange((ws) => heardByA.push(ws));
        await b.onRemoteChange((ws) => heardByB.push(ws));
        await b.notifyChange('wsp_from_b');
        await a.notifyChange('wsp_from_a');
        await other.notifyChange('wsp_other_schema');
        // PostgreSQL delivers notifications in commit order: once each replica heard the other's marker, sent last,
        // anything it should not have heard (its own, the other schema's) would have arrived before it.
        await b.notifyChange('marker_b');
        await a.notifyChange('marker_a');
        await eventually(
          () => heardByA.includes('marker_b') && heardByB.includes('marker_a'),
          10_000,
          'the markers heard',
        );
        assert.deepEqual(heardByA, ['wsp_from_b', 'marker_b']);
        assert.deepEqual(heardByB, ['wsp_from_a', 'marker_a']);
        await stopA();
        // A new listener of A hears what comes next; the stopped one must not.
        const heardLater: string[] = [];
        await a.onRemoteChange((ws) => heardLater.push(ws));
        await b.notifyChange('after_stop');
        await eventually(() => heardLater.includes('after_stop'), 10_000, 'the new listener heard after_stop');
        assert.deepEqual(heardByA, ['wsp_from_b', 'marker_b']);
      } finally {
        await Promise.all([a.close(), b.close(), other.close()]);
      }
    });
  });
} else if (process.env.CI) {
  it('runs the store contract on PostgreSQL', () => {
    assert.fail(
      `PostgreSQL not reachable at ${redactUrl(pgUrl)} (${unreachable}); under CI the PostgreSQL store suite must run: ${POSTGRES_HOW_TO}`,
    );
  });
} else {
  it('runs the store contract on PostgreSQL', (t) => {
    t.skip(`PostgreSQL not reachable at ${redactUrl(pgUrl)} (${unreachable}) — skipped; ${POSTGRES_HOW_TO}`);
  });
}
