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
  /** Units that would still be allowed right now (after this hit's cost, when it was allowed): requests of cost 1. */
  remaining: number;
  /** ms until enough capacity frees for one more request of the same cost (0 when allowed). */
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
   * Counts one hit of weight `cost` for `key` against `limit` per `windowMs` and decides: the hit is allowed when
   * `cost` more units fit, and then counts `cost` times (an expensive operation uses a limit up faster); a refused
   * hit is not counted at all. A cost above the limit never fits. Synchronous for the in-memory store and the
   * sync-mode shared store; the lease store answers synchronously while it holds enough units of the key and returns
   * a promise only when it must ask Redis for more. `limit`, `windowMs` and `cost` come from validated
   * configuration; invalid values (< 1, NaN, a fractional cost) are a bug and throw a RangeError. Windows are
   * aligned to multiples of `windowMs` since the epoch; a key hit with a different `windowMs` than before starts
   * afresh.
   * @param now ms since the epoch (default `Date.now()`); injectable for tests.
   * @param cost units this hit spends (default 1: the operation's `cost`).
   */
  hit(
    key: string,
    limit: number,
    windowMs: number,
    now?: number,
    cost?: number,
  ): RateLimitDecision | Promise<RateLimitDecision>;
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
