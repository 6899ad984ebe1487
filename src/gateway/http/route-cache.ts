/**
 * A bounded cache of route matches (the canonical path and the router's answer for one method, target and Host),
 * in front of `canonicalize` and the router, as Kong's router caches its matches. Most traffic repeats a small set
 * of targets; an entry saves the per-request parse and the trie walk.
 *
 * Two generations instead of an LRU list: inserts go to `#young`; when it is full, it becomes `#old` and the
 * former old generation is dropped whole. A hit in `#old` is moved back to `#young`. Memory stays within two
 * generations of entries, each at most `maxKeyLength` characters, and no hit writes anything. A cache belongs to
 * one route table: a new table starts with an empty one.
 */
export class RouteCache<V> {
  readonly #maxEntries: number;
  readonly #maxKeyLength: number;
  #young = new Map<string, V>();
  #old = new Map<string, V>();

  /** `maxEntries` per generation; targets with keys longer than `maxKeyLength` are not cached. */
  constructor(maxEntries = 4096, maxKeyLength = 512) {
    this.#maxEntries = maxEntries;
    this.#maxKeyLength = maxKeyLength;
  }

  get(key: string): V | undefined {
    const value = this.#young.get(key);
    if (value !== undefined || this.#old.size === 0) return value;
    const old = this.#old.get(key);
    if (old !== undefined) this.set(key, old);
    return old;
  }

  set(key: string, value: V): void {
    if (key.length > this.#maxKeyLength) return;
    if (this.#young.size >= this.#maxEntries) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(key, value);
  }

  get size(): number {
    return this.#young.size + this.#old.size;
  }
}

/**
 * The cache key of a request's route: method, Host and target, separated by line feeds, which none of them can
 * hold (Node's parser refuses them in the request line and in header values), so two requests share a key only
 * when all three are equal.
 */
export function routeKey(method: string, target: string, host: string | undefined): string {
  return host === undefined ? `${method}\n${target}` : `${method}\n${host}\n${target}`;
}
