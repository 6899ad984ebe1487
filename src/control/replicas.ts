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

/** How often a replica refreshes its record. */
export const REPLICA_REFRESH_MS = 10_000;
/** A replica not seen for this long is not handed out to gateways any more (three refreshes missed). */
export const REPLICA_STALE_MS = 3 * REPLICA_REFRESH_MS;

export interface ReplicaPresence {
  readonly id: string;
  /** The endpoints of the other live replicas (deduplicated, without this one's). */
  alternates(): Promise<ReplicaEndpoints[]>;
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
  await store.upsertReplica(record());
  const timer = setInterval(
    () =>
      void store
        .upsertReplica(record())
        .catch((err: unknown) => logger.warn({ err }, 'cannot refresh this replica in the store; retrying')),
    options.intervalMs ?? REPLICA_REFRESH_MS,
  );
  timer.unref();
  return {
    id,
    async alternates() {
      const live = await store.listReplicas(nowIso(now() - REPLICA_STALE_MS));
      const seen = new Set([endpoints.sync]);
      const out: ReplicaEndpoints[] = [];
      for (const r of live) {
        if (seen.has(r.sync)) continue;
        seen.add(r.sync);
        out.push({ bootstrap: r.bootstrap, sync: r.sync, telemetry: r.telemetry });
      }
      return out;
    },
    async close() {
      clearInterval(timer);
      await store.deleteReplica(id).catch(() => {});
    },
  };
}
