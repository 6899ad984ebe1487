/**
 * Length (about 580 lines): the store's local spending, its refills and returns, and its fallback while
 * Redis fails are one protocol with the lease script (redis-leases.ts); split, each half would explain the other.
 *
 * The exact shared rate-limit store (`server.rateLimitStore: { type: redis, mode: lease }`, the default): limits
 * hold across gateway instances to the unit, and most requests are still decided without a network hop.
 *
 * Each instance leases units of a key's current sliding window from Redis (redis-leases.ts: atomically, never more
 * than the window allows, with a lease period after which a dead instance's units return), spends them locally,
 * and gives back what it did not spend when it goes idle or the window ends. Because a unit is counted in Redis
 * before it is spent, the instances together never admit more than the limit.
 *
 * **Sizing.** A refill asks for the units waiting requests need plus the key's recent rate on this instance × 250 ms
 * (an exponentially weighted rate, so a burst raises it within a few requests); the script caps every grant at
 * `max(1, ⌊available / (2 × instances holding a lease)⌋)`. A busy instance therefore holds more than a quiet one,
 * more instances each hold less, and near the limit the last units are granted one at a time. A refill starts in
 * the background when an instance is down to a quarter of its last grant, so a steady load rarely waits.
 *
 * **When a request waits.** Only when this instance holds no unit of the key: the request waits for the refill in
 * flight (one Redis round trip, shared by every request waiting on the key). A refused refill (the window is
 * spent) refuses the waiting requests and is remembered for at most 250 ms (less if the window frees sooner),
 * so a key over its limit is refused locally and re-checked four times a second.
 *
 * **When Redis is slow or down.** A lease call that gets no answer within `commandTimeoutMs` fails (the deadline
 * tolerates a blocked event loop: see redis-leases.ts) and the connection is dialled again; the store is degraded
 * until a call or a PING succeeds. Units already leased are still spent until their lease ends (they are counted in
 * Redis, so this stays exact). A request that needs more waits while the failure is shorter than a lease period
 * (`leaseTtlMs`; refills are retried every 50 ms): a timeout may be a slow Redis or a saturated event loop, and
 * deciding alone then would admit units other instances are spending. After that, `onStoreFailure: open` limits
 * (the default) let each instance admit
 * alone a budget fixed at its first such decision in the window: what the window still allowed at the last answer
 * divided among the instances seen — so the total stays near the limit when Redis fails mid-window, while with
 * Redis down since before the window each instance admits up to the whole limit (as the memory store would).
 * `closed` limits are refused with 503 by the policy (it reads `degraded`). A slow or failing Redis delays only
 * requests that found no unit, by at most one lease period; hits admitted alone are not added to the shared count.
 */
import { randomBytes } from 'node:crypto';
import type { RateLimitDecision, RateLimitStore } from '../../../shared/rate-limit-store.ts';
import { connectLeases, type LeaseAnswer, type RedisLeases } from './redis-leases.ts';
import { describeError, type SharedStoreState, storeErrorKind } from './shared-store.ts';
import { checkLimit, type Counter, decide, windowStart } from './sliding-window.ts';

export interface LeaseStoreOptions {
  url: string;
  /** Prefix of every Redis key; gateways that share limits share it. @default 'gatehouse:rl:' */
  prefix?: string;
  /** How long a lease lives without renewal: a dead instance's unspent units return after at most this. @default 2000 */
  leaseTtlMs?: number;
  /** Housekeeping: renewals, returns of idle leases, health PINGs. @default 100 */
  tickMs?: number;
  /** @default 500 */
  commandTimeoutMs?: number;
  /** @default 2000 */
  connectTimeoutMs?: number;
  /** Most keys tracked in process. @default 1_000_000 */
  maxKeys?: number;
  onError?: (error: Error) => void;
  onConnect?: () => void;
  onStateChange?: (state: SharedStoreState) => void;
}

export interface LeaseRateLimitStore extends RateLimitStore {
  readonly degraded: boolean;
  state(): SharedStoreState;
  /** Resolves once the connection to Redis is up. */
  connected(): Promise<void>;
  /** Units this instance holds for `key` (tests). */
  held(key: string): number;
  close(): Promise<void>;
}

/** How far ahead a refill provisions, at the key's recent rate. */
const HORIZON_MS = 250;
/** A refused key is re-checked with Redis at least this often (units may come back sooner than the window frees). */
const RECHECK_MS = 250;
/** Unspent units of a key not hit for this long go back to Redis. */
const IDLE_RETURN_MS = 1_000;
/** The rate estimate's memory. */
const RATE_HALF_LIFE_MS = 500;
const PING_EVERY_MS = 1_000;
/** While Redis fails for less than a lease period, a waiting request's refill is tried again this often. */
const RETRY_MS = 50;

interface Waiter {
  now: number;
  /** Units this hit spends. */
  cost: number;
  resolve: (d: RateLimitDecision) => void;
}

/** One key's lease of its current window on this instance. */
interface Lease {
  key: string;
  limit: number;
  windowMs: number;
  start: number;
  /** Unspent units, usable until `expiresAt` (performance.now()). */
  units: number;
  expiresAt: number;
  /** Units spent while a call was out (its answer reports what was held when it was sent). */
  spentDuringCall: number;
  /** Units spent since the last report Redis acknowledged, and when that was (performance.now()). */
  unreported: number;
  lastReport: number;
  calling: boolean;
  waiters: Waiter[];
  /** Hits per ms, exponentially weighted, and when it was last updated (performance.now()). */
  rate: number;
  lastHit: number;
  /** The last answer: what the window still allowed, its count and the previous window's, and lease holders. */
  available: number;
  count: number;
  previous: number;
  holders: number;
  lastGrant: number;
  /** A refusal remembered until `refusedUntil` (performance.now()), decided at caller time `refusedAt`. */
  refusal: RateLimitDecision | undefined;
  /** The cost of the refused hit: a cheaper hit is not refused by it. */
  refusalCost: number;
  refusedAt: number;
  refusedUntil: number;
  /** What this instance may still admit alone in this window while Redis fails (set at the first such hit). */
  localBudget: number | undefined;
}

export function createLeaseStore(options: LeaseStoreOptions): LeaseRateLimitStore {
  const prefix = options.prefix ?? 'gatehouse:rl:';
  const leaseTtlMs = options.leaseTtlMs ?? 2_000;
  const tickMs = options.tickMs ?? 100;
  const commandTimeoutMs = options.commandTimeoutMs ?? 500;
  const connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
  const maxKeys = options.maxKeys ?? 1_000_000;
  if (!(leaseTtlMs >= 100)) throw new RangeError(`leaseTtlMs must be at least 100, got ${leaseTtlMs}`);
  // Units are spent during the first half of a lease only: the second half is the time the spending has to reach
  // Redis (a busy event loop, a slow network) before Redis, seeing the lease end, gives back its holding as unspent.
  const usableMs = leaseTtlMs / 2;
  const instance = randomBytes(9).toString('base64url');
  let closed = false;
  let state: SharedStoreState = { status: 'connecting', since: Date.now() };
  let lastContact = 0;
  const setState = (next: SharedStoreState) => {
    state = next;
    options.onStateChange?.(next);
  };
  const onError = (error: Error) => {
    if (closed) return;
    if (state.status !== 'degraded') {
      const reason = describeError(error, commandTimeoutMs);
      setState({ status: 'degraded', since: Date.now(), reason, kind: storeErrorKind(error) });
    }
    options.onError?.(error);
  };
  const onSuccess = () => {
    lastContact = Date.now();
    if (state.status !== 'ok' && !closed) setState({ status: 'ok', since: lastContact });
  };

  const link: RedisLeases = connectLeases({
    url: options.url,
    instance,
    leaseTtlMs,
    commandTimeoutMs,
    connectTimeoutMs,
    onError,
    onReady: () => {
      options.onConnect?.();
      void ping();
    },
  });

  const leases = new Map<string, Lease>();
  /** The most instances active on any key at the last answers (decays by one every lease period without more). */
  let instancesSeen = 1;
  let instancesSeenAt = 0;
  let clearing: Promise<void> | undefined;

  const base = (l: { key: string; windowMs: number }, start: number) =>
    `${prefix}${l.key}\u0000${l.windowMs}\u0000${start}`;
  const keyTtl = (windowMs: number) => 2 * windowMs + leaseTtlMs + 1_000;

  function newLease(key: string, limit: number, windowMs: number, now: number): Lease {
    return {
      key,
      limit,
      windowMs,
      start: windowStart(windowMs, now),
      units: 0,
      expiresAt: 0,
      spentDuringCall: 0,
      unreported: 0,
      lastReport: performance.now(),
      calling: false,
      waiters: [],
      rate: 0,
      lastHit: performance.now(),
      available: limit,
      count: 0,
      previous: 0,
      holders: 1,
      lastGrant: 0,
      refusal: undefined,
      refusalCost: 1,
      refusedAt: 0,
      refusedUntil: 0,
      localBudget: undefined,
    };
  }

  /**
   * One lease call for `l`'s window starting at `start`: reports the units held and those spent since the last
   * report, gives back `release` of them, asks for `want` more.
   */
  function call(l: Lease, start: number, held: number, release: number, want: number, leftMs: number, need = 1) {
    const b = base(l, start);
    const pb = base(l, start - l.windowMs);
    const spent = l.unreported;
    l.unreported = 0;
    return link
      .lease({
        count: b,
        holdings: `${b}\u0000h`,
        previousCount: pb,
        previousHoldings: `${pb}\u0000h`,
        held,
        release,
        want,
        limit: l.limit,
        windowMs: l.windowMs,
        leftMs,
        keyTtlMs: keyTtl(l.windowMs),
        spent,
        need,
      })
      .then(
        (answer) => {
          onSuccess();
          l.lastReport = performance.now();
          return answer;
        },
        (error: unknown) => {
          l.unreported += spent;
          onError(error as Error);
          throw error;
        },
      );
  }

  function seen(holders: number): void {
    const t = performance.now();
    if (holders >= instancesSeen || t - instancesSeenAt > leaseTtlMs) {
      instancesSeen = holders >= instancesSeen ? holders : instancesSeen - 1;
      instancesSeenAt = t;
    }
  }

  /** Whether Redis has failed for a lease period or more: hits without units are then decided alone. */
  function failedLong(): boolean {
    return state.status === 'degraded' && Date.now() - state.since >= leaseTtlMs;
  }

  /** Gives back a lease's unspent units (its window ended, its limit changed, or it went idle). */
  function giveBack(l: Lease, start: number, units: number): void {
    if ((units <= 0 && l.unreported === 0) || !link.ready()) return;
    call(l, start, units, units, 0, 0).catch(() => {});
  }

  function hit(
    key: string,
    limit: number,
    windowMs: number,
    now: number = Date.now(),
    cost = 1,
  ): RateLimitDecision | Promise<RateLimitDecision> {
    checkLimit(limit, windowMs, cost);
    if (clearing !== undefined) return clearing.then(() => hit(key, limit, windowMs, now, cost));
    let l = leases.get(key);
    if (l === undefined) {
      if (leases.size >= maxKeys) evictIdle();
      l = newLease(key, limit, windowMs, now);
      leases.set(key, l);
    } else if (l.windowMs !== windowMs || l.limit !== limit || windowStart(windowMs, now) > l.start) {
      // A new window (or a changed limit): what is left of the old lease goes back, then the key starts afresh.
      giveBack(l, l.start, l.units);
      const next = newLease(key, limit, windowMs, now);
      next.rate = l.rate;
      next.lastHit = l.lastHit;
      next.waiters = l.waiters;
      l.waiters = [];
      l.units = 0;
      leases.set(key, next);
      l = next;
    }
    const t = performance.now();
    // The rate is in units: an expensive operation provisions for what it spends.
    l.rate = l.rate * 0.5 ** ((t - l.lastHit) / RATE_HALF_LIFE_MS) + (cost * Math.LN2) / RATE_HALF_LIFE_MS;
    l.lastHit = t;

    if (l.units >= cost && t < l.expiresAt) {
      l.units -= cost;
      l.unreported += cost;
      if (l.calling) l.spentDuringCall += cost;
      else if (l.units <= l.lastGrant / 4) void refill(l, now);
      return allowed(l, now);
    }
    // More than the whole limit never fits: refused without asking Redis.
    if (cost > limit) return refused(l, now, cost);
    if (
      l.refusal !== undefined &&
      cost >= l.refusalCost &&
      t < l.refusedUntil &&
      now - l.refusedAt < l.refusal.retryAfterMs
    ) {
      const elapsed = Math.max(0, now - l.refusedAt);
      return {
        ...l.refusal,
        retryAfterMs: l.refusal.retryAfterMs - elapsed,
        resetMs: Math.max(1, l.refusal.resetMs - elapsed),
      };
    }
    if (closed || failedLong()) return local(l, now, cost);
    return new Promise<RateLimitDecision>((resolve) => {
      l.waiters.push({ now, cost, resolve });
      if (!l.calling) void refill(l, now);
    });
  }

  function allowed(l: Lease, now: number): RateLimitDecision {
    const left = l.start + l.windowMs - now;
    return {
      allowed: true,
      limit: l.limit,
      remaining: Math.max(0, l.available + l.units),
      retryAfterMs: 0,
      resetMs: left + l.windowMs,
    };
  }

  /** The refusal of a hit at `now` on the window as Redis last counted it. */
  function refused(l: Lease, now: number, cost: number): RateLimitDecision {
    // Units this instance holds are counted in Redis but still spendable here: the next grant needs only the rest.
    const current = Math.max(0, l.count - l.units);
    const c: Counter = { start: l.start, windowMs: l.windowMs, current, previous: l.previous };
    const d = decide(c, l.limit, now, cost);
    return d.allowed ? { allowed: false, limit: l.limit, remaining: 0, retryAfterMs: 1, resetMs: d.resetMs } : d;
  }

  /**
   * Deciding on this instance alone (Redis failed, or the store is closing): a budget for the rest of the window,
   * fixed at the first such decision — what the window still allowed at the last answer, divided among the
   * instances seen (with no answer yet, the whole limit). So a timeout in the middle of a burst (a saturated event
   * loop, a slow Redis) cannot open a second allowance, and a Redis that flaps cannot refill the budget.
   */
  function local(l: Lease, now: number, cost: number): RateLimitDecision {
    l.localBudget ??= Math.floor(l.available / Math.max(1, l.holders, instancesSeen));
    const left = l.start + l.windowMs - now;
    if (l.localBudget >= cost) {
      l.localBudget -= cost;
      return { allowed: true, limit: l.limit, remaining: l.localBudget, retryAfterMs: 0, resetMs: left + l.windowMs };
    }
    return {
      allowed: false,
      limit: l.limit,
      remaining: 0,
      retryAfterMs: Math.max(1, left),
      resetMs: left + l.windowMs,
    };
  }

  async function refill(l: Lease, now: number): Promise<void> {
    if (l.calling) return;
    l.calling = true;
    l.spentDuringCall = 0;
    const rateWant = Math.ceil(l.rate * HORIZON_MS);
    let waiting = 0;
    for (const w of l.waiters) waiting += w.cost;
    // The first waiter's cost must be granted whole or not at all: a part of it would be held for nothing.
    const need = l.waiters.length > 0 ? Math.max(1, l.waiters[0]!.cost - l.units) : 1;
    const want = Math.max(need, waiting - l.units + rateWant);
    if (!link.ready() && state.status === 'connecting') await link.untilReady(commandTimeoutMs);
    const sentAt = performance.now();
    const sentStart = l.start;
    let answer: LeaseAnswer | undefined;
    try {
      // Units past their local expiry are reported too: Redis keeps them if the holding is still alive (and the
      // answer makes them usable again), or has given them back already.
      const held = l.units;
      answer = await call(l, l.start, held, 0, want, l.start + l.windowMs - Math.max(now, l.start), need);
    } catch {
      answer = undefined;
    }
    l.calling = false;
    const waiters = l.waiters;
    if (answer === undefined) {
      if (failedLong() || closed) {
        l.waiters = [];
        for (const w of waiters) w.resolve(local(l, w.now, w.cost));
      } else {
        // A failure shorter than a lease period may be a slow Redis or a saturated event loop rather than an
        // outage: deciding alone now would admit units other instances are spending. Ask again shortly.
        setTimeout(() => {
          if (l.waiters.length > 0 && !l.calling) void refill(l, l.waiters[0]!.now);
        }, RETRY_MS).unref();
      }
      return;
    }
    if (leases.get(l.key) !== l || l.start !== sentStart) {
      // The key moved on while the call was out: the grant belongs to a window no longer served.
      giveBack(l, sentStart, answer.held);
      l.waiters = [];
      for (const w of waiters) void Promise.resolve(hit(l.key, l.limit, l.windowMs, w.now, w.cost)).then(w.resolve);
      return;
    }
    l.units = Math.max(0, answer.held - l.spentDuringCall);
    l.expiresAt = sentAt + usableMs;
    l.available = answer.available;
    l.count = answer.count;
    l.previous = answer.previous;
    l.holders = answer.holders;
    seen(answer.holders);
    if (answer.granted > 0) l.lastGrant = answer.granted;
    let i = 0;
    // In order of arrival: a cheap hit does not overtake an expensive one that is still owed its units.
    for (; i < waiters.length && l.units >= waiters[i]!.cost; i++) {
      l.units -= waiters[i]!.cost;
      l.unreported += waiters[i]!.cost;
      waiters[i]!.resolve(allowed(l, waiters[i]!.now));
    }
    const rest = waiters.slice(i);
    l.waiters = [];
    if (rest.length === 0) return;
    if (answer.granted > 0) {
      // The fair-share cap granted fewer than were waiting: ask again for the rest (the first of them is always
      // served by the next grant, which is at least its `need`, or refused).
      l.waiters = rest;
      void refill(l, rest[0]!.now);
      return;
    }
    const first = rest[0]!;
    const d = refused(l, first.now, first.cost);
    l.refusal = d;
    l.refusalCost = first.cost;
    l.refusedAt = first.now;
    l.refusedUntil = performance.now() + Math.min(RECHECK_MS, d.retryAfterMs);
    for (const w of rest) w.resolve(w.now === l.refusedAt && w.cost === first.cost ? d : refused(l, w.now, w.cost));
  }

  function evictIdle(): void {
    let n = Math.ceil(maxKeys / 64);
    for (const [key, l] of leases) {
      if (l.calling || l.waiters.length > 0) continue;
      giveBack(l, l.start, l.units);
      leases.delete(key);
      if (--n === 0) break;
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
  let notReadySince: number | undefined = performance.now();
  const timer = setInterval(() => {
    const t = performance.now();
    if (!link.ready()) {
      notReadySince ??= t;
      // ioredis reports failed attempts itself; this is the backstop for a connection that neither fails nor completes.
      if (state.status !== 'degraded' && t - notReadySince > connectTimeoutMs + commandTimeoutMs) {
        link.redis.disconnect(true);
        onError(
          Object.assign(new Error(`no connection to Redis within ${connectTimeoutMs + commandTimeoutMs}ms`), {
            code: 'ETIMEDOUT',
          }),
        );
      }
    } else notReadySince = undefined;
    if (link.ready() && (state.status !== 'ok' || Date.now() - lastContact > PING_EVERY_MS) && t - lastPing > tickMs) {
      lastPing = t;
      void ping();
    }
    const now = Date.now();
    for (const [key, l] of leases) {
      if (l.calling) continue;
      if (l.units > 0 && t - l.lastHit > IDLE_RETURN_MS) {
        giveBack(l, l.start, l.units);
        l.units = 0;
      } else if (
        state.status === 'ok' &&
        ((l.units > 0 && l.expiresAt - t < usableMs / 2) || (l.unreported > 0 && t - l.lastReport > usableMs / 4))
      ) {
        // Renewed before it ends, and spending reported well within the lease period: Redis gives back the
        // holding of a lease that ends, as unspent, so what was spent must be known to it first.
        void renew(l, now);
      } else if (l.units === 0 && l.unreported === 0 && l.waiters.length === 0 && now >= l.start + 2 * l.windowMs) {
        leases.delete(key);
      }
    }
  }, tickMs);
  timer.unref();

  /** Reports what a lease spent and extends it, without asking for more. */
  async function renew(l: Lease, now: number): Promise<void> {
    l.calling = true;
    l.spentDuringCall = 0;
    const sentAt = performance.now();
    const start = l.start;
    try {
      const answer = await call(l, start, l.units, 0, 0, start + l.windowMs - Math.max(now, start));
      if (leases.get(l.key) === l && l.start === start) {
        l.units = Math.max(0, answer.held - l.spentDuringCall);
        l.expiresAt = sentAt + usableMs;
        l.available = answer.available;
        l.holders = answer.holders;
      } else giveBack(l, start, answer.held);
    } catch {
      // Reported as an error by `call`; the units stay usable until the lease ends.
    } finally {
      l.calling = false;
    }
    if (l.waiters.length > 0) void refill(l, l.waiters[0]!.now);
  }

  return {
    hit,
    get degraded() {
      return state.status === 'degraded';
    },
    state: () => ({ ...state }),
    connected() {
      return link.connected();
    },
    held: (key) => leases.get(key)?.units ?? 0,
    /** Forgets every lease and deletes this prefix's keys in Redis (tests). */
    clear() {
      leases.clear();
      const wipe = async () => {
        if (!link.ready()) return;
        let cursor = '0';
        do {
          const [next, keys] = await link.redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length > 0) await link.redis.del(...keys);
        } while (cursor !== '0');
      };
      clearing = wipe()
        .catch(() => {})
        .finally(() => (clearing = undefined));
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      if (link.ready()) {
        // Unspent units go back now rather than when their lease expires.
        const returns: Promise<unknown>[] = [];
        for (const l of leases.values()) {
          if (l.units <= 0 && l.unreported === 0) continue;
          returns.push(call(l, l.start, l.units, l.units, 0, 0).catch(() => {}));
        }
        await Promise.race([Promise.all(returns), new Promise((r) => setTimeout(r, 1_000).unref())]);
        await link.redis.quit().catch(() => link.redis.disconnect());
      } else link.redis.disconnect();
      leases.clear();
    },
  };
}
