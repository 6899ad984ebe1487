/**
 * The shared quota store (`server.rateLimitStore: redis`): quotas exact across gateway instances and kept across
 * gateway restarts, in Redis.
 *
 * **Why a debit per request, not leases.** Every admitted request is one atomic Lua call (`QUOTA_SCRIPT`: read the
 * period's count, refuse when `used + cost > limit`, else `INCRBY`), so the instances together never admit a unit
 * over the quota, whatever their number, and a gateway that dies holds nothing that must come back. Leases (as
 * for rate limits, lease-store.ts) save the round trip but hold units back from other instances for a lease
 * period; a quota is counted over a day or a month, where one Redis round trip (well under a millisecond on a
 * LAN, pipelined with every other command issued in the same turn of the event loop) is small next to the
 * upstream call, and exactness near the end of a quota matters more. A quota that is used up is refused locally,
 * re-checked with Redis at most once a second (a raised limit or a new period apply at once).
 *
 * **When Redis is slow or down.** A debit that gets no answer within `commandTimeoutMs` fails, the connection is
 * dialled again, and the store is **degraded** until a PING succeeds (checked every 250 ms); meanwhile no request
 * waits for Redis. Quotas with `onStoreFailure: open` (the default) are then decided on each instance from the
 * usage Redis last reported plus what this instance admitted since, and what it admitted is added to Redis (`INCRBY`)
 * once it answers again, so the shared count ends up complete; while it lasts, N instances may admit up to N times
 * what was left. Quotas with `onStoreFailure: closed` are refused with 503 `GH_ERR_QUOTA_STORE_UNAVAILABLE`. A
 * debit whose answer was lost to a timeout is not known to have counted: the request is decided locally as above
 * (so a unit may be counted twice, never missed).
 */
import { Redis } from 'ioredis';
import type { QuotaCounter, QuotaDecision, QuotaStore } from '../../../shared/quota-store.ts';
import { withDeadline } from '../rate-limit/redis-leases.ts';
import { describeError, type SharedStoreState, storeErrorKind } from '../rate-limit/shared-store.ts';
import { checkDebit } from './memory-quotas.ts';

/**
 * KEYS: the counters of one request's quotas. ARGV: 1 cost, 2 force (1: add without checking, for units admitted
 * while Redis was unreachable), then per key its limit and expiry (ms since the epoch). All or nothing: when one
 * counter has no room, nothing is added anywhere. Returns {refused (1-based index, 0: allowed), used of each}.
 */
const QUOTA_SCRIPT = `
local cost = tonumber(ARGV[1])
local used = {}
local refused = 0
for i = 1, #KEYS do
  used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  if refused == 0 and ARGV[2] ~= '1' and used[i] + cost > tonumber(ARGV[1 + 2 * i]) then refused = i end
end
if refused == 0 then
  for i = 1, #KEYS do
    used[i] = redis.call('INCRBY', KEYS[i], cost)
    redis.call('PEXPIREAT', KEYS[i], ARGV[2 + 2 * i])
  end
end
table.insert(used, 1, refused)
return used
`;

export interface RedisQuotaOptions {
  url: string;
  /** Prefix of every Redis key (the rate-limit store's prefix + `q:`). @default 'gatehouse:rl:q:' */
  prefix?: string;
  /** @default 500 */
  commandTimeoutMs?: number;
  /** @default 2000 */
  connectTimeoutMs?: number;
  onError?: (error: Error) => void;
  onStateChange?: (state: SharedStoreState) => void;
}

export interface RedisQuotaStore extends QuotaStore {
  readonly degraded: boolean;
  state(): SharedStoreState;
  connected(): Promise<void>;
  /** Units admitted locally while Redis failed, not yet added to it (tests). */
  pending(): number;
  clear(): Promise<void>;
  close(): Promise<void>;
}

/** What this instance knows of one counter's period. */
interface Known {
  /** The counter's name (without its period). */
  key: string;
  period: string;
  endsAt: number;
  limit: number;
  /** Usage at Redis's last answer. */
  used: number;
  /** Units admitted here while Redis failed, not yet added to it. */
  pending: number;
  /** A refusal by this counter stands (locally) until then (performance.now()). */
  refusedUntil: number;
}

/** An exhausted quota is re-checked with Redis at most this often. */
const RECHECK_MS = 1_000;
/** Counters of ended periods are dropped this often. */
const SWEEP_EVERY_MS = 60_000;
/** While degraded, a PING this often tells when Redis is back. */
const PING_EVERY_MS = 250;
/** Counters are kept this long after their period ends (late reports, clock skew between instances). */
const KEEP_AFTER_END_MS = 86_400_000;

interface WithQuotaCommand {
  gatehouseQuota(keys: number, ...args: (string | number)[]): Promise<number[]>;
}

export function createRedisQuotas(options: RedisQuotaOptions): RedisQuotaStore {
  const prefix = options.prefix ?? 'gatehouse:rl:q:';
  const commandTimeoutMs = options.commandTimeoutMs ?? 500;
  const connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
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

  const redis = new Redis(options.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // A debit sent again after a reconnection could count twice.
    autoResendUnfulfilledCommands: false,
    // Debits issued in one turn of the event loop go out as one write.
    enableAutoPipelining: true,
    connectTimeout: connectTimeoutMs,
    reconnectOnError: (error: Error) => error.message.startsWith('READONLY'),
    retryStrategy: (attempt: number) =>
      Math.min(50 * 2 ** Math.min(attempt, 10), 2_000) + Math.floor(Math.random() * 100),
  });
  // The number of keys varies per call: given with each call (numberOfKeys omitted).
  redis.defineCommand('gatehouseQuota', { lua: QUOTA_SCRIPT });
  const command = redis as unknown as WithQuotaCommand;
  redis.on('error', onError);
  redis.on('ready', () => void recover());

  const known = new Map<string, Known>();
  let recovering = false;
  /** The sum of every counter's `pending` (read every tick without a walk over the counters). */
  let pendingUnits = 0;
  /** Counters with units admitted alone, still to be added to Redis (also of periods since left). */
  const withPending = new Set<Known>();
  let lastSweep = Date.now();

  const call = (
    counters: readonly { key: string; period: string; limit: number; endsAt: number }[],
    cost: number,
    force: boolean,
  ) => {
    const args: (string | number)[] = counters.map((q) => prefix + q.key + '\u0000' + q.period);
    args.push(cost, force ? 1 : 0);
    for (const q of counters) args.push(q.limit, q.endsAt + KEEP_AFTER_END_MS);
    return withDeadline(commandTimeoutMs, redis, () => command.gatehouseQuota(counters.length, ...args)).then((reply) =>
      reply.map(Number),
    );
  };

  /** Adds what was admitted locally, then declares the store healthy again. */
  async function recover(): Promise<void> {
    if (recovering || closed || redis.status !== 'ready') return;
    recovering = true;
    try {
      await withDeadline(commandTimeoutMs, redis, () => redis.ping());
      for (const k of withPending) {
        const units = k.pending;
        const [, used] = await call([{ key: k.key, period: k.period, limit: k.limit, endsAt: k.endsAt }], units, true);
        k.pending -= units;
        pendingUnits -= units;
        k.used = used!;
        if (k.pending === 0) withPending.delete(k);
      }
      if (state.status !== 'ok' && !closed) setState({ status: 'ok', since: Date.now() });
    } catch (error) {
      onError(error as Error);
    } finally {
      recovering = false;
    }
  }

  const timer = setInterval(() => {
    // Also when units admitted alone while a recovery ran are still to be added.
    if (state.status !== 'ok' || pendingUnits > 0) void recover();
    const now = Date.now();
    if (now - lastSweep < SWEEP_EVERY_MS) return;
    lastSweep = now;
    for (const [key, k] of known) if (k.endsAt + KEEP_AFTER_END_MS <= now) known.delete(key);
  }, PING_EVERY_MS);
  timer.unref();

  function knownOf(q: QuotaCounter): Known {
    let k = known.get(q.key);
    if (k === undefined || k.period !== q.period) {
      // A counter of a period left behind with units still pending stays in `withPending` until they are added.
      k = { key: q.key, period: q.period, endsAt: q.endsAt, limit: q.limit, used: 0, pending: 0, refusedUntil: 0 };
      known.set(q.key, k);
    }
    k.limit = q.limit;
    return k;
  }

  /** Decided on this instance alone: from the last known usage and what was admitted here since. */
  function local(found: Known[], counters: readonly QuotaCounter[], cost: number, failOpen: boolean): QuotaDecision {
    const used = found.map((k) => k.used + k.pending);
    if (!failOpen) return { allowed: false, used, refused: -1, unavailable: true };
    const refused = used.findIndex((u, i) => u + cost > counters[i]!.limit);
    if (refused !== -1) return { allowed: false, used, refused };
    for (const k of found) {
      k.pending += cost;
      withPending.add(k);
    }
    pendingUnits += cost * found.length;
    return { allowed: true, used: used.map((u) => u + cost), refused };
  }

  async function remote(
    found: Known[],
    counters: readonly QuotaCounter[],
    cost: number,
    failOpen: boolean,
  ): Promise<QuotaDecision> {
    let reply: number[];
    try {
      reply = await call(counters, cost, false);
    } catch (error) {
      onError(error as Error);
      return local(found, counters, cost, failOpen);
    }
    if (state.status === 'connecting' && !closed) setState({ status: 'ok', since: Date.now() });
    const refused = reply[0]! - 1;
    const used = reply.slice(1);
    found.forEach((k, i) => {
      if (k.period === counters[i]!.period) k.used = Math.max(k.used, used[i]!);
    });
    if (refused !== -1) found[refused]!.refusedUntil = performance.now() + RECHECK_MS;
    return { allowed: refused === -1, used, refused };
  }

  function untilConnected(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        redis.off('ready', done);
        resolve();
      };
      const t = setTimeout(done, connectTimeoutMs);
      redis.once('ready', done);
    });
  }

  return {
    debit(counters, cost, failOpen): QuotaDecision | Promise<QuotaDecision> {
      checkDebit(counters, cost);
      const found = counters.map(knownOf);
      // A quota used up is refused here until its re-check is due (it only comes back with a raise or a new period).
      const t = performance.now();
      const stands = found.findIndex((k, i) => t < k.refusedUntil && k.used + k.pending + cost > counters[i]!.limit);
      if (stands !== -1) return { allowed: false, used: found.map((k) => k.used + k.pending), refused: stands };
      if (state.status === 'connecting' && !closed && redis.status !== 'ready')
        return untilConnected().then(() =>
          redis.status === 'ready' ? remote(found, counters, cost, failOpen) : local(found, counters, cost, failOpen),
        );
      if (state.status === 'degraded' || closed || redis.status !== 'ready')
        return local(found, counters, cost, failOpen);
      return remote(found, counters, cost, failOpen);
    },
    get degraded() {
      return state.status === 'degraded';
    },
    state: () => ({ ...state }),
    connected() {
      return redis.status === 'ready' ? Promise.resolve() : new Promise((r) => redis.once('ready', () => r()));
    },
    pending: () => pendingUnits,
    async clear() {
      known.clear();
      withPending.clear();
      pendingUnits = 0;
      if (redis.status !== 'ready') return;
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
