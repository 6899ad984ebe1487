/**
 * The in-process rate-limit store: a sliding window counter, the approximation Cloudflare describes. Each key
 * keeps the count of the current fixed window and of the one before it; a hit is allowed while
 *
 *     previous × (time left in the current window ÷ window) + current + 1 ≤ limit
 *
 * i.e. the previous window's hits are assumed evenly spread and weigh by how much of it still overlaps the
 * sliding window that ends now. Two numbers per key, O(1) per hit, and no burst of 2× the limit at a window edge
 * as with plain fixed windows.
 *
 * `RateLimitStore` (src/shared/rate-limit-store.ts) is the contract the shared store (`shared-store.ts`, Redis)
 * implements too; the window math both use is in `sliding-window.ts`, and `store-contract.ts` tests both stores.
 */
import type { RateLimitDecision, RateLimitStore } from '../../../shared/rate-limit-store.ts';
import { advance, checkLimit, type Counter, decide, isSpent, newCounter } from './sliding-window.ts';

export type { RateLimitDecision, RateLimitStore };

export interface MemoryStoreOptions {
  /**
   * Most keys tracked at once. When a new key would exceed it, the keys whose window rolled over longest ago
   * (roughly: idle longest) are dropped, in batches of ~1.5%. A dropped key that was still active starts afresh,
   * so size this well above the number of keys active within two windows. Roughly 300 bytes per key
   * with a 64-character key name.
   * @default 1_000_000
   */
  maxKeys?: number;
  /** How often keys whose hits no longer weigh are dropped (an unref'd timer). @default 30_000 */
  sweepIntervalMs?: number;
}

export interface MemoryRateLimitStore extends RateLimitStore {
  /** Always synchronous. */
  hit(key: string, limit: number, windowMs: number, now?: number, cost?: number): RateLimitDecision;
  /** Keys currently tracked. */
  readonly size: number;
  /** Drops every key whose hits no longer weigh at `now` and returns how many. Also runs on the sweep timer. */
  sweep(now?: number): number;
}

/** Keys examined per turn of the event loop by the timer's sweep (a few ms at most). */
const SWEEP_CHUNK = 5_000;

export function createMemoryStore(options: MemoryStoreOptions = {}): MemoryRateLimitStore {
  const maxKeys = options.maxKeys ?? 1_000_000;
  const sweepIntervalMs = options.sweepIntervalMs ?? 30_000;
  if (!Number.isInteger(maxKeys) || maxKeys < 1)
    throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
  if (!(sweepIntervalMs >= 1)) throw new RangeError(`sweepIntervalMs must be at least 1, got ${sweepIntervalMs}`);
  const evictBatch = Math.ceil(maxKeys / 64);

  // Map order is kept as "order of last window roll" (a key is re-inserted when its window rolls), so the first
  // entries are the ones idle longest: eviction under pressure takes them without scanning.
  const counters = new Map<string, Counter>();

  // The timer's sweep runs in chunks, yielding to the event loop between them: a pass over a million keys takes
  // hundreds of ms, which must not stall requests. Map iterators stay valid across deletions and insertions.
  let pass: MapIterator<[string, Counter]> | undefined;
  let resume: ReturnType<typeof setImmediate> | undefined;
  let timer: ReturnType<typeof setInterval> | undefined = setInterval(function sweepRateLimits() {
    if (pass === undefined) sweepChunk();
  }, sweepIntervalMs);
  timer.unref();

  function sweepChunk(): void {
    resume = undefined;
    pass ??= counters.entries();
    const now = Date.now();
    for (let i = 0; i < SWEEP_CHUNK; i++) {
      const step = pass.next();
      if (step.done === true) {
        pass = undefined;
        return;
      }
      if (isSpent(step.value[1], now)) counters.delete(step.value[0]);
    }
    resume = setImmediate(sweepChunk);
    resume.unref();
  }

  function hit(key: string, limit: number, windowMs: number, now: number = Date.now(), cost = 1): RateLimitDecision {
    checkLimit(limit, windowMs, cost);
    let c = counters.get(key);
    if (c === undefined) {
      if (counters.size >= maxKeys) evictOldest();
      c = newCounter(windowMs, now);
      counters.set(key, c);
    } else if (advance(c, windowMs, now)) {
      counters.delete(key);
      counters.set(key, c);
    }
    return decide(c, limit, now, cost);
  }

  /** Drops keys idle longest (front of the Map). Only runs when a new key arrives at `maxKeys`. */
  function evictOldest(): void {
    let n = evictBatch;
    for (const key of counters.keys()) {
      counters.delete(key);
      if (--n === 0) break;
    }
  }

  function sweep(now: number = Date.now()): number {
    let dropped = 0;
    for (const [key, c] of counters) {
      if (isSpent(c, now)) {
        counters.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  return {
    hit,
    sweep,
    get size() {
      return counters.size;
    },
    clear() {
      counters.clear();
    },
    close() {
      if (timer !== undefined) clearInterval(timer);
      if (resume !== undefined) clearImmediate(resume);
      timer = undefined;
      resume = undefined;
      pass = undefined;
      counters.clear();
    },
  };
}
