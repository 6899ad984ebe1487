/**
 * Length (about 470 lines formatted): the store, its Lua script and its fault handling (timeouts, degraded state,
 * reconnection) are one protocol with Redis; the window math is shared with the memory store (sliding-window.ts).
 *
 * The shared rate-limit store: counters that hold across gateway instances, kept in Redis, with a local fast path.
 *
 * A hit is decided in process, synchronously, by the same sliding-window rule as the memory store
 * (`sliding-window.ts`), on this process's view of the key's count: every instance's hits as of the last sync plus
 * its own since. No request waits for Redis. Every `syncIntervalMs` one pipeline carries, for each key hit within
 * the last ten syncs, this process's new hits to Redis (`INCRBY` on the key's window, which expires after two
 * windows) and reads back both windows' totals, in one Lua call per key. So each instance learns the others' hits within
 * about one sync interval, and across N instances a limit can be exceeded by at most what the other instances
 * admit within that time (N − 1 × their request rate × the interval, for a key hit on all of them at once).
 * Envoy's and Kong's Redis-backed limits make the same trade, for the same reason: a round trip per request
 * would cost more than the policy is worth.
 *
 * When Redis cannot be reached, each instance goes on counting alone: limits hold per instance (a limit of L is
 * at most N × L in total) and the hits are sent once Redis is back, so nothing is lost from the shared total.
 * Nothing Redis does can hold up a request: `hit` never touches the connection.
 *
 * Every command has a deadline (`commandTimeoutMs`), the connection too (`connectTimeoutMs`, up to the end of the
 * handshake), so a Redis that accepts and never answers, answers too slowly, or hangs mid-run is noticed instead of
 * leaving a sync pending for ever. The store is then **degraded** — it counts locally — from the first failure (a
 * connection error or timeout, an error reply such as NOSCRIPT, READONLY or OOM, no connection for
 * `connectTimeoutMs + commandTimeoutMs`) until a sync or a health PING succeeds again; `state()` says so and
 * `onStateChange` is told of every change. A timed-out connection is dropped and dialled again (a peer that
 * vanished without closing would otherwise hold it for minutes), and a READONLY answer (a failover left us on a
 * replica) reconnects too. Commands are never queued while disconnected, and never resent after a reconnection:
 * the hits of a failed sync go out with the next one, so a resend would count them twice.
 * Every error is reported through `onError` (the gateway counts them by kind and logs state changes).
 *
 * Counter names are the policy's (route, scope, the key's SHA-256 or the client or org id): no secret reaches
 * Redis. Time comes from the caller (`now`), as the contract requires; window starts are multiples of the window
 * since the epoch, so instances agree on them as far as their clocks agree.
 */
import { Redis } from 'ioredis';
import type { RateLimitDecision, RateLimitStore } from '../../../shared/rate-limit-store.ts';
import { advance, checkLimit, type Counter, decide, isSpent, newCounter } from './sliding-window.ts';

export interface SharedStoreOptions {
  /** A `redis://` or `rediss://` URL (user, password and database number in it as usual). */
  url: string;
  /** Prefix of every Redis key this store writes; gateways that share limits share it. @default 'gatehouse:rl:' */
  prefix?: string;
  /** How often hits are sent and totals read. @default 100 */
  syncIntervalMs?: number;
  /** Most keys tracked in process (idle ones are dropped first). @default 1_000_000 */
  maxKeys?: number;
  /**
   * How long any command (a sync, a PING, the connection handshake) may take before it counts as failed; the
   * connection is then dropped and dialled again. Requests never wait for it: it bounds how long a hung Redis
   * goes unnoticed, not request latency. @default 500
   */
  commandTimeoutMs?: number;
  /** How long connecting (TCP and TLS) may take. @default 2000 */
  connectTimeoutMs?: number;
  /** A sync failed, a command timed out or the connection dropped; the store goes on counting locally. */
  onError?: (error: Error) => void;
  /** The connection to Redis is up (the first time and after every reconnection). */
  onConnect?: () => void;
  /** The store became degraded or recovered (see `state()`). */
  onStateChange?: (state: SharedStoreState) => void;
}

/**
 * `connecting`: no exchange with Redis has succeeded yet and nothing has failed (the first `connectTimeoutMs +
 * commandTimeoutMs`); `ok`: the last sync or PING succeeded; `degraded`: something failed since, the store counts
 * locally. Hits are decided locally in every state.
 */
export interface SharedStoreState {
  status: 'connecting' | 'ok' | 'degraded';
  /** When this status began (ms since the epoch). */
  since: number;
  /** Why it is degraded, for the operator (never a secret): e.g. `command timed out after 500ms`, `Redis answered READONLY`. */
  reason?: string;
  /** The kind of the failure that degraded it. */
  kind?: StoreErrorKind;
}

/** `timeout`: no answer in time; `connection`: refused, reset, closed; `reply`: Redis answered an error (NOSCRIPT, READONLY, OOM…). */
export type StoreErrorKind = 'timeout' | 'connection' | 'reply';

/** The kind of a store error (the gateway labels its error counter with it). */
export function storeErrorKind(error: Error): StoreErrorKind {
  if (error.name === 'ReplyError') return 'reply';
  const code = (error as { code?: unknown }).code;
  if (code === 'ETIMEDOUT' || /timed? ?out/i.test(error.message)) return 'timeout';
  return 'connection';
}

/** What an error says to an operator: the reply's error code, or the message (connection errors hold no secret). */
export function describeError(error: Error, commandTimeoutMs: number): string {
  if (error.name === 'ReplyError') return `Redis answered ${/^[A-Z][A-Z_-]*/.exec(error.message)?.[0] ?? 'an error'}`;
  if (error.message === 'Command timed out' || error.message.startsWith('Socket timeout'))
    return `no answer within ${commandTimeoutMs}ms`;
  return error.message.slice(0, 200);
}

export interface SharedRateLimitStore extends RateLimitStore {
  /** Always synchronous. */
  hit(key: string, limit: number, windowMs: number, now?: number, cost?: number): RateLimitDecision;
  /** Keys tracked in process. */
  readonly size: number;
  /**
   * Sends pending hits and reads totals now, after the sync in progress if there is one (tests; the timer does it
   * every `syncIntervalMs`).
   */
  sync(): Promise<void>;
  /** Resolves once the connection to Redis is up (at once when it is). Hits are decided before then too. */
  connected(): Promise<void>;
  /** Whether the store counts locally because Redis failed (`state().status === 'degraded'`). */
  readonly degraded: boolean;
  state(): SharedStoreState;
  /** Sends what is pending, then closes the connection (waits at most 1 s for Redis). */
  close(): Promise<void>;
}

/** A counter as this process sees it: `current` = everyone's hits acknowledged by Redis + `inflight` + `pending`. */
interface SharedCounter extends Counter {
  /** This process's hits in the current window not yet sent. */
  pending: number;
  /** This process's hits in the current window sent in the sync in progress. */
  inflight: number;
}

/** One key's increment for a window this process has moved past, still to be sent. */
interface Leftover {
  redisKey: string;
  hits: number;
  ttlMs: number;
}

/**
 * KEYS[1]: the current window's counter, KEYS[2]: the previous window's; ARGV[1]: hits to add, ARGV[2]: the
 * counter's lifetime in ms. Returns both windows' totals.
 */
const SYNC_SCRIPT = `
local current
if tonumber(ARGV[1]) > 0 then
  current = redis.call('INCRBY', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  current = tonumber(redis.call('GET', KEYS[1]) or '0')
end
return {current, tonumber(redis.call('GET', KEYS[2]) or '0')}
`;

/** The Lua script as a command of the connection (ioredis sends EVALSHA, and EVAL once if Redis lacks it). */
interface WithSyncCommand {
  gatehouseRateSync(current: string, previous: string, hits: number, ttlMs: number): unknown;
}

/** A key stays refreshed for this many syncs after its last hit (about a second at the default interval). */
const REFRESH_SYNCS = 10;
/** Leftover increments kept while Redis is unreachable; beyond this the oldest are dropped. */
const MAX_LEFTOVERS = 100_000;
/** Keys examined for staleness per sync, and how often a pass over all of them starts. */
const SWEEP_PER_SYNC = 2_000;
const SWEEP_EVERY_MS = 30_000;
/** With nothing to sync, a PING this often notices a Redis that stopped answering (and one that came back). */
const PING_EVERY_MS = 1_000;

export function createSharedStore(options: SharedStoreOptions): SharedRateLimitStore {
  const prefix = options.prefix ?? 'gatehouse:rl:';
  const syncIntervalMs = options.syncIntervalMs ?? 100;
  const maxKeys = options.maxKeys ?? 1_000_000;
  const commandTimeoutMs = options.commandTimeoutMs ?? 500;
  const connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
  if (!(syncIntervalMs >= 1)) throw new RangeError(`syncIntervalMs must be at least 1, got ${syncIntervalMs}`);
  if (!Number.isInteger(maxKeys) || maxKeys < 1)
    throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
  if (!(commandTimeoutMs >= 1)) throw new RangeError(`commandTimeoutMs must be at least 1, got ${commandTimeoutMs}`);
  if (!(connectTimeoutMs >= 1)) throw new RangeError(`connectTimeoutMs must be at least 1, got ${connectTimeoutMs}`);
  const onErrorOption = options.onError ?? (() => {});

  let state: SharedStoreState = { status: 'connecting', since: Date.now() };
  function setState(next: SharedStoreState): void {
    state = next;
    options.onStateChange?.(next);
  }
  function onError(error: Error): void {
    if (closed) return;
    if (state.status !== 'degraded') {
      const kind = storeErrorKind(error);
      setState({ status: 'degraded', since: Date.now(), reason: describeError(error, commandTimeoutMs), kind });
    }
    onErrorOption(error);
  }
  function onSuccess(): void {
    lastContact = Date.now();
    if (state.status !== 'ok' && !closed) setState({ status: 'ok', since: lastContact });
  }

  const redis = new Redis(options.url, {
    // No offline queue: while disconnected a sync fails at once and its hits stay pending, rather than piling up
    // inside the client.
    enableOfflineQueue: false,
    // Commands in flight when the connection drops fail at once (their hits go out with the next sync), and are
    // never resent by the client: that would count them twice.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: connectTimeoutMs,
    // Every command, the handshake's HELLO and INFO included: a Redis that accepts and never answers fails them.
    commandTimeout: commandTimeoutMs,
    // No data while an answer is due: the connection is dropped and dialled again. A peer gone without closing
    // would otherwise hold it until TCP keep-alive gives up, minutes later.
    socketTimeout: commandTimeoutMs,
    // A failover left this connection on a replica: dial again (DNS or the proxy now name the new primary).
    reconnectOnError: (error: Error) => error.message.startsWith('READONLY'),
    retryStrategy: (attempt: number) =>
      Math.min(50 * 2 ** Math.min(attempt, 10), 2_000) + Math.floor(Math.random() * 100),
    lazyConnect: false,
  });
  redis.on('error', (error: Error) => onError(error));
  redis.on('ready', () => {
    notReadySince = undefined;
    options.onConnect?.();
    // Recovery is declared by an exchange that works, not by the connection alone.
    if (syncing === undefined) void sync();
  });
  redis.defineCommand('gatehouseRateSync', { numberOfKeys: 2, lua: SYNC_SCRIPT });

  // Map order is "order of last window roll", as in the memory store: the front is idle longest.
  const counters = new Map<string, SharedCounter>();
  /**
   * Keys hit within the last REFRESH_SYNCS syncs, with the sync generation of their last hit: each sync re-reads
   * them, so an instance that has been quiet on a key for a moment still decides its next hit on fresh totals.
   */
  const active = new Map<string, number>();
  let generation = 0;
  let leftovers: Leftover[] = [];
  let syncing: Promise<void> | undefined;
  let sweepPass: MapIterator<[string, SharedCounter]> | undefined;
  let lastSweep = Date.now();
  let closed = false;
  /** When a sync or PING last succeeded. */
  let lastContact = 0;
  /** Since when the connection has not been ready (undefined while it is). */
  let notReadySince: number | undefined = Date.now();
  let syncStarted = 0;

  const timer = setInterval(() => {
    const now = Date.now();
    if (redis.status !== 'ready') {
      notReadySince ??= now;
      // ioredis reports failed attempts itself; this is the backstop for a connection that neither fails nor completes.
      if (state.status !== 'degraded' && now - notReadySince > connectTimeoutMs + commandTimeoutMs) {
        onError(
          Object.assign(new Error(`no connection to Redis within ${connectTimeoutMs + commandTimeoutMs}ms`), {
            code: 'ETIMEDOUT',
          }),
        );
      }
    }
    if (syncing === undefined) void sync();
    else if (now - syncStarted > 2 * commandTimeoutMs + syncIntervalMs) {
      // Every command has a deadline, so this should not happen; if a sync still hangs, the connection goes.
      onError(Object.assign(new Error(`a sync has not completed in ${now - syncStarted}ms`), { code: 'ETIMEDOUT' }));
      redis.disconnect(true);
    }
  }, syncIntervalMs);
  timer.unref();

  const redisKey = (key: string, windowMs: number, start: number) => `${prefix}${key}\u0000${windowMs}\u0000${start}`;
  /** A window's counter is read until the end of the window after it; a sync interval of slack for late senders. */
  const ttlOf = (windowMs: number) => 2 * windowMs + syncIntervalMs + 1_000;

  function keepLeftover(key: string, c: SharedCounter): void {
    if (c.pending === 0) return;
    if (leftovers.length >= MAX_LEFTOVERS) leftovers.shift();
    leftovers.push({ redisKey: redisKey(key, c.windowMs, c.start), hits: c.pending, ttlMs: ttlOf(c.windowMs) });
  }

  function hit(key: string, limit: number, windowMs: number, now: number = Date.now(), cost = 1): RateLimitDecision {
    checkLimit(limit, windowMs, cost);
    let c = counters.get(key);
    if (c === undefined) {
      if (counters.size >= maxKeys) evictOldest();
      c = { ...newCounter(windowMs, now), pending: 0, inflight: 0 };
      counters.set(key, c);
    } else if (now >= c.start + c.windowMs || c.windowMs !== windowMs) {
      // Hits of the window being left that were never sent still belong to it (`advance` moves on exactly then).
      keepLeftover(key, c);
      if (advance(c, windowMs, now)) {
        c.pending = 0;
        c.inflight = 0;
        counters.delete(key);
        counters.set(key, c);
      }
    }
    const decision = decide(c, limit, now, cost);
    if (decision.allowed) c.pending += cost;
    active.set(key, generation);
    return decision;
  }

  function evictOldest(): void {
    let n = Math.ceil(maxKeys / 64);
    for (const [key, c] of counters) {
      keepLeftover(key, c);
      counters.delete(key);
      active.delete(key);
      if (--n === 0) break;
    }
  }

  /** Drops a slice of the keys whose hits no longer weigh (their pending hits are still sent). */
  function sweepSome(now: number): void {
    if (sweepPass === undefined) {
      if (now - lastSweep < SWEEP_EVERY_MS) return;
      lastSweep = now;
      sweepPass = counters.entries();
    }
    for (let i = 0; i < SWEEP_PER_SYNC; i++) {
      const step = sweepPass.next();
      if (step.done === true) {
        sweepPass = undefined;
        return;
      }
      const [key, c] = step.value;
      if (isSpent(c, now) && !active.has(key)) {
        keepLeftover(key, c);
        counters.delete(key);
      }
    }
  }

  function sync(): Promise<void> {
    if (syncing !== undefined) return syncing;
    syncStarted = Date.now();
    syncing = runSync().finally(() => (syncing = undefined));
    return syncing;
  }

  async function runSync(): Promise<void> {
    if (counters.size > 0) sweepSome(Date.now());
    if (redis.status !== 'ready') return;
    if (active.size === 0 && leftovers.length === 0) {
      // Nothing to send: a PING now and then tells a healthy Redis from one that stopped answering.
      if (state.status === 'ok' && Date.now() - lastContact < PING_EVERY_MS) return;
      try {
        await redis.ping();
        onSuccess();
      } catch (error) {
        onError(error as Error);
      }
      return;
    }
    generation++;
    const keys: string[] = [];
    for (const [key, hitAt] of active) {
      if (generation - hitAt <= REFRESH_SYNCS || (counters.get(key)?.pending ?? 0) > 0) keys.push(key);
      else active.delete(key);
    }
    const sentLeftovers = leftovers;
    leftovers = [];
    const pipeline = redis.pipeline();
    // Leftovers first, so that a previous window read below already counts them.
    for (const l of sentLeftovers) pipeline.incrby(l.redisKey, l.hits).pexpire(l.redisKey, l.ttlMs);
    const sent: { key: string; c: SharedCounter; start: number; windowMs: number; hits: number }[] = [];
    for (const key of keys) {
      const c = counters.get(key);
      if (c === undefined) continue;
      const hits = c.pending;
      c.pending = 0;
      c.inflight += hits;
      sent.push({ key, c, start: c.start, windowMs: c.windowMs, hits });
      (pipeline as unknown as WithSyncCommand).gatehouseRateSync(
        redisKey(key, c.windowMs, c.start),
        redisKey(key, c.windowMs, c.start - c.windowMs),
        hits,
        ttlOf(c.windowMs),
      );
    }
    let results: [Error | null, unknown][] | null;
    try {
      results = await pipeline.exec();
    } catch (error) {
      results = null;
      onError(error as Error);
    }
    const offset = sentLeftovers.length * 2;
    let failed: Error | undefined;
    for (let i = 0; i < sentLeftovers.length; i++) {
      const error = results === null ? new Error('the sync did not complete') : (results[2 * i]?.[0] ?? null);
      if (error !== null) {
        failed ??= error;
        if (leftovers.length < MAX_LEFTOVERS) leftovers.push(sentLeftovers[i]!);
      }
    }
    for (let i = 0; i < sent.length; i++) {
      const { key, c, start, windowMs, hits } = sent[i]!;
      const [error, reply] = results?.[offset + i] ?? [new Error('the sync did not complete'), undefined];
      if (counters.get(key) !== c) {
        // Dropped meanwhile (eviction, clear): its unsent hits are gone with it, the sent ones are in Redis or not.
        if (error !== null && hits > 0 && leftovers.length < MAX_LEFTOVERS)
          leftovers.push({ redisKey: redisKey(key, windowMs, start), hits, ttlMs: ttlOf(windowMs) });
        continue;
      }
      if (error !== null) {
        failed ??= error;
        if (c.start === start && c.windowMs === windowMs) {
          c.inflight -= hits;
          c.pending += hits;
          if (!active.has(key)) active.set(key, generation);
        } else if (hits > 0 && leftovers.length < MAX_LEFTOVERS) {
          leftovers.push({ redisKey: redisKey(key, windowMs, start), hits, ttlMs: ttlOf(windowMs) });
        }
        continue;
      }
      const [current, previous] = reply as [number, number];
      if (c.windowMs !== windowMs) continue;
      if (c.start === start) {
        c.inflight -= hits;
        c.current = current + c.inflight + c.pending;
        c.previous = previous;
      } else if (c.start === start + c.windowMs) {
        // The window moved on while the sync was out: what came back is the total of the one now previous.
        c.previous = Math.max(c.previous, current);
      }
    }
    if (failed !== undefined && results !== null) onError(failed);
    else if (failed === undefined && results !== null) onSuccess();
  }

  return {
    hit,
    async sync() {
      if (syncing !== undefined) await syncing;
      await sync();
    },
    connected() {
      return redis.status === 'ready'
        ? Promise.resolve()
        : new Promise((resolve) => redis.once('ready', () => resolve()));
    },
    get size() {
      return counters.size;
    },
    get degraded() {
      return state.status === 'degraded';
    },
    state: () => ({ ...state }),
    /** Forgets the local view (tests). Redis keeps its counters until they expire: use a fresh prefix to start clean. */
    clear() {
      counters.clear();
      active.clear();
      leftovers = [];
      sweepPass = undefined;
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      if (redis.status === 'ready') {
        // Whatever is pending goes out before the connection closes, so a restart loses no hits.
        await syncing;
        for (const [key, c] of counters) if (c.pending > 0) active.set(key, generation);
        const flushed = sync();
        const waited = await Promise.race([
          flushed.then(() => true),
          new Promise<false>((r) => setTimeout(r, 1_000, false).unref()),
        ]);
        if (waited) {
          await redis.quit().catch(() => redis.disconnect());
          counters.clear();
          return;
        }
      }
      redis.disconnect();
      counters.clear();
    },
  };
}
