/**
 * Admin API: what gateways report — request aggregates per minute, collection, endpoint, client and status;
 * security events; a sample of recent access events — and the alerts raised from it.
 *
 * A caller sees the telemetry of the collections within its environments and projects. A row names a collection
 * only by name, so it is shown when every collection of that name it may stem from (on an edge gateway: the one of
 * the gateway's environment; on the cloud gateway: the cloud collections of that name in any environment) is
 * within the caller's scope. Rows of no (or no longer any) collection — unrouted requests, deleted collections —
 * are shown only to callers holding every project. Alerts are about gateways: a caller sees those of the gateways
 * of its environments, and the cloud gateway's.
 *
 * Over 400 lines on purpose: these read-only operations share one visibility rule (which rows and alerts a caller's
 * environments and projects let it see), written once above them.
 */
import { z } from 'zod';
import { parseDuration } from '../../config/duration.ts';
import {
  NONE,
  ReceivedAccessEventSchema,
  SecurityEventRecordSchema,
  TelemetryRowSchema,
} from '../../config/telemetry.ts';
import type { CollectionRecord, GatewayRecord, StoreOps, WorkspaceRecord } from '../store/store.ts';
import { CLOUD_GATEWAY_ID } from '../telemetry/ingest.ts';
import { invalid, notFound } from './errors.ts';
import { visibleClient } from './lookup.ts';
import { operation, type Caller, type Operation } from './operation.ts';
import { GATEWAY_QUERY, queryBoolean, queryInt, queryText, queryTime } from './query.ts';
import { hasEnvironment, hasProject } from './scope.ts';

const W = '/api/v1/workspaces/{workspace}';
const PERMISSION = 'admin:telemetry:read';
const MAX_LIMIT = 1000;
/** Rows read to fill one page of at most MAX_LIMIT visible ones. */
const SCAN_LIMIT = 5 * MAX_LIMIT;

const GatewayRef = { gateway: z.string().describe('Gateway id, or `cloud`'), gatewayName: z.string() };

/** A telemetry row as the store keeps it (`TelemetryRowSchema`), named by gateway rather than by workspace. */
export const TelemetryRowSchemaOut = z.object({
  ...GatewayRef,
  ...TelemetryRowSchema.omit({ workspaceId: true, gatewayId: true }).shape,
});

export const GatewayTelemetryStatsSchema = z.object({
  ...GatewayRef,
  batches: z.int().describe('Batches this control-plane process received since it started'),
  lastBatchAt: z.string(),
  dropped: z.int().describe("Events the gateway's instances dropped because their buffer was full while disconnected"),
});

/** A stored security event (`SecurityEventRecordSchema`), named by gateway rather than by workspace. */
export const SecurityEventSchemaOut = z.object({
  ...SecurityEventRecordSchema.pick({ id: true }).shape,
  ...GatewayRef,
  ...SecurityEventRecordSchema.omit({ id: true, workspaceId: true, gatewayId: true }).shape,
});

/** An access event as this process keeps it (`ReceivedAccessEventSchema`), plus the gateway's name. */
export const AccessEventSchemaOut = z.object({
  ...GatewayRef,
  ...ReceivedAccessEventSchema.omit({ gatewayId: true }).shape,
});

export const AlertSchemaOut = z.object({
  id: z.string(),
  kind: z
    .string()
    .describe('`auth_failure_spike`, `version_mismatch`, `connectivity_lost`, `rate_limit_store_degraded`'),
  message: z.string(),
  gateway: z.string().optional(),
  gatewayName: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
  raisedAt: z.string(),
  resolvedAt: z.string().optional(),
  deliveredAt: z.string().optional().describe('When the webhook accepted the latest state'),
  deliveryAttempts: z.int(),
  /** Its deliveries to the destinations of the alert rules it matched, oldest first. */
  deliveries: z
    .array(
      z.strictObject({
        destination: z.string(),
        destinationName: z.string(),
        state: z.enum(['raised', 'resolved']),
        attempts: z.int(),
        deliveredAt: z.string().optional(),
        lastStatus: z.int().optional(),
        lastError: z.string().optional(),
      }),
    )
    .optional(),
});

/** An opaque cursor for the next page of alerts: the last alert's raise time and id. */
function alertCursor(a: { raisedAt: string; id: string }): string {
  return Buffer.from(JSON.stringify([a.raisedAt, a.id])).toString('base64url');
}

function parseAlertCursor(value: string): { at: string; id: string } {
  try {
    const [at, id] = JSON.parse(Buffer.from(value, 'base64url').toString()) as unknown[];
    if (typeof at === 'string' && typeof id === 'string') return { at, id };
  } catch {
    // reported below
  }
  throw invalid('query.before', 'must be the `next` cursor of a previous page');
}

/** What a caller may see of one workspace's telemetry. */
interface Visibility {
  gatewayName(gatewayId: string): string;
  gatewayVisible(gatewayId: string | undefined): boolean;
  rowVisible(gatewayId: string, collection: string | undefined): boolean;
}

async function visibility(store: StoreOps, caller: Caller, workspace: WorkspaceRecord): Promise<Visibility> {
  const gateways = new Map((await store.listGateways(workspace.id)).map((g) => [g.id, g]));
  const byName = Map.groupBy(await store.listCollections(workspace.id), (c) => c.name);
  const allProjects = caller.projects.includes('*');
  const allEnvironments = caller.environments.includes('*');
  const inScope = (c: CollectionRecord) => hasEnvironment(caller, c.environment) && hasProject(caller, c.project);
  const gatewayVisible = (gatewayId: string | undefined) => {
    if (gatewayId === undefined || gatewayId === CLOUD_GATEWAY_ID) return true;
    const g = gateways.get(gatewayId);
    return g === undefined ? allEnvironments : hasEnvironment(caller, g.environment);
  };
  return {
    gatewayName: (id) =>
      gateways.get(id)?.name ?? (id === CLOUD_GATEWAY_ID ? CLOUD_GATEWAY_ID : `(deleted gateway ${id})`),
    gatewayVisible,
    rowVisible(gatewayId, collection) {
      if (!gatewayVisible(gatewayId)) return false;
      const edge: GatewayRecord | undefined = gateways.get(gatewayId);
      const candidates =
        collection === undefined || collection === NONE
          ? []
          : (byName.get(collection) ?? []).filter((c) =>
              edge ? c.environment === edge.environment : c.target.type === 'cloud',
            );
      if (candidates.length === 0) return allProjects && (edge !== undefined || allEnvironments);
      return candidates.every(inScope);
    },
  };
}

/** The `?gateway=` filter (`gatewayFilter`) and what the caller may see (`visibility`). */
async function gatewayAndView(store: StoreOps, caller: Caller, workspace: WorkspaceRecord, query: URLSearchParams) {
  return {
    gatewayId: await gatewayFilter(store, caller, workspace, query),
    view: await visibility(store, caller, workspace),
  };
}

/**
 * The rows the caller may see, at most `max`: each named by gateway (`gateway`, `gatewayName`) rather than by
 * `gatewayId`, and without its `workspaceId`. A row of no collection ('') is one of none (NONE).
 */
function visibleRows<T extends { gatewayId: string; collection?: string | undefined; workspaceId?: string }>(
  view: Visibility,
  rows: Iterable<T>,
  max = Infinity,
): (Omit<T, 'gatewayId' | 'workspaceId'> & { gateway: string; gatewayName: string })[] {
  const items: (Omit<T, 'gatewayId' | 'workspaceId'> & { gateway: string; gatewayName: string })[] = [];
  for (const r of rows) {
    if (items.length === max) break;
    if (!view.rowVisible(r.gatewayId, r.collection || NONE)) continue;
    const { workspaceId: _w, gatewayId: gateway, ...rest } = r;
    items.push({ gateway, gatewayName: view.gatewayName(gateway), ...rest });
  }
  return items;
}

/** `?gateway=` as a gateway id (a name or id of the workspace's, or `cloud`); undefined when absent. */
export async function gatewayFilter(
  store: StoreOps,
  caller: Caller,
  workspace: WorkspaceRecord,
  query: URLSearchParams,
): Promise<string | undefined> {
  const ref = query.get('gateway');
  if (ref === null || ref === '') return undefined;
  if (ref === CLOUD_GATEWAY_ID) return CLOUD_GATEWAY_ID;
  const g = (await store.getGateway({ workspaceId: workspace.id, name: ref })) ?? (await store.getGateway({ id: ref }));
  if (!g || g.workspaceId !== workspace.id || !hasEnvironment(caller, g.environment))
    throw notFound(`edge gateway "${ref}"`);
  return g.id;
}

/** `?since=` as an ISO timestamp or a duration back from now (`15m`, `2h`, `7d`); default `fallbackMs` back. */
function since(query: URLSearchParams, now: number, fallbackMs: number): string {
  const value = query.get('since');
  if (value === null || value === '') return new Date(now - fallbackMs).toISOString();
  const ago = parseDuration(value);
  if (ago !== undefined) return new Date(now - ago).toISOString();
  const at = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(at))
    throw invalid('query.since', 'must be an ISO 8601 timestamp or a duration such as "15m", "2h" or "7d"');
  return new Date(at).toISOString();
}

function limit(query: URLSearchParams, fallback: number): number {
  const value = query.get('limit');
  if (value === null || value === '') return fallback;
  if (!/^\d{1,4}$/.test(value) || Number(value) < 1 || Number(value) > MAX_LIMIT)
    throw invalid('query.limit', `must be an integer from 1 to ${MAX_LIMIT}`);
  return Number(value);
}

const SINCE_QUERY = (fallback: string) =>
  queryTime(`From this ISO 8601 time, or this long ago (30m, 24h); default ${fallback}`);
const LIMIT_QUERY = queryInt(MAX_LIMIT, 'At most this many (default 100)');

/** One row of quota usage as the admin API returns it. */
const QuotaUsageSchemaOut = z.object({
  collection: z.string().describe('The collection whose quota it is (quotas are counted per collection)'),
  period: z.enum(['daily', 'monthly']),
  periodId: z.string().describe("`2026-12-07` (daily) or `2026-12` (monthly), in the quotas' time zone"),
  units: z.number().describe('Units admitted in the period, as gateways reported them (each request counts its cost)'),
  updatedAt: z.string().describe('When gateways last reported units of this row'),
});

/** `?period=daily|monthly`, or undefined for both. */
function periodFilter(query: URLSearchParams): 'daily' | 'monthly' | undefined {
  const value = query.get('period');
  if (value === null || value === '') return undefined;
  if (value !== 'daily' && value !== 'monthly') throw invalid('query.period', 'must be "daily" or "monthly"');
  return value;
}

/** Usage rows of one client or org that the caller may see (rows of collections within its scope). */
async function usageOf(
  store: StoreOps,
  caller: Caller,
  workspace: WorkspaceRecord,
  scope: 'client' | 'org',
  subject: string,
  query: URLSearchParams,
) {
  const period = periodFilter(query);
  const max = limit(query, 100);
  const byName = Map.groupBy(await store.listCollections(workspace.id), (c) => c.name);
  const visible = (name: string) => {
    const candidates = byName.get(name) ?? [];
    return candidates.length === 0
      ? caller.projects.includes('*') && caller.environments.includes('*')
      : candidates.some((c) => hasEnvironment(caller, c.environment) && hasProject(caller, c.project));
  };
  const rows = await store.listQuotaUsage(workspace.id, {
    scope,
    subject,
    ...(period ? { period } : {}),
    limit: SCAN_LIMIT,
  });
  const items = [];
  for (const r of rows) {
    if (items.length === max) break;
    if (!visible(r.collection)) continue;
    items.push({
      collection: r.collection,
      period: r.period,
      periodId: r.periodId,
      units: r.units,
      updatedAt: r.updatedAt,
    });
  }
  return items;
}

export const telemetryOperations: Operation[] = [
  operation({
    id: 'getClientUsage',
    method: 'GET',
    path: `${W}/clients/{client}/usage`,
    summary:
      "A client's quota usage per collection and calendar period, as gateways reported it: the authoritative count, newest period first (`?period=daily|monthly`, `?limit=` default 100)",
    tag: 'Telemetry',
    permission: PERMISSION,
    query: z.object({
      period: z.enum(['daily', 'monthly']).optional().describe('Only daily or only monthly periods (default both)'),
      limit: LIMIT_QUERY,
    }),
    response: z.object({ client: z.string(), items: z.array(QuotaUsageSchemaOut) }),
    async handler({ caller, workspace, params, query, plane }) {
      const client = await visibleClient(plane.store, caller, workspace, params.client!);
      return { client: client.id, items: await usageOf(plane.store, caller, workspace, 'client', client.id, query) };
    },
  }),
  operation({
    id: 'getOrgUsage',
    method: 'GET',
    path: `${W}/orgs/{org}/usage`,
    summary:
      "An org's quota usage (all its clients) per collection and calendar period, as gateways reported it, newest period first (`?period=daily|monthly`, `?limit=` default 100)",
    tag: 'Telemetry',
    permission: PERMISSION,
    query: z.object({
      period: z.enum(['daily', 'monthly']).optional().describe('Only daily or only monthly periods (default both)'),
      limit: LIMIT_QUERY,
    }),
    response: z.object({ org: z.string(), items: z.array(QuotaUsageSchemaOut) }),
    async handler({ caller, workspace, params, query, plane }) {
      return { org: params.org!, items: await usageOf(plane.store, caller, workspace, 'org', params.org!, query) };
    },
  }),
  operation({
    id: 'getTelemetry',
    method: 'GET',
    path: `${W}/telemetry`,
    summary:
      'Request counts per minute, gateway, collection, endpoint, client and status (`?since=` ISO time or duration, default 1h; `?gateway=` name, id or `cloud`)',
    tag: 'Telemetry',
    permission: PERMISSION,
    query: z.object({ since: SINCE_QUERY('1h'), gateway: GATEWAY_QUERY }),
    response: z.object({
      since: z.string(),
      items: z.array(TelemetryRowSchemaOut),
      gateways: z.array(GatewayTelemetryStatsSchema),
    }),
    async handler({ caller, workspace, query, plane }) {
      const from = since(query, plane.now(), 3600_000);
      const { gatewayId, view } = await gatewayAndView(plane.store, caller, workspace, query);
      const rows = await plane.store.listTelemetry(workspace.id, { since: from, ...(gatewayId ? { gatewayId } : {}) });
      const items = visibleRows(view, rows);
      const gateways = [];
      const ids = gatewayId
        ? [gatewayId]
        : [CLOUD_GATEWAY_ID, ...(await plane.store.listGateways(workspace.id)).map((g) => g.id)];
      for (const id of ids) {
        const stats = view.gatewayVisible(id) ? plane.telemetry?.stats(id) : undefined;
        if (stats)
          gateways.push({
            gateway: id,
            gatewayName: view.gatewayName(id),
            batches: stats.batches,
            lastBatchAt: stats.lastBatchAt,
            dropped: stats.dropped,
          });
      }
      return { since: from, items, gateways };
    },
  }),
  operation({
    id: 'listSecurityEvents',
    method: 'GET',
    path: `${W}/security-events`,
    summary:
      'Authentication failures and other refusals reported by gateways, newest first (`?since=` default 24h, `?gateway=`, `?limit=` default 100)',
    tag: 'Telemetry',
    permission: PERMISSION,
    query: z.object({ since: SINCE_QUERY('24h'), gateway: GATEWAY_QUERY, limit: LIMIT_QUERY }),
    response: z.object({ items: z.array(SecurityEventSchemaOut) }),
    async handler({ caller, workspace, query, plane }) {
      const from = since(query, plane.now(), 24 * 3600_000);
      const max = limit(query, 100);
      const { gatewayId, view } = await gatewayAndView(plane.store, caller, workspace, query);
      // More than the limit is read, so that events the caller may not see do not leave its page short.
      const events = await plane.store.listSecurityEvents(workspace.id, {
        since: from,
        ...(gatewayId ? { gatewayId } : {}),
        limit: SCAN_LIMIT,
      });
      return { items: visibleRows(view, events, max) };
    },
  }),
  operation({
    id: 'listAccessEvents',
    method: 'GET',
    path: `${W}/access-events`,
    summary:
      'A sample of recent requests reported by gateways, newest first; held in memory by the control-plane process that received them (`?gateway=`, `?limit=` default 100)',
    tag: 'Telemetry',
    permission: PERMISSION,
    query: z.object({ gateway: GATEWAY_QUERY, limit: LIMIT_QUERY }),
    response: z.object({ items: z.array(AccessEventSchemaOut) }),
    async handler({ caller, workspace, query, plane }) {
      const max = limit(query, 100);
      const { gatewayId, view } = await gatewayAndView(plane.store, caller, workspace, query);
      const events = plane.telemetry?.accessEvents(workspace.id, gatewayId ? { gatewayId } : {}) ?? [];
      return { items: visibleRows(view, events, max) };
    },
  }),
  operation({
    id: 'listAlerts',
    method: 'GET',
    path: `${W}/alerts`,
    summary:
      'Alerts (authentication-failure spikes, version mismatch, connectivity loss, a degraded rate-limit store) and their deliveries, newest first (`?open=true` or `false`, `?limit=` default 100, `?before=` the `next` cursor of the previous page)',
    tag: 'Telemetry',
    permission: PERMISSION,
    query: z.object({
      open: queryBoolean('Only open alerts (true) or only resolved ones (false); default both'),
      limit: LIMIT_QUERY,
      before: queryText('The `next` cursor of the previous page: the older alerts'),
    }),
    response: z.object({
      items: z.array(AlertSchemaOut),
      next: z.string().optional().describe('Pass as `?before=` for the next (older) page; absent on the last page'),
    }),
    async handler({ caller, workspace, query, plane }) {
      const open = query.get('open');
      if (open !== null && open !== 'true' && open !== 'false')
        throw invalid('query.open', 'must be "true" or "false"');
      const max = limit(query, 100);
      const beforeParam = query.get('before');
      const before = beforeParam ? parseAlertCursor(beforeParam) : undefined;
      const view = await visibility(plane.store, caller, workspace);
      const alerts = await plane.store.listAlerts(workspace.id, {
        ...(open !== null ? { open: open === 'true' } : {}),
        ...(before ? { before } : {}),
        limit: SCAN_LIMIT,
      });
      const page = [];
      let last: (typeof alerts)[number] | undefined;
      let more = false;
      for (const a of alerts) {
        if (page.length === max) {
          more = true;
          break;
        }
        last = a;
        if (view.gatewayVisible(a.gatewayId)) page.push(a);
      }
      // A full scan that ended on invisible alerts still has older ones to look at.
      if (!more && alerts.length === SCAN_LIMIT) more = true;
      const deliveries = Map.groupBy(
        await plane.store.listAlertDeliveries(
          workspace.id,
          page.map((a) => a.id),
        ),
        (d) => d.alertId,
      );
      const destinations = new Map((await plane.store.listAlertDestinations(workspace.id)).map((d) => [d.id, d.name]));
      const items = page.map((a) => {
        const { workspaceId: _w, key: _k, gatewayId, ...rest } = a;
        const sent = deliveries.get(a.id) ?? [];
        return {
          ...rest,
          ...(gatewayId !== undefined ? { gateway: gatewayId, gatewayName: view.gatewayName(gatewayId) } : {}),
          ...(sent.length > 0
            ? {
                deliveries: sent.map((d) => ({
                  destination: d.destinationId,
                  destinationName: destinations.get(d.destinationId) ?? d.destinationId,
                  state: d.state,
                  attempts: d.attempts,
                  ...(d.deliveredAt !== undefined ? { deliveredAt: d.deliveredAt } : {}),
                  ...(d.lastStatus !== undefined ? { lastStatus: d.lastStatus } : {}),
                  ...(d.lastError !== undefined ? { lastError: d.lastError } : {}),
                })),
              }
            : {}),
        };
      });
      return { items, ...(more && last ? { next: alertCursor(last) } : {}) };
    },
  }),
];
