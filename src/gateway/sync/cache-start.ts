/**
 * Start-up from the fallback cache, before the control plane is reached: a cached snapshot that passes its checks
 * (integrity MAC, schema) and applies is served at once; one that does not is refused, said in the log, and not
 * applied — the gateway then waits for the control plane, not ready until its first snapshot.
 */
import type { Logger } from 'pino';
import type { GatewayInstance } from '../instance.ts';
import type { ConfigInForce } from './config-in-force.ts';

/**
 * Applies the cached snapshot, if there is a good one, as the configuration in force. Returns what became of the
 * cache, for the readiness check `config` while no configuration is in force.
 */
export async function startFromCache(
  config: ConfigInForce,
  instance: GatewayInstance,
  logger: Logger,
): Promise<string> {
  const { cache } = config;
  // Relationship data first: the cached snapshot that names a set is enforced with its entities in place.
  if (config.entityCache && config.entitySets) {
    const sets = await config.entityCache.load(config.entitySets);
    if (sets > 0)
      logger.info(
        { dir: config.entityCache.dir, sets: config.entitySets.versions() },
        'relationship data restored from the cache',
      );
  }
  const read = await cache.read();
  if (read.status === 'refused') {
    logger.error(
      { file: cache.file, reason: read.reason },
      `refusing the cached snapshot ${cache.file}: it ${read.reason}; it is not applied — the gateway waits for the control plane (not ready until then)`,
    );
    return `the cached configuration ${cache.file} was refused: it ${read.reason}`;
  }
  if (read.status === 'ok') {
    const { cached } = read;
    const applied = await instance.apply(cached.snapshot, { source: cache.file, log: false });
    if (!applied.applied) {
      logger.error(
        { file: cache.file, error: applied.error },
        `the cached snapshot ${cache.file} cannot be applied; the gateway waits for the control plane`,
      );
      return `the cached configuration ${cache.file} cannot be applied: ${applied.error ?? 'unknown error'}`;
    }
    config.current = { snapshot: cached.snapshot, version: cached.version, hash: cached.hash, source: 'cache' };
    logger.info(
      { file: cache.file, version: cached.version, savedAt: cached.savedAt },
      `serving from the cached snapshot v${cached.version} (control plane not reached yet)`,
    );
  }
  return `no cached configuration yet (${cache.file} does not exist)`;
}
