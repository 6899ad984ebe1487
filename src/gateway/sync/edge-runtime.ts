/**
 * An edge gateway process: the config directory that `gatehouse gateway bootstrap` wrote (see
 * src/config/edge.ts), a gateway instance (`instance.ts`) fed by the control plane over the sync channel
 * (`sync-client.ts`), and the fallback cache (`cache.ts`).
 *
 * Start-up never waits for the control plane: a valid cached snapshot is applied and served at once; without one
 * the gateway listens and answers 503 GH_ERR_GATEWAY_NOT_READY (and /readyz 503) until the first snapshot arrives,
 * with the reason in the readiness check `config`: no cache yet, or why the cache was refused, and how connecting
 * to the control plane goes. Every snapshot the control plane
 * sends is checked (schema, content hash), applied, cached, and ACKed; one that fails any step is NACKed with the
 * reason and the last good one stays in force. The gateway certificate is renewed over the live channel when two
 * thirds of its lifetime have passed, and the channel is rebuilt with it — no restart.
 *
 * A certificate that has expired, or expires within a minute, is not dialled with: the TLS handshake would fail.
 * The gateway first re-enrolls at the bootstrap endpoint (`reenrollGateway`: a CSR signed with the certificate's
 * key proves it holds it), serving from its cache meanwhile and retrying with the channel's jittered backoff while
 * the control plane is unreachable. That is how an instance that was down longer than the certificate's validity,
 * or a Kubernetes pod started from the certificate in its Secret, comes back by itself.
 */
import { createPrivateKey, randomUUID, X509Certificate } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { type EdgeIdentity, EdgeIdentitySchema } from '../../config/edge.ts';
import { ConfigError } from '../../config/load.ts';
import type { RateLimitStoreSchema } from '../../config/schema.ts';
import type { z } from 'zod';
import { formatIssues, ServerSchema, type Snapshot } from '../../config/schema.ts';
import { applyDelta, SnapshotDeltaError, SnapshotDeltaSchema } from '../../config/snapshot-delta.ts';
import { snapshotHash } from '../../config/snapshot-encoding.ts';
import { parseSnapshot } from '../../config/snapshot-parse.ts';
import { createGatewayInstance, type GatewayInstance } from '../instance.ts';
import { createTelemetryCollector, type TelemetryCollector } from '../observability/telemetry.ts';
import { openSnapshotCache, writeFileAtomic } from './cache.ts';
import { createKeyAndCsr, describeCertificate, singleCertificate } from '../../shared/certificates.ts';
import { DEFAULT_RECONNECT, type ReconnectBackoff, reconnectCeiling } from './backoff.ts';
import type { HandleResult, SyncClient, SyncClientState, SyncUpdate, TelemetrySource } from './sync-client.ts';

export interface EdgeGatewayOptions {
  /** The config directory (holds gateway.json, tls/, cache/). */
  dir: string;
  logger: Logger;
  /** API listener; default 0.0.0.0:8080. 0 picks a free port. */
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

/**
 * A certificate closer to its expiry than this (or than a tenth of its lifetime, when that is shorter) is not
 * dialled with: the gateway re-enrolls first.
 */
export const REENROLL_MARGIN_MS = 60_000;

/** The files of a config directory. */
export function edgeFiles(dir: string) {
  return {
    identity: join(dir, 'gateway.json'),
    ca: join(dir, 'tls', 'ca.pem'),
    cert: join(dir, 'tls', 'gateway.crt'),
    key: join(dir, 'tls', 'gateway.key'),
    signingKeys: join(dir, 'signing-keys.json'),
  };
}

/** Reads and validates DIR/gateway.json; a ConfigError names the file and the field. */
export async function readEdgeIdentity(dir: string): Promise<EdgeIdentity> {
  const file = edgeFiles(dir).identity;
  const text = await readText(file, 'the gateway identity');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file}: not valid JSON (${(error as Error).message})`);
  }
  const result = EdgeIdentitySchema.safeParse(json);
  if (!result.success) throw new ConfigError(`${file}: invalid gateway identity:\n${formatIssues(result.error)}`);
  return result.data;
}

export async function startEdgeGateway(options: EdgeGatewayOptions): Promise<EdgeGateway> {
  const { dir, logger } = options;
  const files = edgeFiles(dir);
  const identity = await readEdgeIdentity(dir);
  let creds = {
    caPem: await readPinnedCa(files.ca, identity),
    certPem: await readText(files.cert, "the gateway's certificate"),
    keyPem: await readText(files.key, "the gateway's private key"),
  };
  let certificate = checkCertificate(creds, identity, files.cert);
  /**
   * When the certificate's lifetime began for renewal purposes: issuance, not `notBefore`, which the CA back-dates
   * for clock skew (a short-lived certificate would otherwise look two-thirds used the moment it arrives). The
   * file's modification time stands for issuance; a renewed certificate starts now.
   */
  let issuedAt = Math.max(certificate.notBefore.getTime(), (await stat(files.cert)).mtimeMs);
  const nearExpiry = () => {
    const notAfter = certificate.notAfter.getTime();
    return notAfter - Date.now() <= Math.max(0, Math.min(REENROLL_MARGIN_MS, (notAfter - issuedAt) / 10));
  };
  /** Re-enroll before dialling: a handshake with an expired certificate fails. */
  const reenrollFirst = nearExpiry();
  if (reenrollFirst) {
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
    listen: { host: options.host ?? '0.0.0.0', port: options.port ?? 8080 },
    ops: { host: options.opsHost ?? '127.0.0.1', port: options.opsPort ?? 9090 },
    egress: options.egress ?? 'any',
    ...(options.rateLimitStore === undefined ? {} : { rateLimitStore: options.rateLimitStore }),
  });
  if (!parsedServer.success) throw new ConfigError(`invalid gateway settings\n${formatIssues(parsedServer.error).replace(/^/gm, '  ')}`);
  const server = parsedServer.data;
  const instance = await createGatewayInstance({ logger, server, baseDir: dir });

  /** Set when the control plane said this gateway was deleted: nothing is served or cached any more. */
  let deactivated = false;
  let closing = false;
  /** Started once the certificate is one the control plane accepts (at once, unless it must re-enroll first). */
  let client: SyncClient | undefined;
  /** Failed re-enrollment attempts in a row, and why the last one failed. */
  let reenrollAttempts = 0;
  let reenrollError: string | undefined;
  /** The snapshot in force, for deltas and the Hello. */
  let inForce: { snapshot: Snapshot; version: number; hash: string; source: 'cache' | 'control-plane' } | undefined;
  const cache = openSnapshotCache(dir, creds.keyPem);
  /** Cache writes and re-keying, one at a time. */
  let cacheQueue: Promise<unknown> = Promise.resolve();
  const saveCache = (s: Snapshot, hash: string) => {
    const run = cacheQueue.then(() => cache.write(s, hash)).catch((err: unknown) => logger.error({ err, file: cache.file }, 'cannot write the fallback cache; the gateway keeps serving, but a restart without the control plane would find an older snapshot'));
    cacheQueue = run;
    return run;
  };

  /**
   * Why no configuration is in force, for the readiness check `config` (and the 503 answers meanwhile): what became
   * of the cache, then how connecting to the control plane goes. Never a secret: paths, endpoints, gRPC statuses.
   */
  let cacheProblem = `no cached configuration yet (${cache.file} does not exist)`;
  let lastNack: string | undefined;
  const describeWait = (sync: SyncClientState | undefined): string => {
    const where = `the control plane at ${identity.controlPlane.sync}`;
    let channel: string;
    if (reenrollError !== undefined || (reenrollFirst && !client)) {
      channel = `re-enrolling with the control plane at ${identity.controlPlane.bootstrap}${reenrollError === undefined ? '' : ` (attempt ${reenrollAttempts}, last error: ${reenrollError})`}`;
    } else if (sync?.connected) {
      channel = `connected to ${where}, waiting for a snapshot it can apply${lastNack === undefined ? '' : ` (the last one was refused: ${lastNack})`}`;
    } else if (sync && sync.attempts > 0) {
      channel = `connecting to ${where} (attempt ${sync.attempts + 1}, last error: ${sync.lastError ?? 'none'})`;
    } else {
      channel = `connecting to ${where}`;
    }
    return `${cacheProblem}; ${channel}`;
  };
  const updateConfigCheck = (sync = client?.state()) => {
    if (inForce || deactivated) instance.setCheck('config', undefined);
    else instance.setCheck('config', { status: 'failing', detail: describeWait(sync) });
  };

  let addresses: Awaited<ReturnType<GatewayInstance['listen']>>;
  try {
    const read = await cache.read();
    if (read.status === 'refused') {
      cacheProblem = `the cached configuration ${cache.file} was refused: it ${read.reason}`;
      logger.error({ file: cache.file, reason: read.reason }, `refusing the cached snapshot ${cache.file}: it ${read.reason}; it is not applied — the gateway waits for the control plane (not ready until then)`);
    } else if (read.status === 'ok') {
      const { cached } = read;
      const applied = await instance.apply(cached.snapshot, { source: cache.file, log: false });
      if (applied.applied) {
        inForce = { snapshot: cached.snapshot, version: cached.version, hash: cached.hash, source: 'cache' };
        logger.info({ file: cache.file, version: cached.version, savedAt: cached.savedAt }, `serving from the cached snapshot v${cached.version} (control plane not reached yet)`);
      } else {
        cacheProblem = `the cached configuration ${cache.file} cannot be applied: ${applied.error ?? 'unknown error'}`;
        logger.error({ file: cache.file, error: applied.error }, `the cached snapshot ${cache.file} cannot be applied; the gateway waits for the control plane`);
      }
    }
    updateConfigCheck();
    addresses = await instance.listen({ port: server.listen.port, host: server.listen.host, opsPort: server.ops.port, opsHost: server.ops.host });
  } catch (error) {
    await instance.close({ drainMs: 0 });
    throw error;
  }

  async function handle(update: SyncUpdate): Promise<HandleResult> {
    const version = update.kind === 'snapshot' ? update.version : update.toVersion;
    if (deactivated) return { ok: false, version, error: 'this gateway was deleted' };
    const nack = (error: string, resync = false): HandleResult => {
      logger.error({ version, kind: update.kind, error }, `refusing snapshot v${version} from the control plane (NACK); the previous one stays in force`);
      lastNack = `v${version}: ${error.split('\n')[0]}`;
      updateConfigCheck();
      return { ok: false, version, error, resync };
    };
    let snapshot: Snapshot;
    try {
      const json = JSON.parse(update.body.toString('utf8')) as unknown;
      if (update.kind === 'snapshot') {
        const parsed = parseSnapshot(json);
        if (!parsed.success) return nack(`the snapshot is invalid:\n${formatIssues(parsed.error)}`);
        snapshot = parsed.data;
      } else {
        const parsed = SnapshotDeltaSchema.safeParse(json);
        if (!parsed.success) return nack(`the delta is invalid:\n${formatIssues(parsed.error)}`);
        if (parsed.data.fromVersion !== update.fromVersion || parsed.data.toVersion !== update.toVersion) return nack('the delta body names other versions than its message');
        if (!inForce) return nack('received a delta, but no snapshot is in force', true);
        snapshot = applyDelta(inForce.snapshot, parsed.data);
      }
    } catch (error) {
      if (error instanceof SnapshotDeltaError) return nack(error.message, error.reason === 'version-mismatch');
      return nack(`the ${update.kind} is not valid JSON: ${(error as Error).message}`);
    }
    if (snapshot.version !== version) return nack(`the snapshot says version ${String(snapshot.version)}, the message ${version}`);
    const hash = snapshotHash(snapshot);
    if (hash !== update.hash) return nack(`content hash mismatch: the control plane sent ${update.hash}, the snapshot received hashes to ${hash}`);
    if (inForce?.version === version && inForce.hash === hash) {
      inForce.source = 'control-plane';
      return { ok: true, version, hash };
    }
    const result = await instance.apply(snapshot, { source: `snapshot v${version}`, log: false });
    if (!result.applied) return nack(result.error ?? 'the gateway could not apply the snapshot');
    if (deactivated) return { ok: false, version, error: 'this gateway was deleted' };
    inForce = { snapshot, version, hash, source: 'control-plane' };
    lastNack = undefined;
    updateConfigCheck();
    logger.info({ version, kind: update.kind, collections: snapshot.collections.length, clients: snapshot.clients.length + snapshot.legacyClients.length }, 'config applied from the control plane');
    await saveCache(snapshot, hash);
    return { ok: true, version, hash };
  }

  const collector: TelemetryCollector | undefined = options.telemetry === undefined ? createTelemetryCollector({ instanceId, server: instance.server, metrics: instance.metrics }) : undefined;
  const backoff = options.reconnect ?? DEFAULT_RECONNECT;
  const startedAt = Date.now();
  /** Loaded here, after the listeners are up: gRPC and the proto take a while to load, and serving does not wait. */
  const syncModule = import('./sync-client.ts');
  syncModule.catch(() => {}); // reported by connect()
  let connecting: Promise<void> | undefined;
  const connect = () => {
    connecting ??= syncModule.then(({ startSyncClient }) => {
      if (closing || deactivated) return;
      client = startSyncClient({
        endpoint: identity.controlPlane.sync,
        telemetryEndpoint: identity.controlPlane.telemetry,
        serverName: identity.controlPlane.serverName,
        credentials: () => creds,
        logger,
        instanceId,
        softwareVersion: pkg.version,
        hostname: hostname(),
        applied: () => inForce && { version: inForce.version, hash: inForce.hash },
        handle,
        heartbeatMs: options.heartbeatMs,
        reconnect: options.reconnect,
        telemetry: options.telemetry === false ? undefined : (options.telemetry ?? collector),
        onDeleted: (reason) => void deactivate(reason),
        onState: (state) => updateConfigCheck(state),
      });
    }).catch((err: unknown) => logger.error({ err }, 'cannot start the sync client; the gateway serves what it has but does not sync'));
  };
  if (!reenrollFirst) connect();

  /**
   * The gateway was deleted in the control plane: revocations no longer reach it, so it must not go on serving a
   * frozen configuration. Its endpoints are deactivated (an empty route table: every request is refused) and the
   * cache removed, so that a restart does not bring them back.
   */
  async function deactivate(reason: string): Promise<void> {
    deactivated = true;
    clearTimeout(renewTimer);
    logger.error({ reason }, 'this gateway was deleted in the control plane: its endpoints are deactivated and its cached snapshot removed; bootstrap a new gateway to serve again');
    await cacheQueue;
    await rm(cache.file, { force: true }).catch((err: unknown) => logger.error({ err, file: cache.file }, 'cannot remove the cached snapshot'));
    if (inForce) {
      const { snapshot } = inForce;
      inForce = undefined;
      await instance.apply({ ...snapshot, version: 'deleted', collections: [], roles: [], clients: [], legacyClients: [] }, { source: 'deactivation', log: false });
    }
  }

  // ── certificate renewal and re-enrollment ──
  const renewAfter = options.renewAfter ?? 2 / 3;
  let renewTimer: NodeJS.Timeout | undefined;
  const scheduleRenewal = (delayMs?: number) => {
    if (closing) return;
    const lifetime = certificate.notAfter.getTime() - issuedAt;
    const due = issuedAt + lifetime * renewAfter - Date.now();
    clearTimeout(renewTimer);
    renewTimer = setTimeout(() => void renew(), Math.min(Math.max(0, delayMs ?? due), 2 ** 31 - 1));
    renewTimer.unref();
  };

  /**
   * Over the live channel with a new key while there is time; at the bootstrap endpoint with the same key once the
   * certificate is about to expire and the channel is down (or refused the renewal).
   */
  async function renew(): Promise<void> {
    if (deactivated || closing) return;
    if (!nearExpiry() || client?.state().connected) {
      try {
        await renewOverChannel();
        return;
      } catch (error) {
        if (!nearExpiry()) {
          const left = certificate.notAfter.getTime() - Date.now();
          const retry = Math.min(60_000, Math.max(1000, left / 10));
          logger.warn({ err: error, notAfter: certificate.notAfter.toISOString(), retryInMs: retry }, 'certificate renewal failed; retrying');
          scheduleRenewal(retry);
          return;
        }
        logger.warn({ err: error, notAfter: certificate.notAfter.toISOString() }, 'certificate renewal over the live channel failed and the certificate is about to expire; re-enrolling with the control plane');
      }
    }
    await reenroll();
  }

  async function renewOverChannel(): Promise<void> {
    if (!client) throw new Error('not connected to the control plane');
    const { keyPem, csrPem } = await createKeyAndCsr(`gateway ${identity.gatewayId}`);
    const response = await client.renewCertificate(csrPem);
    // The CA is pinned for good: an answer naming another one (or more than one) is refused, not adopted.
    if (response.caPem) {
      const ca = singleCertificate(response.caPem);
      if (!ca.ok) throw new Error(`the CA of the control plane's renewal answer ${ca.reason}; the certificate is not renewed`);
      if (ca.pem !== creds.caPem) throw new Error('the control plane answered the renewal with another CA than the pinned one (tls/ca.pem); the certificate is not renewed');
    }
    const renewed = singleCertificate(response.certificatePem);
    if (!renewed.ok) throw new Error(`the renewed certificate ${renewed.reason}`);
    const next = { caPem: creds.caPem, certPem: renewed.pem, keyPem };
    const described = checkCertificate(next, identity, 'the renewed certificate');
    // The key first: a certificate without its key would be useless, a key without its certificate is unused.
    await writeFileAtomic(files.key, keyPem, 0o600);
    await writeFileAtomic(files.cert, next.certPem, 0o600);
    creds = next;
    // The cache MAC is keyed by the private key: write it again under the new one.
    cacheQueue = cacheQueue.then(() => cache.rekey(keyPem));
    if (inForce) await saveCache(inForce.snapshot, inForce.hash);
    certificate = described;
    issuedAt = Math.min(Date.now(), described.notAfter.getTime());
    logger.info({ serial: described.serial, notAfter: described.notAfter.toISOString() }, 'renewed the gateway certificate; reconnecting with it');
    client.reconnect();
    scheduleRenewal();
  }

  /**
   * Trades the certificate for a new one for the same key at the bootstrap endpoint, trusting only the pinned CA.
   * Unreachable: retried with the channel's jittered backoff. Refused: retried every 15–30 s (an operator may fix
   * the cause, e.g. a clock). Deleted: the endpoints are deactivated, as when the channel says so.
   */
  async function reenroll(): Promise<void> {
    // Loaded only when needed: bootstrap.ts brings @peculiar/x509, which a start from the cache never needs.
    const { reenrollGateway } = await import('./bootstrap.ts');
    const result = await reenrollGateway({ url: identity.controlPlane.bootstrap, caPem: creds.caPem, certificatePem: creds.certPem, keyPem: creds.keyPem, commonName: `gateway ${identity.gatewayId}` }).catch(
      (error: unknown) => ({ ok: false, kind: 'failed', message: `cannot re-enroll: ${(error as Error).message}`, deleted: false }) as const,
    );
    if (deactivated || closing) return;
    let failure: { kind: 'unreachable' | 'refused' | 'failed'; message: string };
    if (result.ok) {
      try {
        const next = { ...creds, certPem: result.certificatePem };
        const described = checkCertificate(next, identity, 'the re-enrolled certificate');
        if (described.notAfter.getTime() <= Date.now()) throw new Error(`the re-enrolled certificate expired already (at ${described.notAfter.toISOString()}): is this machine's clock right?`);
        await writeFileAtomic(files.cert, next.certPem, 0o600);
        creds = next;
        certificate = described;
        issuedAt = Math.min(Date.now(), described.notAfter.getTime());
        reenrollAttempts = 0;
        reenrollError = undefined;
        updateConfigCheck();
        logger.info({ serial: described.serial, notAfter: described.notAfter.toISOString() }, 're-enrolled with the control plane; connecting with the new certificate');
        if (client) client.reconnect();
        else connect();
        scheduleRenewal();
        return;
      } catch (error) {
        failure = { kind: 'failed', message: (error as Error).message };
      }
    } else if (result.deleted) {
      reenrollError = result.message;
      void deactivate(result.message);
      return;
    } else {
      failure = result;
    }
    reenrollAttempts++;
    reenrollError = failure.message;
    updateConfigCheck();
    const fields = { attempt: reenrollAttempts, bootstrap: identity.controlPlane.bootstrap, notAfter: certificate.notAfter.toISOString(), reason: failure.message };
    if (failure.kind === 'refused') {
      const delay = Math.round(backoff.maxMs * (0.5 + Math.random() / 2));
      logger.error({ ...fields, retryInMs: delay }, 'the control plane refuses to re-enroll this gateway; bootstrap it again with a new token (serving the last good snapshot meanwhile)');
      scheduleRenewal(delay);
      return;
    }
    const delay = Math.round(Math.random() * reconnectCeiling(backoff, reenrollAttempts, Date.now() - startedAt));
    const log = reenrollAttempts > 1 ? logger.debug.bind(logger) : logger.warn.bind(logger);
    log({ ...fields, retryInMs: delay }, 'cannot re-enroll with the control plane yet; serving the last good snapshot and retrying');
    scheduleRenewal(delay);
  }
  scheduleRenewal(reenrollFirst ? 0 : undefined);

  let closed: Promise<void> | undefined;
  return {
    identity,
    api: addresses.api,
    ops: addresses.ops,
    instance,
    state: () => ({
      ...(client?.state() ?? { connected: false, attempts: reenrollAttempts, connections: 0, ...(reenrollError !== undefined ? { lastError: reenrollError } : {}) }),
      instanceId,
      appliedVersion: inForce?.version ?? 0,
      appliedHash: inForce?.hash,
      source: inForce?.source,
      certificate: { serial: certificate.serial, notAfter: certificate.notAfter.toISOString() },
    }),
    close() {
      closed ??= (async () => {
        closing = true;
        clearTimeout(renewTimer);
        await connecting;
        await client?.close();
        collector?.close();
        await instance.close();
        await cacheQueue;
      })();
      return closed;
    },
  };
}

/** Checks that the certificate names this gateway, is signed by the CA, and belongs to the key. */
function checkCertificate(creds: { caPem: string; certPem: string; keyPem: string }, identity: EdgeIdentity, what: string) {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(creds.certPem);
  } catch {
    throw new ConfigError(`${what}: not a PEM certificate`);
  }
  if (!cert.verify(new X509Certificate(creds.caPem).publicKey)) throw new ConfigError(`${what}: not issued by the control plane's CA (tls/ca.pem)`);
  if (!cert.checkPrivateKey(createPrivateKey(creds.keyPem))) throw new ConfigError(`${what}: does not belong to the private key (tls/gateway.key)`);
  const described = describeCertificate(creds.certPem);
  const uri = `spiffe://gatehouse/workspace/${identity.workspaceId}/environment/${identity.environment}/gateway/${identity.gatewayId}`;
  if (!described.uris.includes(uri)) throw new ConfigError(`${what}: issued to ${described.uris.join(', ') || 'no gateway'}, not to gateway ${identity.gatewayId} (gateway.json)`);
  return described;
}

/**
 * DIR/tls/ca.pem, the only trust anchor of the channel and of re-enrollment: exactly one certificate, whose pin is
 * the one gateway.json recorded at bootstrap. Returns it re-encoded (that certificate and nothing else).
 */
async function readPinnedCa(file: string, identity: EdgeIdentity): Promise<string> {
  const ca = singleCertificate(await readText(file, "the control plane's CA certificate"));
  const restore = 'restore it from the bootstrap (or bootstrap again)';
  if (!ca.ok) throw new ConfigError(`${file}: the control plane's CA certificate must be exactly one certificate, and this file ${ca.count > 1 ? `holds ${ca.count}` : ca.reason}; ${restore}`);
  if (ca.pin !== identity.caPin) throw new ConfigError(`${file}: the control plane's CA certificate has the pin ${ca.pin}, not ${identity.caPin} (gateway.json); ${restore}`);
  return ca.pem;
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(`${file}: cannot read ${what} (${code ?? 'error'})${code === 'ENOENT' ? ': is this a directory written by `gatehouse gateway bootstrap`?' : ''}`);
  }
}
