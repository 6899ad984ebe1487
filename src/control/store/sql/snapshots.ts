/** Compiled configuration snapshots in SQL: versions per scope, the newest kept. */
import type { Selectable } from 'kysely';
import type { SnapshotOps, SnapshotRecord } from '../store.ts';
import type { Database } from '../tables.ts';
import type { Run } from './statement-runner.ts';

export function snapshotQueries(run: Run): SnapshotOps {
  return {
    async getLatestSnapshot(scope: string): Promise<SnapshotRecord | undefined> {
      const row = await run((db) =>
        db
          .selectFrom('snapshots')
          .selectAll()
          .where('scope', '=', scope)
          .orderBy('version', 'desc')
          .limit(1)
          .executeTakeFirst(),
      );
      return row && toSnapshot(row);
    },

    async latestSnapshotVersions(scopes: readonly string[]): Promise<Map<string, number>> {
      if (scopes.length === 0) return new Map();
      const rows = await run((db) =>
        db
          .selectFrom('snapshots')
          .select(['scope', (eb) => eb.fn.max('version').as('version')])
          .where('scope', 'in', scopes)
          .groupBy('scope')
          .execute(),
      );
      return new Map(rows.map((r) => [r.scope, Number(r.version)]));
    },

    async getSnapshot(scope: string, version: number): Promise<SnapshotRecord | undefined> {
      const row = await run((db) =>
        db
          .selectFrom('snapshots')
          .selectAll()
          .where('scope', '=', scope)
          .where('version', '=', version)
          .executeTakeFirst(),
      );
      return row && toSnapshot(row);
    },

    async insertSnapshot(s: SnapshotRecord): Promise<void> {
      await run((db) =>
        db
          .insertInto('snapshots')
          .values({ scope: s.scope, version: s.version, hash: s.hash, body: s.body, created_at: s.createdAt })
          .execute(),
      );
    },

    async pruneSnapshots(scope: string, keep: number): Promise<number> {
      const result = await run((db) =>
        db
          .deleteFrom('snapshots')
          .where('scope', '=', scope)
          .where(
            'version',
            'not in',
            db
              .selectFrom('snapshots')
              .select('version')
              .where('scope', '=', scope)
              .orderBy('version', 'desc')
              .limit(Math.max(0, Math.trunc(keep))),
          )
          .executeTakeFirst(),
      );
      return Number(result.numDeletedRows);
    },
  };
}

function toSnapshot(r: Selectable<Database['snapshots']>): SnapshotRecord {
  return { scope: r.scope, version: r.version, hash: r.hash, body: r.body, createdAt: r.created_at };
}
