/**
 * A standalone gateway process: a declarative config file (plus its clients file, if any) fed to a gateway
 * instance (`instance.ts`), which compiles it and serves it on the API and operations listeners. Reload (SIGHUP
 * or a change of either file) re-reads the files and applies them through the same instance: a bad file is
 * rejected with a clear message and the old config stays in force.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import { clientsFilePath, fileSignature, readClientsFile } from '../config/clients-file.ts';
import { ConfigError, parseGatewayFileAndSpecs, readConfigFile } from '../config/load.ts';
import type { GatewayFile, ServerSettings, Snapshot } from '../config/schema.ts';
import { type ApplyResult, createGatewayInstance } from './instance.ts';
import type { GatewayMetrics } from './observability/metrics.ts';
import { type SnapshotCompilation, startCompile } from './snapshot/compile.ts';
import type { SigningKeyStore } from './tokens/keystore.ts';

export interface StartGatewayOptions {
  configFile: string;
  /** A logger, or a factory given the file's `server.log.level`. */
  logger: Logger | ((level: string) => Logger);
  /** Override the listen/ops ports from the file (tests use 0 for ephemeral ports). */
  port?: number;
  opsPort?: number;
  /** Overrides both `server.listen.host` and `server.ops.host`. */
  host?: string;
  /** What changes the API and ops ports, for the error when one is taken (e.g. `--port N`). */
  change?: { port?: string; opsPort?: string };
  /** Adjusts the file as parsed, at start and at every reload (the demo points the collections at its upstream). */
  adjust?: (file: GatewayFile) => GatewayFile;
}

export interface GatewayRuntime {
  readonly api: AddressInfo;
  readonly ops: AddressInfo;
  readonly metrics: GatewayMetrics;
  readonly keys: SigningKeyStore;
  /** Re-reads the config file and its clients file; resolves with the error when rejected (the old config stays). */
  reload(): Promise<ApplyResult>;
  close(): Promise<void>;
}

export async function startGateway(options: StartGatewayOptions): Promise<GatewayRuntime> {
  const file = resolve(options.configFile);
  const text = await readConfigFile(file);
  const adjust = options.adjust ?? ((f: GatewayFile) => f);
  const config = adjust(await parseGatewayFileAndSpecs(text, file));
  const settings = config.server;
  const logger = typeof options.logger === 'function' ? options.logger(settings.log.level) : options.logger;
  const instance = await createGatewayInstance({
    logger,
    server: settings,
    tokenExchange: config.tokenExchange,
    baseDir: dirname(file),
  });

  /** Starts compiling a parsed file and streams its clients file, if any, into the compilation. */
  const compileFile = async (
    parsed: GatewayFile,
  ): Promise<{ compilation: SnapshotCompilation; clients: ClientsFileState | undefined }> => {
    const compilation = startCompile(toSnapshot(parsed));
    const clientsFile = clientsFilePath(file, parsed);
    const summary = clientsFile ? await readClientsFile(clientsFile, parsed, compilation) : undefined;
    return {
      compilation,
      clients: clientsFile && summary ? { file: clientsFile, signature: summary.signature } : undefined,
    };
  };

  // What is in force: the config file's hash and the clients file as it was when read.
  let lastHash = hash(text);
  let clientsState: ClientsFileState | undefined;
  const first = await instance.apply(
    async () => {
      const { compilation, clients } = await compileFile(config);
      clientsState = clients;
      return compilation;
    },
    { source: file, log: false },
  ); // a first file that cannot be compiled ends the start: the caller reports it
  let addresses: Awaited<ReturnType<typeof instance.listen>>;
  try {
    if (!first.applied) throw new ConfigError(first.error ?? `${file}: the configuration cannot be compiled`);
    addresses = await instance.listen({
      port: options.port,
      host: options.host,
      opsPort: options.opsPort,
      opsHost: options.host,
      change: options.change,
    });
  } catch (error) {
    await instance.close({ drainMs: 0 });
    throw error;
  }

  const watchedFiles = () => (clientsState ? [file, clientsState.file] : [file]);
  let watcher: FileWatcher | undefined;
  /** The last reload was rejected: the next one that finds the file back at the configuration in force says so. */
  let rejected = false;
  const reload = async (): Promise<ApplyResult> => {
    let read: { hash: string; clients: ClientsFileState | undefined; server: ServerSettings } | undefined;
    const result = await instance.apply(
      async () => {
        const next = await readConfigFile(file);
        const h = hash(next);
        if (h === lastHash && !(clientsState && (await hasChanged(clientsState)))) {
          if (rejected)
            logger.info(
              { file, version: instance.server.table?.version },
              'the config file is back to the configuration in force',
            );
          rejected = false;
          return undefined;
        }
        const parsed = adjust(await parseGatewayFileAndSpecs(next, file));
        const { compilation, clients } = await compileFile(parsed);
        read = { hash: h, clients, server: parsed.server };
        return compilation;
      },
      { source: file, log: { file } },
    );
    if (result.error !== undefined) rejected = true;
    else if (result.applied) rejected = false;
    if (result.applied && read) {
      if (JSON.stringify(read.server) !== JSON.stringify(settings)) {
        logger.warn(
          { file },
          'the server section changed: listeners, TLS, logging and signing-key settings apply at the next restart',
        );
      }
      lastHash = read.hash;
      clientsState = read.clients;
      watcher?.watch(watchedFiles());
    }
    return result;
  };
  // One reload at a time, each with the state the one before left.
  let reloading: Promise<ApplyResult> | undefined;
  const serialReload = () => {
    const run = (reloading ?? Promise.resolve()).then(reload, reload);
    reloading = run;
    return run;
  };

  const onHup = () => void serialReload();
  process.on('SIGHUP', onHup);
  if (settings.watch) {
    watcher = new FileWatcher(
      () => void serialReload(),
      (dir, error) =>
        logger.warn({ dir, err: error }, 'cannot watch this directory for config changes (SIGHUP still reloads)'),
    );
    watcher.watch(watchedFiles());
  }

  return {
    api: addresses.api,
    ops: addresses.ops!,
    metrics: instance.metrics,
    keys: instance.keys,
    reload: serialReload,
    async close() {
      process.off('SIGHUP', onHup);
      watcher?.close();
      await instance.close();
    },
  };
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
