/**
 * The quota store contract: what the quota policy asks of a store, implemented in process
 * (`gateway/policies/quota/memory-quotas.ts`, one instance) and shared through Redis (`redis-quotas.ts`: an atomic
 * Lua debit, exact across instances and kept across restarts); `quota-contract.ts` tests both.
 */

/** The outcome of one debit. A refusal is a value, not an exception. */
export interface QuotaDecision {
  allowed: boolean;
  limit: number;
  /** Units used in the period after this debit (before it, when refused). */
  used: number;
  /** Units still available in the period (`limit − used`, never negative). */
  remaining: number;
  /**
   * The store could not decide: the shared store is unavailable and the debit asked to fail closed. `allowed` is
   * false; the policy answers 503 rather than 429.
   */
  unavailable?: boolean;
}

export interface QuotaStore {
  /**
   * Spends `cost` units of `key`'s quota of `limit` in the period named `period` (its id, the same on every
   * instance), which ends at `endsAt` (ms since the epoch: the counter is kept a day longer, then dropped). Allowed
   * when `used + cost ≤ limit`; a refused debit counts nothing. Synchronous in memory; the shared store returns a
   * promise while it asks Redis.
   * @param failOpen while a shared store cannot reach its backend: true decides on this instance from the last
   * known usage (and adds what it admitted once the backend answers), false refuses with `unavailable`.
   */
  debit(
    key: string,
    limit: number,
    period: string,
    endsAt: number,
    cost: number,
    failOpen: boolean,
  ): QuotaDecision | Promise<QuotaDecision>;
  /** True while a shared store cannot reach its backend (read on every request: a field, not a call). */
  readonly degraded?: boolean;
  /** Drops all state (tests). */
  clear(): void | Promise<void>;
  close(): void | Promise<void>;
}
