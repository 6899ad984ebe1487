/** Concurrency slots counted in process: one number per key, removed when it drops to 0. */
import type { ConcurrencyStore } from '../../../shared/concurrency-store.ts';

export interface MemorySlots extends ConcurrencyStore {
  acquire(key: string, max: number): boolean;
  /** Slots taken for `key` (tests, metrics). */
  taken(key: string): number;
}

export function createMemorySlots(): MemorySlots {
  const taken = new Map<string, number>();
  return {
    acquire(key, max) {
      const n = taken.get(key) ?? 0;
      if (n >= max) return false;
      taken.set(key, n + 1);
      return true;
    },
    release(key) {
      const n = taken.get(key) ?? 0;
      if (n <= 1) taken.delete(key);
      else taken.set(key, n - 1);
    },
    taken: (key) => taken.get(key) ?? 0,
    close() {
      taken.clear();
    },
  };
}

/** The process's in-memory slots, used when no store is given (so that every route table counts in one place). */
export const defaultSlots = createMemorySlots();
