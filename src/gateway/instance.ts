/**
 * Length (about 470 lines): `apply` and `close` share the state they swap (table, minter, keys, pools).
 *
 * One gateway — API listener, route table, signing keys and token minter, upstream pools, rate-limit counters,
 * operations listener — fed snapshots by whoever owns it: the file runtime (`runtime.ts`), the control plane's
 * cloud gateway, an edge gateway's sync client. It reads no configuration of its own.
 *
 * `apply` compiles a snapshot completely before touching anything in force, then swaps one reference: a rejected
 * snapshot changes nothing, signing keys included. Applications run one at a time, and every applied snapshot
 * empties the token cache, so that no token outlives the permissions it carries.
 *
 * Over 400 lines on purpose: `createGatewayInstance` is one closure over the state in force (route table, keys, pools,
 * counters), which apply, listen and close all change; the parts live in their own modules.
 */
import { EntitySets } from './policies/resource-policy/entity-sets.ts';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../config/load.ts';
import type { ServerSettings, Snapshot, TokenExchange } from '../config/schema.ts';
import { EgressPolicy } from './http/egress.ts';
import { GatewayServer, type NotFoundHint } from './http/server.ts';
import { UpstreamPools } from './http/upstream-pools.ts';
import { createAccessLog } from './observability/access-log.ts';
import { GatewayMetrics } from './observability/metrics.ts';
import type { RateLimitStore } from '../shared/rate-limit-store.ts';
import { openConcurrencyStore } from './policies/concurrency/open-slots.ts';
import { openQuotaStore } from './policies/quota/open-quotas.ts';
import { openRateLimitStore } from './policies/rate-limit/open-store.ts';
import { createOpsServer, type Readiness, type ReadinessCheck } from './readiness.ts';
import { listenOn, listenOrExplain, loadTls } from './listeners.ts';
import type { RouteTable } from './snapshot/compiled.ts';
import type { RequestContext } from './policies/policy.ts';
import type { Decision } from './policies/resource-policy/compile-cedar.ts';
import { type SnapshotCompilation, startCompile } from './snapshot/compile.ts';
import { canonicalJson } from '../config/snapshot-encoding.ts';
import { openDistributedKeyStore, openSigningKeyStore, type SigningKeyStore } from './tokens/keystore.ts';
import { createMinter, type Minter } from './tokens/minter.ts';

export interface GatewayInstanceOptions {
  /** Gets the access log (at info), apply outcomes, request-path bugs and signing-key problems. */
  logger: Logger;
  /**
   * Settings local to this gateway (`ServerSchema`'s output): listeners, TLS, trusted proxies, signing keys.
   * Fixed for the life of the instance; `log` and `watch` are the caller's business.
   */
  server: ServerSettings;
  /**
   * The signing algorithm and token lifetime the signing-key store opens with. Every snapshot carries its own
   * `tokenExchange`; one whose algorithm or ttl differs reconfigures the store when it is applied (a changed
   * algorithm rotates the key), so pass what the first snapshot will carry when it is known.
   * Default: `EdDSA`, 5 minutes.
   */
  tokenExchange?: Pick<TokenExchange, 'algorithm' | 'ttl'>;
  /** Directory that relative paths in `server` (`tls.cert`, `tls.key`, `signingKeysFile`) resolve against. Default: the working directory. */
  baseDir?: string;
  /** Metrics to record into, e.g. a registry the caller serves itself; the caller then closes them. Default: the instance's own. */
  metrics?: GatewayMetrics;
  /**
   * Where upstream connections may go, overriding `server.egress` (the control plane's cloud gateway passes a
   * policy that also refuses link-local addresses and its own ports). Default: made from `server.egress`.
   */
  egress?: EgressPolicy;
  /**
   * Serves the JWKS in the instance's stead (the cloud gateway: every tenant's keys, and each tenant's under its
   * prefix). A GET of `<prefix>/.well-known/jwks.json` that no route serves is answered with `jwks(prefix)`;
   * `prefix` is '' for `/.well-known/jwks.json`. Undefined: the instance's own keys for '', not found otherwise.
   * Called only for such paths, on the request path: keep it cheap.
   */
  jwks?: (prefix: string) => string | undefined;
  /** The detail of a 404 that no route matched (the cloud gateway: the tenant prefix the path lacks). */
  notFoundHint?: NotFoundHint;
  /**
   * The snapshots carry the signing keys (the cloud gateway: each tenant's, from the control plane's store), so
   * the local key store is a fallback that may live in memory: no warning when `server.signingKeysFile` is unset.
   */
  keysFromSnapshots?: boolean;
}

/**
 * What `apply` compiles: a validated snapshot, or a function that starts the compilation itself (`startCompile`)
 * so that it can stream more clients into it — the file runtime's clients file — and resolves `undefined` when
 * there is nothing new to apply. A function that throws rejects the snapshot with its message.
 */
export type SnapshotSource = Snapshot | (() => Promise<SnapshotCompilation | undefined>);

export interface ApplyOptions {
  /**
   * Where the snapshot comes from (e.g. the config file), for messages: an unexpected compile error reads
   * `<source>: the configuration cannot be compiled: …`. A `ConfigError`'s message is used as it is.
   */
  source?: string;
  /**
   * Fields added to the log line of the outcome (`config applied` / `config rejected…`), e.g. `{ file }`; or
   * false for no log line, when the caller reports the outcome itself. Metrics count it either way.
   */
  log?: Record<string, unknown> | false;
}

export interface ApplyResult {
  applied: boolean;
  /** The version in force afterwards: the new one when applied; undefined while none is. */
  version?: string;
  /** Why the snapshot was rejected; absent when it was applied or there was nothing new to apply. */
  error?: string;
}

export interface ListenOptions {
  /** API port; default `server.listen.port`. 0 picks a free one. */
  port?: number;
  /** API address; default `server.listen.host`. */
  host?: string;
  /** Serve `/healthz`, `/readyz` and `/metrics` on their own listener. Default true. */
  ops?: boolean;
  /** Default `server.ops.port`. */
  opsPort?: number;
  /** Default `server.ops.host`. */
  opsHost?: string;
  /** What changes the API port and the ops port, for the error when one is taken (e.g. `--port N`). */
  change?: { port?: string; opsPort?: string };
}

export type { Readiness, ReadinessCheck };

export interface GatewayInstance {
  readonly metrics: GatewayMetrics;
  /**
   * The keys tokens are signed with now: those of the snapshot in force when it carries `signingKeys` (the control
   * plane's), otherwise the local store (`server.signingKeysFile`). `/.well-known/jwks.json` serves this store's.
   */
  readonly keys: SigningKeyStore;
  readonly server: GatewayServer;
  /**
   * Relationship data of the collections whose snapshot names an entity set (`entitySets`): kept across
   * snapshots and changed in place by the entity stream (entity-sets.ts).
   */
  readonly entitySets: EntitySets;
  /** The version of the snapshot in force; undefined until one is applied. */
  readonly version: string | undefined;
  /**
   * Compiles `source` completely, then swaps it in with one reference assignment; requests in flight finish on
   * the table they started with. Never rejects: a snapshot that cannot be compiled (or whose token settings
   * cannot be put in force) resolves `{ applied: false, error }` and changes nothing. Calls run one at a time.
   */
  apply(source: SnapshotSource, options?: ApplyOptions): Promise<ApplyResult>;
  /** Starts the API listener (and the ops listener unless `ops: false`); call once. Logs `gateway listening`. */
  listen(options?: ListenOptions): Promise<{ api: AddressInfo; ops: AddressInfo | undefined }>;
  /** Whether `/readyz` answers 200: a snapshot is in force, the instance is not closing, and no check is failing. */
  ready(): boolean;
  /**
   * What `/readyz` reports: `ready` as `ready()`, and each named check (`config` always; others set by whoever
   * owns the dependency, e.g. `rateLimitStore`). A `degraded` check is shown but keeps the instance ready.
   */
  readiness(): Readiness;
  /**
   * Sets (or, with undefined, removes) a named check. The check `config` describes why no configuration is in
   * force yet (its status is always derived: `ok` once a snapshot is applied).
   */
  setCheck(name: string, check: ReadinessCheck | undefined): void;
  /**
   * Stops accepting, lets requests in flight finish for up to `drainMs` (default 10 s), waits for an apply in
   * progress, then releases pools, counters and keys (and the metrics, unless they were passed in). Calling it
   * again returns the same promise.
   */
  close(options?: { drainMs?: number }): Promise<void>;
}

/** Opens the signing keys and reads the TLS files; no snapshot is in force until the first `apply`. */
export async function createGatewayInstance(options: GatewayInstanceOptions): Promise<GatewayInstance> {
  const { logger, server: settings } = options;
  const path = (p: string) => resolve(options.baseDir ?? '.', p);
  const metrics = options.metrics ?? new GatewayMetrics();
  const egress = options.egress ?? new EgressPolicy({ mode: settings.egress });
  const pools = new UpstreamPools(egress);
  /** Named readiness checks set by the owners of dependencies (see `setCheck`). */
  const checks = new Map<string, ReadinessCheck>();
  /** The API server, once made: rate-limit store events name it, so that telemetry can tell instances apart. */
  let owner: GatewayServer | undefined;
  const rateLimitStore: RateLimitStore = await openRateLimitStore(settings.rateLimitStore, logger, metrics, {
    setCheck: (check) => checks.set('rateLimitStore', check),
    server: () => owner,
  });
  const concurrencyStore = await openConcurrencyStore(settings.rateLimitStore, logger);
  const quotaStore = await openQuotaStore(settings.rateLimitStore, logger, (check) => checks.set('quotaStore', check));
  let keys: SigningKeyStore | undefined;
  let server: GatewayServer;
  const release = async () => {
    await pools.close();
    await rateLimitStore.close();
    await concurrencyStore.close();
    await quotaStore.close();
    keys?.close();
    if (options.metrics === undefined) metrics.close();
  };

  /** What the signing-key store is configured for. */
  let signing: Pick<TokenExchange, 'algorithm' | 'ttl'> = {
    algorithm: options.tokenExchange?.algorithm ?? 'EdDSA',
    ttl: options.tokenExchange?.ttl ?? 300_000,
  };
  try {
    const store = await openSigningKeyStore({
      algorithm: signing.algorithm,
      file: settings.signingKeysFile === undefined ? undefined : path(settings.signingKeysFile),
      rotateEveryMs: settings.signingKeyRotation,
      tokenTtlMs: signing.ttl,
      onError: (err) => logger.error({ err }, 'signing key maintenance failed (retrying in 30s)'),
    });
    keys = store;
    for (const warning of store.warnings) logger.warn(warning);
    if (!settings.signingKeysFile && !options.keysFromSnapshots)
      logger.warn('server.signingKeysFile is not set: token-signing keys live in memory and change at every restart');
    server = new GatewayServer({
      accessLog: createAccessLog(logger),
      onError: (err, reqId) => logger.error({ err, reqId }, 'request failed inside the gateway'),
      onEgressDenied: (err, collection, reqId) =>
        logger.warn(
          {
            reqId,
            collection: collection.name,
            basePath: collection.basePath,
            upstream: collection.upstream.origin,
            reason: err.message,
          },
          'upstream connection refused by the egress policy',
        ),
      metrics,
      jwks: () => options.jwks?.('') ?? signer.store.jwks(),
      tenantJwks: options.jwks,
      notFoundHint: options.notFoundHint,
      trustedProxies: settings.trustedProxies,
      publicHosts: settings.publicHosts,
      tls: settings.tls ? await loadTls(path(settings.tls.cert), path(settings.tls.key)) : undefined,
    });
    owner = server;
  } catch (error) {
    await release();
    throw error;
  }
  const store = keys;
  /**
   * The keys in force: the local store, or those the snapshot in force distributes (`source` is their canonical
   * JSON, to reuse the store while they do not change). Replaced together with the table.
   */
  let signer: { store: SigningKeyStore; source: string | undefined } = { store, source: undefined };

  const entitySets = new EntitySets();
  const onTokenError = (error: unknown, ctx: { requestId: string }) =>
    logger.error({ reqId: ctx.requestId, err: error }, 'token exchange failed');
  const onResourceDenied = (ctx: RequestContext, decision: Decision) =>
    logger.info(
      {
        reqId: ctx.requestId,
        collection: ctx.collection.name,
        client: ctx.principal?.id,
        policies: decision.reasons,
        errored: decision.errors.length > 0 ? decision.errors : undefined,
        evaluator: decision.evaluator,
      },
      'resource policy denied the request',
    );
  /** The minter of the snapshot in force and the token settings it was made for; undefined before the first. */
  let minting: { minter: Minter; settings: TokenExchange } | undefined;
  let closing = false;
  let closed: Promise<void> | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  let ops: Server | undefined;
  let listening = false;

  const poolsOf = (table: RouteTable | undefined) => new Set(table?.collections.map((c) => c.upstream.pool));

  async function applyNow(source: SnapshotSource, options: ApplyOptions): Promise<ApplyResult> {
    const log = options.log === false ? undefined : (options.log ?? {});
    const prefix = options.source === undefined ? '' : `${options.source}: `;
    const reject = (message: string): ApplyResult => {
      metrics.configReloads.labels('rejected').inc();
      const inForce = server.table;
      // A failed compile may have opened pools for new upstreams.
      pools.retainOnly(poolsOf(inForce));
      if (log)
        logger.error(
          log,
          `config rejected, ${inForce ? 'the previous config stays in force' : 'no config is in force yet'}: ${message}`,
        );
      return { applied: false, version: inForce?.version, error: message };
    };
    if (closing) return { applied: false, version: server.table?.version, error: 'the gateway is shutting down' };

    let table: RouteTable;
    let next: { minter: Minter; settings: TokenExchange } | undefined;
    let nextSigner = signer;
    try {
      const compilation = typeof source === 'function' ? await source() : startCompile(source);
      if (compilation === undefined) return { applied: false, version: server.table?.version };
      const distributed = compilation.snapshot.signingKeys;
      const keySource = distributed === undefined ? undefined : canonicalJson(distributed);
      if (keySource !== signer.source) {
        try {
          nextSigner = {
            store: keySource === undefined ? store : await openDistributedKeyStore(distributed!),
            source: keySource,
          };
        } catch (error) {
          return reject(`${prefix}${(error as Error).message}`);
        }
      }
      const wanted = compilation.snapshot.tokenExchange;
      // Compile with the minter the table will use; a new one only when the token settings or the keys changed.
      next =
        minting !== undefined && nextSigner === signer && JSON.stringify(wanted) === JSON.stringify(minting.settings)
          ? undefined
          : { minter: newMinter(wanted, nextSigner.store), settings: wanted };
      table = compilation.finish({
        pools,
        rateLimitStore,
        concurrencyStore,
        quotaStore,
        minter: (next ?? minting)!.minter,
        onTokenError,
        onResourceDenied,
        entitySets,
      });
    } catch (error) {
      return reject(
        error instanceof ConfigError
          ? error.message
          : `${prefix}the configuration cannot be compiled: ${(error as Error).message}`,
      );
    }
    if (closing) return { applied: false, version: server.table?.version, error: 'the gateway is shutting down' }; // close() releases the pools

    // Only now, with the table complete, does anything in force change.
    if (next !== undefined) {
      const { algorithm, ttl } = next.settings;
      // Distributed keys are not the local store's business: it is reconfigured only when it signs.
      if (nextSigner.source === undefined && (algorithm !== signing.algorithm || ttl !== signing.ttl)) {
        try {
          await store.reconfigure({ algorithm, tokenTtlMs: ttl, rotateEveryMs: settings.signingKeyRotation });
        } catch (error) {
          return reject(`${prefix}${(error as Error).message}`);
        }
        signing = { algorithm, ttl };
      }
      minting = next; // a new minter: an empty cache
    } else {
      minting!.minter.clear(); // roles or clients may have changed: no token may outlive the permissions it carries
    }
    // The keys and the table change together, with no await between: a token is never signed with keys the
    // served JWKS does not hold.
    signer = nextSigner;
    server.setTable(table);
    pools.retainOnly(poolsOf(table));
    const keyCount = table.keys.size + table.legacyKeys.size;
    metrics.configReloads.labels('applied').inc();
    metrics.setConfig(table.version, keyCount);
    if (log)
      logger.info(
        { ...log, version: table.version, collections: table.collections.length, keys: keyCount },
        'config applied',
      );
    return { applied: true, version: table.version };
  }

  const instance: GatewayInstance = {
    entitySets,
    metrics,
    get keys() {
      return signer.store;
    },
    server,
    get version() {
      return server.table?.version;
    },
    apply(source, options = {}) {
      const run = queue.then(() => applyNow(source, options));
      queue = run.catch(() => {});
      return run;
    },
    async listen(options = {}) {
      if (listening) throw new Error('the gateway instance is already listening');
      listening = true;
      const api = await listenOrExplain(
        'API traffic',
        (port, host) => server.listen(port, host),
        options.port ?? settings.listen.port,
        options.host ?? settings.listen.host,
        options.change?.port,
      );
      let opsAddress: AddressInfo | undefined;
      if (options.ops !== false) {
        const opsServer = createOpsServer(metrics, () => instance.readiness());
        try {
          opsAddress = await listenOrExplain(
            'ops traffic',
            (port, host) => listenOn(opsServer, port, host),
            options.opsPort ?? settings.ops.port,
            options.opsHost ?? settings.ops.host,
            options.change?.opsPort,
          );
        } catch (error) {
          await server.close(0);
          throw error;
        }
        ops = opsServer;
      }
      const table = server.table;
      logger.info(
        {
          api: `${api.address}:${api.port}`,
          ...(opsAddress ? { ops: `${opsAddress.address}:${opsAddress.port}` } : {}),
          version: table?.version,
          collections: table?.collections.length ?? 0,
          keys: table ? table.keys.size + table.legacyKeys.size : 0,
        },
        'gateway listening',
      );
      return { api, ops: opsAddress };
    },
    ready: () => instance.readiness().ready,
    readiness() {
      const table = server.table;
      const waiting = checks.get('config');
      const out: Record<string, ReadinessCheck> = {
        config:
          table !== undefined
            ? { status: 'ok', detail: `version ${table.version} in force` }
            : { status: 'failing', detail: waiting?.detail ?? 'no configuration applied yet' },
      };
      let ready = !closing && table !== undefined;
      for (const [name, check] of checks) {
        if (name === 'config') continue;
        out[name] = check;
        if (check.status === 'failing') ready = false;
      }
      if (closing) out.shutdown = { status: 'failing', detail: 'the gateway is shutting down' };
      return { ready, checks: out };
    },
    setCheck(name, check) {
      if (check === undefined) checks.delete(name);
      else checks.set(name, check);
      if (name === 'config') server.notReadyDetail = check?.detail;
    },
    close(options = {}) {
      closed ??= (async () => {
        closing = true;
        if (server.server.listening) await server.close(options.drainMs ?? 10_000);
        if (ops !== undefined) {
          const o = ops;
          await new Promise<void>((r) => o.close(() => r()));
          o.closeAllConnections();
        }
        await queue;
        await release();
      })();
      return closed;
    },
  };
  return instance;
}

function newMinter(settings: TokenExchange, keys: SigningKeyStore): Minter {
  return createMinter({
    issuer: settings.issuer,
    audience: settings.audience,
    ttlMs: settings.ttl,
    claims: settings.claims,
    keys,
  });
}
