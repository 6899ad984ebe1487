/**
 * The relationship data of one collection as the gateway holds it: entities (`Document::"9"`) with their
 * attributes and parents, converted once from Cedar's JSON form when they arrive, so that a decision reads Maps.
 */
import type { EntityJson } from '../../../shared/cedar.ts';
import { type CedarRecord, fromJson, toJson, Uid, type Value } from './values.ts';

export interface Entity {
  readonly uid: Uid;
  readonly attrs: CedarRecord;
  readonly parents: readonly Uid[];
}

/** Where a decision looks entities up: the request's own (principal, resource) first, then the store. */
export interface EntityLookup {
  get(key: string): Entity | undefined;
  /**
   * The keys of every ancestor of the stored entity `key` (transitively; empty when it has none or is not
   * stored), when the lookup keeps them; undefined: walk the parents instead.
   */
  ancestors?(key: string): ReadonlySet<string> | undefined;
}

export interface EntityStore extends EntityLookup {
  readonly size: number;
  upsert(entities: readonly EntityJson[]): void;
  remove(uids: readonly { type: string; id: string }[]): void;
  /** Replaces every entity with these (a full set received again). */
  replace(entities: readonly Entity[]): void;
}

export function uidOf(json: { type: string; id: string } | { __entity: { type: string; id: string } }): Uid {
  const plain = '__entity' in json ? json.__entity : json;
  return new Uid(plain.type, plain.id);
}

/** Converts one entity from Cedar's JSON form (throws `NeedsCedarWasm` for extension values). */
export function entityFromJson(json: EntityJson): Entity {
  const entries = Object.entries(json.attrs ?? {});
  let attrs = NO_ATTRS;
  if (entries.length > 0) {
    attrs = new Map();
    for (const [k, v] of entries) attrs.set(k, fromJson(v));
  }
  return { uid: uidOf(json.uid), attrs, parents: (json.parents ?? []).map(uidOf) };
}

/** The attributes of every entity that has none (shared: entities are never changed in place). */
const NO_ATTRS: CedarRecord = new Map();

export function entityToJson(entity: Entity): EntityJson {
  const attrs: Record<string, unknown> = {};
  for (const [k, v] of entity.attrs) attrs[k] = toJson(v);
  return { uid: entity.uid.toJSON(), attrs, parents: entity.parents.map((p) => p.toJSON()) } as EntityJson;
}

export function entityStore(initial: readonly EntityJson[] = []): EntityStore {
  const store = new IndexedEntityStore();
  store.upsert(initial);
  return store;
}

const NONE: ReadonlySet<string> = new Set();
/** Memoised ancestor sets kept at most (then the memo starts again empty). */
const MAX_MEMO = 100_000;
/** Descendants visited to invalidate after one change, at most (then the whole memo is dropped, O(1)). */
const MAX_INVALIDATE = 10_000;

/**
 * Entities by key, with the index that keeps `in` cheap on deep hierarchies: each entity's children (who names it
 * as a parent), and the ancestor set of every entity a decision asked about, computed once and reused until a
 * change of parents above it. Every change costs O(changed entities) plus the invalidation of the memoised
 * descendants of an entity whose parents changed (bounded: past `MAX_INVALIDATE` the memo is dropped whole).
 */
export class IndexedEntityStore implements EntityStore {
  #entities = new Map<string, Entity>();
  /**
   * parent key → the parent's uid, shared by every entity that names it (a million documents in ten thousand
   * folders hold ten thousand folder uids, not a million), and the keys of those entities.
   */
  #children = new Map<string, { uid: Uid; keys: Set<string> }>();
  #memo = new Map<string, Set<string>>();

  get size(): number {
    return this.#entities.size;
  }

  get(key: string): Entity | undefined {
    return this.#entities.get(key);
  }

  upsert(entities: readonly EntityJson[]): void {
    for (const json of entities) this.put(entityFromJson(json));
  }

  /** Adds or replaces one converted entity. */
  put(entity: Entity): void {
    const key = entity.uid.key;
    const before = this.#entities.get(key);
    this.#entities.set(key, entity);
    if (before !== undefined && sameParents(before.parents, entity.parents)) {
      (entity.parents as Uid[]).splice(0, entity.parents.length, ...before.parents);
      return;
    }
    if (before !== undefined) this.#unlink(key, before.parents);
    const parents = entity.parents as Uid[]; // made for this entity by `entityFromJson`: shared uids go in
    for (let i = 0; i < parents.length; i++) {
      const p = parents[i]!;
      let node = this.#children.get(p.key);
      if (node === undefined) this.#children.set(p.key, (node = { uid: p, keys: new Set() }));
      parents[i] = node.uid;
      node.keys.add(key);
    }
    this.#invalidate(key);
  }

  remove(uids: readonly { type: string; id: string }[]): void {
    for (const uid of uids) this.delete(new Uid(uid.type, uid.id).key);
  }

  /** Removes one entity by key. */
  delete(key: string): void {
    const before = this.#entities.get(key);
    if (before === undefined) return;
    this.#entities.delete(key);
    this.#unlink(key, before.parents);
    this.#invalidate(key);
  }

  replace(entities: readonly Entity[]): void {
    this.#entities = new Map();
    this.#children = new Map();
    this.#memo = new Map();
    for (const e of entities) this.put(e);
  }

  values(): MapIterator<Entity> {
    return this.#entities.values();
  }

  ancestors(key: string): ReadonlySet<string> {
    const memo = this.#memo.get(key);
    if (memo !== undefined) return memo;
    const first = this.#entities.get(key);
    if (first === undefined || first.parents.length === 0) return NONE;
    const out = new Set<string>();
    const stack: string[] = first.parents.map((p) => p.key);
    while (stack.length > 0) {
      const next = stack.pop()!;
      if (out.has(next)) continue;
      out.add(next);
      const known = this.#memo.get(next);
      if (known !== undefined) {
        for (const k of known) out.add(k);
        continue;
      }
      const entity = this.#entities.get(next);
      if (entity !== undefined) for (const p of entity.parents) stack.push(p.key);
    }
    if (this.#memo.size >= MAX_MEMO) this.#memo = new Map();
    this.#memo.set(key, out);
    return out;
  }

  #unlink(key: string, parents: readonly Uid[]): void {
    for (const p of parents) {
      const node = this.#children.get(p.key);
      if (node === undefined) continue;
      node.keys.delete(key);
      if (node.keys.size === 0) this.#children.delete(p.key);
    }
  }

  /** `key`'s ancestors changed: drop the memoised sets of it and of everything below it. */
  #invalidate(key: string): void {
    if (this.#memo.size === 0) return;
    const seen = new Set<string>([key]);
    const stack = [key];
    while (stack.length > 0) {
      const next = stack.pop()!;
      this.#memo.delete(next);
      for (const child of this.#children.get(next)?.keys ?? NONE) {
        if (seen.has(child)) continue;
        if (seen.size >= MAX_INVALIDATE) {
          this.#memo = new Map();
          return;
        }
        seen.add(child);
        stack.push(child);
      }
    }
  }
}

function sameParents(a: readonly Uid[], b: readonly Uid[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.key !== b[i]!.key) return false;
  return true;
}

/**
 * Whether `uid` is `target` or has it among its ancestors (Cedar's `in`); cycles are walked once. Uses the
 * lookup's memoised ancestor sets where it keeps them.
 */
export function isDescendant(uid: Uid, target: Uid, lookup: EntityLookup): boolean {
  if (uid.key === target.key) return true;
  const first = lookup.get(uid.key);
  if (first === undefined || first.parents.length === 0) return false;
  if (lookup.ancestors !== undefined) {
    let walk = false;
    for (const p of first.parents) {
      if (p.key === target.key) return true;
      const above = lookup.ancestors(p.key);
      if (above === undefined) walk = true;
      else if (above.has(target.key)) return true;
    }
    if (!walk) return false;
  }
  const seen = new Set<string>([uid.key]);
  const stack: Uid[] = [...first.parents];
  while (stack.length > 0) {
    const next = stack.pop()!;
    if (next.key === target.key) return true;
    if (seen.has(next.key)) continue;
    seen.add(next.key);
    const entity = lookup.get(next.key);
    if (entity !== undefined) for (const p of entity.parents) stack.push(p);
  }
  return false;
}

/**
 * The entities a decision can reach from `roots` (parents and entity references in attributes, transitively), in
 * Cedar's JSON form, for handing one decision to cedar-wasm. At most `limit` entities.
 */
export function reachableEntities(roots: readonly Uid[], lookup: EntityLookup, limit = 10_000): EntityJson[] {
  const out: EntityJson[] = [];
  const seen = new Set<string>();
  const stack = [...roots];
  const visitValue = (value: Value) => {
    if (value instanceof Uid) stack.push(value);
    else if (typeof value === 'object' && 'items' in value) for (const v of value.items) visitValue(v);
    else if (value instanceof Map) for (const v of value.values()) visitValue(v);
  };
  while (stack.length > 0 && out.length < limit) {
    const uid = stack.pop()!;
    if (seen.has(uid.key)) continue;
    seen.add(uid.key);
    const entity = lookup.get(uid.key);
    if (entity === undefined) continue;
    out.push(entityToJson(entity));
    for (const p of entity.parents) stack.push(p);
    for (const v of entity.attrs.values()) visitValue(v);
  }
  return out;
}
