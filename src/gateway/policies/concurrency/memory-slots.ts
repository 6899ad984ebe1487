/**
 * Concurrency slots counted in process: one counter per key. A counter that drops to 0 stays (a request in and out
 * is then one Map lookup each way, instead of an insert and a delete per cap per request); counters at 0 are dropped
 * once a minute (an unref'd timer), so keys that stop calling cost nothing for long.
 */
import type { ConcurrencyStore } from '../../../shared/concurrency-store.ts';

export interface MemorySlots extends ConcurrencyStore {
  acquire(key: string, max: number): boolean;
  /** Slots taken for `key` (tests, metrics). */
  taken(key: string): number;
  /** Counters held, including those at 0 not yet swept (tests). */
  readonly size: number;
  /** Drops the counters at 0 now (the timer's work; tests). */
  sweep(): void;
}

interface Count {
  n: number;
}

const SWEEP_EVERY_MS = 60_000;

export function createMemorySlots(): MemorySlots {
  const counts = new Map<string, Count>();
  let timer: NodeJS.Timeout | undefined;
  const sweep = () => {
    for (const [key, c] of counts) if (c.n === 0) counts.delete(key);
    if (counts.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  return {
    acquire(key, max) {
      let c = counts.get(key);
      if (c === undefined) {
        counts.set(key, (c = { n: 0 }));
        if (timer === undefined) (timer = setInterval(sweep, SWEEP_EVERY_MS)).unref();
      }
      if (c.n >= max) return false;
      c.n++;
      return true;
    },
    release(key) {
      const c = counts.get(key);
      if (c !== undefined && c.n > 0) c.n--;
    },
    taken: (key) => counts.get(key)?.n ?? 0,
    get size() {
      return counts.size;
    },
    sweep,
    close() {
      clearInterval(timer);
      timer = undefined;
      counts.clear();
    },
  };
}

/** The process's in-memory slots, used when no store is given (so that every route table counts in one place). */
export const defaultSlots = createMemorySlots();
