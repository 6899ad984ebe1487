/**
 * The snapshot an edge gateway serves, and its copy in the fallback cache: every snapshot applied is written there
 * (one write at a time, re-keyed when the key is renewed), and a gateway deleted in the control plane serves and
 * caches nothing any more.
 */
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Snapshot } from '../../config/schema.ts';
import type { GatewayInstance } from '../instance.ts';
import type { EntitySets } from '../policies/resource-policy/entity-sets.ts';
import type { SnapshotCacheFile } from './cache.ts';
import type { EntityCacheFile } from './entity-cache.ts';

/** The snapshot in force, for deltas and the Hello, and where it came from. */
export interface InForce {
  snapshot: Snapshot;
  version: number;
  hash: string;
  source: 'cache' | 'control-plane';
}

export class ConfigInForce {
  readonly cache: SnapshotCacheFile;
  readonly #logger: Logger;
  current: InForce | undefined;
  /** Set when the control plane said this gateway was deleted: nothing is served or cached any more. */
  deactivated = false;
  /** Cache writes and re-keying, one at a time. */
  #queue: Promise<unknown> = Promise.resolve();

  /** The relationship data held (the gateway instance's) and its cache; absent in tests that need neither. */
  readonly entityCache: EntityCacheFile | undefined;
  readonly entitySets: EntitySets | undefined;

  constructor(cache: SnapshotCacheFile, logger: Logger, entityCache?: EntityCacheFile, entitySets?: EntitySets) {
    this.cache = cache;
    this.#logger = logger;
    this.entityCache = entityCache;
    this.entitySets = entitySets;
  }

  /** Writes the snapshot to the fallback cache after the writes queued before it; a failure is logged. */
  save(snapshot: Snapshot, hash: string): Promise<unknown> {
    const run = this.#queue
      .then(() => this.cache.write(snapshot, hash))
      .catch((err: unknown) =>
        this.#logger.error(
          { err, file: this.cache.file },
          'cannot write the fallback cache; the gateway keeps serving, but a restart without the control plane would find an older snapshot',
        ),
      );
    this.#queue = run;
    return run;
  }

  /** The cache MAC is keyed by the private key: after a renewal the snapshot in force is written again under the new one. */
  async rekey(keyPem: string): Promise<void> {
    if (this.entityCache && this.entitySets) void this.entityCache.rekey(keyPem, this.entitySets);
    this.#queue = this.#queue.then(() => this.cache.rekey(keyPem));
    if (this.current) await this.save(this.current.snapshot, this.current.hash);
  }

  /** Resolves once the queued cache writes (the snapshot's and the entity sets') are done. */
  settled(): Promise<unknown> {
    return Promise.all([this.#queue, this.entityCache?.settled()]);
  }

  /**
   * The gateway was deleted: the cache is removed, so that a restart does not bring its endpoints back, and an
   * empty route table (every request refused) replaces the snapshot in force.
   */
  async deactivate(instance: GatewayInstance): Promise<void> {
    this.deactivated = true;
    await this.#queue;
    await this.entityCache?.remove();
    await rm(this.cache.file, { force: true }).catch((err: unknown) =>
      this.#logger.error({ err, file: this.cache.file }, 'cannot remove the cached snapshot'),
    );
    if (this.current) {
      const { entities: _entities, ...snapshot } = this.current.snapshot;
      this.current = undefined;
      await instance.apply(
        { ...snapshot, version: 'deleted', collections: [], roles: [], clients: [], legacyClients: [] },
        { source: 'deactivation', log: false },
      );
    }
  }
}
