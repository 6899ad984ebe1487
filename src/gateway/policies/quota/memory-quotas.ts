/**
 * The in-process quota store (`server.rateLimitStore: memory`): one counter per key and period, for a single
 * gateway instance. Counts are lost when the process ends; quotas that must survive restarts or be shared between
 * instances need the Redis store (`leased-quotas.ts`).
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
  const found: (Count | undefined)[] = [];
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
      // Every request of a quota'd route comes here: plain loops, one array (the answer's), no closures.
      // (`found` is reused: a debit is synchronous, and what it still holds afterwards is a few small counters.)
      const n = counters.length;
      const used = new Array<number>(n);
      let refused = -1;
      for (let i = 0; i < n; i++) {
        const q = counters[i]!;
        const c = (found[i] = countOf(q));
        used[i] = c.used;
        if (refused === -1 && c.used + cost > q.limit) refused = i;
      }
      if (refused === -1) for (let i = 0; i < n; i++) used[i] = found[i]!.used += cost;
      return { allowed: refused === -1, used, refused };
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
