/**
 * The rate-limit store contract: what the rate-limit policy asks of a store, implemented in process
 * (`gateway/policies/rate-limit/memory-store.ts`) and shared through Redis (`lease-store.ts`, exact; `shared-store.ts`,
 * synced);
 * `store-contract.ts` tests both. A home of its own so that neither store defines the other's interface.
 */

/** The outcome of one hit. A refusal is a value, not an exception. */
export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  /** Hits that would still be allowed right now (after this one, when it was allowed). */
  remaining: number;
  /** ms until enough capacity frees for one more request (0 when allowed). */
  retryAfterMs: number;
  /**
   * ms until the full limit is available again, i.e. until every counted hit has stopped weighing (the RateLimit
   * header's `t`). In a sliding window a hit weighs until the end of the window *after* the one it fell in, so this
   * lies between one and two windows while a key is active; 0 for a key with nothing counted.
   */
  resetMs: number;
}

export interface RateLimitStore {
  /**
   * Counts one hit for `key` against `limit` per `windowMs` and decides. A refused hit is not counted. Synchronous
   * for the in-memory store and the sync-mode shared store; the lease store answers synchronously while it holds
   * units of the key and returns a promise only when it must ask Redis for more. `limit` and `windowMs` come from validated configuration; invalid values (< 1, NaN)
   * are a bug and throw a RangeError. Windows are aligned to multiples of `windowMs` since the epoch; a key hit with
   * a different `windowMs` than before starts afresh.
   * @param now ms since the epoch (default `Date.now()`); injectable for tests.
   */
  hit(key: string, limit: number, windowMs: number, now?: number): RateLimitDecision | Promise<RateLimitDecision>;
  /** Drops all state (tests; a reload with changed limits works without it). */
  clear(): void;
  /**
   * True while a shared store cannot reach its backend and counts locally; absent (never degraded) for the memory
   * store. Limits with `onStoreFailure: closed` refuse meanwhile. Read on every request: a field, not a call.
   */
  readonly degraded?: boolean;
  /** Releases timers and connections (a shared store first sends what is pending). Idempotent. */
  close(): void | Promise<void>;
}
