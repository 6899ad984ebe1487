/**
 * The control plane's side of telemetry: batches from edge gateway instances (through the sync server's
 * `Telemetry.Report` stream) and from the embedded cloud gateway (cloud.ts) are validated, stored and handed to
 * alerting.
 *
 * - Request counts are added to the store's per-minute aggregates (`addTelemetry`) under the gateway's workspace;
 *   security events are stored (`insertSecurityEvents`) — both in one transaction, so a batch counts entirely or
 *   not at all.
 * - Access events are not stored: the newest `accessEventsKept` per workspace are kept in this process's memory
 *   for the admin API (`GET …/access-events`), and each is logged at debug level. They are a sample (see the
 *   collector); the aggregates are the record.
 * - `dropped` (events a gateway instance could not buffer while disconnected) is logged as a warning and added to
 *   the gateway's in-memory `stats`.
 * - Delivery is at least once: a gateway resends batches it saw no acknowledgement for. Batches already stored are
 *   recognised by (gateway, instance, sequence) and skipped: first in this process's memory, then in the store,
 *   where the batch's record is written in the transaction that stores it (`claimTelemetryBatch`), so a resend
 *   that reaches another control-plane replica is skipped there too and request counts and quota usage count once.
 *   The records are kept for a day (`BATCH_MEMORY_MS`): a resend follows a lost acknowledgement when the instance
 *   reconnects, normally within seconds; one arriving more than a day after the batch was stored counts again.
 * - Quota usage (units per client or org, collection and calendar period) is added to the store's `quota_usage`
 *   in the same transaction: the authoritative usage the admin API reads (`GET …/clients/{client}/usage`).
 * - Aggregates and security events older than `retentionMs` are deleted (at most hourly, in the background).
 * - A batch with security events then lets alerting evaluate the workspace (nothing else in a batch changes an
 *   alert's condition; alerting's own timer notices silence).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { formatIssues } from '../../config/schema.ts';
import {
  NONE,
  TelemetryBatchSchema,
  type AccessEvent,
  type ReceivedAccessEvent,
  type SecurityEvent,
  type TelemetryBatch,
  type TelemetryRow,
} from '../../config/telemetry.ts';
import type { GatewayRecord, QuotaUsageRecord, SecurityEventRecord, Store, TelemetryRecord } from '../store/store.ts';
import type { SecurityEventsTable, TelemetryTable } from '../store/tables.ts';

export type { ReceivedAccessEvent } from '../../config/telemetry.ts';

/** `durationMsSum` → `duration_ms_sum`. */
type SnakeCase<S extends string> = S extends `${infer H}${infer T}`
  ? `${H extends Lowercase<H> ? H : `_${Lowercase<H>}`}${SnakeCase<T>}`
  : S;
type Columns<T> = { [K in keyof T as SnakeCase<K & string>]: T[K] };
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/**
 * The SQL table of telemetry rows has a column for each field of the config's `TelemetryRowSchema`, of the same
 * type, and no other: adding a field to one and not the other fails the typecheck here.
 */
const TELEMETRY_TABLE_MATCHES_ROW: Same<TelemetryTable, Columns<Present<TelemetryRow>>> = true;
void TELEMETRY_TABLE_MATCHES_ROW;

/** An optional field's column is nullable. */
type NullableColumns<T> = {
  [K in keyof T as SnakeCase<K & string>]-?: undefined extends T[K] ? Exclude<T[K], undefined> | null : T[K];
};
/** Each field present, `''` where the stored form leaves it out (as a telemetry batch carries it). */
type Present<T> = { [K in keyof T]-?: Exclude<T[K], undefined> };
/**
 * Likewise the security events table and the config's `SecurityEventRecordSchema` (an optional field: a nullable
 * column); a stored security event is a batch's `SecurityEvent` plus id, workspace and gateway; an access event
 * kept in memory is a batch's `AccessEvent` plus gateway and instance.
 */
const SECURITY_EVENTS_TABLE_MATCHES_RECORD: Same<SecurityEventsTable, NullableColumns<SecurityEventRecord>> = true;
const SECURITY_EVENT_RECORD_MATCHES_BATCH: Same<
  Present<Omit<SecurityEventRecord, 'id' | 'workspaceId' | 'gatewayId'>>,
  Present<SecurityEvent>
> = true;
const RECEIVED_ACCESS_EVENT_MATCHES_BATCH: Same<
  Omit<ReceivedAccessEvent, 'gatewayId' | 'instanceId'>,
  AccessEvent
> = true;
void SECURITY_EVENTS_TABLE_MATCHES_RECORD;
void SECURITY_EVENT_RECORD_MATCHES_BATCH;
void RECEIVED_ACCESS_EVENT_MATCHES_BATCH;

/** The batch does not match the contract: the sync server answers INVALID_ARGUMENT (resending it cannot help). */
export class TelemetryBatchError extends Error {
  override readonly name = 'TelemetryBatchError';
}

/** The workspace a cloud-gateway collection belongs to, and the collection's own name. */
export interface CollectionOwner {
  workspaceId: string;
  collection: string;
}

export interface TelemetryIngestOptions {
  store: Store;
  logger: Logger;
  now?: () => number;
  /** Evaluated after a batch that carried security events. */
  alerts?: { evaluate(workspaceId: string): Promise<void> };
  /** Access events kept in memory per workspace. Default 1000. */
  accessEventsKept?: number;
  /**
   * Request aggregates and security events older than this are deleted (checked at most hourly, as batches
   * arrive). Default 7 days.
   */
  retentionMs?: number;
}

/** What this process heard from a gateway (`cloud` for the cloud gateway) since it started. */
export interface GatewayTelemetryStats {
  gatewayId: string;
  batches: number;
  lastBatchAt: string;
  /** Events the gateway's instances reported dropped (buffer full while disconnected). */
  dropped: number;
}

export interface TelemetryIngest {
  /**
   * One batch of an edge gateway instance, as received (validated here). Throws `TelemetryBatchError` for a batch
   * that does not match the contract; a store failure rejects with that error (the batch should be resent).
   */
  ingest(gateway: GatewayRecord, instanceId: string, batch: unknown): Promise<void>;
  /**
   * One batch of the cloud gateway's own collector, whose collections are labelled `<workspace name>/<collection>`
   * (`cloudCollectionLabel`): `owner` resolves a label. Stored under gateway id `cloud`; rows no workspace owns
   * (unrouted requests, deleted workspaces) are left out.
   */
  ingestCloud(batch: TelemetryBatch, owner: (label: string) => Promise<CollectionOwner | undefined>): Promise<void>;
  stats(gatewayId: string): GatewayTelemetryStats | undefined;
  /** The newest access events of a workspace, newest first. */
  accessEvents(workspaceId: string, filter?: { gatewayId?: string; limit?: number }): ReceivedAccessEvent[];
}

/** The gateway id under which the cloud gateway's telemetry and alerts are kept. */
export const CLOUD_GATEWAY_ID = 'cloud';
const CLOUD = CLOUD_GATEWAY_ID;

/** Sequences remembered per instance for recognising resent batches. */
const SEQUENCES_KEPT = 256;
/** Instances not heard from this long are forgotten. */
const INSTANCE_MEMORY_MS = 3600_000;
/** How long the store remembers a stored batch (see `claimTelemetryBatch`). */
const BATCH_MEMORY_MS = 24 * 3600_000;

export function createTelemetryIngest(options: TelemetryIngestOptions): TelemetryIngest {
  const { store, logger, alerts } = options;
  const now = options.now ?? Date.now;
  const kept = options.accessEventsKept ?? 1000;
  const retentionMs = options.retentionMs ?? 7 * 24 * 3600_000;
  let prunedTelemetryAt = 0;
  const sequences = new Map<string, { seen: Set<number>; at: number }>();
  const gatewayStats = new Map<string, GatewayTelemetryStats>();
  const recent = new Map<string, ReceivedAccessEvent[]>();
  let prunedAt = now();

  /** Claims a batch: false when it was stored (or is being stored) already. */
  function claim(gatewayId: string, instanceId: string, sequence: number): boolean {
    const t = now();
    if (t - prunedAt > INSTANCE_MEMORY_MS / 4) {
      for (const [k, v] of sequences) if (t - v.at > INSTANCE_MEMORY_MS) sequences.delete(k);
      prunedAt = t;
    }
    const key = `${gatewayId}/${instanceId}`;
    let entry = sequences.get(key);
    if (!entry) sequences.set(key, (entry = { seen: new Set(), at: t }));
    entry.at = t;
    if (entry.seen.has(sequence)) return false;
    entry.seen.add(sequence);
    if (entry.seen.size > SEQUENCES_KEPT) entry.seen.delete(Math.min(...entry.seen));
    return true;
  }

  function release(gatewayId: string, instanceId: string, sequence: number): void {
    sequences.get(`${gatewayId}/${instanceId}`)?.seen.delete(sequence);
  }

  function record(
    gatewayId: string,
    instanceId: string,
    batch: TelemetryBatch,
    workspaces: Iterable<string>,
    accessOf: (e: AccessEvent) => { workspaceId: string; event: AccessEvent } | undefined,
  ): void {
    const at = new Date(now()).toISOString();
    const stats = gatewayStats.get(gatewayId) ?? { gatewayId, batches: 0, lastBatchAt: at, dropped: 0 };
    stats.batches++;
    stats.lastBatchAt = at;
    stats.dropped += batch.dropped;
    gatewayStats.set(gatewayId, stats);
    if (batch.dropped > 0) {
      logger.warn(
        { gateway: gatewayId, instance: instanceId, dropped: batch.dropped, workspaces: [...workspaces] },
        'a gateway instance dropped telemetry events: its buffer was full while the control plane was unreachable',
      );
    }
    const debug = logger.isLevelEnabled('debug');
    for (const e of batch.accessEvents) {
      const owned = accessOf(e);
      if (owned === undefined) continue;
      const event: ReceivedAccessEvent = { ...owned.event, gatewayId, instanceId };
      let list = recent.get(owned.workspaceId);
      if (!list) recent.set(owned.workspaceId, (list = []));
      list.push(event);
      if (list.length > kept) list.splice(0, list.length - kept);
      if (debug) logger.debug({ ...event, workspace: owned.workspaceId }, 'access event');
    }
  }

  /** Deletes old aggregates and security events in the background, at most once an hour. */
  function prune(): void {
    const t = now();
    if (t - prunedTelemetryAt < 3600_000) return;
    prunedTelemetryAt = t;
    const before = new Date(t - retentionMs).toISOString();
    store.pruneTelemetry(before).then(
      (n) => n > 0 && logger.info({ rows: n }, 'deleted telemetry aggregates past their retention'),
      (err: unknown) => logger.warn({ err }, 'deleting old telemetry aggregates failed'),
    );
    store.pruneSecurityEvents(before).then(
      (n) => n > 0 && logger.info({ events: n }, 'deleted security events past their retention'),
      (err: unknown) => logger.warn({ err }, 'deleting old security events failed'),
    );
    store.pruneTelemetryBatches(new Date(t - BATCH_MEMORY_MS).toISOString()).then(
      (n) => n > 0 && logger.debug({ batches: n }, 'forgot telemetry batches stored more than a day ago'),
      (err: unknown) => logger.warn({ err }, 'deleting old telemetry batch records failed'),
    );
  }

  async function evaluate(workspaceIds: Iterable<string>): Promise<void> {
    if (!alerts) return;
    for (const ws of workspaceIds) await alerts.evaluate(ws);
  }

  return {
    async ingest(gateway, instanceId, input) {
      const parsed = TelemetryBatchSchema.safeParse(input);
      if (!parsed.success)
        throw new TelemetryBatchError(
          `invalid telemetry batch from gateway ${gateway.id}: ${formatIssues(parsed.error, 5).replaceAll('\n', '; ')}`,
        );
      const batch = parsed.data;
      if (instanceId !== '' && batch.instanceId !== instanceId)
        throw new TelemetryBatchError(
          `telemetry batch of instance ${batch.instanceId} on the stream of instance ${instanceId}`,
        );
      if (!claim(gateway.id, batch.instanceId, batch.sequence)) {
        logger.debug(
          { gateway: gateway.id, instance: batch.instanceId, sequence: batch.sequence },
          'telemetry batch already stored (resent)',
        );
        return;
      }
      const workspaceId = gateway.workspaceId;
      const rows = batch.requests.map((r): TelemetryRecord => ({ workspaceId, gatewayId: gateway.id, ...r }));
      const events = batch.securityEvents.map((e) => securityRecord(workspaceId, gateway.id, e, e.collection));
      const updatedAt = new Date().toISOString();
      const usage = batch.quotaUsage.map((u): QuotaUsageRecord => ({ ...u, workspaceId, updatedAt }));
      let stored: boolean;
      try {
        stored = await store.transaction(async (tx) => {
          const claim = { gatewayId: gateway.id, instanceId: batch.instanceId, sequence: batch.sequence };
          if (!(await tx.claimTelemetryBatch({ ...claim, at: updatedAt }))) return false;
          if (rows.length > 0) await tx.addTelemetry(rows);
          if (events.length > 0) await tx.insertSecurityEvents(events);
          if (usage.length > 0) await tx.addQuotaUsage(usage);
          return true;
        });
      } catch (error) {
        release(gateway.id, batch.instanceId, batch.sequence);
        throw error;
      }
      if (!stored) {
        logger.debug(
          { gateway: gateway.id, instance: batch.instanceId, sequence: batch.sequence },
          'telemetry batch already stored by another replica (resent)',
        );
        return;
      }
      record(gateway.id, batch.instanceId, batch, [workspaceId], (event) => ({ workspaceId, event }));
      prune();
      if (events.length > 0) await evaluate([workspaceId]);
    },

    async ingestCloud(batch, owner) {
      const owners = new Map<string, CollectionOwner | undefined>();
      const resolve = async (label: string) => {
        if (label === '' || label === NONE) return undefined;
        if (!owners.has(label)) owners.set(label, await owner(label));
        return owners.get(label);
      };
      const rows: TelemetryRecord[] = [];
      for (const r of batch.requests) {
        const o = await resolve(r.collection);
        if (o) rows.push({ ...r, workspaceId: o.workspaceId, gatewayId: CLOUD, collection: o.collection });
      }
      const events: SecurityEventRecord[] = [];
      for (const e of batch.securityEvents) {
        const o = await resolve(e.collection);
        if (o) events.push(securityRecord(o.workspaceId, CLOUD, e, o.collection));
      }
      for (const e of batch.accessEvents) await resolve(e.collection);
      const usage: QuotaUsageRecord[] = [];
      const updatedAt = new Date().toISOString();
      for (const u of batch.quotaUsage) {
        const o = await resolve(u.collection);
        if (o) usage.push({ ...u, workspaceId: o.workspaceId, collection: o.collection, updatedAt });
      }
      if (rows.length > 0 || events.length > 0 || usage.length > 0) {
        await store.transaction(async (tx) => {
          if (rows.length > 0) await tx.addTelemetry(rows);
          if (events.length > 0) await tx.insertSecurityEvents(events);
          if (usage.length > 0) await tx.addQuotaUsage(usage);
        });
      }
      prune();
      const workspaces = new Set([...owners.values()].filter((o) => o !== undefined).map((o) => o.workspaceId));
      record(CLOUD, batch.instanceId, batch, workspaces, (event) => {
        const o = owners.get(event.collection);
        return o && { workspaceId: o.workspaceId, event: { ...event, collection: o.collection } };
      });
      await evaluate(new Set(events.map((e) => e.workspaceId)));
    },

    stats: (gatewayId) => {
      const s = gatewayStats.get(gatewayId);
      return s && { ...s };
    },

    accessEvents(workspaceId, filter = {}) {
      const out: ReceivedAccessEvent[] = [];
      const list = recent.get(workspaceId) ?? [];
      const limit = filter.limit ?? kept;
      for (let i = list.length - 1; i >= 0 && out.length < limit; i--) {
        const e = list[i]!;
        if (filter.gatewayId === undefined || e.gatewayId === filter.gatewayId) out.push(e);
      }
      return out;
    },
  };
}

function securityRecord(
  workspaceId: string,
  gatewayId: string,
  e: SecurityEvent,
  collection: string,
): SecurityEventRecord {
  return {
    id: randomUUID(),
    workspaceId,
    gatewayId,
    at: e.at,
    kind: e.kind,
    reason: e.reason,
    ...(collection !== '' ? { collection } : {}),
    ...(e.clientId !== '' ? { clientId: e.clientId } : {}),
    ...(e.keyLabel !== '' ? { keyLabel: e.keyLabel } : {}),
    ...(e.ip !== '' ? { ip: e.ip } : {}),
    ...(e.agent !== undefined ? { agent: e.agent } : {}),
    ...(e.session !== undefined ? { session: e.session } : {}),
  };
}
