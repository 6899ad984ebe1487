/**
 * Cedar values as the compiled predicates see them: booleans, Longs (JavaScript numbers kept within the safe
 * integer range; anything beyond is handed to cedar-wasm), strings, entity references (`Uid`), sets (`CedarSet`)
 * and records (`Map`). Extension values (ip, decimal, datetime) are never built here: a policy or an entity that
 * holds one is evaluated by cedar-wasm instead.
 */

export type Value = boolean | number | string | Uid | CedarSet | CedarRecord;
export type CedarRecord = Map<string, Value>;

/** An entity reference `Type::"id"`; `key` is its identity (type and JSON-quoted id, as Cedar writes it). */
export class Uid {
  readonly type: string;
  readonly id: string;
  readonly key: string;
  constructor(type: string, id: string) {
    this.type = type;
    this.id = id;
    this.key = `${type}::${JSON.stringify(id)}`;
  }
  toJSON(): { type: string; id: string } {
    return { type: this.type, id: this.id };
  }
}

export class CedarSet {
  readonly items: readonly Value[];
  constructor(items: readonly Value[]) {
    this.items = items;
  }
  has(value: Value): boolean {
    for (const item of this.items) if (valueEquals(item, value)) return true;
    return false;
  }
}

/** An evaluation error: the policy that raised it is skipped (Cedar's semantics), and reported as errored. */
export class CedarEvalError extends Error {
  override readonly name = 'CedarEvalError';
}

/** Thrown when a value leaves what the predicates handle exactly (a Long beyond 2^53): cedar-wasm decides. */
export class NeedsCedarWasm extends Error {
  override readonly name = 'NeedsCedarWasm';
}

/** Cedar's `==`: never an error; values of different types are unequal; sets compare as sets. */
export function valueEquals(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object') return false;
  if (a instanceof Uid) return b instanceof Uid && a.key === b.key;
  if (a instanceof CedarSet) {
    if (!(b instanceof CedarSet)) return false;
    for (const x of a.items) if (!b.has(x)) return false;
    for (const y of b.items) if (!a.has(y)) return false;
    return true;
  }
  if (!(b instanceof Map) || a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined || !valueEquals(v, w)) return false;
  }
  return true;
}

/** A Cedar JSON value (`{ "__entity": … }`, arrays, records) as a `Value`; extension values need cedar-wasm. */
export function fromJson(json: unknown): Value {
  switch (typeof json) {
    case 'boolean':
    case 'string':
      return json;
    case 'number':
      if (!Number.isSafeInteger(json)) throw new NeedsCedarWasm('a number that is not a safe integer');
      return json;
    case 'object': {
      if (json === null) break;
      if (Array.isArray(json)) return new CedarSet(json.map(fromJson));
      const object = json as Record<string, unknown>;
      if ('__extn' in object) throw new NeedsCedarWasm('an extension value');
      const entity = object.__entity as { type?: unknown; id?: unknown } | undefined;
      if (entity !== undefined && Object.keys(object).length === 1)
        return new Uid(String(entity.type), String(entity.id));
      const record: CedarRecord = new Map();
      for (const [k, v] of Object.entries(object)) record.set(k, fromJson(v));
      return record;
    }
  }
  throw new TypeError(`not a Cedar value: ${JSON.stringify(json)}`);
}

/** The Cedar JSON form of a value (for cedar-wasm). */
export function toJson(value: Value): unknown {
  if (typeof value !== 'object') return value;
  if (value instanceof Uid) return { __entity: { type: value.type, id: value.id } };
  if (value instanceof CedarSet) return value.items.map(toJson);
  const out: Record<string, unknown> = {};
  for (const [k, v] of value) out[k] = toJson(v);
  return out;
}

/** Cedar's `like`: `*` matches any sequence of characters; the pattern is a list of literals and wildcards. */
export function likeMatcher(pattern: readonly ('Wildcard' | { Literal: string })[]): (text: string) => boolean {
  let source = '';
  for (const element of pattern)
    source +=
      element === 'Wildcard'
        ? '[\\s\\S]*'
        : [...element.Literal].map((c) => c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('');
  const regex = new RegExp(`^${source}$`, 'u');
  return (text) => regex.test(text);
}
