/**
 * Roll-ups of the telemetry table for the console's analytics, kept up to date by `addTelemetry` (same batch) and
 * pruned with it. The raw table has a row per minute, gateway, collection, endpoint, client and status — close to
 * one row per request on a busy installation — so the analytics page reads these smaller tables instead:
 *
 * | table | key | answers |
 * |---|---|---|
 * | telemetry_by_hour, _5m, _minute | hour, 5 minutes, minute; gateway, collection | series overall or by gateway or collection |
 * | telemetry_by_client_hour, _client | hour, 5 minutes; client | series by client (5-minute buckets and up), top clients |
 * | telemetry_by_endpoint_hour, _endpoint | hour, 5 minutes; collection, endpoint | series by endpoint (5 minutes and up) |
 * | telemetry_refused | hour, status, collection, endpoint | top refused requests (status 400 and above) |
 *
 * Each row holds the same measures: requests, 4xx, 5xx and 429 counts, the duration sum and maximum,
 * and the cumulative latency histogram (`below_<i>`: requests in incoming rows whose mean was under the i-th
 * bound), which adds up across rows exactly.
 */
import { sql, type CreateTableBuilder, type Kysely } from 'kysely';
import type { TelemetryRecord } from '../store.ts';
import type { Database } from '../tables.ts';
import type { Run } from './statement-runner.ts';

/** Upper bounds (ms, exclusive) of the latency histogram's buckets; a last bucket holds the rest. */
export const LATENCY_BOUNDS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000] as const;
export const BELOW_COLUMNS = LATENCY_BOUNDS_MS.map((_b, i) => `below_${i}`);

export type RollupTable =
  | 'telemetry_total_5m'
  | 'telemetry_by_gateway_5m'
  | 'telemetry_total_minute'
  | 'telemetry_by_hour'
  | 'telemetry_by_5m'
  | 'telemetry_by_minute'
  | 'telemetry_by_client_hour'
  | 'telemetry_by_client'
  | 'telemetry_by_endpoint_hour'
  | 'telemetry_by_endpoint'
  | 'telemetry_refused';

export interface RollupDef {
  readonly table: RollupTable;
  /** Bucket length in minutes. */
  readonly minutes: number;
  /** Key columns besides workspace_id and bucket. */
  readonly keys: readonly ('gateway_id' | 'collection' | 'endpoint' | 'client_id' | 'status')[];
  /** The migration that creates it. */
  readonly migration?: '0015-rollup-totals';
  /** A filter, not a stub: the roll-up counts only rows for which it holds (telemetry_refused: status 400 and up). */
  readonly only?: (r: TelemetryRecord) => boolean;
}

/** Coarsest first: a query reads the first one that holds its columns and fits its buckets and range. */
export const ROLLUPS: readonly RollupDef[] = [
  { table: 'telemetry_by_hour', minutes: 60, keys: ['gateway_id', 'collection'] },
  // The workspace's whole traffic per 5 minutes and per minute: an unfiltered series reads one row per bucket
  // (1,440 for 24 hours of minutes) instead of one per bucket, gateway and collection.
  { table: 'telemetry_total_5m', minutes: 5, keys: [], migration: '0015-rollup-totals' },
  // Series by gateway: one row per bucket and gateway rather than per bucket, gateway and collection.
  { table: 'telemetry_by_gateway_5m', minutes: 5, keys: ['gateway_id'], migration: '0015-rollup-totals' },
  { table: 'telemetry_by_5m', minutes: 5, keys: ['gateway_id', 'collection'] },
  { table: 'telemetry_total_minute', minutes: 1, keys: [], migration: '0015-rollup-totals' },
  { table: 'telemetry_by_minute', minutes: 1, keys: ['gateway_id', 'collection'] },
  { table: 'telemetry_by_client_hour', minutes: 60, keys: ['client_id'] },
  { table: 'telemetry_by_client', minutes: 5, keys: ['client_id'] },
  { table: 'telemetry_by_endpoint_hour', minutes: 60, keys: ['collection', 'endpoint'] },
  { table: 'telemetry_by_endpoint', minutes: 5, keys: ['collection', 'endpoint'] },
  { table: 'telemetry_refused', minutes: 60, keys: ['status', 'collection', 'endpoint'], only: (r) => r.status >= 400 },
];

/** The ISO start of the `minutes`-long bucket `minute` falls in (buckets aligned to the epoch). */
export function bucketOf(minute: string, minutes: number): string {
  if (minutes === 1) return minute;
  const ms = Date.parse(minute);
  const size = minutes * 60_000;
  return new Date(ms - (ms % size)).toISOString();
}

type RollupRow = Record<string, string | number>;

const KEY_OF: Record<RollupDef['keys'][number], (r: TelemetryRecord) => string | number> = {
  gateway_id: (r) => r.gatewayId,
  collection: (r) => r.collection,
  endpoint: (r) => r.endpoint,
  client_id: (r) => r.clientId,
  status: (r) => r.status,
};

/** The incoming telemetry rows added up into the roll-up's rows. */
export function rollupRows(def: RollupDef, rows: readonly TelemetryRecord[]): RollupRow[] {
  const byKey = new Map<string, RollupRow>();
  for (const r of rows) {
    if (def.only && !def.only(r)) continue;
    const bucket = bucketOf(r.minute, def.minutes);
    const keys = def.keys.map((k) => KEY_OF[k](r));
    const id = JSON.stringify([r.workspaceId, bucket, ...keys]);
    let row = byKey.get(id);
    if (!row) {
      row = { workspace_id: r.workspaceId, bucket, count: 0, s4xx: 0, s5xx: 0, s429: 0 };
      def.keys.forEach((k, i) => (row![k] = keys[i]!));
      row.duration_ms_sum = 0;
      row.duration_ms_max = 0;
      for (const c of BELOW_COLUMNS) row[c] = 0;
      byKey.set(id, row);
    }
    row.count = (row.count as number) + r.count;
    if (r.status >= 400 && r.status < 500) row.s4xx = (row.s4xx as number) + r.count;
    if (r.status >= 500) row.s5xx = (row.s5xx as number) + r.count;
    if (r.status === 429) row.s429 = (row.s429 as number) + r.count;
    row.duration_ms_sum = (row.duration_ms_sum as number) + r.durationMsSum;
    row.duration_ms_max = Math.max(row.duration_ms_max as number, r.durationMsMax);
    const mean = r.durationMsSum / r.count;
    LATENCY_BOUNDS_MS.forEach((b, i) => {
      if (mean < b) row![BELOW_COLUMNS[i]!] = (row![BELOW_COLUMNS[i]!] as number) + r.count;
    });
  }
  return [...byKey.values()];
}

const BATCH = 200;
const ADDED = ['count', 's4xx', 's5xx', 's429', 'duration_ms_sum', ...BELOW_COLUMNS];

/** Adds the telemetry rows to every roll-up (inside the caller's statement sequence). */
export async function addToRollups(run: Run, rows: readonly TelemetryRecord[]): Promise<void> {
  for (const def of ROLLUPS) {
    const merged = rollupRows(def, rows);
    for (let i = 0; i < merged.length; i += BATCH) {
      const batch = merged.slice(i, i + BATCH);
      await run((db) => {
        // The roll-up tables share one shape; kysely's types name each table, so this one query is untyped.
        const any = db as unknown as Kysely<Record<string, RollupRow>>;
        return any
          .insertInto(def.table)
          .values(batch)
          .onConflict((oc) =>
            oc.columns(['workspace_id', 'bucket', ...def.keys]).doUpdateSet((eb) => ({
              ...Object.fromEntries(
                ADDED.map((c) => [c, eb(eb.ref(`${def.table}.${c}`), '+', eb.ref(`excluded.${c}`))]),
              ),
              duration_ms_max: sql`case when excluded.duration_ms_max > ${sql.ref(`${def.table}.duration_ms_max`)} then excluded.duration_ms_max else ${sql.ref(`${def.table}.duration_ms_max`)} end`,
            })),
          )
          .execute();
      });
    }
  }
}

/** Deletes roll-up rows whose bucket ends before `before` (a bucket reaching past it is kept whole). */
export async function pruneRollups(run: Run, before: string): Promise<void> {
  for (const def of ROLLUPS) {
    const cutoff = bucketOf(before, def.minutes);
    await run((db) =>
      (db as unknown as Kysely<Record<string, RollupRow>>).deleteFrom(def.table).where('bucket', '<', cutoff).execute(),
    );
  }
}

/**
 * A migration's part: the roll-up tables it introduced (`migration`; 0004-console made those without one), with
 * their primary keys (which are also the indexes the reads use).
 */
export async function createRollupTables(
  db: Kysely<unknown>,
  text: ReturnType<typeof sql>,
  migration?: RollupDef['migration'],
): Promise<void> {
  for (const def of ROLLUPS) {
    if (def.migration !== migration) continue;
    // Column names are built from the definition: kysely's builder types cannot follow them.
    let t: CreateTableBuilder<string, string> = db.schema
      .createTable(def.table)
      .addColumn('workspace_id', text, (c) => c.notNull())
      .addColumn('bucket', text, (c) => c.notNull());
    for (const k of def.keys) t = t.addColumn(k, k === 'status' ? 'integer' : text, (c) => c.notNull());
    for (const c of ['count', 's4xx', 's5xx', 's429']) t = t.addColumn(c, 'bigint', (col) => col.notNull());
    t = t
      .addColumn('duration_ms_sum', 'double precision', (c) => c.notNull())
      .addColumn('duration_ms_max', 'double precision', (c) => c.notNull());
    for (const c of BELOW_COLUMNS) t = t.addColumn(c, 'bigint', (col) => col.notNull());
    await t.addPrimaryKeyConstraint(`${def.table}_pkey`, ['workspace_id', 'bucket', ...def.keys]).execute();
    // Pruning across workspaces.
    await db.schema.createIndex(`${def.table}_bucket_idx`).on(def.table).column('bucket').execute();
    // A series of a few values (the top clients, one collection): their rows, not every row of the range.
    if (def.keys.length === 0) continue;
    await db.schema
      .createIndex(`${def.table}_${def.keys.at(-1)}_idx`)
      .on(def.table)
      .columns(['workspace_id', def.keys.at(-1)!, 'bucket'])
      .execute();
  }
}

export type { Database };
