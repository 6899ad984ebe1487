/**
 * The in-process quota store (`server.rateLimitStore: memory`): one counter per key and period, for a single
 * gateway instance. Counts are lost when the process ends; quotas that must survive restarts or be shared between
 * instances need the Redis store (`redis-quotas.ts`).
 */
import type { QuotaCounter, QuotaDecision, QuotaStore } from '../../../shared/quota-store.ts';

interface Count {
  period: string;
  endsAt: number;
  used: number;
}

/** How often counters of ended periods are dropped (an unref'd timer). */
const SWEEP_EVERY_MS = 60_000;

export function createMemoryQuotas(): QuotaStore & { readonly size: number } {
  const counts = new Map<string, Count>();
  const timer = setInterval(function sweepQuotas() {
    const now = Date.now();
    for (const [key, c] of counts) if (c.endsAt <= now) counts.delete(key);
  }, SWEEP_EVERY_MS);
  timer.unref();

  function countOf(q: QuotaCounter): Count {
    let c = counts.get(q.key);
    if (c === undefined || c.period !== q.period)
      counts.set(q.key, (c = { period: q.period, endsAt: q.endsAt, used: 0 }));
    return c;
  }

  return {
    debit(counters, cost): QuotaDecision {
      checkDebit(counters, cost);
      const found = counters.map(countOf);
      const refused = found.findIndex((c, i) => c.used + cost > counters[i]!.limit);
      if (refused === -1) for (const c of found) c.used += cost;
      return { allowed: refused === -1, used: found.map((c) => c.used), refused };
    },
    get size() {
      return counts.size;
    },
    clear() {
      counts.clear();
    },
    close() {
      clearInterval(timer);
      counts.clear();
    },
  };
}

/** Limits and the cost come from validated configuration: anything else is a bug. */
export function checkDebit(counters: readonly QuotaCounter[], cost: number): void {
  if (!Number.isInteger(cost) || cost < 1) throw new RangeError(`a quota debit needs a whole cost >= 1, got ${cost}`);
  for (const q of counters)
    if (!(q.limit >= 1)) throw new RangeError(`a quota needs a limit >= 1, got ${q.limit} for ${q.key}`);
}
