/**
 * An edge gateway's sync with the control plane: the sync client (sync-client.ts: gRPC, loaded only once the
 * listeners are up), every update it receives checked, applied, cached and ACKed — or NACKed with the reason, the
 * last good snapshot staying in force — and the readiness check `config`, which says while nothing is in force why
 * not: what became of the cache, then how connecting to the control plane goes.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { EdgeIdentity, ReplicaEndpoints } from '../../config/edge.ts';
import type { EntityChangesMessage } from '../../config/sync-proto.ts';
import type { GatewayInstance } from '../instance.ts';
import type { ReconnectBackoff } from './backoff.ts';
import type { ConfigInForce } from './config-in-force.ts';
import type { EdgeCredentials } from './edge-credentials.ts';
import type { HandleResult, SyncClient, SyncClientState, SyncUpdate, TelemetrySource } from './sync-client.ts';
import { decodeUpdate, updateVersion } from './sync-update.ts';

/** How re-enrollment goes (certificate-renewal.ts), for the readiness check. */
export interface ReenrollmentProgress {
  /** The certificate had to be re-enrolled before the first connection. */
  first: boolean;
  /** Failed attempts in a row. */
  attempts: number;
  /** Why the last one failed; undefined once one succeeded. */
  error: string | undefined;
}

export interface SyncLoopDeps {
  identity: EdgeIdentity;
  credentials: EdgeCredentials;
  config: ConfigInForce;
  instance: GatewayInstance;
  logger: Logger;
  instanceId: string;
  softwareVersion: string;
  heartbeatMs?: number;
  reconnect?: ReconnectBackoff;
  /** What became of the cache at start-up (cache-start.ts). */
  cacheProblem: string;
  reenrollment(): ReenrollmentProgress;
  /** The gateway is shutting down: no client is started any more. */
  closing(): boolean;
  /** The control plane says this gateway was deleted. */
  onDeleted(reason: string): void;
  /** The control plane advertised the replicas that are up now (validated). */
  onReplicas?(replicas: ReplicaEndpoints[]): void;
}

export class SyncLoop {
  readonly #d: SyncLoopDeps;
  /** Started once the certificate is one the control plane accepts (at once, unless it must re-enroll first). */
  #client: SyncClient | undefined;
  #module: Promise<typeof import('./sync-client.ts')> | undefined;
  #connecting: Promise<void> | undefined;
  #lastNack: string | undefined;
  #telemetry: TelemetrySource | undefined;

  constructor(deps: SyncLoopDeps) {
    this.#d = deps;
  }

  get client(): SyncClient | undefined {
    return this.#client;
  }

  /**
   * Loads the sync client and connects at once, unless the certificate must be re-enrolled first; `telemetry`:
   * the batches to stream while connected.
   */
  start(options: { connectNow: boolean; telemetry: TelemetrySource | undefined }): void {
    this.#telemetry = options.telemetry;
    this.#load();
    if (options.connectNow) this.connect();
  }

  /** Starts the sync client (once). */
  connect(): void {
    const { identity, logger, config, instance } = this.#d;
    this.#connecting ??= this.#load()
      .then(({ startSyncClient }) => {
        if (this.#d.closing() || config.deactivated) return;
        this.#client = startSyncClient({
          endpoint: identity.controlPlane.sync,
          telemetryEndpoint: identity.controlPlane.telemetry,
          alternates: identity.controlPlane.alternates,
          serverName: identity.controlPlane.serverName,
          credentials: () => this.#d.credentials.pems,
          logger,
          instanceId: this.#d.instanceId,
          softwareVersion: this.#d.softwareVersion,
          hostname: hostname(),
          applied: () => config.current && { version: config.current.version, hash: config.current.hash },
          handle: (update) => this.#handle(update),
          entitySets: () => instance.entitySets.versions(),
          handleEntities: async (message) => this.#handleEntities(message),
          heartbeatMs: this.#d.heartbeatMs,
          reconnect: this.#d.reconnect,
          telemetry: this.#telemetry,
          onDeleted: (reason) => this.#d.onDeleted(reason),
          onReplicas: this.#d.onReplicas,
          onState: (state) => this.updateConfigCheck(state),
        });
      })
      .catch((err: unknown) =>
        logger.error({ err }, 'cannot start the sync client; the gateway serves what it has but does not sync'),
      );
  }

  /** Sets the readiness check `config`: failing, with the reason, while no configuration is in force. */
  updateConfigCheck(sync = this.#client?.state()): void {
    const { config, instance } = this.#d;
    if (config.current || config.deactivated) instance.setCheck('config', undefined);
    else instance.setCheck('config', { status: 'failing', detail: this.#describeWait(sync) });
  }

  async close(): Promise<void> {
    await this.#connecting;
    await this.#client?.close();
  }

  /** Loaded here, after the listeners are up: gRPC and the proto take a while to load, and serving does not wait. */
  #load(): Promise<typeof import('./sync-client.ts')> {
    if (!this.#module) {
      this.#module = import('./sync-client.ts');
      this.#module.catch(() => {}); // reported by connect()
    }
    return this.#module;
  }

  /**
   * Why no configuration is in force, for the readiness check `config` (and the 503 answers meanwhile): what became
   * of the cache, then how connecting to the control plane goes. Never a secret: paths, endpoints, gRPC statuses.
   */
  #describeWait(sync: SyncClientState | undefined): string {
    const { identity } = this.#d;
    const reenroll = this.#d.reenrollment();
    const where = `the control plane at ${identity.controlPlane.sync}`;
    let channel: string;
    if (reenroll.error !== undefined || (reenroll.first && !this.#client)) {
      channel = `re-enrolling with the control plane at ${identity.controlPlane.bootstrap}${reenroll.error === undefined ? '' : ` (attempt ${reenroll.attempts}, last error: ${reenroll.error})`}`;
    } else if (sync?.connected) {
      channel = `connected to ${where}, waiting for a snapshot it can apply${this.#lastNack === undefined ? '' : ` (the last one was refused: ${this.#lastNack})`}`;
    } else if (sync && sync.attempts > 0) {
      channel = `connecting to ${where} (attempt ${sync.attempts + 1}, last error: ${sync.lastError ?? 'none'})`;
    } else {
      channel = `connecting to ${where}`;
    }
    return `${this.#d.cacheProblem}; ${channel}`;
  }

  /** Applies one message of the entity stream to the sets held, and records it in the cache. */
  #handleEntities(message: EntityChangesMessage): { ok: true } | { ok: false; resync: boolean } {
    const { config, instance, logger } = this.#d;
    if (config.deactivated) return { ok: true };
    const result = instance.entitySets.apply(message);
    if (!result.ok) {
      logger.warn({ set: message.set, error: result.error }, 'asking the control plane for an entity set again');
      return result;
    }
    void config.entityCache?.record(message, instance.entitySets);
    if (!message.more && message.fromVersion === 0)
      logger.info(
        { set: message.set, version: message.toVersion, entities: instance.entitySets.get(message.set).size },
        'received an entity set whole',
      );
    else if (!message.more)
      logger.debug(
        { set: message.set, version: message.toVersion, changed: result.applied },
        'relationship data applied from the control plane',
      );
    return { ok: true };
  }

  /** Checks, applies and caches one update; the sync client ACKs or NACKs it with the result. */
  async #handle(update: SyncUpdate): Promise<HandleResult> {
    const { config, instance, logger } = this.#d;
    const version = updateVersion(update);
    if (config.deactivated) return { ok: false, version, error: 'this gateway was deleted' };
    const nack = (error: string, resync = false): HandleResult => {
      logger.error(
        { version, kind: update.kind, error },
        `refusing snapshot v${version} from the control plane (NACK); the previous one stays in force`,
      );
      this.#lastNack = `v${version}: ${error.split('\n')[0]}`;
      this.updateConfigCheck();
      return { ok: false, version, error, resync };
    };
    const decoded = decodeUpdate(update, config.current?.snapshot);
    if (!decoded.ok) return nack(decoded.error, decoded.resync);
    const { snapshot, hash } = decoded;
    const inForce = config.current;
    if (inForce?.version === version && inForce.hash === hash) {
      inForce.source = 'control-plane';
      return { ok: true, version, hash };
    }
    const result = await instance.apply(snapshot, { source: `snapshot v${version}`, log: false });
    if (!result.applied) return nack(result.error ?? 'the gateway could not apply the snapshot');
    if (config.deactivated) return { ok: false, version, error: 'this gateway was deleted' };
    config.current = { snapshot, version, hash, source: 'control-plane' };
    const sets = new Set(Object.values(snapshot.entitySets ?? {}));
    instance.entitySets.retain(sets);
    void config.entityCache?.retain(sets);
    this.#lastNack = undefined;
    this.updateConfigCheck();
    logger.info(
      {
        version,
        kind: update.kind,
        collections: snapshot.collections.length,
        clients: snapshot.clients.length + snapshot.legacyClients.length,
      },
      'config applied from the control plane',
    );
    await config.save(snapshot, hash);
    return { ok: true, version, hash };
  }
}
