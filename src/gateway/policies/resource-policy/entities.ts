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
}

export interface EntityStore extends EntityLookup {
  readonly size: number;
  upsert(entities: readonly EntityJson[]): void;
  remove(uids: readonly { type: string; id: string }[]): void;
}

export function uidOf(json: { type: string; id: string } | { __entity: { type: string; id: string } }): Uid {
  const plain = '__entity' in json ? json.__entity : json;
  return new Uid(plain.type, plain.id);
}

/** Converts one entity from Cedar's JSON form (throws `NeedsCedarWasm` for extension values). */
export function entityFromJson(json: EntityJson): Entity {
  const attrs: CedarRecord = new Map();
  for (const [k, v] of Object.entries(json.attrs ?? {})) attrs.set(k, fromJson(v));
  return { uid: uidOf(json.uid), attrs, parents: (json.parents ?? []).map(uidOf) };
}

export function entityToJson(entity: Entity): EntityJson {
  const attrs: Record<string, unknown> = {};
  for (const [k, v] of entity.attrs) attrs[k] = toJson(v);
  return { uid: entity.uid.toJSON(), attrs, parents: entity.parents.map((p) => p.toJSON()) } as EntityJson;
}

export function entityStore(initial: readonly EntityJson[] = []): EntityStore {
  const map = new Map<string, Entity>();
  const store: EntityStore = {
    get size() {
      return map.size;
    },
    get: (key) => map.get(key),
    upsert(entities) {
      for (const json of entities) {
        const entity = entityFromJson(json);
        map.set(entity.uid.key, entity);
      }
    },
    remove(uids) {
      for (const uid of uids) map.delete(new Uid(uid.type, uid.id).key);
    },
  };
  store.upsert(initial);
  return store;
}

/** Whether `uid` is `target` or has it among its ancestors (Cedar's `in`); cycles are walked once. */
export function isDescendant(uid: Uid, target: Uid, lookup: EntityLookup): boolean {
  if (uid.key === target.key) return true;
  const first = lookup.get(uid.key);
  if (first === undefined || first.parents.length === 0) return false;
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
