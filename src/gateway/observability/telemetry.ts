/**
 * The gateway's telemetry collector: subscribes to the request-path diagnostics channels and turns what it hears
 * into `TelemetryBatch`es (src/config/telemetry.ts) for the control plane.
 *
 * - **Request counts**, aggregated per minute × collection × endpoint (`METHOD /template` or `-`) × client id (or
 *   `-`) × status (× agent × session for a derived credential's requests): count, duration sum and maximum. A burst of a million requests to one endpoint is one row.
 * - **Security events**, one per refusal worth an operator's attention (`securityEventKind`): the reason (the
 *   `GH_ERR_*` code), collection, client id when the key was found, client IP, and the key's label — or, for an
 *   unknown or malformed Gatehouse key, its display prefix (`ghk_AbCd…`). Never the key.
 * - **Rate-limit store state**: while this instance's shared rate-limit store is degraded, a security event of kind
 *   `rate_limit_store_degraded` when it happens and every 15 s while it lasts (the control plane's alerting raises
 *   an alert on it, and resolves it once the events stop).
 * - **Access events**, a uniform random sample (reservoir sampling) of at most `accessEventsPerBatch` requests
 *   per batch. The counts above cover every request; the sample is for looking at individual requests.
 *
 * Bounded: request rows, security events and access events held — not yet taken, or taken but not yet
 * acknowledged — never exceed `maxBufferedEvents` together. While the control plane is unreachable the buffer
 * fills; beyond the bound new events are dropped and counted (`dropped` of the next batch and the Prometheus
 * counter `gatehouse_telemetry_dropped_total{kind}`). A request that adds to an existing row costs no space, so
 * it is never dropped.
 *
 * The sender's protocol: `takeBatch()` hands out the next batch (a resent one first) and keeps it pending;
 * `ack(sequence)` forgets it once the control plane acknowledged it; `requeue()` after a reconnect makes every
 * pending batch go out again, in sequence order. A batch holds at most `maxBufferedEvents` events.
 */
import client from 'prom-client';
import {
  batchSize,
  containsKey,
  NONE,
  SecurityEventKind,
  securityEventKind,
  type AccessEvent,
  type QuotaUsage,
  type RequestCount,
  type SecurityEvent,
  type TelemetryBatch,
} from '../../config/telemetry.ts';
import type { QuotaDebit } from '../policies/policy.ts';
import type { CompiledCollection } from '../snapshot/compiled.ts';
import { channels, type KeyRefusedEvent, type RateLimitStoreStateEvent, type RequestEndEvent } from './channels.ts';
import type { GatewayMetrics } from './metrics.ts';

export interface TelemetryCollectorOptions {
  /** This process's instance id (random per process, as in the sync `Hello`). */
  instanceId: string;
  /**
   * Count only requests answered by this server (`GatewayInstance.server`). Default: every gateway of the
   * process (the diagnostics channels are process-wide).
   */
  server?: object;
  /** Request rows + security events + access events held at most, pending batches included. Default 10 000. */
  maxBufferedEvents?: number;
  /** Access events sampled per batch. Default 100; 0 for none. */
  accessEventsPerBatch?: number;
  /** Registers `gatehouse_telemetry_dropped_total` in these metrics' registry. */
  metrics?: GatewayMetrics;
  /** The name a collection is reported under. Default: its name (the cloud gateway prefixes its workspace). */
  collectionLabel?: (collection: CompiledCollection) => string;
  now?: () => number;
  /** For the access-event sample. Default `Math.random`. */
  random?: () => number;
}

export interface TelemetryCollector {
  /** The next batch to send — a requeued one first — or undefined when there is nothing to send. */
  takeBatch(): TelemetryBatch | undefined;
  /** The control plane acknowledged this batch: forget it. Returns whether it was pending. */
  ack(sequence: number): boolean;
  /** Every batch taken and not acknowledged goes out again (after a reconnect), oldest first. */
  requeue(): void;
  /** Events dropped since the collector started. */
  dropped(): number;
  /** Events held now, pending batches included. */
  buffered(): number;
  /** Unsubscribes; batches already taken may still be acknowledged. */
  close(): void;
}

const DROPPED_METRIC = 'gatehouse_telemetry_dropped_total';
type DropKind = 'request' | 'security' | 'access';

export function createTelemetryCollector(options: TelemetryCollectorOptions): TelemetryCollector {
  const { instanceId, server } = options;
  const maxBuffered = options.maxBufferedEvents ?? 10_000;
  const sampleSize = options.accessEventsPerBatch ?? 100;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const labelOf = options.collectionLabel ?? ((c: CompiledCollection) => c.name);
  const droppedCounter = options.metrics ? droppedMetric(options.metrics.registry) : undefined;

  let rows = new Map<string, RequestCount>();
  /** Quota units admitted since the last batch, per collection, scope, subject and period. */
  let usage = new Map<string, QuotaUsage>();
  let security: SecurityEvent[] = [];
  let access: AccessEvent[] = [];
  /** Requests offered to the access-event sample since the last batch. */
  let accessSeen = 0;
  let droppedSinceBatch = 0;
  let droppedTotal = 0;
  let sequence = 0;
  /** Taken, not acknowledged; and requeued, to be taken again — both in sequence order. */
  let pending: TelemetryBatch[] = [];
  let resend: TelemetryBatch[] = [];
  let pendingEvents = 0;
  /** The minute of the last request, and its ISO form (built once per minute, not per request). */
  let minuteStart = -1;
  let minuteIso = '';
  /** The display prefix of the key the current refusal is about (published just before its request end). */
  let refusedKey: KeyRefusedEvent | undefined;

  const buffered = () => rows.size + security.length + access.length + usage.size + pendingEvents;
  const drop = (kind: DropKind) => {
    droppedSinceBatch++;
    droppedTotal++;
    droppedCounter?.labels(kind).inc();
  };

  function onKeyRefused(message: unknown): void {
    refusedKey = message as KeyRefusedEvent;
  }

  function onRequestEnd(message: unknown): void {
    const e = message as RequestEndEvent;
    if (server !== undefined && e.server !== server) return;
    const t = now();
    if (t < minuteStart || t >= minuteStart + 60_000) {
      minuteStart = t - (t % 60_000);
      minuteIso = new Date(minuteStart).toISOString();
    }
    const collection = e.collection === undefined ? NONE : labelOf(e.collection);
    if (e.quota !== undefined && e.collection !== undefined) addUsage(collection, e.quota);
    const endpoint = e.endpoint === undefined ? NONE : `${e.endpoint.method} ${e.endpoint.template}`;
    const clientId = e.principal?.id ?? NONE;
    // A derived credential's traffic is its agent's (the acting one: the last of a delegation chain) and session's.
    const agent = e.derived?.a.sub;
    const session = e.derived?.a.session;
    const key =
      agent === undefined
        ? `${minuteIso}\n${collection}\n${endpoint}\n${clientId}\n${e.status}`
        : `${minuteIso}\n${collection}\n${endpoint}\n${clientId}\n${e.status}\n${agent}\n${session ?? ''}`;
    const row = rows.get(key);
    if (row !== undefined) {
      row.count++;
      row.durationMsSum += e.ms;
      if (e.ms > row.durationMsMax) row.durationMsMax = e.ms;
    } else if (buffered() >= maxBuffered) {
      drop('request');
    } else {
      rows.set(key, {
        minute: minuteIso,
        collection,
        endpoint,
        clientId,
        ...(agent !== undefined && { agent }),
        ...(session !== undefined && { session }),
        status: e.status,
        count: 1,
        durationMsSum: e.ms,
        durationMsMax: e.ms,
      });
    }

    const kind = e.code === undefined ? undefined : securityEventKind(e.code);
    if (kind !== undefined) {
      let keyLabel = e.key?.label ?? '';
      if (refusedKey !== undefined) {
        if (refusedKey.requestId === e.requestId && keyLabel === '') keyLabel = refusedKey.keyPrefix;
        refusedKey = undefined;
      }
      if (containsKey(keyLabel)) keyLabel = ''; // a configured key id that is a key: never sent

      if (buffered() >= maxBuffered) drop('security');
      else
        security.push({
          at: new Date(t).toISOString(),
          kind,
          reason: e.code!,
          collection: e.collection === undefined ? '' : collection,
          clientId: e.principal?.id ?? '',
          keyLabel,
          ip: e.clientIp.slice(0, 64),
          ...(agent !== undefined && { agent }),
          ...(session !== undefined && { session }),
        });
    }

    if (sampleSize > 0) {
      // Reservoir sampling (Algorithm R): every request of the batch is in the sample with equal probability.
      accessSeen++;
      let slot = access.length;
      if (slot >= sampleSize) {
        slot = Math.floor(random() * accessSeen);
        if (slot >= sampleSize) return;
      } else if (buffered() >= maxBuffered) {
        return drop('access');
      }
      access[slot] = {
        at: new Date(t).toISOString(),
        requestId: e.requestId,
        method: e.method,
        path: endpoint === NONE ? NONE : e.endpoint!.template,
        status: e.status,
        durationMs: Math.round(e.ms * 100) / 100,
        clientId: e.principal?.id ?? '',
        collection: e.collection === undefined ? '' : collection,
        ...(agent !== undefined && { agent }),
        ...(session !== undefined && { session }),
      };
    }
  }

  function onRateLimitStore(message: unknown): void {
    const e = message as RateLimitStoreStateEvent;
    if (e.status !== 'degraded' || (server !== undefined && e.server !== server)) return;
    if (buffered() >= maxBuffered) return drop('security');
    security.push({
      at: new Date(now()).toISOString(),
      kind: SecurityEventKind.rateLimitStoreDegraded,
      reason: 'GH_ERR_RATE_LIMIT_STORE_UNAVAILABLE',
      collection: '',
      clientId: '',
      keyLabel: '',
      ip: '',
    });
  }

  /** Adds an admitted request's quota units to the batch's usage rows. */
  function addUsage(collection: string, debit: QuotaDebit): void {
    for (const q of debit.quotas) {
      const key = `${collection}\u0000${q.scope}\u0000${q.subject}\u0000${q.period}\u0000${q.periodId}`;
      const row = usage.get(key);
      if (row !== undefined) {
        row.units += debit.units;
        continue;
      }
      // Usage is what the control plane bills by: it is kept over other events, up to twice the buffer.
      if (buffered() >= 2 * maxBuffered) {
        drop('request');
        continue;
      }
      usage.set(key, { collection, ...q, units: debit.units });
    }
  }

  channels.keyRefused.subscribe(onKeyRefused);
  channels.requestEnd.subscribe(onRequestEnd);
  channels.rateLimitStore.subscribe(onRateLimitStore);

  return {
    takeBatch() {
      const again = resend.shift();
      if (again !== undefined) {
        pending.push(again);
        return again;
      }
      if (
        rows.size === 0 &&
        security.length === 0 &&
        access.length === 0 &&
        usage.size === 0 &&
        droppedSinceBatch === 0
      )
        return undefined;
      const batch: TelemetryBatch = {
        instanceId,
        sequence: ++sequence,
        requests: [...rows.values()],
        securityEvents: security,
        accessEvents: access,
        dropped: droppedSinceBatch,
        quotaUsage: [...usage.values()],
      };
      rows = new Map();
      usage = new Map();
      security = [];
      access = [];
      accessSeen = 0;
      droppedSinceBatch = 0;
      pending.push(batch);
      pendingEvents += batchSize(batch);
      return batch;
    },
    ack(seq) {
      for (const list of [pending, resend]) {
        const i = list.findIndex((b) => b.sequence === seq);
        if (i >= 0) {
          pendingEvents -= batchSize(list[i]!);
          list.splice(i, 1);
          return true;
        }
      }
      return false;
    },
    requeue() {
      resend = [...pending, ...resend].sort((a, b) => a.sequence - b.sequence);
      pending = [];
    },
    dropped: () => droppedTotal,
    buffered,
    close() {
      channels.keyRefused.unsubscribe(onKeyRefused);
      channels.requestEnd.unsubscribe(onRequestEnd);
      channels.rateLimitStore.unsubscribe(onRateLimitStore);
    },
  };
}

/** The dropped-events counter of a registry: created once, shared by every collector recording into it. */
function droppedMetric(registry: client.Registry): client.Counter<'kind'> {
  const existing = registry.getSingleMetric(DROPPED_METRIC);
  if (existing) return existing as client.Counter<'kind'>;
  return new client.Counter({
    name: DROPPED_METRIC,
    help: 'Telemetry events (request rows, security events, access events) dropped because the buffer for the control plane was full.',
    labelNames: ['kind'],
    registers: [registry],
  });
}
