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
import type { QuotaDecision, QuotaStore } from '../../../shared/quota-store.ts';
import { withDeadline } from '../rate-limit/redis-leases.ts';
import { describeError, type SharedStoreState, storeErrorKind } from '../rate-limit/shared-store.ts';
import { checkDebit } from './memory-quotas.ts';

/**
 * KEYS[1]: the period's count. ARGV: 1 limit, 2 cost, 3 expiry (ms since the epoch), 4 force (1: add without
 * checking, for units admitted while Redis was unreachable). Returns {allowed (1/0), used}.
 */
const QUOTA_SCRIPT = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local cost = tonumber(ARGV[2])
if ARGV[4] ~= '1' and used + cost > tonumber(ARGV[1]) then return {0, used} end
used = redis.call('INCRBY', KEYS[1], cost)
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return {1, used}
`;

interface WithQuotaCommand {
  gatehouseQuota(key: string, limit: number, cost: number, expireAt: number, force: number): Promise<number[]>;
}

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

/** What this instance knows of one key's period. */
interface Known {
  period: string;
  endsAt: number;
  /** Usage at Redis's last answer. */
  used: number;
  /** Units admitted here while Redis failed, not yet added to it. */
  pending: number;
  /** A refusal stands (locally) until then (performance.now()). */
  refusedUntil: number;
  limit: number;
}

/** An exhausted quota is re-checked with Redis at most this often. */
const RECHECK_MS = 1_000;
/** While degraded, a PING this often tells when Redis is back. */
const PING_EVERY_MS = 250;
/** Counters are kept this long after their period ends (late reports, clock skew between instances). */
const KEEP_AFTER_END_MS = 86_400_000;

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
  redis.defineCommand('gatehouseQuota', { numberOfKeys: 1, lua: QUOTA_SCRIPT });
  const command = redis as unknown as WithQuotaCommand;
  redis.on('error', onError);
  redis.on('ready', () => void recover());

  const known = new Map<string, Known>();
  let recovering = false;

  /** Adds what was admitted locally, then declares the store healthy again. */
  async function recover(): Promise<void> {
    if (recovering || closed || redis.status !== 'ready') return;
    recovering = true;
    try {
      await withDeadline(commandTimeoutMs, redis, () => redis.ping());
      for (const [key, k] of known) {
        if (k.pending === 0) continue;
        const units = k.pending;
        const [, used] = (
          await withDeadline(commandTimeoutMs, redis, () =>
            command.gatehouseQuota(prefix + key + '\u0000' + k.period, k.limit, units, k.endsAt + KEEP_AFTER_END_MS, 1),
          )
        ).map(Number) as [number, number];
        k.pending -= units;
        k.used = used;
      }
      if (state.status !== 'ok' && !closed) setState({ status: 'ok', since: Date.now() });
    } catch (error) {
      onError(error as Error);
    } finally {
      recovering = false;
    }
  }

  const timer = setInterval(() => {
    if (state.status !== 'ok') void recover();
    const now = Date.now();
    for (const [key, k] of known) if (k.endsAt + KEEP_AFTER_END_MS <= now && k.pending === 0) known.delete(key);
  }, PING_EVERY_MS);
  timer.unref();

  function entry(key: string, limit: number, period: string, endsAt: number): Known {
    let k = known.get(key);
    if (k === undefined || k.period !== period) {
      k = { period, endsAt, used: 0, pending: 0, refusedUntil: 0, limit };
      known.set(key, k);
    }
    k.limit = limit;
    return k;
  }

  function local(k: Known, limit: number, cost: number, failOpen: boolean): QuotaDecision {
    const used = k.used + k.pending;
    if (!failOpen) return { allowed: false, limit, used, remaining: Math.max(0, limit - used), unavailable: true };
    if (used + cost > limit) return { allowed: false, limit, used, remaining: Math.max(0, limit - used) };
    k.pending += cost;
    return { allowed: true, limit, used: used + cost, remaining: limit - used - cost };
  }

  return {
    debit(key, limit, period, endsAt, cost, failOpen): QuotaDecision | Promise<QuotaDecision> {
      checkDebit(limit, cost);
      const k = entry(key, limit, period, endsAt);
      if (performance.now() < k.refusedUntil && k.used + k.pending + cost > limit)
        return { allowed: false, limit, used: k.used, remaining: Math.max(0, limit - k.used - k.pending) };
      if (state.status === 'degraded' || closed || redis.status !== 'ready') {
        if (state.status === 'connecting' && !closed)
          return new Promise<void>((resolve) => {
            const done = () => {
              clearTimeout(t);
              redis.off('ready', done);
              resolve();
            };
            const t = setTimeout(done, connectTimeoutMs);
            redis.once('ready', done);
          }).then(() =>
            redis.status === 'ready' ? remote(k, key, limit, cost, failOpen) : local(k, limit, cost, failOpen),
          );
        return local(k, limit, cost, failOpen);
      }
      return remote(k, key, limit, cost, failOpen);
    },
    get degraded() {
      return state.status === 'degraded';
    },
    state: () => ({ ...state }),
    connected() {
      return redis.status === 'ready' ? Promise.resolve() : new Promise((r) => redis.once('ready', () => r()));
    },
    pending() {
      let n = 0;
      for (const k of known.values()) n += k.pending;
      return n;
    },
    async clear() {
      known.clear();
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

  async function remote(k: Known, key: string, limit: number, cost: number, failOpen: boolean): Promise<QuotaDecision> {
    const period = k.period;
    let reply: [number, number];
    try {
      reply = (
        await withDeadline(commandTimeoutMs, redis, () =>
          command.gatehouseQuota(prefix + key + '\u0000' + period, limit, cost, k.endsAt + KEEP_AFTER_END_MS, 0),
        )
      ).map(Number) as [number, number];
    } catch (error) {
      onError(error as Error);
      return local(k, limit, cost, failOpen);
    }
    if (state.status !== 'ok' && !closed) {
      if (state.status === 'connecting') setState({ status: 'ok', since: Date.now() });
      else void recover();
    }
    const [ok, used] = reply;
    if (k.period === period) k.used = Math.max(k.used, used);
    if (ok !== 1) {
      k.refusedUntil = performance.now() + RECHECK_MS;
      return { allowed: false, limit, used, remaining: Math.max(0, limit - used) };
    }
    return { allowed: true, limit, used, remaining: Math.max(0, limit - used) };
  }
}
