/**
 * One `ConfigSync.Sync` stream: one connected instance of one gateway. It is authenticated from the client
 * certificate (gateway-authentication.ts), opens with the instance's Hello, and keeps the instance record in the
 * store: connected or not, last seen (every message, heartbeats included), the version it ACKed last, the version
 * it NACKed and why. A stream that sends nothing, not even a heartbeat, for `idleTimeoutMs` is ended. What the
 * instance is sent is snapshot-stream.ts's.
 */
import { Metadata, type ServerDuplexStream, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { ReplicaEndpoints } from '../../config/edge.ts';
import type { ReceivedSyncRequest, SyncResponseMessage } from '../../config/sync-proto.ts';
import { nowIso } from '../ids.ts';
import type { EntityFeed } from '../entity-feed.ts';
import type { Publisher } from '../publisher.ts';
import type { GatewayInstanceRecord, GatewayRecord, Store } from '../store/store.ts';
import {
  type AuthenticatedGateway,
  denialTrailers,
  type GatewayAuthenticator,
  type SyncDenial,
} from './gateway-authentication.ts';
import type { LiveStream, SyncRegistry } from './registry.ts';
import { type SnapshotCache, SnapshotStream } from './snapshot-stream.ts';

export interface InstanceSessionDeps {
  call: ServerDuplexStream<ReceivedSyncRequest, SyncResponseMessage>;
  store: Store;
  publisher: Pick<Publisher, 'changed' | 'onPublish'>;
  entities?: Pick<EntityFeed, 'onChange'> | undefined;
  logger: Logger;
  now: () => number;
  registry: SyncRegistry;
  snapshots: SnapshotCache;
  /** This control plane's version: instances running another one get an `update_available` notice. */
  softwareVersion: string;
  idleTimeoutMs: number;
  /** The control-plane replicas that are up now (empty: none advertised, e.g. SQLite). */
  replicas: () => readonly ReplicaEndpoints[];
  /** Registers a store write that the server's close() waits for. */
  track: <T>(p: Promise<T>) => Promise<T>;
  revalidate: GatewayAuthenticator['revalidate'];
}

/** One Sync stream: one instance of one gateway. Everything it does runs in order on one promise chain. */
export class InstanceSession {
  readonly #d: InstanceSessionDeps;
  #chain: Promise<unknown> = Promise.resolve();
  #ended = false;
  #gateway: GatewayRecord | undefined;
  #auth: AuthenticatedGateway | undefined;
  #record: GatewayInstanceRecord | undefined;
  #live: LiveStream | undefined;
  /** Set with the record, once the Hello is accepted. */
  #stream: SnapshotStream | undefined;
  #cleanups: (() => void)[] = [];
  #idle: NodeJS.Timeout | undefined;
  #deleted = false;
  #accepted = false;

  constructor(deps: InstanceSessionDeps) {
    this.#d = deps;
  }

  start(auth: Promise<AuthenticatedGateway | SyncDenial>): void {
    const { call } = this.#d;
    this.#run(async () => {
      const result = await auth;
      if ('code' in result) {
        this.#d.logger.warn({ peer: call.getPeer(), reason: result.message }, 'refused a gateway sync stream');
        return this.#fail(result.code, result.message, result.deleted);
      }
      this.#auth = result;
      this.#gateway = result.gateway;
    });
    call.on('data', (message: ReceivedSyncRequest) => {
      this.#touch();
      this.#run(() => this.#receive(message));
    });
    call.on('end', () => this.#run(async () => this.#finish()));
    call.on('cancelled', () => this.#cleanup());
    call.on('error', () => this.#cleanup());
    call.on('close', () => this.#cleanup());
    this.#touch();
  }

  #run(step: () => Promise<unknown>): void {
    this.#chain = this.#d.track(
      this.#chain
        .then(() => (this.#ended ? undefined : step()))
        .catch((error: unknown) => {
          this.#d.logger.error(
            { err: error, gateway: this.#gateway?.id, instance: this.#record?.instanceId },
            'gateway sync stream failed',
          );
          this.#fail(status.INTERNAL, 'internal error in the control plane');
        }),
    );
  }

  #touch(): void {
    clearTimeout(this.#idle);
    if (this.#ended) return;
    this.#idle = setTimeout(
      () => this.#fail(status.UNAVAILABLE, `nothing received for ${this.#d.idleTimeoutMs} ms (no heartbeat)`),
      this.#d.idleTimeoutMs,
    );
    this.#idle.unref();
  }

  async #receive(message: ReceivedSyncRequest): Promise<void> {
    if (!this.#record) {
      if (message.message !== 'hello' || !message.hello?.instanceId || message.hello.instanceId.length > 128) {
        return this.#fail(
          status.INVALID_ARGUMENT,
          'the first message of a Sync stream must be a Hello with an instance id (at most 128 characters)',
        );
      }
      return this.#hello(message.hello);
    }
    const at = nowIso(this.#d.now());
    if (message.message === 'ack' && message.ack) {
      const { version, hash } = message.ack;
      this.#stream!.acked(version, hash);
      this.#live!.appliedVersion = version;
      const { nackedVersion: _n, lastError: _e, ...rest } = this.#record;
      await this.#save({ ...rest, appliedVersion: version, appliedHash: hash, lastSyncedAt: at, lastSeenAt: at });
    } else if (message.message === 'nack' && message.nack) {
      const { version, error } = message.nack;
      this.#d.logger.warn(
        { gateway: this.#gateway!.id, instance: this.#record.instanceId, version, error },
        'a gateway instance refused a snapshot (NACK); it keeps serving the previous one',
      );
      this.#stream!.nacked();
      await this.#save({
        ...this.#record,
        nackedVersion: version,
        lastError: error.slice(0, 4000) || 'refused without a reason',
        lastSeenAt: at,
      });
    } else if (message.message === 'heartbeat') {
      await this.#save({ ...this.#record, lastSeenAt: at });
    } else if (message.message === 'hello') {
      this.#fail(status.INVALID_ARGUMENT, 'Hello is only the first message of a stream');
    }
  }

  async #hello(hello: NonNullable<ReceivedSyncRequest['hello']>): Promise<void> {
    const { store, logger, call } = this.#d;
    const gateway = this.#gateway!;
    const at = nowIso(this.#d.now());
    const existing = (await store.listGatewayInstances(gateway.id)).find((i) => i.instanceId === hello.instanceId);

    // Registered first, checked again after: a deletion that landed since authentication found nothing to end.
    const live: LiveStream = {
      gatewayId: gateway.id,
      instanceId: hello.instanceId,
      appliedVersion: hello.appliedVersion,
      end: (code, message, deleted) => {
        if (deleted) this.#deleted = true;
        this.#fail(code, message, deleted);
      },
      // Not before the stream is accepted: the metadata goes first (`#accepted`).
      advertise: (replicas) => {
        if (this.#accepted && !this.#ended) this.#advertise(replicas);
      },
    };
    this.#live = live;
    this.#cleanups.push(this.#d.registry.add(live));
    const denial = await this.#d.revalidate(this.#auth!);
    if (this.#ended) return;
    if (denial) {
      logger.warn(
        { gateway: gateway.id, instance: hello.instanceId, peer: call.getPeer(), reason: denial.message },
        'refused a gateway sync stream',
      );
      if (denial.deleted) this.#deleted = true;
      return this.#fail(denial.code, denial.message, denial.deleted);
    }

    this.#record = withoutUndefined({
      gatewayId: gateway.id,
      instanceId: hello.instanceId,
      hostname: hello.hostname || undefined,
      softwareVersion: hello.softwareVersion || 'unknown',
      appliedVersion: hello.appliedVersion,
      appliedHash: hello.appliedHash || undefined,
      nackedVersion: existing?.nackedVersion,
      lastError: existing?.lastError,
      connected: true,
      firstSeenAt: existing?.firstSeenAt ?? at,
      lastSeenAt: at,
      lastSyncedAt: existing?.lastSyncedAt,
    });
    const stream = new SnapshotStream({
      store,
      publisher: this.#d.publisher,
      snapshots: this.#d.snapshots,
      logger,
      gateway,
      instanceId: hello.instanceId,
      write: (message) => {
        if (this.#ended) return false;
        call.write(message);
        return true;
      },
      run: (step) => this.#run(step),
    });
    this.#stream = stream;
    await this.#save(this.#record);
    if (this.#ended) return;
    if (hello.appliedVersion > 0 && hello.appliedHash) stream.resume(hello.appliedVersion, hello.appliedHash);
    stream.resumeEntities(hello.entitySets ?? []);

    this.#cleanups.push(this.#d.publisher.onPublish((scopes) => stream.published(scopes)));
    if (this.#d.entities) this.#cleanups.push(this.#d.entities.onChange((set) => stream.entitiesChanged(set)));
    call.sendMetadata(new Metadata()); // accepted: the instance counts itself connected from here
    this.#accepted = true;
    const replicas = this.#d.replicas();
    if (replicas.length) this.#advertise(replicas);
    logger.info(
      {
        gateway: gateway.id,
        instance: hello.instanceId,
        version: hello.softwareVersion,
        applied: hello.appliedVersion,
        peer: call.getPeer(),
      },
      'gateway instance connected',
    );

    if (hello.softwareVersion && newer(this.#d.softwareVersion, hello.softwareVersion)) {
      call.write({
        notice: {
          kind: 'update_available',
          message: `Gatehouse ${this.#d.softwareVersion} is available (this instance runs ${hello.softwareVersion}); update the gateway image to it.`,
        },
      });
    }
    await stream.sendLatest();
  }

  #advertise(replicas: readonly ReplicaEndpoints[]): void {
    this.#d.call.write({
      replicas: { replicas: replicas.map((r) => ({ bootstrap: r.bootstrap, sync: r.sync, telemetry: r.telemetry })) },
    });
  }

  async #save(record: GatewayInstanceRecord): Promise<void> {
    this.#record = record;
    if (this.#deleted) return;
    await this.#d.store.upsertGatewayInstance(record);
  }

  #fail(code: status, message: string, deleted = false): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#d.call.emit('error', { code, details: message, metadata: denialTrailers(deleted) });
    this.#cleanup();
  }

  #finish(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#d.call.end();
    this.#cleanup();
  }

  #cleanup(): void {
    this.#ended = true;
    clearTimeout(this.#idle);
    const cleanups = this.#cleanups.splice(0);
    for (const c of cleanups) c();
    if (this.#record?.connected) {
      const record = { ...this.#record, connected: false, lastSeenAt: nowIso(this.#d.now()) };
      this.#record = record;
      this.#d.logger.info(
        { gateway: record.gatewayId, instance: record.instanceId, applied: record.appliedVersion },
        'gateway instance disconnected',
      );
      if (!this.#deleted) {
        // After whatever the session still had queued, so that this is the last write.
        this.#chain = this.#d.track(
          this.#chain
            .then(() => this.#d.store.upsertGatewayInstance(record))
            .catch((err: unknown) =>
              this.#d.logger.debug({ err }, 'could not mark the instance disconnected (gateway gone?)'),
            ),
        );
      }
    }
  }
}

/** Whether dotted version `a` is newer than `b` (numeric parts; anything else compares as text). */
function newer(a: string, b: string): boolean {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '0';
    const y = pb[i] ?? '0';
    if (x === y) continue;
    const nx = Number(x);
    const ny = Number(y);
    return Number.isInteger(nx) && Number.isInteger(ny) ? nx > ny : x > y;
  }
  return false;
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
