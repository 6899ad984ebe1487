/**
 * A set of strings for the uniqueness checks of a large clients file (a million client ids). Open addressing over
 * one typed array of (hash, index) pairs: a lookup is usually one memory access. A `Set` of that size costs about
 * twice as much per `add` here, because its lookups follow pointers into its entries and into the strings.
 */
export class StringSet {
  /** Pairs of (hash, index + 1 of the value); index 0 marks a free slot. */
  #table: Int32Array<ArrayBuffer>;
  #mask: number;
  /** The values in pages: one array of a million would be copied, and leave garbage, each time it grows. */
  readonly #pages: string[][] = [];
  #size = 0;

  constructor(values: Iterable<string> = []) {
    this.#table = new Int32Array(2 * 1024);
    this.#mask = 1024 - 1;
    for (const value of values) this.add(value);
  }

  get size(): number {
    return this.#size;
  }

  has(value: string): boolean {
    const hash = hashOf(value);
    const table = this.#table;
    for (let i = hash & this.#mask; ; i = (i + 1) & this.#mask) {
      const index = table[2 * i + 1]!;
      if (index === 0) return false;
      if (table[2 * i] === hash && this.#value(index - 1) === value) return true;
    }
  }

  /** Adds `value`; false when it was there already. */
  add(value: string): boolean {
    const hash = hashOf(value);
    const table = this.#table;
    let i = hash & this.#mask;
    for (; ; i = (i + 1) & this.#mask) {
      const index = table[2 * i + 1]!;
      if (index === 0) break;
      if (table[2 * i] === hash && this.#value(index - 1) === value) return false;
    }
    if ((this.#size & PAGE_MASK) === 0) this.#pages.push([]);
    this.#pages[this.#pages.length - 1]!.push(value);
    this.#size++;
    table[2 * i] = hash;
    table[2 * i + 1] = this.#size;
    if (this.#size > this.#mask >>> 1) this.#grow(); // keep at most half the slots in use
    return true;
  }

  #value(index: number): string {
    return this.#pages[index >>> PAGE_BITS]![index & PAGE_MASK]!;
  }

  #grow(): void {
    const old = this.#table;
    const slots = (this.#mask + 1) * 2;
    const table = new Int32Array(2 * slots);
    const mask = slots - 1;
    for (let j = 0; j < old.length; j += 2) {
      if (old[j + 1] === 0) continue;
      let i = old[j]! & mask;
      while (table[2 * i + 1] !== 0) i = (i + 1) & mask;
      table[2 * i] = old[j]!;
      table[2 * i + 1] = old[j + 1]!;
    }
    this.#table = table;
    this.#mask = mask;
    old.buffer.transfer(0); // frees the old table now rather than at some later GC: it is megabytes at this size
  }
}

const PAGE_BITS = 16;
const PAGE_MASK = (1 << PAGE_BITS) - 1;

/** FNV-1a over UTF-16 code units, with a final mix so that the low bits (the slot) depend on every character. */
function hashOf(value: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) h = Math.imul(h ^ value.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  return h ^ (h >>> 13);
}
