/**
 * Replica presence: every control-plane replica records in the store where edge gateways reach it (its advertised
 * bootstrap, sync and telemetry endpoints) and refreshes the record every `intervalMs`. A gateway that registers
 * through any replica is given the endpoints of the others too (`alternates`, written into its gateway.json by
 * `gatehouse gateway bootstrap`), so that it fails over to another replica when it loses its own.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ControlPlaneEndpoints, ReplicaEndpoints } from '../config/edge.ts';
import { nowIso } from './ids.ts';
import type { Store } from './store/store.ts';

/**
 * What a replica passes to `store.notifyChange` when it starts or stops (never a workspace id, which are `wsp_…`):
 * the others refresh their view of the replica set at once instead of at their next refresh, so that the set
 * advertised to gateways is current within milliseconds of a start (PostgreSQL only; SQLite has one process).
 */
export const REPLICAS_CHANGED = '#replicas';

/** How often a replica refreshes its record. */
export const REPLICA_REFRESH_MS = 10_000;
/** A replica not seen for this long is not handed out to gateways any more (three refreshes missed). */
export const REPLICA_STALE_MS = 3 * REPLICA_REFRESH_MS;

export interface ReplicaPresence {
  readonly id: string;
  /** The endpoints of the other live replicas (deduplicated, without this one's). */
  alternates(): Promise<ReplicaEndpoints[]>;
  /** Every live replica's endpoints, this one first (deduplicated by sync endpoint), as of the last refresh. */
  all(): ReplicaEndpoints[];
  /** Called with `all()` whenever the set changes (checked at every refresh); returns the unsubscribe function. */
  onChange(listener: (replicas: ReplicaEndpoints[]) => void): () => void;
  /** Reads the replica set again now (another replica said it started or stopped: `REPLICAS_CHANGED`). */
  refresh(): Promise<void>;
  /** Stops refreshing and removes this replica's record. */
  close(): Promise<void>;
}

export async function startReplicaPresence(options: {
  store: Store;
  endpoints: ControlPlaneEndpoints;
  logger: Logger;
  now?: () => number;
  intervalMs?: number;
}): Promise<ReplicaPresence> {
  const { store, endpoints, logger } = options;
  const now = options.now ?? Date.now;
  const id = randomUUID();
  const startedAt = nowIso(now());
  const record = () => ({
    id,
    bootstrap: endpoints.bootstrap,
    sync: endpoints.sync,
    telemetry: endpoints.telemetry,
    startedAt,
    seenAt: nowIso(now()),
  });
  const self: ReplicaEndpoints = {
    bootstrap: endpoints.bootstrap,
    sync: endpoints.sync,
    telemetry: endpoints.telemetry,
  };
  const alternates = async () => {
    const live = await store.listReplicas(nowIso(now() - REPLICA_STALE_MS));
    const seen = new Set([endpoints.sync]);
    const out: ReplicaEndpoints[] = [];
    for (const r of live) {
      if (seen.has(r.sync)) continue;
      seen.add(r.sync);
      out.push({ bootstrap: r.bootstrap, sync: r.sync, telemetry: r.telemetry });
    }
    return out;
  };
  const listeners = new Set<(replicas: ReplicaEndpoints[]) => void>();
  let current: ReplicaEndpoints[] = [self];
  let currentKey = JSON.stringify(current);
  let queue: Promise<void> = Promise.resolve();
  const refresh = () => (queue = queue.catch(() => {}).then(read));
  let closed = false;
  const read = async () => {
    if (closed) return; // a refresh asked for while closing must not bring the record back
    await store.upsertReplica(record());
    const next = [self, ...(await alternates())];
    const key = JSON.stringify(next);
    if (key === currentKey) return;
    current = next;
    currentKey = key;
    logger.info({ replicas: next.map((r) => r.sync) }, 'the set of control-plane replicas changed');
    for (const listener of listeners) listener(next);
  };
  await refresh();
  await store
    .notifyChange(REPLICAS_CHANGED)
    .catch((err: unknown) => logger.warn({ err }, 'cannot tell the other replicas that this one started'));
  const timer = setInterval(
    () =>
      void refresh().catch((err: unknown) =>
        logger.warn({ err }, 'cannot refresh this replica in the store; retrying'),
      ),
    options.intervalMs ?? REPLICA_REFRESH_MS,
  );
  timer.unref();
  return {
    id,
    alternates,
    all: () => current,
    refresh,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      closed = true;
      clearInterval(timer);
      listeners.clear();
      await queue.catch(() => {});
      await store.deleteReplica(id).catch(() => {});
      await store.notifyChange(REPLICAS_CHANGED).catch(() => {});
    },
  };
}
