/**
 * The control plane's end of the gateway channel: one gRPC server (mutual TLS, the control plane's own CA) with
 * `ConfigSync` and `Telemetry` (proto/gatehouse/v1/sync.proto). This file wires it: the server, its credentials,
 * certificate renewal (`ConfigSync.RenewCertificate`), and ending streams when a gateway is deleted or the control
 * plane stops. What each stream does lives beside it:
 *
 * - gateway-authentication.ts: every call is authenticated from its client certificate; a stream is checked
 *   again once registered (a deletion may land in between) and before every telemetry batch is stored.
 * - instance-session.ts: one `ConfigSync.Sync` stream, one connected instance — Hello, heartbeats, ACK/NACK, the
 *   instance record in the store.
 * - snapshot-stream.ts: xDS-like, what the instance is sent — the full snapshot of its scope (or a delta when it
 *   already serves an older stored version), then a delta for every version the publisher records.
 * - telemetry-stream.ts: one `Telemetry.Report` stream.
 *
 * Deleting a gateway ends its streams through the registry (`disconnectGateway`), Sync and Telemetry alike.
 */
import { createServer as createNetServer } from 'node:net';
import { explainListenError } from '../../gateway/index.ts';
import {
  type sendUnaryData,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  status,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { ReplicaEndpoints } from '../../config/edge.ts';
import {
  type ReceivedSyncRequest,
  type RenewCertificateRequestMessage,
  type RenewCertificateResponseMessage,
  syncServices,
  type SyncResponseMessage,
  type TelemetryAckMessage,
  type TelemetryBatchMessage,
} from '../../config/sync-proto.ts';
import { type CertificateAuthority, CsrError } from '../pki/ca.ts';
import type { EntityFeed } from '../entity-feed.ts';
import type { Publisher } from '../publisher.ts';
import type { Store } from '../store/store.ts';
import { createGatewayAuthenticator, denialTrailers } from './gateway-authentication.ts';
import { InstanceSession } from './instance-session.ts';
import { SyncRegistry } from './registry.ts';
import { SnapshotCache } from './snapshot-stream.ts';
import { serveTelemetryStream, type TelemetryIngest } from './telemetry-stream.ts';

export type { TelemetryIngest } from './telemetry-stream.ts';

/** How long a gateway certificate is valid (renewed at 2/3 of its lifetime over the live channel). */
export const GATEWAY_CERTIFICATE_VALIDITY_MS = 24 * 3600_000;
/** Largest message either end accepts: a snapshot of a large workspace is tens of megabytes. */
export const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

export interface SyncServerOptions {
  store: Store;
  publisher: Pick<Publisher, 'changed' | 'onPublish'>;
  /** Relationship data changes (entity-feed.ts); without it, entity sets are sent only with each snapshot. */
  entities?: Pick<EntityFeed, 'onChange'>;
  ca: CertificateAuthority;
  /** The control plane's server certificate (issued by `ca`) and its key, PEM. */
  tls: { certPem: string; keyPem: string };
  logger: Logger;
  host: string;
  /** 0 picks a free port (see `SyncServer.port`). */
  port: number;
  /** What changes the port, for the error when it is taken (e.g. `--sync-port N`). */
  change?: string;
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

/** HTTP/2 keepalive the server sends on its own (the gateways ping every second; see sync-client.ts). */
const SERVER_KEEPALIVE = { 'grpc.keepalive_time_ms': 20_000, 'grpc.keepalive_timeout_ms': 10_000 };

export interface SyncServer {
  readonly port: number;
  readonly registry: SyncRegistry;
  /**
   * The control-plane replicas that are up now (this one included): sent to every connected instance at once, and
   * to every instance that connects from now on, right after its Hello is accepted.
   */
  advertiseReplicas(replicas: readonly ReplicaEndpoints[]): void;
  /** Ends every live stream of the gateway at once, Sync and Telemetry (PERMISSION_DENIED "gateway deleted"); returns how many. */
  disconnectGateway(gatewayId: string): number;
  /** Ends every stream, waits for their last store writes, stops listening. */
  close(): Promise<void>;
}

export async function startSyncServer(options: SyncServerOptions): Promise<SyncServer> {
  const { store, publisher, ca, logger } = options;
  const now = options.now ?? Date.now;
  const validityMs = options.certificateValidityMs ?? GATEWAY_CERTIFICATE_VALIDITY_MS;
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  const registry = new SyncRegistry();
  let replicas: readonly ReplicaEndpoints[] = [];
  const snapshots = new SnapshotCache(store);
  const authenticator = createGatewayAuthenticator(store, now);
  /** Store writes still running per stream: close() waits for them before the store closes. */
  const pending = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    pending.add(p);
    void p.finally(() => pending.delete(p)).catch(() => {});
    return p;
  };

  function sync(call: ServerDuplexStream<ReceivedSyncRequest, SyncResponseMessage>): void {
    const session = new InstanceSession({
      call,
      store,
      publisher,
      entities: options.entities,
      logger,
      now,
      registry,
      snapshots,
      softwareVersion: options.softwareVersion,
      idleTimeoutMs,
      replicas: () => replicas,
      track,
      revalidate: authenticator.revalidate,
    });
    session.start(authenticator.authenticate(call));
  }

  /** A certificate for a new key, for the gateway the current certificate names (renewal over the live channel). */
  function renewCertificate(
    call: ServerUnaryCall<RenewCertificateRequestMessage, RenewCertificateResponseMessage>,
    callback: sendUnaryData<RenewCertificateResponseMessage>,
  ): void {
    void (async () => {
      const auth = await authenticator.authenticate(call);
      if ('code' in auth) {
        logger.warn({ peer: call.getPeer(), reason: auth.message }, 'refused a certificate renewal');
        return callback({ code: auth.code, details: auth.message, metadata: denialTrailers(auth.deleted) });
      }
      const { gateway } = auth;
      const issued = await ca.signGatewayCsr(
        call.request.csrPem,
        { gatewayId: gateway.id, workspaceId: gateway.workspaceId, environment: gateway.environment },
        validityMs,
      );
      await store.insertGatewayCertificate({
        serial: issued.serial,
        gatewayId: gateway.id,
        notBefore: issued.notBefore.toISOString(),
        notAfter: issued.notAfter.toISOString(),
      });
      logger.info(
        { gateway: gateway.id, serial: issued.serial, previous: auth.serial, notAfter: issued.notAfter.toISOString() },
        'renewed a gateway certificate',
      );
      callback(null, { certificatePem: issued.certPem, caPem: ca.certPem });
    })().catch((error: unknown) => {
      if (error instanceof CsrError) return callback({ code: status.INVALID_ARGUMENT, details: error.message });
      logger.error({ err: error }, 'certificate renewal failed');
      callback({ code: status.INTERNAL, details: 'the control plane could not renew the certificate' });
    });
  }

  function report(call: ServerDuplexStream<TelemetryBatchMessage, TelemetryAckMessage>): void {
    serveTelemetryStream(call, { authenticator, registry, logger, track, telemetry: options.telemetry });
  }

  const server = new Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    ...SERVER_KEEPALIVE,
  });
  const services = syncServices();
  server.addService(services.configSync, { Sync: sync, RenewCertificate: renewCertificate });
  server.addService(services.telemetry, { Report: report });
  const credentials = ServerCredentials.createSsl(
    Buffer.from(ca.certPem),
    [{ cert_chain: Buffer.from(options.tls.certPem), private_key: Buffer.from(options.tls.keyPem) }],
    true,
  );
  // A port in use is found before gRPC tries it: gRPC would also print its own line about it on stderr.
  if (options.port !== 0) await probePort(options.host, options.port, options.change);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(hostPort(options.host, options.port), credentials, (error, bound) =>
      error
        ? reject(
            explainListenError(error, 'config sync for edge gateways', options.port, options.host, options.change) ??
              error,
          )
        : resolve(bound),
    );
  });
  logger.info({ sync: hostPort(options.host, port) }, 'gateway sync listening');

  let closed: Promise<void> | undefined;
  return {
    port,
    registry,
    advertiseReplicas(next) {
      replicas = next;
      for (const live of registry.all()) live.advertise?.(next);
    },
    disconnectGateway(gatewayId) {
      const n = registry.disconnect(gatewayId, status.PERMISSION_DENIED, 'gateway deleted', true);
      if (n)
        logger.info({ gateway: gatewayId, streams: n }, 'ended the sync and telemetry streams of a deleted gateway');
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

/** `host:port` as gRPC and URLs take it: an IPv6 address in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Listens on host:port and closes again at once: a ListenError when the port cannot be had. */
async function probePort(host: string, port: number, change: string | undefined): Promise<void> {
  const probe = createNetServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen({ port, host, exclusive: true }, resolve);
    });
  } catch (error) {
    throw explainListenError(error, 'config sync for edge gateways', port, host, change) ?? error;
  }
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}
