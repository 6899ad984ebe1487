/**
 * Length (about 620 lines): one stream's lifecycle (dial, ACK/NACK, heartbeats, renewal, back-off, moving between replicas) as one class.
 *
 * An edge gateway's end of the channel: dials the control plane (outbound only, gRPC over mutual TLS), keeps one
 * `ConfigSync.Sync` stream open, hands every snapshot or delta to `handle` and ACKs or NACKs it, sends heartbeats,
 * streams telemetry batches, and renews the certificate over the live channel.
 *
 * When the stream ends or cannot be opened, the gateway keeps serving what it has; the client dials again with
 * jittered exponential backoff ("full jitter": a random delay up to min(initial·2^attempt, cap)), so that many
 * gateways cut off together do not all return at the same instant. The cap is short while the outage is young
 * (1 s for the first minute without a connection: a control plane that restarts, or rolls to a new version, is
 * back in sync within about a second of answering again) and grows with the outage (a tenth of it, up to `maxMs`),
 * so that gateways cut off for long do not keep dialling a control plane that is gone. Each attempt builds a fresh
 * channel: the delay is this client's, not gRPC's own reconnect backoff, and renewed credentials take effect at the
 * next attempt.
 *
 * Failover between control-plane replicas is fast by design (docs/high-availability.md, "Failover timing"):
 * - a replica that dies is noticed at once when its host resets the connection (a crash, a SIGKILL, a pod
 *   deleted), and within `keepalive.intervalMs + keepalive.timeoutMs` (4 s by default) when it vanishes silently
 *   (power loss, partition, a wedged process): HTTP/2 pings, which the server answers below its application code;
 * - the next replica is dialled after a jitter of at most 100 ms (no backoff until every replica was tried once);
 * - an attempt whose connection is not even established within `acceptTimeoutMs` (3 s, longer after failed rounds)
 *   is given up for the next untried replica, so that a replica whose address swallows packets does not hold the
 *   gateway for the OS's connect timeout (about 2 min); the last untried replica gets 30 s, and a connected replica
 *   that is slow to accept (a reconnect storm) is waited for.
 * The control plane tells the client which replicas are up (`Replicas` on the stream); they replace the alternates
 * written at bootstrap (`onReplicas` lets the gateway keep them in its config directory).
 */
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import {
  Channel,
  type ChannelOptions,
  connectivityState,
  type ClientDuplexStream,
  credentials as grpcCredentials,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  GATEWAY_STATUS_TRAILER,
  type EntityChangesMessage,
  type EntitySetVersionMessage,
  loadSyncProto,
  type NoticeMessage,
  type ReceivedSyncResponse,
  type ReplicasMessage,
  type RenewCertificateResponseMessage,
  type SyncRequestMessage,
  type TelemetryAckMessage,
  type TelemetryBatchMessage,
} from '../../config/sync-proto.ts';
import { type ReplicaEndpoints, ReplicaEndpointsSchema } from '../../config/edge.ts';
import { DEFAULT_RECONNECT, type ReconnectBackoff, reconnectCeiling } from './backoff.ts';

/** What the gateway received: a full snapshot or a delta, with the body as sent (JSON). */
export type SyncUpdate =
  | { kind: 'snapshot'; version: number; hash: string; body: Buffer }
  | { kind: 'delta'; fromVersion: number; toVersion: number; hash: string; body: Buffer };

/** The outcome of one update: ACK it, or NACK it with the error; `resync` also reopens the stream for a full snapshot. */
export type HandleResult =
  { ok: true; version: number; hash: string } | { ok: false; version: number; error: string; resync?: boolean };

/**
 * Where telemetry batches come from (the gateway's telemetry buffer). One batch is in flight at a time: the next
 * is taken once the control plane acknowledged the previous one.
 */
export interface TelemetrySource {
  /** The next batch to send (a TelemetryBatch message; `instanceId` is filled in), or undefined when none is due. */
  takeBatch(): Partial<TelemetryBatchMessage> | undefined;
  /** The control plane stored the batch with this sequence number. */
  ack(sequence: number): void;
  /** The stream broke: batches taken but not acknowledged go back to the buffer. */
  requeue(): void;
}

export interface SyncCredentials {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface SyncClientOptions {
  /** `host:port` of config sync. */
  endpoint: string;
  /** `host:port` of telemetry; default `endpoint`. */
  telemetryEndpoint?: string;
  /**
   * Other control-plane replicas (`host:port` of sync and telemetry), dialled in turn: a stream that ends, or an
   * attempt that fails, moves on to the next one, so that losing a replica costs one reconnect, not an outage.
   */
  alternates?: readonly { sync: string; telemetry: string }[];
  /** The name the control plane's server certificate carries. */
  serverName: string;
  /** The current credentials, read at every connection attempt. */
  credentials(): SyncCredentials;
  logger: Logger;
  instanceId: string;
  softwareVersion: string;
  hostname: string;
  /** What the gateway serves now (Hello and heartbeats report it); undefined when nothing. */
  applied(): { version: number; hash: string } | undefined;
  /** Applies one update. Updates are handed over one at a time, in the order they arrived. */
  handle(update: SyncUpdate): Promise<HandleResult>;
  /** The entity sets held and their versions (the Hello reports them); default none. */
  entitySets?(): EntitySetVersionMessage[];
  /**
   * Applies one message of the entity stream, in order with the updates; `resync`: reconnect, so that the Hello
   * asks for what is missing.
   */
  handleEntities?(message: EntityChangesMessage): Promise<{ ok: true } | { ok: false; resync: boolean }>;
  /** Default 5 s. */
  heartbeatMs?: number;
  /** Reconnect backoff (see `ReconnectBackoff`). Default 250 ms doubling, capped at 1 s for the first minute of an outage, then up to 30 s. */
  reconnect?: ReconnectBackoff;
  /**
   * HTTP/2 keepalive: a ping every `intervalMs` while connected; no answer within `timeoutMs` ends the connection
   * and moves to the next replica. Default 1 s and 3 s.
   */
  keepalive?: { intervalMs: number; timeoutMs: number };
  /**
   * An attempt whose connection (TCP and TLS) is not established within this long is given up for the next
   * replica, while one of this round through the list is still untried; it grows by this much with each round, up
   * to 30 s. The last untried replica of a round gets 30 s, and a connected replica is waited for, so that a control
   * plane slow under a reconnect storm is not abandoned in a loop. Default 3 s.
   */
  acceptTimeoutMs?: number;
  /**
   * The control plane advertised the replicas that are up now (already validated, at most 32): the client dials
   * them from now on, besides `endpoint`; the gateway persists them for its next start.
   */
  onReplicas?(replicas: ReplicaEndpoints[]): void;
  /** Called whenever `state()` changes: a stream accepted or ended, an attempt failed. */
  onState?(state: SyncClientState): void;
  telemetry?: TelemetrySource;
  /** How often a telemetry batch is taken while connected. Default 1 s. */
  telemetryIntervalMs?: number;
  onNotice?(notice: NoticeMessage): void;
  /** The control plane says this gateway was deleted (`GATEWAY_STATUS_TRAILER`); called once. */
  onDeleted?(reason: string): void;
}

export interface SyncClientState {
  connected: boolean;
  /** When the current stream was accepted. */
  connectedSince?: string;
  /** Why the last stream ended or the last attempt failed. */
  lastError?: string;
  /** Failed attempts since the last accepted stream. */
  attempts: number;
  /** Accepted streams since start. */
  connections: number;
  /** The replica (`host:port` of config sync) connected to, or dialled now; undefined before the client starts. */
  endpoint?: string;
}

export interface SyncClient {
  state(): SyncClientState;
  /** Sends a CSR over the live channel; rejects when not connected or refused. */
  renewCertificate(csrPem: string): Promise<RenewCertificateResponseMessage>;
  /** Ends the current stream and dials again at once with the current credentials (after a renewal). */
  reconnect(): void;
  close(): Promise<void>;
}

type Duplex<Req, Res> = ClientDuplexStream<Req, Res>;
interface ConfigSyncClient {
  Sync(): Duplex<SyncRequestMessage, ReceivedSyncResponse>;
  RenewCertificate(
    request: { csrPem: string },
    options: { deadline: number },
    callback: (error: ServiceError | null, response?: RenewCertificateResponseMessage) => void,
  ): void;
  close(): void;
}
interface TelemetryClient {
  Report(): Duplex<Partial<TelemetryBatchMessage>, TelemetryAckMessage>;
  close(): void;
}

/**
 * Defaults of `keepalive`: a silently lost replica is noticed within 4 s. The timeout is not shorter because a
 * process whose event loop stalls (a replica handshaking a reconnect storm, a gateway in a long GC) would read the
 * answer late and drop a healthy connection, and many at once would feed the storm.
 */
export const DEFAULT_KEEPALIVE = { intervalMs: 1000, timeoutMs: 3000 } as const;
/** Default of `acceptTimeoutMs`. */
export const DEFAULT_ACCEPT_TIMEOUT_MS = 3000;
/** The accept timeout of the last untried replica of a round (and the cap): the OS's own connect timeout is ~2 min. */
const MAX_ACCEPT_TIMEOUT_MS = 30_000;
/** Jitter before dialling the next replica after losing one: spreads the gateways that lost the same replica. */
const FAILOVER_JITTER_MS = 100;
const MAX_REPLICAS = 32;

const CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.max_receive_message_length': 256 * 1024 * 1024,
  'grpc.max_send_message_length': 256 * 1024 * 1024,
  // One attempt per channel: this client's backoff decides when to dial again.
  'grpc.initial_reconnect_backoff_ms': 1000,
  'grpc.max_reconnect_backoff_ms': 5000,
};

export function startSyncClient(options: SyncClientOptions): SyncClient {
  const { logger } = options;
  const heartbeatMs = options.heartbeatMs ?? 5000;
  const backoff = options.reconnect ?? DEFAULT_RECONNECT;
  const proto = loadSyncProto();
  /** Since when the gateway has had no accepted stream (start-up counts as the start of an outage). */
  let outageSince = Date.now();
  /** Every replica, the configured one first; `target` is the one dialled now. */
  const primary = { sync: options.endpoint, telemetry: options.telemetryEndpoint ?? options.endpoint };
  let targets = [primary, ...(options.alternates ?? []).filter((a) => a.sync !== options.endpoint)];
  let target = 0;
  const keepalive = options.keepalive ?? DEFAULT_KEEPALIVE;
  const acceptTimeoutMs = options.acceptTimeoutMs ?? DEFAULT_ACCEPT_TIMEOUT_MS;
  /** The replicas the control plane advertised replace the alternates; the configured endpoint stays first. */
  const learn = (advertised: ReplicasMessage) => {
    const valid = (advertised.replicas ?? [])
      .map((r) => ReplicaEndpointsSchema.safeParse(r))
      .flatMap((r) => (r.success ? [r.data] : []))
      .slice(0, MAX_REPLICAS);
    if (!valid.length) return;
    const current = targets[target]!;
    const next = [primary, ...valid].filter((t, i, all) => all.findIndex((o) => o.sync === t.sync) === i);
    let index = next.findIndex((t) => t.sync === current.sync);
    if (index < 0) {
      next.unshift(current); // no longer advertised, but dialled now: kept until the gateway moves on
      index = 0;
    }
    targets = next.map((t) => ({ sync: t.sync, telemetry: t.telemetry }));
    target = index;
    logger.debug({ replicas: valid.map((r) => r.sync) }, 'the control plane advertised its replicas');
    options.onReplicas?.(valid);
  };
  /** Replicas tried since the last accepted stream: until each was tried once, the next one is dialled at once. */
  let triedInOutage = 0;
  const snapshotState = (): SyncClientState => ({
    connected,
    connectedSince,
    lastError,
    attempts,
    connections,
    endpoint: targets[target]!.sync,
  });
  const changed = () => options.onState?.(snapshotState());

  let closed = false;
  let connected = false;
  let connectedSince: string | undefined;
  let lastError: string | undefined;
  /** Set when the control plane refused this gateway (not merely unreachable). */
  let refused = false;
  let attempts = 0;
  let connections = 0;
  let sync: ConfigSyncClient | undefined;
  let telemetry: TelemetryClient | undefined;
  let channels: Channel[] = [];
  let call: Duplex<SyncRequestMessage, ReceivedSyncResponse> | undefined;
  let wake: (() => void) | undefined;
  let immediate = false;
  let toldDeleted = false;
  const deleted = (reason: string) => {
    if (toldDeleted) return;
    toldDeleted = true;
    options.onDeleted?.(reason);
  };

  function openChannels(): void {
    const creds = options.credentials();
    const channelCredentials = grpcCredentials.createSsl(
      Buffer.from(creds.caPem),
      Buffer.from(creds.keyPem),
      Buffer.from(creds.certPem),
      {
        // The control plane's certificate must carry the configured server name, whatever address was dialled.
        checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(options.serverName, cert),
      },
    );
    const channelOptions = {
      ...CHANNEL_OPTIONS,
      'grpc.keepalive_time_ms': keepalive.intervalMs,
      'grpc.keepalive_timeout_ms': keepalive.timeoutMs,
      'grpc.ssl_target_name_override': options.serverName,
      'grpc.default_authority': options.serverName,
    };
    const { sync: syncEndpoint, telemetry: telemetryEndpoint } = targets[target]!;
    const syncChannel = new Channel(syncEndpoint, channelCredentials, channelOptions);
    const telemetryChannel =
      telemetryEndpoint === syncEndpoint
        ? syncChannel
        : new Channel(telemetryEndpoint, channelCredentials, channelOptions);
    channels = telemetryChannel === syncChannel ? [syncChannel] : [syncChannel, telemetryChannel];
    sync = new proto.ConfigSync(syncEndpoint, channelCredentials, {
      channelOverride: syncChannel,
    }) as unknown as ConfigSyncClient;
    telemetry = new proto.Telemetry(telemetryEndpoint, channelCredentials, {
      channelOverride: telemetryChannel,
    }) as unknown as TelemetryClient;
  }

  function closeChannels(): void {
    for (const c of channels) c.close();
    channels = [];
    sync = undefined;
    telemetry = undefined;
  }

  /** Runs one stream to its end; resolves whether it was accepted. */
  function runStream(): Promise<boolean> {
    return new Promise((resolve) => {
      let accepted = false;
      let done = false;
      let heartbeat: NodeJS.Timeout | undefined;
      let pump: TelemetryPump | undefined;
      let queue: Promise<unknown> = Promise.resolve();
      const stream = sync!.Sync();
      call = stream;
      // Not accepted in time: given up for the next replica (the timeout grows with failed rounds).
      // Short while another replica of this round through the list is still untried (it is likely up); the last
      // one of a round is given 30 s, so that a storm of gateways on the one replica left is not abandoned in a loop.
      const othersUntried = triedInOutage % targets.length < targets.length - 1;
      const round = Math.floor(triedInOutage / targets.length);
      const acceptWithin = othersUntried
        ? Math.min(MAX_ACCEPT_TIMEOUT_MS, acceptTimeoutMs * (1 + round))
        : MAX_ACCEPT_TIMEOUT_MS;
      let timedOut = false;
      const channel = channels[0];
      const acceptTimer = setTimeout(() => {
        if (accepted || done) return;
        // Connected (TLS done) but not accepted yet: the replica is alive and busy (a reconnect storm); giving up
        // would waste the handshake it made. A wedged one is caught by the keepalive pings instead.
        if (channel?.getConnectivityState(false) === connectivityState.READY) return;
        timedOut = true;
        stream.cancel();
      }, acceptWithin);

      const finish = (reason: string | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(acceptTimer);
        clearInterval(heartbeat);
        pump?.stop();
        if (call === stream) call = undefined;
        if (connected && !closed && !toldDeleted) {
          if (immediate) logger.info({ reason }, 'sync stream ended to reconnect at once');
          else
            logger.warn(
              { reason },
              'disconnected from the control plane; serving the last good snapshot until it is back',
            );
        }
        if (connected) outageSince = Date.now();
        connected = false;
        connectedSince = undefined;
        if (timedOut) reason = `not accepted within ${acceptWithin} ms`;
        if (reason) lastError = reason;
        resolve(accepted);
      };
      const send = (message: SyncRequestMessage) => {
        if (!done) stream.write(message);
      };

      stream.on('metadata', () => {
        if (done || accepted) return;
        accepted = true;
        clearTimeout(acceptTimer);
        connected = true;
        connections++;
        attempts = 0;
        connectedSince = new Date().toISOString();
        lastError = undefined;
        triedInOutage = 0;
        logger.info(
          { endpoint: targets[target]!.sync, applied: options.applied()?.version ?? 0 },
          'connected to the control plane',
        );
        changed();
        heartbeat = setInterval(
          () => send({ heartbeat: { appliedVersion: options.applied()?.version ?? 0 } }),
          heartbeatMs,
        );
        heartbeat.unref();
        if (options.telemetry && telemetry)
          pump = new TelemetryPump(
            telemetry,
            options.telemetry,
            options.instanceId,
            options.telemetryIntervalMs ?? 1000,
            logger,
            deleted,
          );
      });
      stream.on('data', (message: ReceivedSyncResponse) => {
        queue = queue.then(async () => {
          if (done) return;
          if (message.message === 'entities' && message.entities && options.handleEntities) {
            const outcome = await options.handleEntities(message.entities);
            if (!outcome.ok && outcome.resync && !done) {
              immediate = true;
              stream.end();
            }
            return;
          }
          if (message.message === 'replicas' && message.replicas) return learn(message.replicas);
          const update = toUpdate(message);
          if (!update) {
            if (message.message === 'notice' && message.notice) {
              logger.info({ kind: message.notice.kind }, `control plane notice: ${message.notice.message}`);
              options.onNotice?.(message.notice);
            }
            return;
          }
          let result: HandleResult;
          try {
            result = await options.handle(update);
          } catch (error) {
            result = {
              ok: false,
              version: update.kind === 'snapshot' ? update.version : update.toVersion,
              error: `internal error: ${(error as Error).message}`,
            };
          }
          if (result.ok) return send({ ack: { version: result.version, hash: result.hash } });
          send({ nack: { version: result.version, error: result.error } });
          if (result.resync && !done) {
            logger.warn('asking the control plane for a full snapshot (reconnecting)');
            immediate = true;
            stream.end(); // after the NACK: the control plane ends the stream, and the next Hello gets a full snapshot
          }
        });
      });
      stream.on('error', (error: ServiceError) => {
        refused = error.code === status.PERMISSION_DENIED || error.code === status.UNAUTHENTICATED;
        if (isDeleted(error)) deleted(describeError(error));
        finish(describeError(error));
      });
      stream.on('status', (s: { code: status; details: string }) =>
        finish(s.code === status.OK ? undefined : `${status[s.code] ?? s.code}: ${s.details}`),
      );
      stream.on('close', () => finish(undefined));

      const applied = options.applied();
      send({
        hello: {
          instanceId: options.instanceId,
          softwareVersion: options.softwareVersion,
          appliedVersion: applied?.version ?? 0,
          appliedHash: applied?.hash ?? '',
          hostname: options.hostname,
          entitySets: options.entitySets?.() ?? [],
        },
      });
    });
  }

  const loop = (async () => {
    while (!closed) {
      immediate = false;
      openChannels();
      const accepted = await runStream();
      closeChannels();
      if (closed) break;
      if (immediate) {
        immediate = false;
        continue;
      }
      if (!accepted) attempts++;
      changed();
      let delay = Math.round(Math.random() * reconnectCeiling(backoff, attempts, Date.now() - outageSince));
      if (targets.length > 1) {
        // Another replica is likely up: dial the next one after a short jitter (spreading the gateways that lost
        // the same replica), and back off only once every replica was tried in this outage.
        target = (target + 1) % targets.length;
        if (++triedInOutage < targets.length)
          delay = Math.round(Math.random() * Math.min(backoff.initialMs, FAILOVER_JITTER_MS));
      }
      if (refused && !accepted) {
        // Refused, not unreachable: retrying soon cannot help, but the operator may fix it (e.g. a clock), so keep
        // trying at the slowest pace.
        delay = Math.round(backoff.maxMs * (0.5 + Math.random() / 2));
        logger.error(
          { attempt: attempts, retryInMs: delay, reason: lastError },
          'the control plane refuses this gateway (deleted, or its certificate revoked or expired?); bootstrap it again with a new token if it was deleted',
        );
      } else {
        const log = attempts > 1 ? logger.debug.bind(logger) : logger.warn.bind(logger);
        log(
          { attempt: attempts, retryInMs: delay, reason: lastError, next: targets[target]!.sync },
          accepted ? 'the sync stream ended; reconnecting' : 'cannot reach the control plane; retrying',
        );
      }
      refused = false;
      await new Promise<void>((r) => {
        const timer = setTimeout(r, delay);
        wake = () => {
          clearTimeout(timer);
          r();
        };
      });
      wake = undefined;
    }
  })();

  return {
    state: snapshotState,
    renewCertificate(csrPem) {
      return new Promise((resolve, reject) => {
        if (!connected || !sync) return reject(new Error('not connected to the control plane'));
        sync.RenewCertificate({ csrPem }, { deadline: Date.now() + 15_000 }, (error, response) => {
          if (!error) return resolve(response!);
          if (isDeleted(error)) deleted(describeError(error));
          reject(new Error(describeError(error)));
        });
      });
    },
    reconnect() {
      immediate = true;
      if (call) call.cancel();
      else wake?.();
    },
    async close() {
      closed = true;
      call?.cancel();
      wake?.();
      await loop;
    },
  };
}

function toUpdate(message: ReceivedSyncResponse): SyncUpdate | undefined {
  if (message.message === 'snapshot' && message.snapshot) return { kind: 'snapshot', ...message.snapshot };
  if (message.message === 'delta' && message.delta) return { kind: 'delta', ...message.delta };
  return undefined;
}

function isDeleted(error: ServiceError): boolean {
  return error.metadata?.get(GATEWAY_STATUS_TRAILER)[0] === 'deleted';
}

function describeError(error: ServiceError): string {
  return `${status[error.code] ?? error.code}: ${error.details || error.message}`;
}

/** Sends telemetry batches over one Report stream while the sync stream is up; one batch in flight at a time. */
class TelemetryPump {
  readonly #client: TelemetryClient;
  readonly #source: TelemetrySource;
  readonly #instanceId: string;
  readonly #logger: Logger;
  readonly #timer: NodeJS.Timeout;
  readonly #onDeleted: (reason: string) => void;
  #stream: Duplex<Partial<TelemetryBatchMessage>, TelemetryAckMessage> | undefined;
  #inFlight: number | undefined;
  #stopped = false;

  constructor(
    client: TelemetryClient,
    source: TelemetrySource,
    instanceId: string,
    intervalMs: number,
    logger: Logger,
    onDeleted: (reason: string) => void,
  ) {
    this.#client = client;
    this.#onDeleted = onDeleted;
    this.#source = source;
    this.#instanceId = instanceId;
    this.#logger = logger;
    this.#timer = setInterval(() => this.#tick(), intervalMs);
    this.#timer.unref();
  }

  #tick(): void {
    if (this.#stopped || this.#inFlight !== undefined) return;
    const batch = this.#source.takeBatch();
    if (!batch) return;
    const stream = this.#stream ?? this.#open();
    this.#inFlight = batch.sequence ?? 0;
    stream.write({ ...batch, instanceId: this.#instanceId });
  }

  #open(): Duplex<Partial<TelemetryBatchMessage>, TelemetryAckMessage> {
    const stream = this.#client.Report();
    this.#stream = stream;
    stream.on('data', (ack: TelemetryAckMessage) => {
      this.#source.ack(ack.sequence);
      if (ack.sequence === this.#inFlight) this.#inFlight = undefined;
    });
    const broken = (reason: string) => {
      if (this.#stream !== stream) return;
      this.#stream = undefined;
      if (this.#inFlight !== undefined) {
        this.#inFlight = undefined;
        this.#source.requeue();
      }
      if (!this.#stopped) this.#logger.warn({ reason }, 'the telemetry stream ended; batches stay buffered');
    };
    stream.on('error', (error: ServiceError) => {
      // The control plane ends a deleted gateway's telemetry too, and may notice the deletion there first.
      if (isDeleted(error)) this.#onDeleted(describeError(error));
      broken(describeError(error));
    });
    stream.on('status', () => broken('ended by the control plane'));
    return stream;
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    const stream = this.#stream;
    this.#stream = undefined;
    if (this.#inFlight !== undefined) {
      this.#inFlight = undefined;
      this.#source.requeue();
    }
    stream?.cancel();
  }
}
