/**
 * The shared quota store (`server.rateLimitStore: redis`): quotas exact across gateway instances (0 over) and kept
 * across gateway restarts, in Redis, with most debits decided without a network hop.
 *
 * **Leases.** Each instance leases units of a quota's period from Redis (the lease script of
 * `../rate-limit/redis-leases.ts` in its quota mode: atomically, never beyond `limit − count`), spends them
 * locally and gives back what it did not spend. A unit is added to the period's count in Redis when it is
 * *leased*, before it is spent, so the instances together never admit a unit over the quota. A debit is decided
 * synchronously (no promise) whenever this instance holds at least its cost of every counter of the request,
 * all or nothing. Otherwise it waits for one refill per counter lacking units (one lease call each, sent in the
 * same turn of the event loop and shared by every request waiting on that counter), then is decided.
 *
 * **Sizing.** As for rate limits: a refill asks for what the waiting requests need plus the counter's recent rate on
 * this instance × 250 ms (exponentially weighted); the script caps a grant at `max(need, ⌊available / (2 ×
 * active instances)⌋)`. A refill starts in the background when the holding is down to a quarter of the last
 * grant, so a steady load rarely waits.
 *
 * **Near the limit.** The fair-share cap makes the last units go out one (or one request's cost) at a time. A
 * refused refill (fewer units left than the request lacks) refuses the waiting requests and is remembered for
 * `RECHECK_MS` for requests that cost at least as much; so an exhausted quota is refused locally and re-checked
 * twice a second (a raised limit or a new period apply within that). Units another instance holds but does not
 * spend are unavailable to the others until it gives them back: after `IDLE_RETURN_MS` without spending any (a
 * refused request does not count: two instances each holding the last unit of one of two quotas a request needs
 * would otherwise refuse for ever), at the end of the period, on a lowered limit and on close(). A known gap: when
 * the limit is lowered while a lease call is out, the units that call brings back are spent (up to the old limit)
 * until they go idle; giving them back first would make requests of the old and the new snapshot undo each other's
 * leases while both are in flight. A request refused by one counter keeps the units
 * already leased for the others (held for the next requests, returned when not spent for that long).
 *
 * **A dead instance.** Its holding in Redis expires one lease period (`leaseTtlMs`) after its last call and is
 * **forfeited**: the units stay counted as used for the period, they do not return. The instance may have spent
 * any of them since its last call, and Redis cannot tell which, so giving them back could admit units over the
 * quota. The cost is bounded: what a crashed instance held (its recent rate × 250 ms, and near the limit a unit or
 * two) is lost to the period. An instance that stops normally gives its units back in close(). An instance that
 * was only cut off for longer than a lease period finds its holding forfeited at its next call, which reports none
 * held: the units it still held locally are dropped then (the safe side), and what it spent meanwhile was counted
 * when leased.
 *
 * **`used`.** The decision's usage (it feeds the RateLimit field `r = limit − used`) is an estimate: the count Redis
 * last reported to this instance, minus the units it still holds (leased, not spent), plus what it admitted alone
 * while Redis failed. Exact for one instance; with several it lags what the others spent since.
 *
 * **When Redis is slow or down.** A lease call that gets no answer within `commandTimeoutMs` fails (the deadline
 * tolerates a blocked event loop), the connection is dialled again, and the store is **degraded** until a call or
 * a PING succeeds (tried every 250 ms). Units already leased are still spent (synchronously, exactly), and a
 * request lacking units does not wait for Redis meanwhile: with `failOpen` (`onStoreFailure: open`, the default)
 * it is decided on this instance from the estimated usage above, and what it admitted is added to Redis's count
 * with the next call once Redis answers again (while it lasts, N instances may admit up to N times what was
 * left); without, it is refused as `unavailable` (and the policy, which reads `degraded` before it debits, answers
 * 503 for such quotas whatever this instance holds, as for rate limits). A call whose answer was lost is not known
 * to have counted: units it gave back or was granted are treated as gone (a unit may be lost to the period, never
 * admitted twice), and units admitted alone that it carried are added again (counted twice at worst, never missed).
 */
import { randomBytes } from 'node:crypto';
import type { QuotaCounter, QuotaDecision, QuotaStore } from '../../../shared/quota-store.ts';
import { connectLeases, type LeaseAnswer, type RedisLeases } from '../rate-limit/redis-leases.ts';
import { describeError, type SharedStoreState, storeErrorKind } from '../rate-limit/shared-store.ts';
import { checkDebit } from './memory-quotas.ts';

export interface LeasedQuotaOptions {
  url: string;
  /** Prefix of every Redis key (the rate-limit store's prefix + `q:`). @default 'gatehouse:rl:q:' */
  prefix?: string;
  /**
   * How long a holding lives in Redis without a call: a dead instance's holding is forfeited, and it stops
   * counting as a holder, after it. @default 5000
   */
  leaseTtlMs?: number;
  /** Housekeeping: returns of idle holdings, renewals, additions of units admitted alone, health PINGs. @default 100 */
  tickMs?: number;
  /** @default 500 */
  commandTimeoutMs?: number;
  /** @default 2000 */
  connectTimeoutMs?: number;
  onError?: (error: Error) => void;
  onStateChange?: (state: SharedStoreState) => void;
}

export interface LeasedQuotaStore extends QuotaStore {
  readonly degraded: boolean;
  state(): SharedStoreState;
  connected(): Promise<void>;
  /** Units admitted locally while Redis failed, not yet added to it (tests). */
  pending(): number;
  /** Units of `key`'s period `period` this instance holds, leased and not spent (tests). */
  held(key: string, period: string): number;
  /** Lease calls in flight (tests: a test waits for none before it cuts Redis off). */
  calls(): number;
  clear(): Promise<void>;
  close(): Promise<void>;
}

/** One counter's period as this instance holds it. */
interface Lease {
  key: string;
  period: string;
  endsAt: number;
  limit: number;
  /** Units leased and not spent. */
  units: number;
  /** Units spent while a call was out (its answer reports what was held when it was sent). */
  spentDuringCall: number;
  /** The call in flight (one at a time per lease, so that Redis's holding and `units` stay in step). */
  calling: Promise<unknown> | undefined;
  /** The cost of the requests waiting on this counter. */
  waiting: number;
  /** Units per ms, exponentially weighted, and when it was last updated (performance.now()). */
  rate: number;
  lastHit: number;
  /** When units of it were last spent (performance.now()): units not spent for a while go back. */
  lastSpend: number;

  /** The period's count at Redis's last answer (this instance's holding included), and what was left after it. */
  count: number;
  available: number;
  lastGrant: number;
  /** When Redis last answered for this lease (performance.now()). */
  lastCall: number;
  /** A refused refill stands until then (performance.now()) for requests lacking more than `available`. */
  refusedUntil: number;
  /** Units admitted here while Redis failed, not yet added to it. */
  pending: number;
}

/** How far ahead a refill provisions, at the counter's recent rate. */
const HORIZON_MS = 250;
/** A refused counter is re-checked with Redis at most this often. */
const RECHECK_MS = 500;
/** Unspent units of a counter not debited for this long go back to Redis. */
const IDLE_RETURN_MS = 1_000;
/** The rate estimate's memory. */
const RATE_HALF_LIFE_MS = 500;
/** While degraded, a PING this often tells when Redis is back. */
const PING_EVERY_MS = 250;
/** Leases holding nothing are forgotten after this long without a debit. */
const FORGET_AFTER_MS = 60_000;
/** Counters are kept this long after their period ends (late reports, clock skew between instances). */
const KEEP_AFTER_END_MS = 86_400_000;

export function createLeasedQuotas(options: LeasedQuotaOptions): LeasedQuotaStore {
  const prefix = options.prefix ?? 'gatehouse:rl:q:';
  const leaseTtlMs = options.leaseTtlMs ?? 5_000;
  const tickMs = options.tickMs ?? 100;
  const commandTimeoutMs = options.commandTimeoutMs ?? 500;
  const connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
  if (!(leaseTtlMs >= 100)) throw new RangeError(`leaseTtlMs must be at least 100, got ${leaseTtlMs}`);
  const instance = randomBytes(9).toString('base64url');
  let closed = false;
  let state: SharedStoreState = { status: 'connecting', since: Date.now() };
  const setState = (next: SharedStoreState) => {
    state = next;
    options.onStateChange?.(next);
  };
  const onError = (error: Error) => {
    if (closed) return;
    if (state.status !== 'degraded')
      setState({
        status: 'degraded',
        since: Date.now(),
        reason: describeError(error, commandTimeoutMs),
        kind: storeErrorKind(error),
      });
    options.onError?.(error);
  };
  const onSuccess = () => {
    if (state.status !== 'ok' && !closed) setState({ status: 'ok', since: Date.now() });
  };

  const link: RedisLeases = connectLeases({
    url: options.url,
    instance,
    leaseTtlMs,
    commandTimeoutMs,
    connectTimeoutMs,
    onError,
    onReady: () => void ping(),
  });

  /** The lease of each counter's current period, by counter name. */
  const leases = new Map<string, Lease>();
  /** Leases of periods left behind (or reached late): their units go back, then they are dropped. */
  const retired = new Set<Lease>();
  let pendingUnits = 0;
  let inFlight = 0;

  function newLease(q: QuotaCounter): Lease {
    const t = performance.now();
    return {
      key: q.key,
      period: q.period,
      endsAt: q.endsAt,
      limit: q.limit,
      units: 0,
      spentDuringCall: 0,
      calling: undefined,
      waiting: 0,
      rate: 0,
      lastHit: t,
      lastSpend: t,
      count: 0,
      available: q.limit,
      lastGrant: 0,
      lastCall: t,
      refusedUntil: 0,
      pending: 0,
    };
  }

  /** The lease of `q`'s period; a newer period retires the lease of the previous one. */
  function leaseOf(q: QuotaCounter): Lease {
    let l = leases.get(q.key);
    if (l === undefined) {
      l = newLease(q);
      leases.set(q.key, l);
    } else if (l.period !== q.period) {
      if (q.endsAt > l.endsAt) {
        retired.add(l);
        l = newLease(q);
        leases.set(q.key, l);
      } else {
        // A request of a period already left behind (it began before the turn): served by a retired lease.
        let old: Lease | undefined;
        for (const r of retired) if (r.key === q.key && r.period === q.period) old = r;
        if (old === undefined) retired.add((old = newLease(q)));
        l = old;
      }
    }
    if (l.limit !== q.limit) {
      const lowered = q.limit < l.limit;
      l.limit = q.limit;
      l.refusedUntil = 0;
      // Units leased under a higher limit would be spent beyond the lower one: they go back (`call` takes them off
      // at once). With a call out, what it brings back is spent first (a known gap: see the module doc).
      if (lowered && l.units > 0 && l.calling === undefined && link.ready()) run(l, l.units, 0, 1);
    }
    return l;
  }

  const usedOf = (l: Lease) => Math.max(0, l.count - l.units) + l.pending;

  /**
   * One lease call: reports the units held, gives back `release` of them, adds the units admitted alone, asks for
   * `want` more.
   */
  function call(l: Lease, release: number, want: number, need: number): Promise<LeaseAnswer> {
    const held = l.units;
    l.units -= release;
    l.spentDuringCall = 0;
    // Still counted by pending() until Redis acknowledges them.
    const added = l.pending;
    l.pending = 0;
    const count = prefix + l.key + '\u0000' + l.period;
    inFlight++;
    return link
      .lease({
        count,
        holdings: `${count}\u0000h`,
        held,
        release,
        want,
        limit: l.limit,
        windowMs: 0,
        leftMs: 0,
        keyTtlMs: Math.max(1_000, l.endsAt + KEEP_AFTER_END_MS - Date.now()),
        spent: added,
        need,
        quota: true,
      })
      .then(
        (answer) => {
          onSuccess();
          pendingUnits = Math.max(0, pendingUnits - added);
          l.units = Math.max(0, answer.held - l.spentDuringCall);
          l.count = answer.count;
          l.available = answer.available;
          l.lastCall = performance.now();
          if (answer.granted > 0) l.lastGrant = answer.granted;
          return answer;
        },
        (error: unknown) => {
          // Not known to have been added: added again with the next call (counted twice at worst, never missed).
          l.pending += added;
          onError(error as Error);
          throw error;
        },
      )
      .finally(() => inFlight--);
  }

  /** `call` as the lease's one call in flight. */
  function run(l: Lease, release: number, want: number, need: number): Promise<LeaseAnswer | undefined> {
    const p = call(l, release, want, need).catch(() => undefined);
    l.calling = p;
    void p.then(() => {
      if (l.calling === p) l.calling = undefined;
    });
    return p;
  }

  /** Asks for the units the waiting requests lack plus the recent rate × the horizon; shared while in flight. */
  function refill(l: Lease, cost: number): Promise<unknown> {
    if (l.calling !== undefined) return l.calling;
    const need = Math.max(1, cost - l.units);
    const want = Math.max(need, l.waiting - l.units + Math.ceil(l.rate * HORIZON_MS));
    const p = (async () => {
      if (!link.ready() && state.status === 'connecting') await link.untilReady(commandTimeoutMs);
      const answer = await call(l, 0, want, need).catch(() => undefined);
      if (answer !== undefined && answer.granted === 0) l.refusedUntil = performance.now() + RECHECK_MS;
    })();
    l.calling = p;
    void p.then(() => {
      if (l.calling === p) l.calling = undefined;
    });
    return p;
  }

  /** A refusal that stands on this instance: `cost` does not fit what `l` holds plus what Redis had left. */
  const stands = (l: Lease, cost: number, t: number) =>
    l.units < cost && t < l.refusedUntil && cost > l.units + l.available;

  function refusal(ls: Lease[], refused: number): QuotaDecision {
    return { allowed: false, used: ls.map(usedOf), refused };
  }

  /** Spends `cost` of every lease (each holds at least that). */
  function spend(ls: Lease[], cost: number): QuotaDecision {
    const used = new Array<number>(ls.length);
    const t = performance.now();
    for (let i = 0; i < ls.length; i++) {
      const l = ls[i]!;
      l.units -= cost;
      l.lastSpend = t;
      if (l.calling !== undefined) l.spentDuringCall += cost;
      else if (l.units <= l.lastGrant / 4 && state.status === 'ok' && !closed && performance.now() >= l.refusedUntil)
        void refill(l, 1);
      used[i] = usedOf(l);
    }
    return { allowed: true, used, refused: -1 };
  }

  /** Decided on this instance alone (Redis failed): from the estimated usage, spending what is held first. */
  function local(ls: Lease[], cost: number, failOpen: boolean): QuotaDecision {
    if (!failOpen) return { allowed: false, used: ls.map(usedOf), refused: -1, unavailable: true };
    const refused = ls.findIndex((l) => l.units < cost && usedOf(l) + cost > l.limit);
    if (refused !== -1) return refusal(ls, refused);
    for (const l of ls) {
      const take = Math.min(l.units, cost);
      l.units -= take;
      l.lastSpend = performance.now();
      if (l.calling !== undefined) l.spentDuringCall += take;
      l.pending += cost - take;
      pendingUnits += cost - take;
    }
    return { allowed: true, used: ls.map(usedOf), refused: -1 };
  }

  const alone = () => closed || state.status === 'degraded' || (!link.ready() && state.status !== 'connecting');

  /** A debit lacking units: refills of the counters that lack them, then decided (again if others took them first). */
  async function settle(counters: readonly QuotaCounter[], cost: number, failOpen: boolean): Promise<QuotaDecision> {
    for (;;) {
      const ls = counters.map(leaseOf);
      const lacking = ls.filter((l) => l.units < cost);
      if (lacking.length === 0) return spend(ls, cost);
      const t = performance.now();
      const refused = ls.findIndex((l) => stands(l, cost, t));
      if (refused !== -1) return refusal(ls, refused);
      if (alone()) return local(ls, cost, failOpen);
      for (const l of lacking) l.waiting += cost;
      try {
        await Promise.all(lacking.map((l) => refill(l, cost)));
      } finally {
        for (const l of lacking) l.waiting -= cost;
      }
    }
  }

  async function ping(): Promise<void> {
    try {
      await link.ping();
      onSuccess();
    } catch (error) {
      onError(error as Error);
    }
  }

  let lastPing = 0;
  const timer = setInterval(() => {
    const t = performance.now();
    if (state.status !== 'ok' && link.ready() && t - lastPing >= PING_EVERY_MS) {
      lastPing = t;
      void ping();
    }
    const usable = state.status === 'ok' && link.ready();
    const now = Date.now();
    for (const l of retired) {
      if (l.calling !== undefined) continue;
      if (usable && (l.units > 0 || l.pending > 0)) run(l, l.units, 0, 1);
      else if (l.units === 0 && l.pending === 0) retired.delete(l);
      else if (now >= l.endsAt + KEEP_AFTER_END_MS) {
        pendingUnits = Math.max(0, pendingUnits - l.pending);
        retired.delete(l);
      }
    }
    for (const [key, l] of leases) {
      if (l.calling !== undefined || l.waiting > 0) continue;
      if (usable && l.units > 0 && (t - l.lastSpend > IDLE_RETURN_MS || now >= l.endsAt)) run(l, l.units, 0, 1);
      else if (usable && l.pending > 0) run(l, 0, 0, 1);
      // Kept alive while it holds units, so that they can still be given back.
      else if (usable && l.units > 0 && t - l.lastCall > leaseTtlMs / 2) run(l, 0, 0, 1);
      else if (l.units === 0 && l.pending === 0 && t - l.lastHit > FORGET_AFTER_MS) leases.delete(key);
    }
  }, tickMs);
  timer.unref();

  return {
    debit(counters, cost, failOpen): QuotaDecision | Promise<QuotaDecision> {
      checkDebit(counters, cost);
      const t = performance.now();
      const ls = counters.map(leaseOf);
      let enough = true;
      for (const l of ls) {
        // The rate is in units: an expensive operation provisions for what it spends.
        l.rate = l.rate * 0.5 ** ((t - l.lastHit) / RATE_HALF_LIFE_MS) + (cost * Math.LN2) / RATE_HALF_LIFE_MS;
        l.lastHit = t;
        if (l.units < cost) enough = false;
      }
      if (enough) return spend(ls, cost);
      // More than the whole quota never fits: refused without asking Redis.
      const over = counters.findIndex((q) => cost > q.limit);
      if (over !== -1) return refusal(ls, over);
      const refused = ls.findIndex((l) => stands(l, cost, t));
      if (refused !== -1) return refusal(ls, refused);
      if (alone()) return local(ls, cost, failOpen);
      return settle(counters, cost, failOpen);
    },
    get degraded() {
      return state.status === 'degraded';
    },
    state: () => ({ ...state }),
    connected() {
      return link.connected();
    },
    pending: () => pendingUnits,
    held(key, period) {
      const l = leases.get(key);
      if (l?.period === period) return l.units;
      for (const r of retired) if (r.key === key && r.period === period) return r.units;
      return 0;
    },
    calls: () => inFlight,
    async clear() {
      leases.clear();
      retired.clear();
      pendingUnits = 0;
      if (!link.ready()) return;
      let cursor = '0';
      do {
        const [next, keys] = await link.redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await link.redis.del(...keys);
      } while (cursor !== '0');
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      if (link.ready()) {
        // Unspent units go back now (a holding left to expire would be forfeited), with what was admitted alone.
        const giveBack = async (l: Lease) => {
          if (l.calling !== undefined) await l.calling;
          if (l.units > 0 || l.pending > 0) await call(l, l.units, 0, 1).catch(() => {});
        };
        const all = [...leases.values(), ...retired].map(giveBack);
        await Promise.race([Promise.all(all), new Promise((r) => setTimeout(r, 1_000).unref())]);
        await link.redis.quit().catch(() => link.redis.disconnect());
      } else link.redis.disconnect();
      leases.clear();
      retired.clear();
    },
  };
}
