/**
 * Relationship data on its way to gateways, outside snapshots (docs/policies.md "Propagation"). Every write to a
 * collection's entities takes the collection's next entity version in its transaction (store `EntityOps`); a
 * snapshot names the collections' entity sets (`entitySets`), and the entities themselves travel as
 * `EntityChanges` messages: the full set, in parts, to a gateway that holds none (or is further behind than the
 * kept tombstones reach), then what changed since the version it holds — one indexed read of the changed rows, so
 * an update costs O(changed entities) however large the set.
 *
 * `EntityFeed.changed(set)` is called once a write is committed (by the admin API on this replica, or when another
 * replica says so through LISTEN/NOTIFY): the cloud gateway's copy is brought up to date before it resolves, and
 * every edge stream holding the set is told.
 */
import type { Logger } from 'pino';
import type { EntityChangesMessage } from '../config/sync-proto.ts';
import type { EntitySets } from '../gateway/index.ts';
import type { EntityChange, StoreOps } from './store/store.ts';

/** Entities per message of a full set, and changed rows read per message of changes. */
export const ENTITY_PART = 10_000;

/** What notices a changed entity set: an edge stream. */
export type EntitySetListener = (set: string) => void;

/**
 * The messages that bring a holder of version `held` of set `set` to its latest version: nothing when it holds
 * that; the changes since when it can; else the full set in parts, then the changes made while it was read.
 */
export async function* entityMessages(
  store: Pick<StoreOps, 'entitySetVersion' | 'entityChangesSince' | 'listEntitiesJson'>,
  set: string,
  held: number,
): AsyncGenerator<EntityChangesMessage> {
  const { version, floor } = await store.entitySetVersion(set);
  if (held === version) return;
  let from = held;
  if (held === 0 || held < floor || held > version) {
    // The rows are read in pages while writes may land: the changes after `version` (read next) repair that.
    let after: { type: string; id: string } | undefined;
    let first = true;
    for (;;) {
      const page = await store.listEntitiesJson(set, { after, limit: ENTITY_PART });
      const last = page.length < ENTITY_PART;
      yield {
        set,
        fromVersion: 0,
        toVersion: last ? version : 0,
        reset: first,
        more: !last,
        body: Buffer.from(`{"upsert":[${page.map((e) => e.json).join(',')}],"remove":[]}`),
      };
      if (last) break;
      first = false;
      // Reading a large set takes a while: let the stream's heartbeats and other sessions through between parts.
      await new Promise((resolve) => setImmediate(resolve));
      const end = page[page.length - 1]!;
      after = { type: end.type, id: end.id };
    }
    from = version;
  }
  for (;;) {
    const changes = await store.entityChangesSince(set, from, ENTITY_PART);
    if (changes.length === 0) return;
    const to = changes[changes.length - 1]!.version;
    yield { set, fromVersion: from, toVersion: to, reset: false, more: false, body: changesBody(changes) };
    if (changes.length >= ENTITY_PART) await new Promise((resolve) => setImmediate(resolve));
    from = to;
  }
}

function changesBody(changes: readonly EntityChange[]): Buffer {
  const upsert: unknown[] = [];
  const remove: { type: string; id: string }[] = [];
  for (const c of changes) {
    if (c.deleted) remove.push({ type: c.type, id: c.id });
    else upsert.push({ uid: { type: c.type, id: c.id }, attrs: c.attrs, parents: c.parents });
  }
  return Buffer.from(JSON.stringify({ upsert, remove }));
}

export interface EntityFeedOptions {
  store: Pick<StoreOps, 'entitySetVersion' | 'entityChangesSince' | 'listEntitiesJson'>;
  logger: Logger;
  /** The cloud gateway's entity sets (absent: no cloud gateway). */
  cloud?: EntitySets;
}

export class EntityFeed {
  readonly #o: EntityFeedOptions;
  readonly #listeners = new Set<EntitySetListener>();
  /** Per set, the cloud's catch-up in progress: one at a time, each starting from what the previous reached. */
  readonly #cloudRuns = new Map<string, Promise<void>>();

  constructor(options: EntityFeedOptions) {
    this.#o = options;
  }

  /** `listener` hears of every changed set (`*`: any may have changed); returns the unsubscribe. */
  onChange(listener: EntitySetListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Set `set` changed (committed); `*` when any may have (notifications were missed). Resolves once the cloud
   * gateway serves the change; edge streams are told at once and send on their own.
   */
  async changed(set: string): Promise<void> {
    const cloud = this.#o.cloud;
    if (cloud !== undefined) {
      const sets = set === '*' ? [...cloud.values()].map((s) => s.id) : cloud.has(set) ? [set] : [];
      await this.prepareCloud(sets);
    }
    for (const listener of this.#listeners) listener(set);
  }

  /** Brings the cloud gateway's copies of these sets to their latest versions (before a snapshot naming them). */
  async prepareCloud(sets: Iterable<string>): Promise<void> {
    await Promise.all([...sets].map((set) => this.#catchUpCloud(set)));
  }

  #catchUpCloud(set: string): Promise<void> {
    const previous = this.#cloudRuns.get(set) ?? Promise.resolve();
    const run = previous.then(() => this.#bringCloud(set));
    const tracked = run.finally(() => {
      if (this.#cloudRuns.get(set) === tracked) this.#cloudRuns.delete(set);
    });
    this.#cloudRuns.set(set, tracked);
    return run;
  }

  async #bringCloud(set: string): Promise<void> {
    const sets = this.#o.cloud!;
    for (let attempt = 0; attempt < 2; attempt++) {
      const held = sets.get(set);
      let failed: string | undefined;
      for await (const message of entityMessages(this.#o.store, set, held.version)) {
        const result = sets.apply(message);
        if (!result.ok) {
          failed = result.error;
          break;
        }
      }
      if (failed === undefined) return;
      held.clear(); // read whole again
      this.#o.logger.warn({ set, error: failed }, 'the cloud gateway reloads an entity set');
    }
  }
}
