/**
 * The concurrency-slot store contract: what the concurrency-cap policy asks of a store, implemented in process
 * (`gateway/policies/concurrency/memory-slots.ts`) and shared through Redis leases (`shared-slots.ts`).
 */
export interface ConcurrencyStore {
  /**
   * Takes one slot of `key` if fewer than `max` are taken; true: taken (call `release` exactly once when the
   * request ends), false: the cap is reached. Synchronous while a slot is free locally; a shared store returns a
   * promise only when it must lease more slots from Redis.
   */
  acquire(key: string, max: number): boolean | Promise<boolean>;
  /** Gives back one slot taken with `acquire`. */
  release(key: string): void;
  /** True while a shared store cannot reach its backend (caps with `onStoreFailure: closed` refuse meanwhile). */
  readonly degraded?: boolean;
  close(): void | Promise<void>;
}
