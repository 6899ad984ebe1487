/**
 * A standalone gateway process: declarative config file (plus its clients file, if any) → compiled route table →
 * listener, plus the operations listener (/healthz, /readyz, /metrics). Reload (SIGHUP or a change of either file)
 * compiles the new files completely before swapping one reference; a bad file is rejected with a clear message and
 * the old config stays in force.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import { clientsFilePath, fileSignature, readClientsFile } from '../config/clients-file.ts';
import { ConfigError, parseGatewayFile } from '../config/load.ts';
import type { GatewayFile, Snapshot, TokenExchange } from '../config/schema.ts';
import { GatewayServer } from './http/server.ts';
import { UpstreamPools } from './http/upstream-pools.ts';
import { createAccessLog } from './observability/access-log.ts';
import { GatewayMetrics } from './observability/metrics.ts';
import { createMemoryStore } from './policies/rate-limit/memory-store.ts';
import type { RateLimitStore } from './policies/rate-limit/memory-store.ts';
import type { RouteTable } from './snapshot/compiled.ts';
import { startCompile } from './snapshot/compile.ts';
import { openSigningKeyStore, type SigningKeyStore } from './tokens/keystore.ts';
import { createMinter, type Minter } from './tokens/minter.ts';

export interface StartGatewayOptions {
  configFile: string;
  /** A logger, or a factory given the file's `server.log.level`. */
  logger: Logger | ((level: string) => Logger);
  /** Override the listen/ops ports from the file (tests use 0 for ephemeral ports). */
  port?: number;
  opsPort?: number;
  host?: string;
}

export interface GatewayRuntime {
  readonly api: AddressInfo;
  readonly ops: AddressInfo;
  readonly metrics: GatewayMetrics;
  readonly keys: SigningKeyStore;
  /** Re-reads the config file and its clients file; resolves with the error when rejected (the old config stays). */
  reload(): Promise<{ applied: boolean; version?: string; error?: string }>;
  close(): Promise<void>;
}

export async function startGateway(options: StartGatewayOptions): Promise<GatewayRuntime> {
  const file = resolve(options.configFile);
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new ConfigError(`${file}: cannot read the config file (${error.code ?? 'error'})`);
  });
  const config = parseGatewayFile(text, file);
  const settings = config.server;
  const logger = typeof options.logger === 'function' ? options.logger(settings.log.level) : options.logger;
  const metrics = new GatewayMetrics();
  const pools = new UpstreamPools();
  const rateLimitStore: RateLimitStore = createMemoryStore();
  const keys = await openSigningKeyStore({
    algorithm: config.tokenExchange.algorithm,
    file: settings.signingKeysFile ? resolve(dirname(file), settings.signingKeysFile) : undefined,
    rotateEveryMs: settings.signingKeyRotation,
    tokenTtlMs: config.tokenExchange.ttl,
    onError: (err) => logger.error({ err }, 'signing key maintenance failed (retrying in 30s)'),
  });
  for (const warning of keys.warnings) logger.warn(warning);
  if (!settings.signingKeysFile) logger.warn('server.signingKeysFile is not set: token-signing keys live in memory and change at every restart');

  let tokenSettings = config.tokenExchange;
  let minter = newMinter(tokenSettings, keys);
  const onTokenError = (error: unknown, ctx: { requestId: string }) => logger.error({ reqId: ctx.requestId, err: error }, 'token exchange failed');
  /** Compiles the config file's snapshot plus the clients of its clients file, which stream into the key index. */
  const compileOrThrow = async (parsed: GatewayFile, withMinter: Minter): Promise<{ table: RouteTable; clients?: ClientsFileState }> => {
    try {
      const compilation = startCompile(toSnapshot(parsed));
      const clientsFile = clientsFilePath(file, parsed);
      const summary = clientsFile ? await readClientsFile(clientsFile, parsed, compilation) : undefined;
      const table = compilation.finish({ pools, rateLimitStore, minter: withMinter, onTokenError });
      return { table, clients: clientsFile && summary ? { file: clientsFile, signature: summary.signature } : undefined };
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw new ConfigError(`${file}: the configuration cannot be compiled: ${(error as Error).message}`);
    }
  };

  const releaseAll = async () => {
    await pools.close();
    rateLimitStore.close();
    keys.close();
    metrics.close();
  };
  const server = new GatewayServer({
    accessLog: createAccessLog(logger),
    onError: (err, reqId) => logger.error({ err, reqId }, 'request failed inside the gateway'),
    metrics,
    jwks: () => keys.jwks(),
    trustedProxies: settings.trustedProxies,
    tls: settings.tls ? { cert: await readFile(resolve(dirname(file), settings.tls.cert)), key: await readFile(resolve(dirname(file), settings.tls.key)) } : undefined,
  });
  let first: RouteTable;
  let clientsState: ClientsFileState | undefined;
  try {
    ({ table: first, clients: clientsState } = await compileOrThrow(config, minter));
  } catch (error) {
    await releaseAll();
    throw error;
  }
  server.setTable(first);
  metrics.configReloads.labels('applied').inc();
  metrics.setConfig(first.version, first.keys.size + first.legacyKeys.size);
  let lastHash = hash(text);
  const watchedFiles = () => (clientsState ? [file, clientsState.file] : [file]);
  let watcher: FileWatcher | undefined;

  let ready = true;
  const ops = createOpsServer(metrics, () => ready && server.table !== undefined);
  let api: AddressInfo;
  let opsAddress: AddressInfo;
  try {
    api = await listenOrExplain('API', (port, host) => server.listen(port, host), options.port ?? settings.listen.port, options.host ?? settings.listen.host);
    opsAddress = await listenOrExplain('ops', (port, host) => listen(ops, port, host), options.opsPort ?? settings.ops.port, options.host ?? settings.ops.host);
  } catch (error) {
    if (server.server.listening) await server.close(0);
    await releaseAll();
    throw error;
  }
  logger.info({ api: `${api.address}:${api.port}`, ops: `${opsAddress.address}:${opsAddress.port}`, version: first.version, collections: first.collections.length, keys: first.keys.size + first.legacyKeys.size }, 'gateway listening');

  let reloading: Promise<{ applied: boolean; version?: string; error?: string }> | undefined;
  const reload = async () => {
    let next: string;
    try {
      next = await readFile(file, 'utf8');
    } catch (error) {
      const message = `${file}: cannot read the config file (${(error as NodeJS.ErrnoException).code ?? 'error'})`;
      metrics.configReloads.labels('rejected').inc();
      logger.error({ file }, `config rejected, the previous config stays in force: ${message}`);
      return { applied: false, error: message };
    }
    const h = hash(next);
    if (h === lastHash && !(clientsState && (await hasChanged(clientsState)))) return { applied: false, version: server.table?.version };
    try {
      const parsed = parseGatewayFile(next, file);
      const tokenChange = JSON.stringify(parsed.tokenExchange) !== JSON.stringify(tokenSettings);
      // Compile completely before touching anything in force: a rejected file changes nothing, keys included.
      const nextMinter = tokenChange ? newMinter(parsed.tokenExchange, keys) : minter;
      const { table, clients } = await compileOrThrow(parsed, nextMinter);
      if (tokenChange) {
        await keys.reconfigure({ algorithm: parsed.tokenExchange.algorithm, tokenTtlMs: parsed.tokenExchange.ttl, rotateEveryMs: settings.signingKeyRotation });
        tokenSettings = parsed.tokenExchange;
        minter = nextMinter;
      } else {
        minter.clear(); // roles or clients may have changed: no token may outlive the permissions it carries
      }
      if (JSON.stringify(parsed.server) !== JSON.stringify(settings)) {
        logger.warn({ file }, 'the server section changed: listeners, TLS, logging and signing-key settings apply at the next restart');
      }
      server.setTable(table);
      pools.retainOnly(new Set(table.collections.map((c) => c.upstream.pool)));
      lastHash = h;
      clientsState = clients;
      watcher?.watch(watchedFiles());
      metrics.configReloads.labels('applied').inc();
      metrics.setConfig(table.version, table.keys.size + table.legacyKeys.size);
      logger.info({ version: table.version, collections: table.collections.length, keys: table.keys.size + table.legacyKeys.size }, 'config applied');
      return { applied: true, version: table.version };
    } catch (error) {
      const message = error instanceof ConfigError ? error.message : `${file}: ${(error as Error).message}`;
      metrics.configReloads.labels('rejected').inc();
      logger.error({ file }, `config rejected, the previous config stays in force: ${message}`);
      return { applied: false, error: message };
    }
  };
  const serialReload = () => {
    const run = (reloading ?? Promise.resolve()).then(reload, reload);
    reloading = run;
    return run;
  };

  const onHup = () => void serialReload();
  process.on('SIGHUP', onHup);
  if (settings.watch) {
    watcher = new FileWatcher(() => void serialReload(), (dir, error) => logger.warn({ dir, err: error }, 'cannot watch this directory for config changes (SIGHUP still reloads)'));
    watcher.watch(watchedFiles());
  }

  return {
    api,
    ops: opsAddress,
    metrics,
    keys,
    reload: serialReload,
    async close() {
      ready = false;
      process.off('SIGHUP', onHup);
      watcher?.close();
      await server.close();
      await new Promise<void>((r) => ops.close(() => r()));
      ops.closeAllConnections();
      await releaseAll();
    },
  };
}

function newMinter(settings: TokenExchange, keys: SigningKeyStore): Minter {
  return createMinter({ issuer: settings.issuer, audience: settings.audience, ttlMs: settings.ttl, claims: settings.claims, keys });
}

/** The snapshot part of a config file: without `server` and `clientsFile` (whose clients are compiled in). */
export function toSnapshot(file: GatewayFile): Snapshot {
  const { server: _server, clientsFile: _clientsFile, ...snapshot } = file;
  return snapshot;
}

/** The clients file in force and what it was when read. */
interface ClientsFileState {
  file: string;
  signature: string;
}

async function hasChanged(clients: ClientsFileState): Promise<boolean> {
  try {
    return fileSignature(await stat(clients.file)) !== clients.signature;
  } catch {
    return true; // gone or unreadable: let the reload say so
  }
}

/**
 * Watches the directories of some files and calls `onChange` (debounced) when one of them changes. Directories,
 * not files: editors and `kubectl` replace files by renaming, which a watch on the old file would miss.
 */
class FileWatcher {
  readonly #onChange: () => void;
  readonly #onError: (dir: string, error: unknown) => void;
  readonly #dirs = new Map<string, { watcher: FSWatcher; names: Set<string> }>();
  #timer: NodeJS.Timeout | undefined;

  constructor(onChange: () => void, onError: (dir: string, error: unknown) => void) {
    this.#onChange = onChange;
    this.#onError = onError;
  }

  /** Watches exactly these files from now on. */
  watch(files: readonly string[]): void {
    const wanted = new Map<string, Set<string>>();
    for (const f of files) {
      const dir = dirname(f);
      const names = wanted.get(dir) ?? new Set<string>();
      names.add(basename(f));
      wanted.set(dir, names);
    }
    for (const [dir, entry] of this.#dirs) {
      if (wanted.has(dir)) continue;
      entry.watcher.close();
      this.#dirs.delete(dir);
    }
    for (const [dir, names] of wanted) {
      const entry = this.#dirs.get(dir);
      if (entry) {
        entry.names = names;
        continue;
      }
      try {
        const watcher = watch(dir, (_event, name) => {
          // Kubernetes swaps a mounted ConfigMap through a `..data` link, so those names count too; reload() skips
          // files that did not change.
          if (name !== null && !this.#dirs.get(dir)?.names.has(name) && !name.startsWith('..')) return;
          clearTimeout(this.#timer);
          this.#timer = setTimeout(this.#onChange, 150);
        });
        watcher.unref();
        this.#dirs.set(dir, { watcher, names });
      } catch (error) {
        this.#onError(dir, error);
      }
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    for (const { watcher } of this.#dirs.values()) watcher.close();
    this.#dirs.clear();
  }
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function createOpsServer(metrics: GatewayMetrics, isReady: () => boolean): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/readyz') return isReady() ? json(res, 200, { status: 'ready' }) : json(res, 503, { status: 'not ready' });
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        },
        () => json(res, 500, { status: 'error' }),
      );
      return;
    }
    json(res, 404, { status: 'not found' });
  });
}

function json(res: import('node:http').ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A listen failure the operator can fix (port taken, no permission, no such address) is a ConfigError. */
async function listenOrExplain(what: string, fn: (port: number, host: string) => Promise<AddressInfo>, port: number, host: string): Promise<AddressInfo> {
  try {
    return await fn(port, host);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'EADDRINUSE' ? 'address already in use' : code === 'EACCES' ? 'permission denied' : code === 'EADDRNOTAVAIL' ? 'address not available on this machine' : undefined;
    if (reason) throw new ConfigError(`cannot listen for ${what} traffic on ${host}:${port}: ${reason}`);
    throw error;
  }
}

async function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}
