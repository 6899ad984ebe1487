/**
 * The console's analytics over the telemetry table, aggregated in the database (the same SQL on SQLite and
 * PostgreSQL): per-minute sums for time series, and totals per client (or another dimension) for top lists.
 *
 * Latency percentiles come from a cumulative histogram: for each bound, how many requests belong to rows whose mean
 * duration is below it. A telemetry row holds the requests of one minute with the same gateway, collection,
 * endpoint, client and status, so this is exact when a row holds one request and an estimate otherwise.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { AnalyticsAggregate, AnalyticsDimension, AnalyticsFilter, AnalyticsOps } from '../store.ts';
import { BELOW_COLUMNS, LATENCY_BOUNDS_MS, ROLLUPS, type RollupDef } from './rollups.ts';
import type { Run } from './statement-runner.ts';

export { LATENCY_BOUNDS_MS };

type Column = 'gateway_id' | 'collection' | 'endpoint' | 'client_id' | 'status' | 'agent' | 'session';
const COLUMN: Record<AnalyticsDimension, Column> = {
  gateway: 'gateway_id',
  collection: 'collection',
  endpoint: 'endpoint',
  client: 'client_id',
  agent: 'agent',
  session: 'session',
};

/** Where a query reads: a roll-up, or the raw table (every key, one-minute buckets, measures computed per row). */
interface Source {
  readonly table: string;
  readonly bucket: string;
  readonly minutes: number;
  readonly keys: readonly Column[];
  readonly raw: boolean;
}
const RAW: Source = {
  table: 'telemetry',
  bucket: 'minute',
  minutes: 1,
  // Agents and sessions are in the raw table only: a query by either reads it.
  keys: ['gateway_id', 'collection', 'endpoint', 'client_id', 'status', 'agent', 'session'],
  raw: true,
};
const fromRollup = (d: RollupDef): Source => ({
  table: d.table,
  bucket: 'bucket',
  minutes: d.minutes,
  keys: d.keys,
  raw: false,
});

/**
 * The smallest source holding every column the query filters or groups by, whose buckets fit `everyMinutes` (a
 * multiple of its bucket) and the range (both ends on its bucket boundaries); the raw table otherwise.
 */
function source(
  columns: readonly Column[],
  filter: AnalyticsFilter,
  everyMinutes: number | undefined,
  only?: RollupDef['table'],
): Source {
  for (const d of ROLLUPS) {
    if (only ? d.table !== only : d.only) continue;
    const size = d.minutes * 60_000;
    if (everyMinutes !== undefined && everyMinutes % d.minutes !== 0) continue;
    if (Date.parse(filter.from) % size !== 0 || Date.parse(filter.to) % size !== 0) continue;
    if (columns.every((c) => (d.keys as readonly Column[]).includes(c))) return fromRollup(d);
  }
  return RAW;
}

function filterColumns(f: AnalyticsFilter): Column[] {
  const out: Column[] = [];
  if (f.gatewayId !== undefined) out.push('gateway_id');
  if (f.collection !== undefined) out.push('collection');
  if (f.endpoint !== undefined) out.push('endpoint');
  if (f.clientId !== undefined) out.push('client_id');
  if (f.agent !== undefined) out.push('agent');
  if (f.session !== undefined) out.push('session');
  return out;
}

/** The measures' select list on a source. */
function measures(s: Source): RawBuilder<unknown>[] {
  const ref = (c: string) => sql.ref(c);
  if (!s.raw)
    return [
      sql`sum(${ref('count')})`.as('requests'),
      sql`sum(${ref('s4xx')})`.as('status4xx'),
      sql`sum(${ref('s5xx')})`.as('status5xx'),
      sql`sum(${ref('s429')})`.as('rate_limited'),
      sql`sum(${ref('duration_ms_sum')})`.as('duration_ms_sum'),
      sql`max(${ref('duration_ms_max')})`.as('duration_ms_max'),
      ...BELOW_COLUMNS.map((c) => sql`sum(${ref(c)})`.as(c)),
    ] as unknown as RawBuilder<unknown>[];
  const when = (condition: RawBuilder<unknown>) => sql`sum(case when ${condition} then ${ref('count')} else 0 end)`;
  return [
    sql`sum(${ref('count')})`.as('requests'),
    when(sql`${ref('status')} >= 400 and ${ref('status')} < 500`).as('status4xx'),
    when(sql`${ref('status')} >= 500`).as('status5xx'),
    when(sql`${ref('status')} = 429`).as('rate_limited'),
    sql`sum(${ref('duration_ms_sum')})`.as('duration_ms_sum'),
    sql`max(${ref('duration_ms_max')})`.as('duration_ms_max'),
    ...LATENCY_BOUNDS_MS.map((b, i) =>
      when(sql`${ref('duration_ms_sum')} < ${sql.lit(b)} * ${ref('count')}`).as(BELOW_COLUMNS[i]!),
    ),
  ] as unknown as RawBuilder<unknown>[];
}

type Row = Record<string, unknown>;
type AnyDb = Kysely<Record<string, Row>>;

function toAggregate(r: Row): AnalyticsAggregate {
  return {
    requests: Number(r.requests),
    status4xx: Number(r.status4xx),
    status5xx: Number(r.status5xx),
    rateLimited: Number(r.rate_limited),
    durationMsSum: Number(r.duration_ms_sum),
    durationMsMax: Number(r.duration_ms_max),
    below: BELOW_COLUMNS.map((c) => Number(r[c])),
  };
}

/** SELECT … FROM the source WHERE workspace, range and filters. */
function base(db: AnyDb, s: Source, workspaceId: string, f: AnalyticsFilter) {
  let q = db
    .selectFrom(s.table)
    .where('workspace_id', '=', workspaceId)
    .where(s.bucket, '>=', f.from)
    .where(s.bucket, '<', f.to);
  if (f.gatewayId !== undefined) q = q.where('gateway_id', '=', f.gatewayId);
  if (f.collection !== undefined) q = q.where('collection', '=', f.collection);
  if (f.endpoint !== undefined) q = q.where('endpoint', '=', f.endpoint);
  if (f.clientId !== undefined) q = q.where('client_id', '=', f.clientId);
  if (f.agent !== undefined) q = q.where('agent', '=', f.agent);
  if (f.session !== undefined) q = q.where('session', '=', f.session);
  return q;
}

export function analyticsQueries(run: Run): AnalyticsOps {
  return {
    async analyticsByMinute(workspaceId, filter, groupBy, everyMinutes = 1) {
      const columns = [...filterColumns(filter), ...(groupBy ? [COLUMN[groupBy.dimension]] : [])];
      const s = source(columns, filter, everyMinutes);
      const rows = await run((db) => {
        let q = base(db as unknown as AnyDb, s, workspaceId, filter).select([
          sql.ref(s.bucket).as('minute'),
          ...measures(s),
        ] as never);
        if (groupBy) {
          const column = COLUMN[groupBy.dimension];
          q = q
            .select(sql.ref(column).as('grp') as never)
            .where(column, 'in', groupBy.values.length ? [...groupBy.values] : [''])
            .groupBy([s.bucket, column]);
        } else q = q.groupBy(s.bucket);
        return q.orderBy(s.bucket).execute();
      });
      return rows.map((r) => ({
        minute: String(r.minute),
        ...(r.grp !== undefined ? { group: String(r.grp) } : {}),
        ...toAggregate(r),
      }));
    },

    async analyticsTop(workspaceId, filter, dimension, options) {
      const column = COLUMN[dimension];
      const s = source([...filterColumns(filter), column], filter, undefined);
      const rows = await run((db) =>
        base(db as unknown as AnyDb, s, workspaceId, filter)
          .select([sql.ref(column).as('grp'), ...measures(s)] as never)
          .groupBy(column)
          .orderBy(sql`sum(${sql.ref('count')})`, 'desc')
          .orderBy(column)
          .limit(Math.max(1, Math.trunc(options.limit)))
          .execute(),
      );
      return rows.map((r) => ({ key: String(r.grp), ...toAggregate(r) }));
    },

    async analyticsRefusedByStatus(workspaceId, filter, limit, options) {
      const byAgent = options?.byAgent === true;
      const agentColumns: Column[] = byAgent ? ['agent', 'session'] : [];
      const s = source([...filterColumns(filter), ...agentColumns], filter, undefined, 'telemetry_refused');
      const rows = await run((db) => {
        let q = base(db as unknown as AnyDb, s, workspaceId, filter);
        if (s.raw) q = q.where('status', '>=', 400);
        return q
          .select([
            'status',
            'collection',
            'endpoint',
            ...agentColumns,
            sql`sum(${sql.ref('count')})`.as('requests'),
            sql`max(${sql.ref(s.bucket)})`.as('last_bucket'),
          ] as never)
          .groupBy(['status', 'collection', 'endpoint', ...agentColumns])
          .orderBy(sql`sum(${sql.ref('count')})`, 'desc')
          .orderBy('status')
          .orderBy('collection')
          .orderBy('endpoint')
          .limit(Math.max(1, Math.trunc(limit)))
          .execute();
      });
      return rows.map((r) => ({
        status: Number(r.status),
        collection: String(r.collection),
        endpoint: String(r.endpoint),
        ...(byAgent && r.agent !== '-' ? { agent: String(r.agent) } : {}),
        ...(byAgent && r.session !== '-' ? { session: String(r.session) } : {}),
        count: Number(r.requests),
        lastBucket: String(r.last_bucket),
      }));
    },
    async analyticsRefusedByReason(workspaceId, filter, limit) {
      const rows = await run((db) => {
        let q = db
          .selectFrom('security_events')
          .where('workspace_id', '=', workspaceId)
          .where('at', '>=', filter.from)
          .where('at', '<', filter.to);
        if (filter.gatewayId !== undefined) q = q.where('gateway_id', '=', filter.gatewayId);
        if (filter.collection !== undefined) q = q.where('collection', '=', filter.collection);
        if (filter.clientId !== undefined) q = q.where('client_id', '=', filter.clientId);
        if (filter.agent !== undefined)
          q = filter.agent === '-' ? q.where('agent', 'is', null) : q.where('agent', '=', filter.agent);
        if (filter.session !== undefined)
          q = filter.session === '-' ? q.where('session', 'is', null) : q.where('session', '=', filter.session);
        return q
          .select((eb) => [
            'reason',
            'kind',
            'collection',
            'client_id',
            'agent',
            'session',
            eb.fn.countAll().as('n'),
            eb.fn.max('at').as('last_at'),
          ])
          .groupBy(['reason', 'kind', 'collection', 'client_id', 'agent', 'session'])
          .orderBy(sql`count(*)`, 'desc')
          .orderBy('reason')
          .limit(Math.max(1, Math.trunc(limit)))
          .execute();
      });
      return rows.map((r) => ({
        reason: r.reason,
        kind: r.kind,
        ...(r.collection !== null ? { collection: r.collection } : {}),
        ...(r.client_id !== null ? { clientId: r.client_id } : {}),
        ...(r.agent !== null ? { agent: r.agent } : {}),
        ...(r.session !== null ? { session: r.session } : {}),
        count: Number(r.n),
        lastAt: String(r.last_at),
      }));
    },
  };
}
