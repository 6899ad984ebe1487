/**
 * The relationship data a gateway holds for the collections whose snapshot names an entity set (`entitySets`):
 * one indexed store per set, kept across snapshots, and changed in place by the entity stream of the sync channel
 * (sync.proto `EntityChanges`): a full set (in parts) when the gateway holds none or is too far behind, then the
 * entities written or deleted since the version it holds, each change costing O(changed entities). A compiled
 * snapshot holds the set itself, so a change is seen by the next decision without compiling anything.
 */
import type { EntityChangesMessage } from '../../../config/sync-proto.ts';
import type { EntityJson } from '../../../shared/cedar.ts';
import { type Entity, entityFromJson, type EntityStore, IndexedEntityStore } from './entities.ts';

/** The body of an `EntityChanges` message: entities in Cedar's JSON form, and the uids of deleted ones. */
export interface EntityChangesBody {
  upsert: EntityJson[];
  remove: { type: string; id: string }[];
}

export type { EntityChangesMessage };

export type EntityChangesResult =
  | { ok: true; applied: number }
  | { ok: false; error: string; /** Drop what is held of the set and ask for it whole. */ resync: boolean };

/** The version of a held set, as a Hello reports it. */
export interface EntitySetVersion {
  set: string;
  version: number;
}

/** One set: its live store and version, and the store being filled by a full set still arriving. */
export class EntitySet implements EntityStore {
  readonly id: string;
  /** The version held; 0: none yet (decisions see no relationship data). */
  version = 0;
  #current = new IndexedEntityStore();
  #incoming: IndexedEntityStore | undefined;

  constructor(id: string) {
    this.id = id;
  }

  get size(): number {
    return this.#current.size;
  }
  get(key: string): Entity | undefined {
    return this.#current.get(key);
  }
  ancestors(key: string): ReadonlySet<string> {
    return this.#current.ancestors(key);
  }
  upsert(entities: readonly EntityJson[]): void {
    this.#current.upsert(entities);
  }
  remove(uids: readonly { type: string; id: string }[]): void {
    this.#current.remove(uids);
  }
  replace(entities: readonly Entity[]): void {
    this.#current.replace(entities);
  }
  /** Every entity held, for the cache. */
  entities(): MapIterator<Entity> {
    return this.#current.values();
  }

  /** Applies one message; a change that does not start from the version held is refused (`resync`). */
  apply(message: EntityChangesMessage, body: EntityChangesBody): EntityChangesResult {
    // Changes start from a version (≥ 1); the parts of a full set from 0.
    const incremental = !message.reset && message.fromVersion > 0;
    if (message.reset) this.#incoming = new IndexedEntityStore();
    else if (incremental) this.#incoming = undefined;
    else if (this.#incoming === undefined)
      return { ok: false, resync: true, error: `entity set ${this.id}: a part of a full set without its first part` };
    if (incremental && message.fromVersion !== this.version) {
      return {
        ok: false,
        resync: true,
        error: `entity set ${this.id}: changes from version ${message.fromVersion} to ${message.toVersion}, but version ${this.version} is held`,
      };
    }
    const target = this.#incoming ?? this.#current;
    const converted = body.upsert.map(entityFromJson); // throws before anything is changed
    target.remove(body.remove);
    for (const e of converted) target.put(e);
    if (this.#incoming !== undefined && message.more) return { ok: true, applied: converted.length };
    if (this.#incoming !== undefined) {
      this.#current = this.#incoming;
      this.#incoming = undefined;
    }
    this.version = message.toVersion;
    return { ok: true, applied: converted.length + body.remove.length };
  }

  /** Forgets everything held (the next connection asks for the full set). */
  clear(): void {
    this.#current = new IndexedEntityStore();
    this.#incoming = undefined;
    this.version = 0;
  }
}

/** Every entity set the gateway holds, by id. */
export class EntitySets {
  readonly #sets = new Map<string, EntitySet>();

  /** The set `id`, created empty (version 0) on first use. */
  get(id: string): EntitySet {
    let set = this.#sets.get(id);
    if (set === undefined) this.#sets.set(id, (set = new EntitySet(id)));
    return set;
  }

  has(id: string): boolean {
    return this.#sets.has(id);
  }

  /** The versions held (sets with none are left out), for the Hello. */
  versions(): EntitySetVersion[] {
    const out: EntitySetVersion[] = [];
    for (const s of this.#sets.values()) if (s.version > 0) out.push({ set: s.id, version: s.version });
    return out;
  }

  /** Parses and applies one message of the entity stream; what cannot be read is refused whole. */
  apply(message: EntityChangesMessage): EntityChangesResult {
    const set = this.get(message.set);
    let body: EntityChangesBody;
    try {
      body = parseBody(message.body);
      return set.apply(message, body);
    } catch (error) {
      set.clear();
      return { ok: false, resync: true, error: `entity set ${message.set}: ${(error as Error).message}` };
    }
  }

  /** Drops the sets not in `keep` (no snapshot in force names them any more). */
  retain(keep: ReadonlySet<string>): void {
    for (const id of this.#sets.keys()) if (!keep.has(id)) this.#sets.delete(id);
  }

  values(): IterableIterator<EntitySet> {
    return this.#sets.values();
  }
}

/**
 * Reads a body: JSON, with the shape of every entity checked (the control plane validated each one when it was
 * written; this catches a body from a mismatched peer, not a user's mistake).
 */
export function parseBody(bytes: Buffer): EntityChangesBody {
  const json = JSON.parse(bytes.toString('utf8')) as Partial<EntityChangesBody> | null;
  if (json === null || typeof json !== 'object') throw new TypeError('the body is not a JSON object');
  const upsert = json.upsert ?? [];
  const remove = json.remove ?? [];
  if (!Array.isArray(upsert) || !Array.isArray(remove)) throw new TypeError('upsert and remove must be lists');
  for (const e of upsert) {
    if (e === null || typeof e !== 'object' || !isUid(e.uid)) throw new TypeError('an entity has no valid uid');
    if (e.attrs !== undefined && (e.attrs === null || typeof e.attrs !== 'object' || Array.isArray(e.attrs)))
      throw new TypeError(`entity ${e.uid.type}::${JSON.stringify(e.uid.id)}: attrs must be an object`);
    if (e.parents !== undefined && (!Array.isArray(e.parents) || !e.parents.every(isUid)))
      throw new TypeError(`entity ${e.uid.type}::${JSON.stringify(e.uid.id)}: parents must be a list of uids`);
  }
  if (!remove.every(isUid)) throw new TypeError('remove must be a list of uids');
  return { upsert, remove };
}

function isUid(value: unknown): value is { type: string; id: string } {
  const v = value as { type?: unknown; id?: unknown } | null;
  return v !== null && typeof v === 'object' && typeof v.type === 'string' && typeof v.id === 'string';
}
