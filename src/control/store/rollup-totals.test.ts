/**
 * Migration 0015-rollup-totals on an installation that already has telemetry: the new roll-ups (the workspace's
 * whole traffic per minute and per 5 minutes, per gateway per 5 minutes) are filled from the existing ones, so the
 * analytics read the same totals before and after the upgrade — on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { freshPostgresSchema } from '../../testing/admin-plane.ts';
import { createWorkspace } from '../workspaces.ts';
import { migrationNames } from './migrations.ts';
import { openStore } from './open.ts';
import type { Store, TelemetryRecord } from './store.ts';

const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-rollup-totals-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const TABLES = ['telemetry_total_minute', 'telemetry_total_5m', 'telemetry_by_gateway_5m'];
/** The migrations from 0015-rollup-totals on, with the tables each creates (rewound newest first). */
const LATER_TABLES: Record<string, string[]> = {
  '0015-rollup-totals': TABLES,
  '0016-telemetry-batches': ['telemetry_batches'],
};

for (const database of ['sqlite', 'postgres'] as const) {
  describe(`migration 0015-rollup-totals (${database})`, () => {
    it('fills the new roll-ups from the existing ones', async () => {
      const pg = database === 'postgres' ? await freshPostgresSchema() : undefined;
      const url = pg?.url;
      const open = () => (url ? openStore({ databaseUrl: url }) : openStore({ dataDir: join(tmp, database) }));
      try {
        let store = await open();
        const ws = await store.transaction((tx) =>
          createWorkspace(tx, { name: 'acme', environments: ['DEV'], devEnvironment: 'DEV', projects: ['p'] }, 0),
        );
        const rows: TelemetryRecord[] = [];
        for (let m = 0; m < 12; m++)
          for (const gatewayId of ['cloud', 'gw_a'])
            for (const collection of ['c1', 'c2'])
              rows.push({
                workspaceId: ws.id,
                gatewayId,
                minute: new Date(Date.parse('2026-03-01T10:00:00.000Z') + m * 60_000).toISOString(),
                collection,
                endpoint: 'GET /x',
                clientId: 'cli_1',
                status: m % 4 === 0 ? 500 : 200,
                count: m + 1,
                durationMsSum: (m + 1) * 7,
                durationMsMax: m + 3,
              });
        await store.addTelemetry(rows);
        const filter = { from: '2026-03-01T10:00:00.000Z', to: '2026-03-01T10:15:00.000Z' };
        const read = async (s: Store) => ({
          minute: await s.analyticsByMinute(ws.id, filter, undefined, 1),
          five: await s.analyticsByMinute(ws.id, filter, undefined, 5),
          gateways: await s.analyticsByMinute(ws.id, filter, { dimension: 'gateway', values: ['cloud', 'gw_a'] }, 5),
        });
        const expected = await read(store);
        assert.equal(expected.minute.length, 12);
        assert.equal(expected.gateways.length, 3 * 2);
        // Back to an installation before it: its tables and those of every later migration gone, their runs
        // forgotten (the migrator refuses a gap before a migration that ran, so everything after it goes too).
        assert.deepEqual(
          migrationNames().slice(migrationNames().indexOf('0015-rollup-totals')),
          Object.keys(LATER_TABLES),
          'this test must know the tables of every migration after the one it rewinds',
        );
        await store.close();
        await rewind(url, join(tmp, database, 'gatehouse.db'));
        store = await open(); // migrates it again: creates and fills the tables
        try {
          assert.deepEqual(await read(store), expected);
        } finally {
          await store.close();
        }
      } finally {
        await pg?.drop();
      }
    });
  });
}

/** Drops the tables of 0015-rollup-totals and later and their records, as on a database migrated up to 0014. */
async function rewind(pgUrl: string | undefined, sqliteFile: string): Promise<void> {
  const statements = Object.entries(LATER_TABLES)
    .reverse()
    .flatMap(([name, tables]) => [
      ...tables.map((t) => `DROP TABLE ${t}`),
      `DELETE FROM gatehouse_migration WHERE name = '${name}'`,
    ]);
  if (pgUrl) {
    const pg = await import('pg');
    const client = new pg.default.Client({ connectionString: pgUrl });
    await client.connect();
    try {
      for (const s of statements) await client.query(s);
    } finally {
      await client.end();
    }
    return;
  }
  const { DatabaseSync } = await import('node:sqlite');
  const db = new DatabaseSync(sqliteFile);
  try {
    for (const s of statements) db.exec(s);
  } finally {
    db.close();
  }
}
