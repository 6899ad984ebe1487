/**
 * What one connected instance is sent down its `ConfigSync.Sync` stream: the latest version of its gateway's scope
 * once it said Hello, then every version the publisher records — a delta from what the instance will hold when
 * that is smaller, the full snapshot otherwise — following the gateway to a new scope when it is renamed.
 *
 * `SnapshotCache` is shared by every stream of the server: when a version is published, each connected instance of
 * the gateway needs the same delta.
 */
import type { Logger } from 'pino';
import { SnapshotSchema, type Snapshot } from '../../config/schema.ts';
import { diffSnapshots, encodeDelta } from '../../config/snapshot-delta.ts';
import { canonicalJson, encodeSnapshot } from '../../config/snapshot-encoding.ts';
import type { SyncResponseMessage } from '../../config/sync-proto.ts';
import { snapshotScope } from '../compile/compile.ts';
import { entityMessages } from '../entity-feed.ts';
import type { PublishedScope, Publisher } from '../publisher.ts';
import type { GatewayRecord, Store } from '../store/store.ts';

/** A version of the scope, and the snapshot when at hand (loaded from the store otherwise). */
export interface Held {
  version: number;
  hash: string;
  snapshot?: Snapshot;
}

export interface SnapshotStreamDeps {
  store: Store;
  publisher: Pick<Publisher, 'changed'>;
  snapshots: SnapshotCache;
  logger: Logger;
  /** The authenticated gateway (replaced here when it is renamed). */
  gateway: GatewayRecord;
  instanceId: string;
  /** Writes the message unless the stream has ended; false when it has. */
  write(message: SyncResponseMessage): boolean;
  /** Runs a step on the session's chain, after everything it has queued (publishes arrive at any time). */
  run(step: () => Promise<unknown>): void;
}

/** The versions sent to one instance and the ones it ACKed: what deltas start from. */
export class SnapshotStream {
  readonly #d: SnapshotStreamDeps;
  #gateway: GatewayRecord;
  #scope: string;
  /** What the instance will serve once it has processed everything sent so far (if it applies it all). */
  #expected: Held | undefined;
  /** What it last ACKed (or reported in its Hello). */
  #acked: Held | undefined;
  /** The entity sets the scope's latest snapshot names (those it is kept up to date on). */
  #sets = new Set<string>();
  /** Per entity set, the version the instance will hold once it has processed everything sent. */
  readonly #setVersions = new Map<string, number>();

  constructor(deps: SnapshotStreamDeps) {
    this.#d = deps;
    this.#gateway = deps.gateway;
    this.#scope = scopeOf(deps.gateway);
  }

  /** The version the instance reported in its Hello: deltas may start from it. */
  resume(version: number, hash: string): void {
    this.#acked = this.#expected = { version, hash };
  }

  /** The entity sets and versions the instance reported in its Hello: changes start from them. */
  resumeEntities(sets: readonly { set: string; version: number }[]): void {
    for (const { set, version } of sets) this.#setVersions.set(set, version);
  }

  /** A set's relationship data changed (`*`: any may have): the instance gets what it lacks, if it holds the set. */
  entitiesChanged(set: string): void {
    if (set !== '*' && !this.#sets.has(set)) return;
    this.#d.run(() => this.#sendEntities(set === '*' ? [...this.#sets] : [set]));
  }

  /** Brings the instance's copy of these sets to their latest versions (entity-feed.ts `entityMessages`). */
  async #sendEntities(sets: Iterable<string>): Promise<void> {
    for (const set of sets) {
      if (!this.#sets.has(set)) continue;
      let sent = 0;
      for await (const message of entityMessages(this.#d.store, set, this.#setVersions.get(set) ?? 0)) {
        if (!this.#d.write({ entities: message })) return;
        if (!message.more) this.#setVersions.set(set, message.toVersion);
        sent++;
      }
      if (sent > 0)
        this.#d.logger.debug(
          { gateway: this.#gateway.id, instance: this.#d.instanceId, set, version: this.#setVersions.get(set) },
          'sent relationship data',
        );
    }
  }

  /** The instance ACKed `version`. */
  acked(version: number, hash: string): void {
    const expected = this.#expected;
    if (expected?.version === version && expected.hash !== hash) {
      this.#d.logger.warn(
        { gateway: this.#gateway.id, instance: this.#d.instanceId, version, sent: expected.hash, acked: hash },
        'an instance ACKed a version with another hash than the one sent',
      );
    }
    this.#acked = {
      version,
      hash,
      snapshot: expected?.version === version && expected.hash === hash ? expected.snapshot : undefined,
    };
  }

  /** The instance NACKed what it was sent: it kept what it had, and later deltas start from there. */
  nacked(): void {
    this.#expected = this.#acked;
  }

  /** Sends the latest version of the scope; a gateway whose workspace was never compiled gets it compiled first. */
  async sendLatest(): Promise<void> {
    const { store, logger, publisher } = this.#d;
    const gateway = this.#gateway;
    let latest = await store.getLatestSnapshot(this.#scope);
    if (!latest) {
      // A new gateway whose workspace was not compiled since it was created: compile now.
      await publisher
        .changed(gateway.workspaceId)
        .catch((err: unknown) =>
          logger.error({ err, workspace: gateway.workspaceId }, 'compiling the workspace failed'),
        );
      latest = await store.getLatestSnapshot(this.#scope);
    }
    if (!latest) {
      logger.warn(
        { gateway: gateway.id, scope: this.#scope },
        'no snapshot for this gateway yet; it gets one when the workspace is next published',
      );
      return;
    }
    await this.#sendUpTo({ version: latest.version, hash: latest.hash }, true);
  }

  /** The publisher recorded new versions (a listener of `Publisher.onPublish`). */
  published(scopes: readonly PublishedScope[]): void {
    const gateway = this.#gateway;
    const mine = scopes.find((s) => s.scope === this.#scope);
    if (mine)
      return this.#d.run(() => this.#sendUpTo({ version: mine.version, hash: mine.hash, snapshot: mine.snapshot }));
    // A renamed gateway's snapshots move to a scope under its new name.
    const prefix = `${gateway.workspaceId}/${gateway.environment}/edge:`;
    if (!scopes.some((s) => s.scope.startsWith(prefix))) return;
    this.#d.run(async () => {
      const current = await this.#d.store.getGateway({ id: gateway.id });
      if (!current || current.name === gateway.name) return;
      this.#gateway = current;
      this.#scope = scopeOf(current);
      const latest = await this.#d.store.getLatestSnapshot(this.#scope);
      if (latest) await this.#sendUpTo({ version: latest.version, hash: latest.hash }, true);
    });
  }

  /**
   * Brings the instance to `target`: nothing if it holds it already, a delta when that is smaller, else the full
   * snapshot. A push older than what was sent is dropped (publishes can overtake each other); the first send after
   * the Hello is not, since the instance may report a version from another history (a rebuilt control plane).
   */
  async #sendUpTo(target: Held, first = false): Promise<void> {
    const { snapshots } = this.#d;
    const base = this.#expected;
    if (base && !first && target.version < base.version) return;
    const next = await snapshots.get(this.#scope, target);
    if (!next) return; // pruned already: a newer version follows
    // Relationship data first: the snapshot that names a set is enforced with the set's entities in place.
    this.#sets = new Set(Object.values(next.snapshot.entitySets ?? {}));
    await this.#sendEntities(this.#sets);
    if (base && base.version === target.version && base.hash === target.hash) return;
    let message: SyncResponseMessage | undefined;
    if (base && base.version > 0 && base.version < target.version) {
      const body = await snapshots.delta(this.#scope, base, { ...target, snapshot: next.snapshot });
      if (body !== undefined && body.length < next.body.length) {
        message = {
          delta: { fromVersion: base.version, toVersion: target.version, hash: target.hash, body: Buffer.from(body) },
        };
      }
    }
    message ??= { snapshot: { version: target.version, hash: target.hash, body: Buffer.from(next.body) } };
    if (!this.#d.write(message)) return;
    this.#expected = { ...target, snapshot: next.snapshot };
    this.#d.logger.debug(
      {
        gateway: this.#gateway.id,
        instance: this.#d.instanceId,
        version: target.version,
        kind: 'delta' in message ? 'delta' : 'snapshot',
      },
      'sent a snapshot version',
    );
  }
}

function scopeOf(gateway: GatewayRecord): string {
  return snapshotScope(gateway.workspaceId, gateway.environment, { type: 'edge', gateway: gateway.name });
}

/** Parsed snapshots and their canonical bodies, and encoded deltas, shared by every stream. */
export class SnapshotCache {
  readonly #store: Store;
  readonly #snapshots = new Map<string, { snapshot: Snapshot; body: string }>();
  readonly #deltas = new Map<string, string>();

  constructor(store: Store) {
    this.#store = store;
  }

  /** The snapshot and body of `held` in `scope` (from `held.snapshot` or the store); undefined when pruned. */
  async get(scope: string, held: Held): Promise<{ snapshot: Snapshot; body: string } | undefined> {
    const key = `${scope}@${held.version}#${held.hash}`;
    const cached = this.#snapshots.get(key);
    if (cached) return cached;
    let entry: { snapshot: Snapshot; body: string };
    if (held.snapshot) {
      entry = { snapshot: held.snapshot, body: canonicalJson(encodeSnapshot(held.snapshot)) };
    } else {
      const record = await this.#store.getSnapshot(scope, held.version);
      if (!record || record.hash !== held.hash) return undefined;
      entry = { snapshot: SnapshotSchema.parse(JSON.parse(record.body)), body: record.body };
    }
    remember(this.#snapshots, key, entry, 16);
    return entry;
  }

  /** The encoded delta from `from` to `to`, or undefined when `from` is no longer stored. */
  async delta(scope: string, from: Held, to: Held & { snapshot: Snapshot }): Promise<string | undefined> {
    const key = `${scope}@${from.version}#${from.hash}>${to.version}#${to.hash}`;
    const cached = this.#deltas.get(key);
    if (cached !== undefined) return cached;
    const prev = await this.get(scope, from);
    // A delta cannot take signing keys away (none can be removed by it): send the full snapshot then.
    if (!prev || (prev.snapshot.signingKeys !== undefined && to.snapshot.signingKeys === undefined)) return undefined;
    const body = canonicalJson(encodeDelta(diffSnapshots(prev.snapshot, to.snapshot)));
    remember(this.#deltas, key, body, 64);
    return body;
  }
}

function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.set(key, value);
  while (map.size > max) map.delete(map.keys().next().value!);
}
