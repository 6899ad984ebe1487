/**
 * Admin API: the console's analytics over the telemetry gateways report (telemetry/analytics.ts) — time series in
 * buckets, optionally one per gateway, collection, endpoint or client; the top clients; the top refused requests
 * with their error codes. Ranges are widened to whole buckets (series) or whole hours (top lists), the grain of
 * the roll-ups they read (store/sql/rollups.ts).
 *
 * Totals mix every collection, so only callers scoped to every environment and project read them (console users
 * are); a narrower API client reads its own part with getTelemetry.
 */
import { z } from 'zod';
import { parseDuration } from '../../config/duration.ts';
import type { AnalyticsDimension, AnalyticsFilter, StoreOps, WorkspaceRecord } from '../store/store.ts';
import {
  analyticsSeries,
  BUCKETS_MS,
  MAX_BUCKETS,
  topAgents,
  topClients,
  topRefusals,
} from '../telemetry/analytics.ts';
import { CLOUD_GATEWAY_ID } from '../telemetry/ingest.ts';
import { AdminError, invalid } from './errors.ts';
import { operation, type Caller, type Operation } from './operation.ts';
import { GATEWAY_QUERY, queryInt, queryText, queryTime } from './query.ts';
import { scopedToAll } from './scope.ts';
import { gatewayFilter } from './telemetry-routes.ts';

const A = '/api/v1/workspaces/{workspace}/analytics';
const PERMISSION = 'admin:telemetry:read';
const MINUTE = 60_000;
const MAX_RANGE_MS = 31 * 1440 * MINUTE;

const LatencySchema = z.strictObject({
  avg: z.number(),
  p50: z.number(),
  p95: z.number(),
  p99: z.number(),
  max: z.number(),
});
const TotalsShape = {
  requests: z.int(),
  errors: z.int().describe('Answers with status 400 or above'),
  status4xx: z.int(),
  status5xx: z.int(),
  rateLimited: z.int().describe('Answers with status 429'),
  errorRate: z.number().describe('errors ÷ requests'),
  latencyMs: LatencySchema.describe(
    'Milliseconds; percentiles are estimated from per-minute aggregates (exact when each holds one request)',
  ),
};
export const AnalyticsTotalsSchema = z.strictObject(TotalsShape);
export const AnalyticsSeriesSchema = z.strictObject({
  from: z.string(),
  to: z.string(),
  bucket: z.enum(['1m', '5m', '15m', '1h', '6h', '1d']),
  groupBy: z.enum(['gateway', 'collection', 'endpoint', 'client', 'agent', 'session']).optional(),
  series: z.array(
    z.strictObject({
      group: z
        .string()
        .optional()
        .describe('Gateway id (or `cloud`), collection, endpoint, client id, agent or session (`-`: none)'),
      groupName: z.string().optional().describe("The gateway's or client's name, when it still exists"),
      points: z.array(z.strictObject({ at: z.string().describe('Start of the bucket'), ...TotalsShape })),
      totals: AnalyticsTotalsSchema,
    }),
  ),
});
export const TopClientsSchema = z.strictObject({
  from: z.string(),
  to: z.string(),
  items: z.array(
    z.strictObject({
      clientId: z.string().describe('Client id, or `-` for requests without a recognised key'),
      clientName: z.string().optional(),
      ...TotalsShape,
    }),
  ),
});
export const TopAgentsSchema = z.strictObject({
  from: z.string(),
  to: z.string(),
  items: z.array(
    z.strictObject({
      agent: z.string().describe("A derived credential's agent (`act.sub`), or `-` for requests made with a key"),
      ...TotalsShape,
    }),
  ),
});
export const TopRefusalsSchema = z.strictObject({
  from: z.string(),
  to: z.string(),
  items: z.array(
    z.strictObject({
      code: z
        .string()
        .describe(
          'The error code (`GH_ERR_…`); from request counts, which carry no code, 429 reads GH_ERR_RATE_LIMITED and other statuses GH_HTTP_<status>',
        ),
      status: z.int().optional(),
      source: z.enum(['security_event', 'status']),
      kind: z.string().optional().describe('The security event kind'),
      collection: z.string().optional(),
      endpoint: z.string().optional(),
      clientId: z.string().optional(),
      clientName: z.string().optional(),
      agent: z.string().optional().describe("The derived credential's agent, when the refused requests carried one"),
      session: z.string().optional().describe("The derived credential's session"),
      count: z.int(),
      lastAt: z.string(),
    }),
  ),
});

/** The range and filters every analytics operation reads (see rangeAndFilter). */
const RangeQuery = {
  from: queryTime('Start of the range: an ISO 8601 time or a duration back from now (default 24h before `to`)'),
  to: queryTime('End of the range: an ISO 8601 time or a duration back from now (default now)'),
  gateway: GATEWAY_QUERY,
  collection: queryText('Only this collection'),
  endpoint: queryText('Only this endpoint (`METHOD /path`)'),
  client: queryText('Only this client id'),
  agent: queryText("Only this agent (a derived credential's `act.sub`; `-`: requests made with a key)"),
  session: queryText('Only this session of a derived credential (`-`: none)'),
};

/** `?name=` as an ISO time or a duration back from now; `fallback` when absent. */
function time(query: URLSearchParams, name: string, now: number, fallback: number): number {
  const value = query.get(name);
  if (value === null || value === '') return fallback;
  const ago = parseDuration(value);
  if (ago !== undefined) return now - ago;
  const at = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(at))
    throw invalid(`query.${name}`, 'must be an ISO 8601 timestamp or a duration back from now such as "24h" or "7d"');
  return at;
}

function int(query: URLSearchParams, name: string, fallback: number, max: number): number {
  const value = query.get(name);
  if (value === null || value === '') return fallback;
  if (!/^\d{1,4}$/.test(value) || Number(value) < 1 || Number(value) > max)
    throw invalid(`query.${name}`, `must be an integer from 1 to ${max}`);
  return Number(value);
}

/** The range (default the last 24 hours) widened to whole `grainMs`, and the filters of the query. */
async function rangeAndFilter(
  store: StoreOps,
  caller: Caller,
  workspace: WorkspaceRecord,
  query: URLSearchParams,
  now: number,
  grainMs: number,
): Promise<AnalyticsFilter> {
  if (!scopedToAll(caller))
    throw new AdminError(
      'GH_ERR_ADMIN_OUT_OF_SCOPE',
      'analytics add up every environment and project: only a caller scoped to all ("*") reads them; read your part with GET …/telemetry',
    );
  const to = time(query, 'to', now, now);
  const from = time(query, 'from', now, to - 1440 * MINUTE);
  if (from >= to) throw invalid('query.from', 'must be before query.to');
  if (to - from > MAX_RANGE_MS) throw invalid('query.from', 'the range may span at most 31 days');
  const text = (name: string) => {
    const v = query.get(name);
    return v === null || v === '' ? undefined : v;
  };
  const gatewayId = await gatewayFilter(store, caller, workspace, query);
  const filter: AnalyticsFilter = {
    from: new Date(from - (from % grainMs)).toISOString(),
    to: new Date(Math.ceil(to / grainMs) * grainMs).toISOString(),
  };
  if (gatewayId !== undefined) filter.gatewayId = gatewayId;
  const collection = text('collection');
  if (collection !== undefined) filter.collection = collection;
  const endpoint = text('endpoint');
  if (endpoint !== undefined) filter.endpoint = endpoint;
  const client = text('client');
  if (client !== undefined) filter.clientId = client;
  const agent = text('agent');
  if (agent !== undefined) filter.agent = agent;
  const session = text('session');
  if (session !== undefined) filter.session = session;
  return filter;
}

/** Names of the clients among `ids` that still exist. */
async function clientNames(store: StoreOps, workspace: WorkspaceRecord, ids: readonly string[]) {
  const names = new Map<string, string>();
  for (const id of new Set(ids)) {
    const c = id === '-' ? undefined : await store.getClient(id);
    if (c && c.workspaceId === workspace.id) names.set(id, c.name);
  }
  return names;
}

/** `items`, each with its client's name (`clientName`) when its `clientId` names a client of the workspace. */
async function withClientNames<T extends { clientId?: string | undefined }>(
  store: StoreOps,
  workspace: WorkspaceRecord,
  items: T[],
): Promise<(T & { clientName?: string })[]> {
  const names = await clientNames(
    store,
    workspace,
    items.flatMap((i) => (i.clientId ? [i.clientId] : [])),
  );
  return items.map((i) => (i.clientId && names.has(i.clientId) ? { ...i, clientName: names.get(i.clientId)! } : i));
}

/**
 * A list of the workspace's telemetry over whole hours (`?limit=`, default `defaultLimit`, at most 100), each item
 * with its client's name.
 */
function topList(
  op: Pick<Operation, 'id' | 'path' | 'summary' | 'query' | 'response'>,
  defaultLimit: number,
  list: (
    store: StoreOps,
    workspaceId: string,
    filter: AnalyticsFilter,
    limit: number,
    query: URLSearchParams,
  ) => Promise<{ clientId?: string | undefined }[]>,
): Operation {
  return operation({
    ...op,
    method: 'GET',
    tag: 'Analytics',
    permission: PERMISSION,
    async handler({ caller, workspace, query, plane }) {
      const limit = int(query, 'limit', defaultLimit, 100);
      const filter = await rangeAndFilter(plane.store, caller, workspace, query, plane.now(), 60 * MINUTE);
      const items = await list(plane.store, workspace.id, filter, limit, query);
      return { from: filter.from, to: filter.to, items: await withClientNames(plane.store, workspace, items) };
    },
  });
}

export const analyticsOperations: Operation[] = [
  operation({
    id: 'getAnalyticsSeries',
    method: 'GET',
    path: `${A}/series`,
    summary:
      'Requests, errors, 4xx, 5xx, 429s and latency (avg, p50, p95, p99, max) over time: `?from=` `?to=` (ISO or a duration back, default the last 24h), `?bucket=` 1m|5m|15m|1h|6h|1d (default 5m; at most 1440 buckets), filters `?gateway=` `?collection=` `?endpoint=` `?client=` `?agent=` `?session=` (`-`: requests without a derived credential), `?groupBy=` gateway|collection|endpoint|client|agent|session with `?top=` (default 5, at most 20) series',
    tag: 'Analytics',
    permission: PERMISSION,
    query: z.object({
      ...RangeQuery,
      bucket: z
        .enum(['1m', '5m', '15m', '1h', '6h', '1d'])
        .optional()
        .describe('The width of each point (default 5m; at most 1440 buckets in the range)'),
      groupBy: z
        .enum(['gateway', 'collection', 'endpoint', 'client', 'agent', 'session'])
        .optional()
        .describe('One series per gateway, collection, endpoint, client, agent or session (the busiest `top`)'),
      top: queryInt(20, 'How many series with groupBy (default 5)'),
    }),
    response: AnalyticsSeriesSchema,
    async handler({ caller, workspace, query, plane }) {
      const bucket = query.get('bucket') ?? '5m';
      const bucketMs = BUCKETS_MS[bucket];
      if (bucketMs === undefined) throw invalid('query.bucket', `must be one of ${Object.keys(BUCKETS_MS).join(', ')}`);
      const groupBy = query.get('groupBy') ?? undefined;
      if (
        groupBy !== undefined &&
        !['gateway', 'collection', 'endpoint', 'client', 'agent', 'session'].includes(groupBy)
      )
        throw invalid('query.groupBy', 'must be gateway, collection, endpoint, client, agent or session');
      const top = int(query, 'top', 5, 20);
      const filter = await rangeAndFilter(plane.store, caller, workspace, query, plane.now(), bucketMs);
      const buckets = (Date.parse(filter.to) - Date.parse(filter.from)) / bucketMs;
      if (buckets > MAX_BUCKETS)
        throw invalid('query.bucket', `the range holds ${buckets} buckets of ${bucket}; at most ${MAX_BUCKETS}`);
      const series = await analyticsSeries(plane.store, workspace.id, {
        filter,
        bucketMs,
        ...(groupBy ? { groupBy: groupBy as AnalyticsDimension, top } : {}),
      });
      const names = new Map<string, string>();
      if (groupBy === 'client')
        for (const [k, v] of await clientNames(
          plane.store,
          workspace,
          series.map((s) => s.group!),
        ))
          names.set(k, v);
      if (groupBy === 'gateway') {
        names.set(CLOUD_GATEWAY_ID, CLOUD_GATEWAY_ID);
        for (const g of await plane.store.listGateways(workspace.id)) names.set(g.id, g.name);
      }
      return {
        from: filter.from,
        to: filter.to,
        bucket: bucket as z.output<typeof AnalyticsSeriesSchema>['bucket'],
        ...(groupBy ? { groupBy: groupBy as AnalyticsDimension } : {}),
        series: series.map((s) => ({
          ...s,
          ...(s.group !== undefined && names.has(s.group) ? { groupName: names.get(s.group)! } : {}),
        })),
      };
    },
  }),
  topList(
    {
      id: 'getTopClients',
      path: `${A}/top-clients`,
      summary:
        'The clients with the most requests, with their errors, 429s and latency: `?from=` `?to=` (default the last 24h, widened to whole hours), `?limit=` (default 10, at most 100), filters `?gateway=` `?collection=` `?endpoint=`',
      query: z.object({ ...RangeQuery, limit: queryInt(100, 'At most this many clients (default 10)') }),
      response: TopClientsSchema,
    },
    10,
    topClients,
  ),
  topList(
    {
      id: 'getTopAgents',
      path: `${A}/top-agents`,
      summary:
        "The agents (of derived credentials) with the most requests, with their errors, 429s and latency: `?from=` `?to=` (default the last 24h, widened to whole hours), `?limit=` (default 10, at most 100), filters `?gateway=` `?collection=` `?endpoint=` `?client=` (agent names are chosen by each client: filter by client to see one client's agents) `?session=`",
      query: z.object({ ...RangeQuery, limit: queryInt(100, 'At most this many agents (default 10)') }),
      response: TopAgentsSchema,
    },
    10,
    // An agent's row carries no client id (agent names are chosen per client): there is no client to name.
    (store, workspaceId, filter, limit) =>
      topAgents(store, workspaceId, filter, limit) as Promise<{ clientId?: string | undefined }[]>,
  ),
  topList(
    {
      id: 'getTopRefusals',
      path: `${A}/refusals`,
      summary:
        'The most frequent refused requests with their error codes (security events per code, collection and client; 429s and other answers of 400 and above per collection and endpoint): `?from=` `?to=` (default the last 24h, widened to whole hours), `?limit=` (default 20, at most 100), filters `?gateway=` `?collection=` `?client=` `?agent=` `?session=`; `?by=agent` splits the counted refusals per agent and session too (security events always name theirs)',
      query: z.object({
        ...RangeQuery,
        limit: queryInt(100, 'At most this many rows (default 20)'),
        by: z.enum(['agent']).optional().describe('`agent`: split the counted refusals per agent and session too'),
      }),
      response: TopRefusalsSchema,
    },
    20,
    (store, workspaceId, filter, limit, query) => {
      const by = query.get('by');
      if (by !== null && by !== 'agent') throw invalid('query.by', 'must be "agent" (or absent)');
      return topRefusals(store, workspaceId, filter, limit, { byAgent: by === 'agent' });
    },
  ),
];
