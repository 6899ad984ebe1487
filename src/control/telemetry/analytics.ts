/**
 * The console's analytics page, computed from the store's per-minute aggregates (store/sql/analytics.ts): time
 * series in buckets of a chosen size (requests, errors, 4xx, 5xx, 429s, latency average, p50/p95/p99, maximum),
 * optionally one series per gateway, collection, endpoint or client (the busiest few); the top clients; and the
 * top refused requests with their error codes. The admin API (api/analytics-routes.ts) and bench/analytics.ts
 * call these same functions.
 */
import { LATENCY_BOUNDS_MS } from '../store/sql/rollups.ts';
import type { AnalyticsAggregate, AnalyticsDimension, AnalyticsFilter, StoreOps } from '../store/store.ts';

export interface LatencySummary {
  avg: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export interface Totals {
  requests: number;
  /** Answers with status 400 or above. */
  errors: number;
  status4xx: number;
  status5xx: number;
  rateLimited: number;
  /** errors ÷ requests (0 without requests). */
  errorRate: number;
  latencyMs: LatencySummary;
}

export interface SeriesPoint extends Totals {
  /** Start of the bucket (ISO). */
  at: string;
}

export interface Series {
  /** The group's key (gateway id, collection, endpoint or client id); absent for the ungrouped series. */
  group?: string;
  points: SeriesPoint[];
  totals: Totals;
}

const MINUTE = 60_000;
const EMPTY = (): AnalyticsAggregate => ({
  requests: 0,
  status4xx: 0,
  status5xx: 0,
  rateLimited: 0,
  durationMsSum: 0,
  durationMsMax: 0,
  below: LATENCY_BOUNDS_MS.map(() => 0),
});

function add(into: AnalyticsAggregate, a: AnalyticsAggregate): void {
  into.requests += a.requests;
  into.status4xx += a.status4xx;
  into.status5xx += a.status5xx;
  into.rateLimited += a.rateLimited;
  into.durationMsSum += a.durationMsSum;
  into.durationMsMax = Math.max(into.durationMsMax, a.durationMsMax);
  for (let i = 0; i < into.below.length; i++) into.below[i]! += a.below[i]!;
}

/** The q-quantile from the cumulative histogram, interpolated within its bucket; never above the maximum. */
function quantile(a: AnalyticsAggregate, q: number): number {
  if (a.requests === 0) return 0;
  const rank = q * a.requests;
  let lower = 0;
  let countBelowLower = 0;
  for (let i = 0; i < LATENCY_BOUNDS_MS.length; i++) {
    const upper = LATENCY_BOUNDS_MS[i]!;
    const count = a.below[i]!;
    if (count >= rank) {
      const within = count - countBelowLower;
      const fraction = within > 0 ? (rank - countBelowLower) / within : 1;
      return round(Math.min(a.durationMsMax, lower + (upper - lower) * fraction));
    }
    lower = upper;
    countBelowLower = count;
  }
  return round(a.durationMsMax);
}

const round = (n: number) => Math.round(n * 100) / 100;

export function totals(a: AnalyticsAggregate): Totals {
  const errors = a.status4xx + a.status5xx;
  return {
    requests: a.requests,
    errors,
    status4xx: a.status4xx,
    status5xx: a.status5xx,
    rateLimited: a.rateLimited,
    errorRate: a.requests ? Math.round((errors / a.requests) * 10_000) / 10_000 : 0,
    latencyMs: {
      avg: a.requests ? round(a.durationMsSum / a.requests) : 0,
      p50: quantile(a, 0.5),
      p95: quantile(a, 0.95),
      p99: quantile(a, 0.99),
      max: round(a.durationMsMax),
    },
  };
}

/**
 * Time series from `filter.from` to `filter.to` in buckets of `bucketMs` (a whole number of minutes), every bucket
 * present (zeros where nothing happened). With `groupBy`: one series for each of the `top` busiest values.
 */
export async function analyticsSeries(
  store: Pick<StoreOps, 'analyticsByMinute' | 'analyticsTop'>,
  workspaceId: string,
  options: { filter: AnalyticsFilter; bucketMs: number; groupBy?: AnalyticsDimension; top?: number },
): Promise<Series[]> {
  const { filter, bucketMs } = options;
  const start = Date.parse(filter.from);
  const end = Date.parse(filter.to);
  const buckets = Math.max(1, Math.ceil((end - start) / bucketMs));
  const every = Math.max(1, Math.round(bucketMs / MINUTE));
  let groups: (string | undefined)[] = [undefined];
  let rows;
  if (options.groupBy) {
    const busiest = await store.analyticsTop(workspaceId, filter, options.groupBy, { limit: options.top ?? 5 });
    groups = busiest.map((g) => g.key);
    rows = await store.analyticsByMinute(
      workspaceId,
      filter,
      { dimension: options.groupBy, values: groups as string[] },
      every,
    );
  } else rows = await store.analyticsByMinute(workspaceId, filter, undefined, every);
  const grid = new Map(groups.map((g) => [g, Array.from({ length: buckets }, EMPTY)]));
  for (const r of rows) {
    const i = Math.floor((Date.parse(r.minute) - start) / bucketMs);
    const line = grid.get(r.group);
    if (line && i >= 0 && i < buckets) add(line[i]!, r);
  }
  return groups.map((group) => {
    const line = grid.get(group)!;
    const all = EMPTY();
    for (const b of line) add(all, b);
    return {
      ...(group !== undefined ? { group } : {}),
      points: line.map((b, i) => ({ at: new Date(start + i * bucketMs).toISOString(), ...totals(b) })),
      totals: totals(all),
    };
  });
}

export async function topClients(
  store: Pick<StoreOps, 'analyticsTop'>,
  workspaceId: string,
  filter: AnalyticsFilter,
  limit: number,
): Promise<({ clientId: string } & Totals)[]> {
  const rows = await store.analyticsTop(workspaceId, filter, 'client', { limit });
  return rows.map((r) => ({ clientId: r.key, ...totals(r) }));
}

/** The agents of derived credentials with the most requests (`-`: requests made without one). */
export async function topAgents(
  store: Pick<StoreOps, 'analyticsTop'>,
  workspaceId: string,
  filter: AnalyticsFilter,
  limit: number,
): Promise<({ agent: string } & Totals)[]> {
  const rows = await store.analyticsTop(workspaceId, filter, 'agent', { limit });
  return rows.map((r) => ({ agent: r.key, ...totals(r) }));
}

export interface Refusal {
  /** The error code: from the security event, or the one the status stands for (429: GH_ERR_RATE_LIMITED). */
  code: string;
  status?: number;
  /** `security_event` (with its kind) or `status` (from request counts). */
  source: 'security_event' | 'status';
  kind?: string;
  collection?: string;
  endpoint?: string;
  clientId?: string;
  /** The derived credential's agent and session (security events; request counts with `byAgent`). */
  agent?: string;
  session?: string;
  count: number;
  /** The latest (ISO; for counts the start of the latest hour, or minute, they fall in). */
  lastAt: string;
}

/**
 * The most frequent refusals: security events per error code (authentication failures, IP and permission
 * refusals) and, from request counts, 429s (rate limits, quotas, concurrency caps) and other 4xx/5xx answers
 * whose code the counts do not carry (`GH_HTTP_<status>`). Most first.
 */
export async function topRefusals(
  store: Pick<StoreOps, 'analyticsRefusedByReason' | 'analyticsRefusedByStatus'>,
  workspaceId: string,
  filter: AnalyticsFilter,
  limit: number,
  options: { byAgent?: boolean } = {},
): Promise<Refusal[]> {
  const events = await store.analyticsRefusedByReason(workspaceId, filter, limit);
  // Statuses the security events already account for (401/403 of authentication and authorization).
  const counted = await store.analyticsRefusedByStatus(
    workspaceId,
    filter,
    limit * 3,
    options.byAgent ? { byAgent: true } : undefined,
  );
  const out: Refusal[] = events.map((e) => ({
    code: e.reason,
    source: 'security_event' as const,
    kind: e.kind,
    ...(e.collection !== undefined ? { collection: e.collection } : {}),
    ...(e.clientId !== undefined ? { clientId: e.clientId } : {}),
    ...(e.agent !== undefined ? { agent: e.agent } : {}),
    ...(e.session !== undefined ? { session: e.session } : {}),
    count: e.count,
    lastAt: e.lastAt,
  }));
  for (const r of counted) {
    if ((r.status === 401 || r.status === 403) && events.length > 0) continue;
    out.push({
      code: r.status === 429 ? 'GH_ERR_RATE_LIMITED' : `GH_HTTP_${r.status}`,
      status: r.status,
      source: 'status',
      collection: r.collection,
      endpoint: r.endpoint,
      ...(r.agent !== undefined ? { agent: r.agent } : {}),
      ...(r.session !== undefined ? { session: r.session } : {}),
      count: r.count,
      lastAt: r.lastBucket,
    });
  }
  return out.sort((a, b) => b.count - a.count || a.code.localeCompare(b.code)).slice(0, limit);
}

/** Bucket sizes the API accepts, and the largest number of buckets one answer holds. */
export const BUCKETS_MS: Readonly<Record<string, number>> = {
  '1m': MINUTE,
  '5m': 5 * MINUTE,
  '15m': 15 * MINUTE,
  '1h': 60 * MINUTE,
  '6h': 360 * MINUTE,
  '1d': 1440 * MINUTE,
};
export const MAX_BUCKETS = 1440;
