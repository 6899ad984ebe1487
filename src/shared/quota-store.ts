/**
 * The quota store contract: what the quota policy asks of a store, implemented in process
 * (`gateway/policies/quota/memory-quotas.ts`, one instance) and shared through Redis (`leased-quotas.ts`: units
 * leased from Redis and spent locally, exact across instances and kept across restarts); `quota-contract.ts` tests both.
 */

/** One quota a request is counted against: a counter of one period. */
export interface QuotaCounter {
  /** The counter's name without its period (scope, collection, client or org id). */
  readonly key: string;
  readonly limit: number;
  /** The period's id (`2026-12-07`, `2026-12`): the same on every instance. */
  readonly period: string;
  /** When the period ends (ms since the epoch): the counter is kept a day longer, then dropped. */
  readonly endsAt: number;
}

/** The outcome of one debit. A refusal is a value, not an exception. */
export interface QuotaDecision {
  allowed: boolean;
  /** Units used of each counter, in order: after this debit, or as it stood when the debit was refused. */
  used: number[];
  /** Index of the first counter that had no room for the cost; -1 when allowed (or unavailable). */
  refused: number;
  /**
   * The store could not decide: the shared store is unavailable and the debit asked to fail closed. `allowed` is
   * false; the policy answers 503 rather than 429.
   */
  unavailable?: boolean;
}

export interface QuotaStore {
  /**
   * Spends `cost` units of every counter in `counters`, all or nothing: allowed when `used + cost ≤ limit` holds
   * for each; a refused debit counts nothing anywhere (a request refused by its org's quota does not use up its
   * client's). Synchronous in memory; the shared store returns a promise while it asks Redis.
   * @param failOpen while a shared store cannot reach its backend: true decides on this instance from the last
   * known usage (and adds what it admitted once the backend answers), false refuses with `unavailable`.
   */
  debit(counters: readonly QuotaCounter[], cost: number, failOpen: boolean): QuotaDecision | Promise<QuotaDecision>;
  /** True while a shared store cannot reach its backend (read on every request: a field, not a call). */
  readonly degraded?: boolean;
  /** Drops all state (tests). */
  clear(): void | Promise<void>;
  close(): void | Promise<void>;
}
