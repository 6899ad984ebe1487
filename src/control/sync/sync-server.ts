/**
 * The control plane's end of the gateway channel: one gRPC server (mutual TLS, the control plane's own CA) with
 * `ConfigSync` and `Telemetry` (proto/gatehouse/v1/sync.proto).
 *
 * Every call is authenticated from the client certificate: TLS already refuses certificates this CA did not sign;
 * on top of that the certificate's serial must be one the store recorded for the gateway its URI SAN names, not
 * revoked and not expired, and that gateway must still exist in the same workspace and environment.
 *
 * Deleting a gateway ends its streams through the registry (`disconnectGateway`), Sync and Telemetry alike. A
 * deletion that lands after a stream was authenticated but before it was registered finds nothing to end, so each
 * stream checks again, once registered, that its gateway exists and its certificate is not revoked; and every
 * telemetry batch is checked so before it is stored.
 *
 * `ConfigSync.Sync` is xDS-like: after the instance's Hello it gets the full snapshot of its scope (or a delta
 * when it already serves an older stored version), then a delta for every version the publisher records, and it
 * ACKs or NACKs each one. The instance record in the store says what every instance runs; a NACK records the
 * error and leaves the instance on the version it ACKed last.
 */
import {
  Metadata,
  type sendUnaryData,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  status,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { SnapshotSchema, type Snapshot } from '../../config/schema.ts';
import { diffSnapshots, encodeDelta } from '../../config/snapshot-delta.ts';
import { canonicalJson, encodeSnapshot } from '../../config/snapshot-encoding.ts';
import {
  GATEWAY_STATUS_TRAILER,
  type ReceivedSyncRequest,
  type RenewCertificateRequestMessage,
  type RenewCertificateResponseMessage,
  syncServices,
  type SyncResponseMessage,
  type TelemetryAckMessage,
  type TelemetryBatchMessage,
} from '../../config/sync-proto.ts';
import { describeCertificate } from '../../shared/certificates.ts';
import { x509 } from '../../shared/x509.ts';
import { snapshotScope } from '../compile/compile.ts';
import { nowIso } from '../ids.ts';
import { type CertificateAuthority, CsrError, parseGatewayUri } from '../pki/ca.ts';
import type { PublishedScope, Publisher } from '../publisher.ts';
import type { GatewayInstanceRecord, GatewayRecord, Store } from '../store/store.ts';
import { type LiveStream, SyncRegistry } from './registry.ts';
import { TelemetryBatchError } from '../telemetry/ingest.ts';

/** How long a gateway certificate is valid (renewed at 2/3 of its lifetime over the live channel). */
export const GATEWAY_CERTIFICATE_VALIDITY_MS = 24 * 3600_000;
/** Largest message either end accepts: a snapshot of a large workspace is tens of megabytes. */
export const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

/** Where telemetry batches go (the control plane's telemetry service implements it). */
export interface TelemetryIngest {
  /** Stores one batch of one instance; a rejection leaves the batch unacknowledged (the gateway sends it again). */
  ingest(gateway: GatewayRecord, instanceId: string, batch: TelemetryBatchMessage): Promise<void>;
}

export interface SyncServerOptions {
  store: Store;
  publisher: Pick<Publisher, 'changed' | 'onPublish'>;
  ca: CertificateAuthority;
  /** The control plane's server certificate (issued by `ca`) and its key, PEM. */
  tls: { certPem: string; keyPem: string };
  logger: Logger;
  host: string;
  /** 0 picks a free port (see `SyncServer.port`). */
  port: number;
  /** This control plane's version: instances running another one get an `update_available` notice. */
  softwareVersion: string;
  now?: () => number;
  /** Telemetry batches are passed here; without it they are acknowledged and dropped. */
  telemetry?: TelemetryIngest;
  /** Validity of renewed gateway certificates. Default `GATEWAY_CERTIFICATE_VALIDITY_MS` (24 h). */
  certificateValidityMs?: number;
  /** A Sync stream that sends nothing (not even a heartbeat) this long is ended. Default 30 s. */
  idleTimeoutMs?: number;
}

export interface SyncServer {
  readonly port: number;
  readonly registry: SyncRegistry;
  /** Ends every live stream of the gateway at once, Sync and Telemetry (PERMISSION_DENIED "gateway deleted"); returns how many. */
  disconnectGateway(gatewayId: string): number;
  /** Ends every stream, waits for their last store writes, stops listening. */
  close(): Promise<void>;
}

/** Why a call is refused; `deleted` when the gateway no longer exists (its edge instances then stop serving). */
type Refusal = { code: status; message: string; deleted?: boolean };
type Authenticated = { gateway: GatewayRecord; serial: string };

export async function startSyncServer(options: SyncServerOptions): Promise<SyncServer> {
  const { store, publisher, ca, logger } = options;
  const now = options.now ?? Date.now;
  const validityMs = options.certificateValidityMs ?? GATEWAY_CERTIFICATE_VALIDITY_MS;
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  const registry = new SyncRegistry();
  const snapshots = new SnapshotCache(store);
  /** Store writes still running per stream: close() waits for them before the store closes. */
  const pending = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    pending.add(p);
    void p.finally(() => pending.delete(p)).catch(() => {});
    return p;
  };

  async function authenticate(call: { getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } } | null }): Promise<Authenticated | Refusal> {
    const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
    if (!raw || raw.length === 0) return { code: status.UNAUTHENTICATED, message: 'a client certificate issued by this control plane is required' };
    let described: ReturnType<typeof describeCertificate>;
    try {
      described = describeCertificate(x509.PemConverter.encode(Uint8Array.from(raw), 'CERTIFICATE'));
    } catch {
      return { code: status.UNAUTHENTICATED, message: 'the client certificate cannot be read' };
    }
    const subject = described.uris.map(parseGatewayUri).find((s) => s !== undefined);
    if (!subject) return { code: status.UNAUTHENTICATED, message: 'the client certificate names no gateway' };
    const record = await store.getGatewayCertificate(described.serial);
    if (!record || record.gatewayId !== subject.gatewayId) {
      return { code: status.UNAUTHENTICATED, message: `certificate ${described.serial} was not issued by this control plane to gateway ${subject.gatewayId}` };
    }
    if (record.revokedAt) return { code: status.PERMISSION_DENIED, message: `the certificate of gateway ${subject.gatewayId} was revoked at ${record.revokedAt} (gateway deleted)`, deleted: true };
    if (Date.parse(record.notAfter) <= now()) {
      return { code: status.UNAUTHENTICATED, message: `the certificate of gateway ${subject.gatewayId} expired at ${record.notAfter}: it re-enrolls at the bootstrap endpoint (POST /v1/renew), within the re-enrollment window` };
    }
    const gateway = await store.getGateway({ id: subject.gatewayId });
    if (!gateway) return { code: status.PERMISSION_DENIED, message: `gateway ${subject.gatewayId} was deleted`, deleted: true };
    if (gateway.workspaceId !== subject.workspaceId || gateway.environment !== subject.environment) {
      return { code: status.PERMISSION_DENIED, message: `the certificate names workspace ${subject.workspaceId} environment ${subject.environment}, but gateway ${gateway.id} belongs to workspace ${gateway.workspaceId} environment ${gateway.environment}` };
    }
    return { gateway, serial: described.serial };
  }

  /**
   * Why an authenticated stream must end now (its certificate was revoked or its gateway deleted since), or
   * undefined when it may go on. Two primary-key lookups: cheap enough for every telemetry batch.
   */
  async function revalidate(auth: Authenticated): Promise<Refusal | undefined> {
    const id = auth.gateway.id;
    const record = await store.getGatewayCertificate(auth.serial);
    if (!record || record.revokedAt) return { code: status.PERMISSION_DENIED, message: `the certificate of gateway ${id} was revoked${record?.revokedAt ? ` at ${record.revokedAt}` : ''} (gateway deleted)`, deleted: true };
    if (!(await store.getGateway({ id }))) return { code: status.PERMISSION_DENIED, message: `gateway ${id} was deleted`, deleted: true };
    return undefined;
  }

  function sync(call: ServerDuplexStream<ReceivedSyncRequest, SyncResponseMessage>): void {
    const session = new SyncSession({ call, store, publisher, logger, now, registry, snapshots, softwareVersion: options.softwareVersion, idleTimeoutMs, track, revalidate });
    session.start(authenticate(call));
  }

  function renewCertificate(call: ServerUnaryCall<RenewCertificateRequestMessage, RenewCertificateResponseMessage>, callback: sendUnaryData<RenewCertificateResponseMessage>): void {
    void (async () => {
      const auth = await authenticate(call);
      if ('code' in auth) {
        logger.warn({ peer: call.getPeer(), reason: auth.message }, 'refused a certificate renewal');
        return callback({ code: auth.code, details: auth.message, metadata: trailers(auth.deleted) });
      }
      const { gateway } = auth;
      const issued = await ca.signGatewayCsr(call.request.csrPem, { gatewayId: gateway.id, workspaceId: gateway.workspaceId, environment: gateway.environment }, validityMs);
      await store.insertGatewayCertificate({ serial: issued.serial, gatewayId: gateway.id, notBefore: issued.notBefore.toISOString(), notAfter: issued.notAfter.toISOString() });
      logger.info({ gateway: gateway.id, serial: issued.serial, previous: auth.serial, notAfter: issued.notAfter.toISOString() }, 'renewed a gateway certificate');
      callback(null, { certificatePem: issued.certPem, caPem: ca.certPem });
    })().catch((error: unknown) => {
      if (error instanceof CsrError) return callback({ code: status.INVALID_ARGUMENT, details: error.message });
      logger.error({ err: error }, 'certificate renewal failed');
      callback({ code: status.INTERNAL, details: 'the control plane could not renew the certificate' });
    });
  }

  /**
   * One Telemetry.Report stream: registered like a Sync stream (a deleted gateway's is ended with them), checked
   * again once registered, and every batch is stored only while the gateway exists and the certificate is not
   * revoked.
   */
  function report(call: ServerDuplexStream<TelemetryBatchMessage, TelemetryAckMessage>): void {
    let auth: Authenticated | undefined;
    let ended = false;
    let unregister: (() => void) | undefined;
    const stop = () => {
      ended = true;
      unregister?.();
      unregister = undefined;
    };
    const fail = (code: status, message: string, deleted = false) => {
      if (ended) return;
      stop();
      call.emit('error', { code, details: message, metadata: trailers(deleted) });
    };
    const refuse = (refusal: Refusal, fields: Record<string, unknown> = {}) => {
      logger.warn({ peer: call.getPeer(), ...fields, reason: refusal.message }, 'refused a telemetry stream');
      fail(refusal.code, refusal.message, refusal.deleted);
    };
    let chain: Promise<unknown> = track(
      authenticate(call).then(async (result) => {
        if ('code' in result) return refuse(result);
        if (ended) return;
        unregister = registry.addTelemetry({ gatewayId: result.gateway.id, end: (code, message, deleted) => fail(code, message, deleted) });
        // A deletion between authentication and registration found nothing to end: look again.
        const refusal = await revalidate(result);
        if (refusal) return refuse(refusal, { gateway: result.gateway.id });
        auth = result;
      }),
    ).catch((error: unknown) => {
      logger.error({ err: error }, 'telemetry stream failed');
      fail(status.INTERNAL, 'internal error');
    });
    call.on('data', (batch: TelemetryBatchMessage) => {
      chain = track(
        chain.then(async () => {
          if (ended || !auth) return;
          const { gateway } = auth;
          try {
            const refusal = await revalidate(auth);
            if (refusal) return refuse(refusal, { gateway: gateway.id, instance: batch.instanceId, sequence: batch.sequence });
            if (ended) return;
            await options.telemetry?.ingest(gateway, batch.instanceId, batch);
          } catch (error) {
            if (error instanceof TelemetryBatchError) {
              // A batch that breaks the contract would fail again on every retry: refuse it for good (acknowledged,
              // so the gateway drops it) and say so, instead of wedging the stream.
              logger.warn({ gateway: gateway.id, instance: batch.instanceId, sequence: batch.sequence, reason: error.message }, 'refused a telemetry batch that breaks the contract; it is dropped');
            } else {
              logger.error({ err: error, gateway: gateway.id }, 'storing a telemetry batch failed');
              return fail(status.UNAVAILABLE, 'the control plane could not store the telemetry batch; send it again later');
            }
          }
          if (!ended) call.write({ sequence: batch.sequence });
        }),
      );
    });
    call.on('end', () =>
      void chain.then(() => {
        if (ended) return;
        stop();
        call.end();
      }),
    );
    call.on('error', stop);
    call.on('cancelled', stop);
    call.on('close', stop);
  }

  const server = new Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    'grpc.keepalive_time_ms': 20_000,
    'grpc.keepalive_timeout_ms': 10_000,
  });
  const services = syncServices();
  server.addService(services.configSync, { Sync: sync, RenewCertificate: renewCertificate });
  server.addService(services.telemetry, { Report: report });
  const credentials = ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ cert_chain: Buffer.from(options.tls.certPem), private_key: Buffer.from(options.tls.keyPem) }], true);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(hostPort(options.host, options.port), credentials, (error, bound) => (error ? reject(error) : resolve(bound)));
  });
  logger.info({ sync: hostPort(options.host, port) }, 'gateway sync listening');

  let closed: Promise<void> | undefined;
  return {
    port,
    registry,
    disconnectGateway(gatewayId) {
      const n = registry.disconnect(gatewayId, status.PERMISSION_DENIED, 'gateway deleted', true);
      if (n) logger.info({ gateway: gatewayId, streams: n }, 'ended the sync and telemetry streams of a deleted gateway');
      return n;
    },
    close() {
      closed ??= (async () => {
        registry.disconnectAll(status.UNAVAILABLE, 'the control plane is shutting down');
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => server.forceShutdown(), 2000);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        while (pending.size) await Promise.allSettled([...pending]);
      })();
      return closed;
    },
  };
}

interface SessionDeps {
  call: ServerDuplexStream<ReceivedSyncRequest, SyncResponseMessage>;
  store: Store;
  publisher: Pick<Publisher, 'changed' | 'onPublish'>;
  logger: Logger;
  now: () => number;
  registry: SyncRegistry;
  snapshots: SnapshotCache;
  softwareVersion: string;
  idleTimeoutMs: number;
  track: <T>(p: Promise<T>) => Promise<T>;
  revalidate(auth: Authenticated): Promise<Refusal | undefined>;
}

/** A version of the scope, and the snapshot when at hand (loaded from the store otherwise). */
interface Held {
  version: number;
  hash: string;
  snapshot?: Snapshot;
}

/** One Sync stream: one instance of one gateway. Everything it does runs in order on one promise chain. */
class SyncSession {
  readonly #d: SessionDeps;
  #chain: Promise<unknown> = Promise.resolve();
  #ended = false;
  #gateway: GatewayRecord | undefined;
  #auth: Authenticated | undefined;
  #scope = '';
  #record: GatewayInstanceRecord | undefined;
  #live: LiveStream | undefined;
  /** What the instance will serve once it has processed everything sent so far (if it applies it all). */
  #expected: Held | undefined;
  /** What it last ACKed (or reported in its Hello). */
  #acked: Held | undefined;
  #cleanups: (() => void)[] = [];
  #idle: NodeJS.Timeout | undefined;
  #deleted = false;

  constructor(deps: SessionDeps) {
    this.#d = deps;
  }

  start(auth: Promise<Authenticated | Refusal>): void {
    const { call } = this.#d;
    this.#run(async () => {
      const result = await auth;
      if ('code' in result) {
        this.#d.logger.warn({ peer: call.getPeer(), reason: result.message }, 'refused a gateway sync stream');
        return this.#fail(result.code, result.message, result.deleted);
      }
      this.#auth = result;
      this.#gateway = result.gateway;
      this.#scope = snapshotScope(result.gateway.workspaceId, result.gateway.environment, { type: 'edge', gateway: result.gateway.name });
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
      this.#chain.then(() => (this.#ended ? undefined : step())).catch((error: unknown) => {
        this.#d.logger.error({ err: error, gateway: this.#gateway?.id, instance: this.#record?.instanceId }, 'gateway sync stream failed');
        this.#fail(status.INTERNAL, 'internal error in the control plane');
      }),
    );
  }

  #touch(): void {
    clearTimeout(this.#idle);
    if (this.#ended) return;
    this.#idle = setTimeout(() => this.#fail(status.UNAVAILABLE, `nothing received for ${this.#d.idleTimeoutMs} ms (no heartbeat)`), this.#d.idleTimeoutMs);
    this.#idle.unref();
  }

  async #receive(message: ReceivedSyncRequest): Promise<void> {
    if (!this.#record) {
      if (message.message !== 'hello' || !message.hello?.instanceId || message.hello.instanceId.length > 128) {
        return this.#fail(status.INVALID_ARGUMENT, 'the first message of a Sync stream must be a Hello with an instance id (at most 128 characters)');
      }
      return this.#hello(message.hello);
    }
    const at = nowIso(this.#d.now());
    if (message.message === 'ack' && message.ack) {
      const { version, hash } = message.ack;
      const expected = this.#expected;
      if (expected?.version === version && expected.hash !== hash) {
        this.#d.logger.warn({ gateway: this.#gateway!.id, instance: this.#record.instanceId, version, sent: expected.hash, acked: hash }, 'an instance ACKed a version with another hash than the one sent');
      }
      this.#acked = { version, hash, snapshot: expected?.version === version && expected.hash === hash ? expected.snapshot : undefined };
      this.#live!.appliedVersion = version;
      const { nackedVersion: _n, lastError: _e, ...rest } = this.#record;
      await this.#save({ ...rest, appliedVersion: version, appliedHash: hash, lastSyncedAt: at, lastSeenAt: at });
    } else if (message.message === 'nack' && message.nack) {
      const { version, error } = message.nack;
      this.#d.logger.warn({ gateway: this.#gateway!.id, instance: this.#record.instanceId, version, error }, 'a gateway instance refused a snapshot (NACK); it keeps serving the previous one');
      // The instance kept what it had: later deltas start from there.
      this.#expected = this.#acked;
      await this.#save({ ...this.#record, nackedVersion: version, lastError: error.slice(0, 4000) || 'refused without a reason', lastSeenAt: at });
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
    };
    this.#live = live;
    this.#cleanups.push(this.#d.registry.add(live));
    const refusal = await this.#d.revalidate(this.#auth!);
    if (this.#ended) return;
    if (refusal) {
      logger.warn({ gateway: gateway.id, instance: hello.instanceId, peer: call.getPeer(), reason: refusal.message }, 'refused a gateway sync stream');
      if (refusal.deleted) this.#deleted = true;
      return this.#fail(refusal.code, refusal.message, refusal.deleted);
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
    await this.#save(this.#record);
    if (this.#ended) return;
    if (hello.appliedVersion > 0 && hello.appliedHash) this.#acked = this.#expected = { version: hello.appliedVersion, hash: hello.appliedHash };

    this.#cleanups.push(this.#d.publisher.onPublish((scopes) => this.#published(scopes)));
    call.sendMetadata(new Metadata()); // accepted: the instance counts itself connected from here
    logger.info({ gateway: gateway.id, instance: hello.instanceId, version: hello.softwareVersion, applied: hello.appliedVersion, peer: call.getPeer() }, 'gateway instance connected');

    if (hello.softwareVersion && newer(this.#d.softwareVersion, hello.softwareVersion)) {
      call.write({ notice: { kind: 'update_available', message: `Gatehouse ${this.#d.softwareVersion} is available (this instance runs ${hello.softwareVersion}); update the gateway image to it.` } });
    }

    let latest = await store.getLatestSnapshot(this.#scope);
    if (!latest) {
      // A new gateway whose workspace was not compiled since it was created: compile now.
      await this.#d.publisher.changed(gateway.workspaceId).catch((err: unknown) => logger.error({ err, workspace: gateway.workspaceId }, 'compiling the workspace failed'));
      latest = await store.getLatestSnapshot(this.#scope);
    }
    if (!latest) {
      logger.warn({ gateway: gateway.id, scope: this.#scope }, 'no snapshot for this gateway yet; it gets one when the workspace is next published');
      return;
    }
    await this.#sendUpTo({ version: latest.version, hash: latest.hash }, true);
  }

  #published(scopes: readonly PublishedScope[]): void {
    const gateway = this.#gateway!;
    const mine = scopes.find((s) => s.scope === this.#scope);
    if (mine) return this.#run(() => this.#sendUpTo({ version: mine.version, hash: mine.hash, snapshot: mine.snapshot }));
    // A renamed gateway's snapshots move to a scope under its new name.
    const prefix = `${gateway.workspaceId}/${gateway.environment}/edge:`;
    if (!scopes.some((s) => s.scope.startsWith(prefix))) return;
    this.#run(async () => {
      const current = await this.#d.store.getGateway({ id: gateway.id });
      if (!current || current.name === gateway.name) return;
      this.#gateway = current;
      this.#scope = snapshotScope(current.workspaceId, current.environment, { type: 'edge', gateway: current.name });
      const latest = await this.#d.store.getLatestSnapshot(this.#scope);
      if (latest) await this.#sendUpTo({ version: latest.version, hash: latest.hash }, true);
    });
  }

  /**
   * Brings the instance to `target`: nothing if it holds it already, a delta when that is smaller, else the full
   * snapshot. A push older than what was sent is dropped (publishes can overtake each other); the first send after
   * the Hello is not, since the instance may report a version from another history (a rebuilt control plane).
   */
  async #sendUpTo(target: Held, first = false): Promise<void> {
    const base = this.#expected;
    if (base && base.version === target.version && base.hash === target.hash) return;
    if (base && !first && target.version < base.version) return;
    const next = await this.#d.snapshots.get(this.#scope, target);
    if (!next) return; // pruned already: a newer version follows
    const { call } = this.#d;
    let message: SyncResponseMessage | undefined;
    if (base && base.version > 0 && base.version < target.version) {
      const body = await this.#d.snapshots.delta(this.#scope, base, { ...target, snapshot: next.snapshot });
      if (body !== undefined && body.length < next.body.length) {
        message = { delta: { fromVersion: base.version, toVersion: target.version, hash: target.hash, body: Buffer.from(body) } };
      }
    }
    message ??= { snapshot: { version: target.version, hash: target.hash, body: Buffer.from(next.body) } };
    if (this.#ended) return;
    call.write(message);
    this.#expected = { ...target, snapshot: next.snapshot };
    this.#d.logger.debug({ gateway: this.#gateway!.id, instance: this.#record!.instanceId, version: target.version, kind: 'delta' in message ? 'delta' : 'snapshot' }, 'sent a snapshot version');
  }

  async #save(record: GatewayInstanceRecord): Promise<void> {
    this.#record = record;
    if (this.#deleted) return;
    await this.#d.store.upsertGatewayInstance(record);
  }

  #fail(code: status, message: string, deleted = false): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#d.call.emit('error', { code, details: message, metadata: trailers(deleted) });
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
      this.#d.logger.info({ gateway: record.gatewayId, instance: record.instanceId, applied: record.appliedVersion }, 'gateway instance disconnected');
      if (!this.#deleted) {
        // After whatever the session still had queued, so that this is the last write.
        this.#chain = this.#d.track(
          this.#chain.then(() => this.#d.store.upsertGatewayInstance(record)).catch((err: unknown) => this.#d.logger.debug({ err }, 'could not mark the instance disconnected (gateway gone?)')),
        );
      }
    }
  }
}

/**
 * Parsed snapshots and their canonical bodies, and encoded deltas, shared by every stream: when a version is
 * published, each connected instance of the gateway needs the same delta.
 */
class SnapshotCache {
  readonly #store: Store;
  readonly #snapshots = new Map<string, { snapshot: Snapshot; body: string }>();
  readonly #deltas = new Map<string, string>();

  constructor(store: Store) {
    this.#store = store;
  }

  /** The snapshot and body of `held` in `scope` (from `held.snapshot` or the store); undefined when pruned. */
  async get(scope: string, held: Held): Promise<{ snapshot: Snapshot; body: string } | undefined> {
    const key = `${scope}@${held.version}#${held.hash}`;
    const cached = this.#snapshots.get(key);
    if (cached) return cached;
    let entry: { snapshot: Snapshot; body: string };
    if (held.snapshot) {
      entry = { snapshot: held.snapshot, body: canonicalJson(encodeSnapshot(held.snapshot)) };
    } else {
      const record = await this.#store.getSnapshot(scope, held.version);
      if (!record || record.hash !== held.hash) return undefined;
      entry = { snapshot: SnapshotSchema.parse(JSON.parse(record.body)), body: record.body };
    }
    remember(this.#snapshots, key, entry, 16);
    return entry;
  }

  /** The encoded delta from `from` to `to`, or undefined when `from` is no longer stored. */
  async delta(scope: string, from: Held, to: Held & { snapshot: Snapshot }): Promise<string | undefined> {
    const key = `${scope}@${from.version}#${from.hash}>${to.version}#${to.hash}`;
    const cached = this.#deltas.get(key);
    if (cached !== undefined) return cached;
    const prev = await this.get(scope, from);
    // A delta cannot take signing keys away (none can be removed by it): send the full snapshot then.
    if (!prev || (prev.snapshot.signingKeys !== undefined && to.snapshot.signingKeys === undefined)) return undefined;
    const body = canonicalJson(encodeDelta(diffSnapshots(prev.snapshot, to.snapshot)));
    remember(this.#deltas, key, body, 64);
    return body;
  }
}

function trailers(deleted = false): Metadata {
  const metadata = new Metadata();
  if (deleted) metadata.set(GATEWAY_STATUS_TRAILER, 'deleted');
  return metadata;
}

function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.set(key, value);
  while (map.size > max) map.delete(map.keys().next().value!);
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

export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
