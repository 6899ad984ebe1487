/**
 * The in-process quota store (`server.rateLimitStore: memory`): one counter per key and period, for a single
 * gateway instance. Counts are lost when the process ends; quotas that must survive restarts or be shared between
 * instances need the Redis store (`redis-quotas.ts`).
 */
import type { QuotaDecision, QuotaStore } from '../../../shared/quota-store.ts';

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

  return {
    debit(key, limit, period, endsAt, cost): QuotaDecision {
      checkDebit(limit, cost);
      let c = counts.get(key);
      if (c === undefined || c.period !== period) counts.set(key, (c = { period, endsAt, used: 0 }));
      if (c.used + cost > limit) return { allowed: false, limit, used: c.used, remaining: Math.max(0, limit - c.used) };
      c.used += cost;
      return { allowed: true, limit, used: c.used, remaining: limit - c.used };
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

/** `limit` and `cost` come from validated configuration: anything else is a bug. */
export function checkDebit(limit: number, cost: number): void {
  if (!(limit >= 1) || !Number.isInteger(cost) || cost < 1)
    throw new RangeError(`a quota debit needs limit >= 1 and a whole cost >= 1, got ${cost} of ${limit}`);
}
