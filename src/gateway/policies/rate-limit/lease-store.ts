/**
 * Length (about 420 lines formatted): the store's local spending, its refills and returns, and its fallback while
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
 * **When Redis is slow or down.** A call that takes longer than `commandTimeoutMs` fails; the store is then
 * degraded until a call or a PING succeeds. Units already leased are still spent until their lease ends (they are
 * counted in Redis, so this is still exact). Beyond them, `onStoreFailure: open` limits (the default) count on
 * each instance alone with a share of the limit, `⌈limit / instances⌉` (instances holding a lease at the last
 * answer), so the total stays near the limit while the instances are evenly loaded; `closed` limits are refused
 * with 503 by the policy (it reads `degraded`). So a slow Redis delays only requests that found no unit, by at most
 * `commandTimeoutMs`.
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

interface Waiter {
  now: number;
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
  refusedAt: number;
  refusedUntil: number;
  /** Local counting while Redis fails (onStoreFailure: open). */
  local: Counter | undefined;
}

export function createLeaseStore(options: LeaseStoreOptions): LeaseRateLimitStore {
  const prefix = options.prefix ?? 'gatehouse:rl:';
  const leaseTtlMs = options.leaseTtlMs ?? 2_000;
  const tickMs = options.tickMs ?? 100;
  const commandTimeoutMs = options.commandTimeoutMs ?? 500;
  const connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
  const maxKeys = options.maxKeys ?? 1_000_000;
  if (!(leaseTtlMs >= 100)) throw new RangeError(`leaseTtlMs must be at least 100, got ${leaseTtlMs}`);
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
      refusedAt: 0,
      refusedUntil: 0,
      local: undefined,
    };
  }

  /** Gives back a lease's unspent units (its window ended, its limit changed, or it went idle). */
  function giveBack(l: Lease, start: number, units: number): void {
    if (units <= 0 || !link.ready()) return;
    const b = base(l, start);
    link
      .lease({
        count: b,
        holdings: `${b}\u0000h`,
        previousCount: base(l, start - l.windowMs),
        previousHoldings: `${base(l, start - l.windowMs)}\u0000h`,
        held: units,
        release: units,
        want: 0,
        limit: l.limit,
        windowMs: l.windowMs,
        leftMs: 0,
        keyTtlMs: keyTtl(l.windowMs),
      })
      .then(onSuccess, onError);
  }

  function hit(
    key: string,
    limit: number,
    windowMs: number,
    now: number = Date.now(),
  ): RateLimitDecision | Promise<RateLimitDecision> {
    checkLimit(limit, windowMs);
    if (clearing !== undefined) return clearing.then(() => hit(key, limit, windowMs, now));
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
    l.rate = l.rate * 0.5 ** ((t - l.lastHit) / RATE_HALF_LIFE_MS) + Math.LN2 / RATE_HALF_LIFE_MS;
    l.lastHit = t;

    if (l.units > 0 && t < l.expiresAt) {
      l.units--;
      if (l.calling) l.spentDuringCall++;
      else if (l.units <= l.lastGrant / 4) void refill(l, now);
      return allowed(l, now);
    }
    if (l.refusal !== undefined && t < l.refusedUntil && now - l.refusedAt < l.refusal.retryAfterMs) {
      const elapsed = Math.max(0, now - l.refusedAt);
      return {
        ...l.refusal,
        retryAfterMs: l.refusal.retryAfterMs - elapsed,
        resetMs: Math.max(1, l.refusal.resetMs - elapsed),
      };
    }
    if (state.status === 'degraded' || closed) return local(l, now);
    return new Promise<RateLimitDecision>((resolve) => {
      l.waiters.push({ now, resolve });
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
  function refused(l: Lease, now: number): RateLimitDecision {
    const c: Counter = { start: l.start, windowMs: l.windowMs, current: l.count, previous: l.previous };
    const d = decide(c, l.limit, now);
    return d.allowed ? { allowed: false, limit: l.limit, remaining: 0, retryAfterMs: 1, resetMs: d.resetMs } : d;
  }

  /** Counting on this instance alone, with its share of the limit (Redis failed, or the store is closing). */
  function local(l: Lease, now: number): RateLimitDecision {
    const share = Math.max(1, Math.ceil(l.limit / Math.max(1, l.holders)));
    if (l.local === undefined || l.local.start !== l.start)
      l.local = { start: l.start, windowMs: l.windowMs, current: 0, previous: 0 };
    const d = decide(l.local, share, now);
    return { ...d, limit: l.limit };
  }

  async function refill(l: Lease, now: number): Promise<void> {
    if (l.calling) return;
    l.calling = true;
    l.spentDuringCall = 0;
    const rateWant = Math.ceil(l.rate * HORIZON_MS);
    const want = Math.max(1, l.waiters.length + rateWant);
    if (!link.ready() && state.status === 'connecting') await untilReady();
    const sentAt = performance.now();
    const sentStart = l.start;
    const b = base(l, l.start);
    const pb = base(l, l.start - l.windowMs);
    let answer: LeaseAnswer | undefined;
    try {
      answer = await link.lease({
        count: b,
        holdings: `${b}\u0000h`,
        previousCount: pb,
        previousHoldings: `${pb}\u0000h`,
        held: sentAt < l.expiresAt ? l.units : 0,
        release: 0,
        want,
        limit: l.limit,
        windowMs: l.windowMs,
        leftMs: l.start + l.windowMs - Math.max(now, l.start),
        keyTtlMs: keyTtl(l.windowMs),
      });
      onSuccess();
    } catch (error) {
      onError(error as Error);
    }
    l.calling = false;
    const waiters = l.waiters;
    if (answer === undefined) {
      l.waiters = [];
      for (const w of waiters) w.resolve(local(l, w.now));
      return;
    }
    if (leases.get(l.key) !== l || l.start !== sentStart) {
      // The key moved on while the call was out: the grant belongs to a window no longer served.
      giveBack(l, sentStart, answer.held);
      l.waiters = [];
      for (const w of waiters) void Promise.resolve(hit(l.key, l.limit, l.windowMs, w.now)).then(w.resolve);
      return;
    }
    l.units = Math.max(0, answer.held - l.spentDuringCall);
    l.expiresAt = sentAt + leaseTtlMs;
    l.available = answer.available;
    l.count = answer.count;
    l.previous = answer.previous;
    l.holders = answer.holders;
    if (answer.granted > 0) l.lastGrant = answer.granted;
    let i = 0;
    for (; i < waiters.length && l.units > 0; i++) {
      l.units--;
      waiters[i]!.resolve(allowed(l, waiters[i]!.now));
    }
    const rest = waiters.slice(i);
    l.waiters = [];
    if (rest.length === 0) return;
    if (answer.granted > 0 || answer.available > 0) {
      // The fair-share cap granted fewer than were waiting: ask again for the rest.
      l.waiters = rest;
      void refill(l, rest[0]!.now);
      return;
    }
    const d = refused(l, rest[0]!.now);
    l.refusal = d;
    l.refusedAt = rest[0]!.now;
    l.refusedUntil = performance.now() + Math.min(RECHECK_MS, d.retryAfterMs);
    for (const w of rest) w.resolve(w.now === l.refusedAt ? d : refused(l, w.now));
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

  /** Waits for the first connection, at most one command timeout (the longest a request ever waits for Redis). */
  function untilReady(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timeout);
        link.redis.off('ready', done);
        resolve();
      };
      const timeout = setTimeout(done, commandTimeoutMs);
      link.redis.once('ready', done);
    });
  }

  async function ping(): Promise<void> {
    try {
      await link.redis.ping();
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
      if (state.status !== 'degraded' && t - notReadySince > connectTimeoutMs + commandTimeoutMs)
        onError(
          Object.assign(new Error(`no connection to Redis within ${connectTimeoutMs + commandTimeoutMs}ms`), {
            code: 'ETIMEDOUT',
          }),
        );
    } else notReadySince = undefined;
    if (link.ready() && (state.status !== 'ok' || Date.now() - lastContact > PING_EVERY_MS) && t - lastPing > tickMs) {
      lastPing = t;
      void ping();
    }
    const now = Date.now();
    for (const [key, l] of leases) {
      if (l.calling) continue;
      if (l.units > 0 && t >= l.expiresAt) l.units = 0;
      if (l.units > 0 && t - l.lastHit > IDLE_RETURN_MS) {
        giveBack(l, l.start, l.units);
        l.units = 0;
      } else if (l.units > 0 && l.expiresAt - t < leaseTtlMs / 2 && state.status === 'ok') {
        void renew(l, now);
      } else if (l.units === 0 && l.waiters.length === 0 && now >= l.start + 2 * l.windowMs) {
        leases.delete(key);
      }
    }
  }, tickMs);
  timer.unref();

  /** Extends a lease still in use without asking for more. */
  async function renew(l: Lease, now: number): Promise<void> {
    l.calling = true;
    l.spentDuringCall = 0;
    const sentAt = performance.now();
    const start = l.start;
    const b = base(l, start);
    try {
      const answer = await link.lease({
        count: b,
        holdings: `${b}\u0000h`,
        previousCount: base(l, start - l.windowMs),
        previousHoldings: `${base(l, start - l.windowMs)}\u0000h`,
        held: l.units,
        release: 0,
        want: 0,
        limit: l.limit,
        windowMs: l.windowMs,
        leftMs: start + l.windowMs - Math.max(now, start),
        keyTtlMs: keyTtl(l.windowMs),
      });
      onSuccess();
      if (leases.get(l.key) === l && l.start === start) {
        l.units = Math.max(0, answer.held - l.spentDuringCall);
        l.expiresAt = sentAt + leaseTtlMs;
        l.available = answer.available;
        l.holders = answer.holders;
      } else giveBack(l, start, answer.held);
    } catch (error) {
      onError(error as Error);
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
      return link.ready() ? Promise.resolve() : new Promise((resolve) => link.redis.once('ready', () => resolve()));
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
          if (l.units <= 0) continue;
          const b = base(l, l.start);
          returns.push(
            link
              .lease({
                count: b,
                holdings: `${b}\u0000h`,
                held: l.units,
                release: l.units,
                want: 0,
                limit: l.limit,
                windowMs: l.windowMs,
                leftMs: 0,
                keyTtlMs: keyTtl(l.windowMs),
                previousCount: base(l, l.start - l.windowMs),
                previousHoldings: `${base(l, l.start - l.windowMs)}\u0000h`,
              })
              .catch(() => {}),
          );
        }
        await Promise.race([Promise.all(returns), new Promise((r) => setTimeout(r, 1_000).unref())]);
        await link.redis.quit().catch(() => link.redis.disconnect());
      } else link.redis.disconnect();
      leases.clear();
    },
  };
}
