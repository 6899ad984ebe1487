/**
 * An edge gateway process: the config directory that `gatehouse gateway bootstrap` wrote (see
 * src/config/edge.ts), a gateway instance (`instance.ts`) fed by the control plane over the sync channel, and the
 * fallback cache (`cache.ts`). This file puts together, in start-up order:
 *
 * 1. the identity and credentials (edge-credentials.ts); a certificate that has expired, or expires within a
 *    minute, is re-enrolled before the gateway connects (certificate-renewal.ts);
 * 2. the start from the cache (cache-start.ts): start-up never waits for the control plane — a valid cached
 *    snapshot is applied and served at once; without one the gateway listens and answers 503
 *    GH_ERR_GATEWAY_NOT_READY (and /readyz 503) until the first snapshot arrives, with the reason in the readiness
 *    check `config`;
 * 3. the listeners, then the sync loop (sync-loop.ts, which loads gRPC only now): every snapshot the control plane
 *    sends is checked (sync-update.ts), applied, cached (config-in-force.ts) and ACKed, or NACKed with the reason;
 * 4. telemetry of this gateway's requests, streamed while connected; the control-plane replicas it is told of,
 *    kept in DIR/replicas.json and used for failover (learned-replicas.ts);
 * 5. certificate renewal over the live channel at two thirds of its lifetime (certificate-renewal.ts).
 *
 * A gateway the control plane says was deleted is deactivated: it serves and caches nothing any more.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { type EdgeIdentity, withLearnedReplicas } from '../../config/edge.ts';
import { ConfigError } from '../../config/load.ts';
import { formatIssues, type RateLimitStoreSchema, ServerSchema } from '../../config/schema.ts';
import { createGatewayInstance, type GatewayInstance } from '../instance.ts';
import { createTelemetryCollector, type TelemetryCollector } from '../observability/telemetry.ts';
import { DEFAULT_RECONNECT, type ReconnectBackoff } from './backoff.ts';
import { startFromCache } from './cache-start.ts';
import { openSnapshotCache } from './cache.ts';
import { CertificateRenewal } from './certificate-renewal.ts';
import { ConfigInForce } from './config-in-force.ts';
import { EntityCacheFile } from './entity-cache.ts';
import { edgeFiles, nearExpiry, readEdgeCredentials, readEdgeIdentity } from './edge-credentials.ts';
import { LearnedReplicasFile, readLearnedReplicas } from './learned-replicas.ts';
import type { SyncClientState, TelemetrySource } from './sync-client.ts';
import { type ReenrollmentProgress, SyncLoop } from './sync-loop.ts';

export { edgeFiles, readEdgeIdentity, REENROLL_MARGIN_MS } from './edge-credentials.ts';

export interface EdgeGatewayOptions {
  /** The config directory (holds gateway.json, tls/, cache/). */
  dir: string;
  logger: Logger;
  /**
   * API listener; default 127.0.0.1:8080. 0 picks a free port. Loopback by default: a gateway started by hand serves
   * only its own machine until told otherwise (`--host 0.0.0.0`); the container image and the install commands pass
   * 0.0.0.0, since there the container's network namespace and its published ports are the boundary.
   */
  port?: number;
  host?: string;
  /** Operations listener (/healthz, /readyz, /metrics); default 127.0.0.1:9090. */
  opsPort?: number;
  opsHost?: string;
  /** Which addresses upstream connections may reach: `public` refuses loopback, private and link-local ones. Default `any`. */
  egress?: 'any' | 'public';
  /**
   * Share rate-limit counters with the environment's other edge gateway instances through Redis (the value of
   * `server.rateLimitStore` in a config file, e.g. `{ type: 'redis', url }`); default: per instance, in memory.
   */
  rateLimitStore?: z.input<typeof RateLimitStoreSchema>;
  /**
   * Reconnect backoff (full jitter), also between re-enrollment attempts. Default 250 ms doubling, capped at 1 s
   * for the first minute without a connection, then at a tenth of the time without one, up to 30 s.
   */
  reconnect?: ReconnectBackoff;
  /** Default 5 s. */
  heartbeatMs?: number;
  /** Renew the certificate when this fraction of its lifetime has passed. Default 2/3. */
  renewAfter?: number;
  /**
   * Telemetry batches to stream while connected. Default: a collector of this gateway's requests and security
   * events (`createTelemetryCollector`), bounded while disconnected; false for none.
   */
  telemetry?: TelemetrySource | false;
  /** What changes the API and ops ports, for the error when one is taken (e.g. `--port N`). */
  change?: { port?: string; opsPort?: string };
}

export interface EdgeGatewayState extends SyncClientState {
  instanceId: string;
  /** The version in force; 0 while none is. */
  appliedVersion: number;
  appliedHash?: string;
  /** Where the version in force came from. */
  source?: 'cache' | 'control-plane';
  certificate: { serial: string; notAfter: string };
}

export interface EdgeGateway {
  readonly identity: EdgeIdentity;
  readonly api: AddressInfo;
  readonly ops: AddressInfo | undefined;
  readonly instance: GatewayInstance;
  state(): EdgeGatewayState;
  close(): Promise<void>;
}

export async function startEdgeGateway(options: EdgeGatewayOptions): Promise<EdgeGateway> {
  const { dir, logger } = options;
  const files = edgeFiles(dir);
  const identity = await readEdgeIdentity(dir);
  // The replicas the control plane told of last time replace the alternates written at bootstrap.
  const learned = await readLearnedReplicas(files.replicas, logger);
  identity.controlPlane = withLearnedReplicas(identity.controlPlane, learned);
  const replicasFile = new LearnedReplicasFile(files.replicas, learned, logger);
  const credentials = await readEdgeCredentials(files, identity);
  /** Re-enroll before dialling: a handshake with an expired certificate fails. */
  const reenrollFirst = nearExpiry(credentials);
  if (reenrollFirst) {
    const { certificate } = credentials;
    const notAfter = certificate.notAfter.toISOString();
    logger.warn(
      { file: files.cert, notAfter },
      certificate.notAfter.getTime() <= Date.now()
        ? `the gateway certificate expired at ${notAfter}; re-enrolling with the control plane`
        : `the gateway certificate expires at ${notAfter}; re-enrolling with the control plane before connecting`,
    );
  }
  const pkg = (await import('../../../package.json', { with: { type: 'json' } })).default;
  const instanceId = randomUUID();

  const parsedServer = ServerSchema.safeParse({
    signingKeysFile: files.signingKeys,
    listen: { host: options.host ?? '127.0.0.1', port: options.port ?? 8080 },
    ops: { host: options.opsHost ?? '127.0.0.1', port: options.opsPort ?? 9090 },
    egress: options.egress ?? 'any',
    ...(options.rateLimitStore === undefined ? {} : { rateLimitStore: options.rateLimitStore }),
  });
  if (!parsedServer.success)
    throw new ConfigError(`invalid gateway settings\n${formatIssues(parsedServer.error).replace(/^/gm, '  ')}`);
  const server = parsedServer.data;
  const instance = await createGatewayInstance({ logger, server, baseDir: dir });

  let closing = false;
  const config = new ConfigInForce(
    openSnapshotCache(dir, credentials.pems.keyPem),
    logger,
    new EntityCacheFile(dir, credentials.pems.keyPem, logger),
    instance.entitySets,
  );
  let sync: SyncLoop;
  /** How re-enrollment goes: not begun until the listeners are up and certificate renewal starts. */
  let reenrollment = (): ReenrollmentProgress => ({ first: reenrollFirst, attempts: 0, error: undefined });
  let addresses: Awaited<ReturnType<GatewayInstance['listen']>>;
  try {
    const cacheProblem = await startFromCache(config, instance, logger);
    sync = new SyncLoop({
      identity,
      credentials,
      config,
      instance,
      logger,
      instanceId,
      softwareVersion: pkg.version,
      heartbeatMs: options.heartbeatMs,
      reconnect: options.reconnect,
      cacheProblem,
      reenrollment: () => reenrollment(),
      closing: () => closing,
      onDeleted: (reason) => void deactivate(reason),
      onReplicas: (replicas) => {
        // Failover and re-enrollment use them from now on (certificate-renewal.ts reads `identity` each time).
        identity.controlPlane = withLearnedReplicas(identity.controlPlane, replicas);
        void replicasFile.save(replicas);
      },
    });
    sync.updateConfigCheck();
    addresses = await instance.listen({
      port: server.listen.port,
      host: server.listen.host,
      opsPort: server.ops.port,
      opsHost: server.ops.host,
      change: options.change,
    });
  } catch (error) {
    await instance.close({ drainMs: 0 });
    throw error;
  }

  const collector: TelemetryCollector | undefined =
    options.telemetry === undefined
      ? createTelemetryCollector({ instanceId, server: instance.server, metrics: instance.metrics })
      : undefined;
  const telemetry = options.telemetry === false ? undefined : (options.telemetry ?? collector);
  const renewal = new CertificateRenewal({
    identity,
    files,
    credentials,
    logger,
    renewAfter: options.renewAfter ?? 2 / 3,
    backoff: options.reconnect ?? DEFAULT_RECONNECT,
    startedAt: Date.now(),
    reenrollFirst,
    client: () => sync.client,
    connect: () => sync.connect(),
    rekeyCache: (keyPem) => config.rekey(keyPem),
    onProgress: () => sync.updateConfigCheck(),
    deactivate: (reason) => void deactivate(reason),
    deactivated: () => config.deactivated,
    closing: () => closing,
  });
  reenrollment = () => renewal.progress();
  sync.start({ connectNow: !reenrollFirst, telemetry });

  /**
   * The gateway was deleted in the control plane: revocations no longer reach it, so it must not go on serving a
   * frozen configuration. Its endpoints are deactivated (an empty route table: every request is refused) and the
   * cache removed, so that a restart does not bring them back.
   */
  async function deactivate(reason: string): Promise<void> {
    renewal.stop();
    logger.error(
      { reason },
      'this gateway was deleted in the control plane: its endpoints are deactivated and its cached snapshot removed; bootstrap a new gateway to serve again',
    );
    await config.deactivate(instance);
  }

  renewal.schedule(reenrollFirst ? 0 : undefined);

  let closed: Promise<void> | undefined;
  return {
    identity,
    api: addresses.api,
    ops: addresses.ops,
    instance,
    state: () => {
      const reenroll = renewal.progress();
      const { certificate } = credentials;
      const { current } = config;
      return {
        ...(sync.client?.state() ?? {
          connected: false,
          attempts: reenroll.attempts,
          connections: 0,
          ...(reenroll.error !== undefined ? { lastError: reenroll.error } : {}),
        }),
        instanceId,
        appliedVersion: current?.version ?? 0,
        appliedHash: current?.hash,
        source: current?.source,
        certificate: { serial: certificate.serial, notAfter: certificate.notAfter.toISOString() },
      };
    },
    close() {
      closed ??= (async () => {
        closing = true;
        renewal.stop();
        await sync.close();
        collector?.close();
        await instance.close();
        await config.settled();
        await replicasFile.settled();
      })();
      return closed;
    },
  };
}
