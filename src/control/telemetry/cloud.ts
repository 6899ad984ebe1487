/**
 * The cloud gateway's own telemetry: the same collector an edge gateway runs, subscribed to the embedded cloud
 * gateway only, feeding the ingest directly every `intervalMs` instead of over gRPC. Its traffic is recorded under
 * gateway id `cloud`, in the workspace each collection belongs to.
 *
 * The cloud gateway is multi-tenant and its collections carry their plain names, which several workspaces (and
 * environments) may share; but each is served under `/<workspace name>/<environment>/…` (`cloudBasePath`), so the
 * collector labels it `<workspace name>/<collection>` and the ingest resolves the workspace by name. Environments
 * are not told apart: the aggregates of a name used in two environments of one workspace add up.
 */
import type { Logger } from 'pino';
import {
  type CompiledCollection,
  createTelemetryCollector,
  type GatewayInstance,
  type TelemetryCollector,
} from '../../gateway/index.ts';
import type { Store } from '../store/store.ts';
import type { CollectionOwner, TelemetryIngest } from './ingest.ts';

export interface CloudTelemetryOptions {
  /** The cloud gateway's instance (`CloudGateway.instance`). */
  gateway: GatewayInstance;
  ingest: Pick<TelemetryIngest, 'ingestCloud'>;
  store: Pick<Store, 'getWorkspace'>;
  logger: Logger;
  /** How often the collected telemetry is stored. Default 10 s; 0: only by `flush()`. */
  intervalMs?: number;
  /** The collector's bound (see `createTelemetryCollector`). Default 10 000. */
  maxBufferedEvents?: number;
  now?: () => number;
}

export interface CloudTelemetry {
  readonly collector: TelemetryCollector;
  /** Stores everything collected so far. */
  flush(): Promise<void>;
  /** Stops the timer, flushes once more and unsubscribes. */
  close(): Promise<void>;
}

/** `<workspace name>/<collection>`: the first segment of a cloud collection's base path is its workspace's name. */
export function cloudCollectionLabel(collection: CompiledCollection): string {
  const end = collection.basePath.indexOf('/', 1);
  return `${collection.basePath.slice(1, end < 0 ? undefined : end)}/${collection.name}`;
}

/** Workspace names resolved to ids are remembered this long (a renamed workspace's collections move). */
const WORKSPACE_CACHE_MS = 60_000;

export function startCloudTelemetry(options: CloudTelemetryOptions): CloudTelemetry {
  const { gateway, ingest, store, logger } = options;
  const now = options.now ?? Date.now;
  const collector = createTelemetryCollector({
    instanceId: 'cloud',
    server: gateway.server,
    metrics: gateway.metrics,
    collectionLabel: cloudCollectionLabel,
    maxBufferedEvents: options.maxBufferedEvents,
    now,
  });
  const workspaces = new Map<string, { id: string; until: number }>();

  async function owner(label: string): Promise<CollectionOwner | undefined> {
    const slash = label.indexOf('/');
    if (slash <= 0) return undefined;
    const name = label.slice(0, slash);
    let cached = workspaces.get(name);
    if (cached === undefined || cached.until <= now()) {
      const ws = await store.getWorkspace({ name });
      if (ws === undefined) {
        workspaces.delete(name);
        return undefined;
      }
      workspaces.set(name, (cached = { id: ws.id, until: now() + WORKSPACE_CACHE_MS }));
    }
    return { workspaceId: cached.id, collection: label.slice(slash + 1) };
  }

  let flushing: Promise<void> | undefined;
  async function flushNow(): Promise<void> {
    for (let batch = collector.takeBatch(); batch !== undefined; batch = collector.takeBatch()) {
      try {
        await ingest.ingestCloud(batch, owner);
      } catch (err) {
        collector.requeue(); // kept (bounded) and tried again at the next flush
        logger.error({ err }, 'storing the cloud gateway telemetry failed');
        return;
      }
      collector.ack(batch.sequence);
    }
  }
  const flush = () => (flushing ??= flushNow().finally(() => (flushing = undefined)));

  const intervalMs = options.intervalMs ?? 10_000;
  const timer = intervalMs > 0 ? setInterval(() => void flush(), intervalMs) : undefined;
  timer?.unref();

  return {
    collector,
    flush,
    async close() {
      if (timer) clearInterval(timer);
      await flushing;
      await flush();
      collector.close();
    },
  };
}
