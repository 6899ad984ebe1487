/**
 * The control plane process: the store (SQLite by default, PostgreSQL with a URL), the admin API, the publisher
 * that compiles changes into snapshots, and the embedded cloud gateway. On first start it creates the `default`
 * workspace and an installation admin client, whose token is returned once for the caller to print.
 *
 * Over 400 lines on purpose: `startControlPlane` builds the process in order (store, keys, servers, publisher, cloud
 * gateway, shutdown) and each step uses what the steps before it built; the parts themselves live in their own
 * modules.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { type RateLimitStoreSchema, ServerSchema, TokenExchangeSchema, type TokenExchange } from '../config/schema.ts';
import type { ControlPlaneSettings } from '../config/control-plane.ts';
import type { ControlPlaneEndpoints } from '../config/edge.ts';
import { egressAgent, EgressPolicy, explainListenError } from '../gateway/index.ts';
import type { Agent } from 'undici';
import { DEFAULT_SESSION_SETTINGS } from './api/auth.ts';
import { createAdminServer } from './api/server.ts';
import { buildOpenApi } from './api/openapi.ts';
import type { ControlContext } from './api/operation.ts';
import { OPERATIONS } from './api/operations.ts';
import { startAlerting, type Alerting, type AlertingOptions } from './alerts/alerting.ts';
import { startAuditRetention, type AuditRetention } from './audit-retention.ts';
import { CloudGateway } from './cloud-gateway.ts';
import type { CertificateAuthority } from './pki/ca.ts';
import { openStoredCertificateAuthority } from './pki/stored-ca.ts';
import { REPLICAS_CHANGED, startReplicaPresence, type ReplicaPresence } from './replicas.ts';
import { createKeyRing, type KeyRing, KeyRingError, localKeyRing } from './secrets/key-ring.ts';
import { EntityFeed } from './entity-feed.ts';
import { Publisher } from './publisher.ts';
import { createBootstrapServer } from './sync/bootstrap-server.ts';
import { hostPort, startSyncServer, type SyncServer } from './sync/sync-server.ts';
import { isPostgresUrl, openStore } from './store/open.ts';
import type { Store } from './store/store.ts';
import { startCloudTelemetry, type CloudTelemetry } from './telemetry/cloud.ts';
import { createTelemetryIngest } from './telemetry/ingest.ts';
import { bootstrapInstallation } from './workspaces.ts';

/** How a replica tells the others that a collection's relationship data changed (the rest are workspace ids). */
const ENTITIES_NOTICE = 'entities:';

/** The settings `ControlPlaneOptions` takes as they are, under their own names (defaults: the schema's comments). */
type DirectSettings =
  | 'dataDir'
  | 'databaseUrl'
  | 'host'
  | 'adminPort'
  | 'gatewayPort'
  | 'opsPort'
  | 'bootstrapPort'
  | 'syncPort'
  | 'advertiseHost'
  | 'cloudEgress'
  | 'auditRetentionDays';
/** Durations the options take as `<setting>Ms`. */
type DurationSettings =
  | 'gatewayCertificateValidity'
  | 'gatewayReenrollWindow'
  | 'sessionIdleTimeout'
  | 'sessionLifetime'
  | 'shutdownDelay'
  | 'drainTimeout';
/** Settings `gatehouse control start` maps into other options (`tokenExchange`, `alerts`, `cloudRateLimitStore`). */
type MappedSettings = 'publicUrl' | 'alertWebhook' | 'alertAuthFailures' | 'cloudRateLimitRedisUrl';
type UnplacedSettings = Exclude<keyof ControlPlaneSettings, DirectSettings | DurationSettings | MappedSettings>;
/** A setting added to the schema fails the typecheck here (naming it) until the options take it. */
const EVERY_SETTING_PLACED: [UnplacedSettings] extends [never] ? true : UnplacedSettings = true;
void EVERY_SETTING_PLACED;

/**
 * What `startControlPlane` takes: the control plane's settings (`ControlPlaneSettingsSchema`, whose types these
 * are; each optional here), and what embedders and tests set beyond them.
 */
export interface ControlPlaneOptions extends Partial<Pick<ControlPlaneSettings, DirectSettings>> {
  logger: Logger;
  /** Validity of the certificates issued to edge gateways (bootstrap, renewal, re-enrollment). Default 24 hours. */
  gatewayCertificateValidityMs?: ControlPlaneSettings['gatewayCertificateValidity'];
  /**
   * How long after its expiry an edge gateway's certificate may still be traded for a new one (re-enrollment at
   * the bootstrap endpoint, by proof of possession of its key). Default 30 days.
   */
  gatewayReenrollWindowMs?: ControlPlaneSettings['gatewayReenrollWindow'];
  /** A console session ends after this long without a request (sliding). Default 30 minutes. */
  sessionIdleTimeoutMs?: ControlPlaneSettings['sessionIdleTimeout'];
  /** A console session ends this long after sign-in, however active. Default 12 hours. */
  sessionLifetimeMs?: ControlPlaneSettings['sessionLifetime'];
  /**
   * On `close()`: how long the replica keeps serving while reporting not ready (`/readyz` 503), so that load
   * balancers stop sending it traffic before its listeners close. Default 0.
   */
  shutdownDelayMs?: ControlPlaneSettings['shutdownDelay'];
  /** On `close()`: how long requests in flight (admin API, cloud gateway) may take to finish. Default 10 s. */
  drainTimeoutMs?: ControlPlaneSettings['drainTimeout'];
  /**
   * Seals the secrets in the store (CA key, token-signing keys) with AES-256-GCM (`GATEHOUSE_ENCRYPTION_KEY` or
   * `GATEHOUSE_ENCRYPTION_KEY_FILE`; see secrets/key-ring.ts). Required with PostgreSQL. Default with SQLite: a
   * key generated once into `<dataDir>/encryption.key` (mode 0600), beside the database file it protects.
   */
  keyRing?: KeyRing;
  /**
   * Token exchange of every workspace environment. `issuer` is the base of each environment's own issuer,
   * `<issuer>/<workspace>/<environment in lower case>` (`tenantIssuer`); default: the cloud gateway's bound URL.
   */
  tokenExchange?: Partial<Pick<TokenExchange, 'issuer' | 'audience' | 'ttl' | 'algorithm'>>;
  /**
   * Where the cloud gateway's rate-limit counters live: per process (default), or a Redis shared by every
   * control-plane replica (`{ type: 'redis', url }`, as `server.rateLimitStore` in a gateway config file).
   */
  cloudRateLimitStore?: z.input<typeof RateLimitStoreSchema>;
  /** Alerts: the webhook they are POSTed to, thresholds, evaluation interval (see `startAlerting`). */
  alerts?: Pick<AlertingOptions, 'webhookUrl' | 'authFailureThreshold' | 'offlineAfterMs' | 'intervalMs'>;
  /** How often the cloud gateway's own telemetry is stored. Default 10 s. */
  cloudTelemetryIntervalMs?: number;
  now?: () => number;
}

export interface ControlPlane {
  readonly admin: AddressInfo;
  readonly gateway: AddressInfo;
  readonly ops: AddressInfo | undefined;
  readonly store: Store;
  readonly publisher: Publisher;
  readonly cloud: CloudGateway;
  readonly ca: CertificateAuthority;
  /** What edge gateways dial. */
  readonly endpoints: ControlPlaneEndpoints;
  /** The config sync / telemetry server: its live streams say which version every connected instance applied. */
  readonly sync: SyncServer;
  /** The installation admin token, on the very first start only. */
  readonly bootstrapToken: string | undefined;
  close(): Promise<void>;
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const { logger } = options;
  const host = options.host ?? '127.0.0.1';
  const dataDir = resolve(options.dataDir ?? 'data');
  const now = options.now ?? Date.now;
  let keyRing = options.keyRing;
  if (!keyRing && isPostgresUrl(options.databaseUrl?.trim() ?? ''))
    throw new KeyRingError(
      'a control plane on PostgreSQL needs the encryption key of its secrets: set GATEHOUSE_ENCRYPTION_KEY (or GATEHOUSE_ENCRYPTION_KEY_FILE) to the same key on every replica (generate one with `openssl rand -base64 32`; docs/high-availability.md)',
    );
  // An in-memory database (tests) gets a key that lives as long as it does; a SQLite file, one beside it.
  keyRing ??=
    options.databaseUrl?.trim() === ':memory:' ? createKeyRing([randomBytes(32)]) : await localKeyRing(dataDir);
  const store = await openStore({ databaseUrl: options.databaseUrl, dataDir, keyRing });
  let cloud: CloudGateway | undefined;
  let admin: Server | undefined;
  let bootstrapServer: HttpsServer | undefined;
  let syncServer: SyncServer | undefined;
  let alerting: Alerting | undefined;
  let webhookAgent: Agent | undefined;
  let stopRemoteChanges: (() => Promise<void>) | undefined;
  let cloudTelemetry: CloudTelemetry | undefined;
  let auditRetention: AuditRetention | undefined;
  let presence: ReplicaPresence | undefined;
  try {
    const gatewayPort = options.gatewayPort ?? 8080;
    // Every scope's issuer, and audience unless one is given for all, is its workspace environment's own.
    const tokenExchange = TokenExchangeSchema.omit({ issuer: true, audience: true }).parse({
      ...(options.tokenExchange?.ttl ? { ttl: options.tokenExchange.ttl / 1000 } : {}),
      ...(options.tokenExchange?.algorithm ? { algorithm: options.tokenExchange.algorithm } : {}),
    });
    // No signing-keys file: every tenant's keys are in the store (cloud-gateway.ts), nothing per replica on disk.
    const server = ServerSchema.parse({
      listen: { host, port: gatewayPort },
      ops: { host, port: options.opsPort ?? 9090 },
      ...(options.cloudRateLimitStore ? { rateLimitStore: options.cloudRateLimitStore } : {}),
      // With a public URL (`--public-url`), the cloud gateway answers for its host only and forwards it upstream.
      ...(options.tokenExchange?.issuer && URL.canParse(options.tokenExchange.issuer)
        ? { publicHosts: [new URL(options.tokenExchange.issuer).host] }
        : {}),
    });
    // No tenant's upstream may reach the control plane's own listeners; ports bound as 0 are added once known.
    const controlPorts = new Set(
      [
        options.adminPort ?? 8081,
        gatewayPort,
        options.opsPort ?? 9090,
        options.bootstrapPort ?? 8443,
        options.syncPort ?? 8444,
      ].filter((p) => p > 0),
    );
    const egress = new EgressPolicy({
      mode: options.cloudEgress ?? 'any',
      denyLinkLocal: true,
      localPorts: controlPorts,
    });
    cloud = await CloudGateway.create({ logger, server, signing: tokenExchange, egress });
    // Alert destinations' webhooks obey the same policy: workspace admins set their URLs.
    webhookAgent = egressAgent(egress);
    // Not ready (/readyz 503) until every listener is up: a load balancer must not send admin API or bootstrap
    // requests to a replica that does not listen on them yet.
    cloud.instance.setCheck('startup', { status: 'failing', detail: 'the control plane is starting' });
    // The cloud gateway listens before the first compile: every tenant's issuer names its bound address.
    const listening = await cloud.instance.listen({
      port: gatewayPort,
      host,
      ops: options.opsPort !== -1,
      opsPort: options.opsPort ?? 9090,
      opsHost: host,
      change: { port: changeWith('--gateway-port'), opsPort: changeWith('--ops-port') },
    });
    const cloudUrl = `http://${formatHost(listening.api)}`;
    const audience = options.tokenExchange?.audience;
    const entityFeed = new EntityFeed({ store, logger, cloud: cloud.instance.entitySets });
    const publisher = new Publisher({
      store,
      cloud,
      entities: entityFeed,
      logger,
      tokenExchange: audience === undefined ? tokenExchange : { ...tokenExchange, audience },
      issuerBase: options.tokenExchange?.issuer ?? cloudUrl,
      now,
    });

    const bootstrap = await bootstrapInstallation(store, now());
    // Replicas sharing PostgreSQL: a change made through another replica is compiled here too, for this
    // replica's cloud gateway and the edge instances connected to it. (SQLite: one process, nothing to hear.)
    const recompile = (workspaceId: string) => {
      // Relationship data changed through another replica: `entities:<collection id>`.
      if (workspaceId.startsWith(ENTITIES_NOTICE))
        return void entityFeed
          .changed(workspaceId.slice(ENTITIES_NOTICE.length))
          .catch((err: unknown) =>
            logger.error({ err, notice: workspaceId }, 'applying relationship data changed by another replica failed'),
          );
      if (workspaceId === '*')
        void entityFeed
          .changed('*')
          .catch((err: unknown) => logger.error({ err }, 'bringing relationship data up to date failed'));
      // A replica started or stopped (or notifications may have been missed): the set advertised to gateways.
      if (workspaceId === REPLICAS_CHANGED || workspaceId === '*')
        void presence
          ?.refresh()
          .catch((err: unknown) => logger.warn({ err }, 'cannot read the control-plane replicas; retrying'));
      if (workspaceId === REPLICAS_CHANGED) return;
      void (workspaceId === '*' ? publisher.publishAll() : publisher.changed(workspaceId)).catch((err: unknown) =>
        logger.error({ err, workspace: workspaceId }, 'compiling a workspace changed by another replica failed'),
      );
    };
    stopRemoteChanges = await store.onRemoteChange(recompile);
    await publisher.publishAll();
    if (!cloud.instance.ready()) await cloud.update(new Map()); // no workspace at all: serve an empty table, be ready

    const pkg = (await import('../../package.json', { with: { type: 'json' } })).default;
    // The edge-gateway channel: the control plane's own CA, in the store (its key sealed), shared by every replica.
    // An installation whose CA is still in the data directory has it imported (`gatehouse control migrate-ca`).
    const ca = await openStoredCertificateAuthority(store, { legacyDir: join(dataDir, 'pki'), logger });
    const advertise = options.advertiseHost ?? host;
    const endpoints: ControlPlaneEndpoints = {
      bootstrap: `https://${hostPort(advertise, options.bootstrapPort ?? 8443)}`,
      sync: hostPort(advertise, options.syncPort ?? 8444),
      telemetry: hostPort(advertise, options.syncPort ?? 8444),
      serverName: 'gatehouse-control-plane',
    };
    const streams = new Set<(gatewayId: string) => void>();
    // The control plane's TLS certificate for the edge endpoints, valid for the advertised host and loopback.
    const serverTls = await ca.issueServerCertificate([
      ...new Set(['gatehouse-control-plane', 'localhost', '127.0.0.1', '::1', advertise]),
    ]);
    // The bootstrap endpoint listens before the admin API hands out install commands naming it; with port 0 the
    // advertised port is the bound one.
    bootstrapServer = createBootstrapServer({
      store,
      ca,
      tls: serverTls,
      endpoints,
      alternates: async () => (presence ? presence.alternates() : []),
      logger,
      now,
      certificateValidityMs: options.gatewayCertificateValidityMs,
      reenrollWindowMs: options.gatewayReenrollWindowMs,
    });
    const bootstrapAddress = await listenExplained(
      bootstrapServer,
      options.bootstrapPort ?? 8443,
      host,
      'bootstrap endpoint for edge gateways',
      '--bootstrap-port',
    );
    endpoints.bootstrap = `https://${hostPort(advertise, bootstrapAddress.port)}`;
    // Config sync and telemetry (gRPC, mutual TLS) share one port; likewise advertised with the bound port.
    // Telemetry of edge gateways (through the sync server) and of the cloud gateway, and the alerts raised from it.
    alerting = startAlerting({
      store,
      logger,
      now,
      softwareVersion: pkg.version,
      ...options.alerts,
      destinationDispatcher: webhookAgent,
    });
    const telemetry = createTelemetryIngest({ store, logger, now, alerts: alerting });
    cloudTelemetry = startCloudTelemetry({
      gateway: cloud.instance,
      ingest: telemetry,
      store,
      logger,
      now,
      intervalMs: options.cloudTelemetryIntervalMs,
    });
    syncServer = await startSyncServer({
      change: changeWith('--sync-port'),
      store,
      publisher,
      entities: entityFeed,
      ca,
      tls: serverTls,
      logger,
      host,
      port: options.syncPort ?? 8444,
      softwareVersion: pkg.version,
      now,
      certificateValidityMs: options.gatewayCertificateValidityMs,
      telemetry,
    });
    endpoints.sync = endpoints.telemetry = hostPort(advertise, syncServer.port);
    const sync = syncServer;
    // Where edge gateways reach this replica, for the gateways that register through the others.
    presence = await startReplicaPresence({ store, endpoints, logger, now });
    const replica = presence;
    // Connected gateways learn the replicas that are up (a replica added since they bootstrapped included).
    sync.advertiseReplicas(replica.all());
    replica.onChange((replicas) => sync.advertiseReplicas(replicas));
    streams.add((gatewayId) => void sync.disconnectGateway(gatewayId));

    const plane: ControlContext = {
      edge: {
        caPin: ca.pin,
        endpoints,
        softwareVersion: pkg.version,
        disconnectGateway: (gatewayId) => {
          for (const end of streams) end(gatewayId);
        },
      },
      store,
      logger,
      now,
      cloudUrl,
      telemetry,
      sessions: {
        idleMs: options.sessionIdleTimeoutMs ?? DEFAULT_SESSION_SETTINGS.idleMs,
        lifetimeMs: options.sessionLifetimeMs ?? DEFAULT_SESSION_SETTINGS.lifetimeMs,
      },
      tokenSettings: { algorithm: tokenExchange.algorithm, ttl: tokenExchange.ttl },
      webhookDispatcher: webhookAgent,
      async entitiesChanged(collectionId) {
        await entityFeed
          .changed(collectionId)
          .catch((err: unknown) =>
            logger.error({ err, collection: collectionId }, 'applying relationship data to the cloud gateway failed'),
          );
        await store
          .notifyChange(`${ENTITIES_NOTICE}${collectionId}`)
          .catch((err: unknown) =>
            logger.error({ err, collection: collectionId }, 'telling the other control-plane replicas failed'),
          );
      },
      async changed(workspaceId) {
        // The write is committed; a failed compile must not turn the answer into an error. It is logged, and the
        // cloud gateway keeps serving the previous snapshot.
        await publisher
          .changed(workspaceId)
          .catch((err: unknown) => logger.error({ err, workspace: workspaceId }, 'compiling the workspace failed'));
        await store
          .notifyChange(workspaceId)
          .catch((err: unknown) =>
            logger.error({ err, workspace: workspaceId }, 'telling the other control-plane replicas failed'),
          );
      },
    };
    auditRetention = startAuditRetention({ store, logger, now, retentionDays: options.auditRetentionDays });
    const openapi = buildOpenApi(OPERATIONS, pkg.version);
    admin = createAdminServer({ plane, operations: OPERATIONS, documents: { '/api/openapi.json': () => openapi } });
    const adminAddress = await listenExplained(admin, options.adminPort ?? 8081, host, 'admin API', '--admin-port');
    for (const port of [listening.api.port, listening.ops?.port, bootstrapAddress.port, sync.port, adminAddress.port])
      if (port) controlPorts.add(port);
    cloud.instance.setCheck('startup', undefined);
    logger.info(
      {
        admin: formatHost(adminAddress),
        gateway: formatHost(listening.api),
        bootstrap: endpoints.bootstrap,
        sync: endpoints.sync,
        store: store.kind,
      },
      'control plane listening',
    );
    const adminServer = admin;
    const bootstrapHttps = bootstrapServer;
    const cloudGateway = cloud;
    const alerts = alerting;
    const agent = webhookAgent;
    const stopRemote = stopRemoteChanges;
    const cloudTraffic = cloudTelemetry;
    const retention = auditRetention;
    let closing: Promise<void> | undefined;
    return {
      admin: adminAddress,
      gateway: listening.api,
      ops: listening.ops,
      store,
      publisher,
      cloud: cloudGateway,
      ca,
      endpoints,
      sync,
      bootstrapToken: bootstrap?.token,
      close() {
        closing ??= (async () => {
          const drainMs = options.drainTimeoutMs ?? 10_000;
          // Not ready first (load balancers stop sending traffic here), still serving for the shutdown delay.
          cloudGateway.instance.setCheck('shutdown', {
            status: 'failing',
            detail: 'the control plane is shutting down',
          });
          if (options.shutdownDelayMs) await new Promise((r) => setTimeout(r, options.shutdownDelayMs));
          logger.info(
            { drainMs },
            'draining: gateway streams end (they reconnect to another replica), requests finish',
          );
          await replica.close(); // gateways registering elsewhere are no longer told of this replica
          // Edge gateways serve on from memory while they reconnect: ending their streams first moves them at once.
          const streamsClosed = sync.close();
          const adminClosed = drain(adminServer, drainMs);
          const bootstrapClosed = drain(bootstrapHttps, drainMs);
          await Promise.all([streamsClosed, adminClosed, bootstrapClosed, cloudGateway.instance.close({ drainMs })]);
          await stopRemote();
          await cloudTraffic.close(); // stores what the last requests left
          await alerts.close();
          await agent?.close();
          await retention.close();
          await store.close();
        })();
        return closing;
      },
    };
  } catch (error) {
    admin?.close();
    bootstrapServer?.close();
    await syncServer?.close().catch(() => {});
    await cloud?.instance.close({ drainMs: 0 }).catch(() => {});
    await cloudTelemetry?.close().catch(() => {});
    await alerting?.close().catch(() => {});
    await webhookAgent?.close().catch(() => {});
    await auditRetention?.close().catch(() => {});
    await presence?.close().catch(() => {});
    await store.close();
    throw error;
  }
}

/** What changes a port of the control plane: the `control start` flag, also as `npm start` passes it. */
function changeWith(flag: string): string {
  return `${flag} N (npm start -- ${flag} N)`;
}

/** Listens, or fails with a one-line ListenError naming the port and the flag that changes it. */
async function listenExplained(
  server: Server | HttpsServer,
  port: number,
  host: string,
  what: string,
  flag: string,
): Promise<AddressInfo> {
  try {
    return await new Promise<AddressInfo>((ok, fail) => {
      server.once('error', fail);
      server.listen(port, host, () => {
        server.off('error', fail);
        ok(server.address() as AddressInfo);
      });
    });
  } catch (error) {
    throw explainListenError(error, what, port, host, changeWith(flag)) ?? error;
  }
}

/** Stops accepting; requests in flight finish within `drainMs`, then their connections are closed. */
async function drain(server: Server | HttpsServer, drainMs: number): Promise<void> {
  const closed = new Promise<void>((r) => server.close(() => r()));
  server.closeIdleConnections();
  const force = setTimeout(() => server.closeAllConnections(), drainMs);
  // Keep-alive connections go idle as their last request ends: close them then, not at the deadline.
  const idle = setInterval(() => server.closeIdleConnections(), 50);
  await closed;
  clearTimeout(force);
  clearInterval(idle);
}

function formatHost(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
