/**
 * Leases of allowance from Redis: one connection and one Lua script that hand each gateway instance a share of
 * what a limit still allows, atomically, and take back what a dead instance held. Used by the exact rate-limit store
 * (`lease-store.ts`: units of a sliding window, spent as requests are admitted), by concurrency caps
 * (`../concurrency/shared-slots.ts`: slots, given back when requests end) and by quotas
 * (`../quota/leased-quotas.ts`: units of a day or a month, in the script's quota mode).
 *
 * Per counted thing Redis keeps a **count** (everything leased, plus, for a window, every unit spent) and a hash
 * of **holdings** (instance id → `units:expiresAt`, Redis time). Every call of the script:
 * 1. sweeps expired holdings (an instance that died, or was cut off for longer than the lease period), giving
 *    their units back to the count — this is how a killed gateway's allowance and slots return (a quota's are
 *    **forfeited** instead: they stay counted, since the instance may have spent them since its last report);
 * 2. takes this instance's report: the units it still holds (`held`; for a window, what it did not spend — the
 *    difference stays counted as spent; for slots, what it keeps — the difference is given back) and `release`;
 * 3. grants at most `want` more, never beyond what the limit allows now, and at most a fair share:
 *    `max(need, ⌊available / (2 × active instances)⌋)` (`need`: the units the caller's next hit lacks, 1 unless
 *    an operation costs more; if fewer than `need` are available, nothing is granted) (instances that called for it within a lease period). So an
 *    instance's share follows its own demand (the caller asks for its recent rate × a horizon), shrinks as more
 *    instances are active, and near the limit the last units go out one at a time;
 * 4. renews this instance's holding for one lease period.
 *
 * Time in the script is Redis's (`TIME`), so lease expiry does not depend on gateway clocks agreeing; the window
 * arithmetic uses `left` (ms until the caller's window ends), computed by the caller as the rate-limit contract
 * requires. A caller of a window or of slots treats its units as void once `leaseTtlMs` has passed since it
 * *sent* the call that granted them, which is always before Redis expires them; a quota's units, never given back
 * by a sweep, stay usable.
 */
import { Redis } from 'ioredis';

/**
 * KEYS: 1 count, 2 holdings, 3 previous window's count, 4 previous window's holdings (3 and 4 unused for slots and
 * quotas).
 * ARGV: 1 instance, 2 held, 3 release, 4 want, 5 limit, 6 window ms (0: slots or a quota), 7 left ms, 8 lease ms,
 * 9 key ttl ms, 10 units spent since the instance's last report (windows: counted again if its holding had expired
 * and been swept, since the sweep gave them back as if unspent; quotas: units admitted alone while Redis failed,
 * added to the count as they are), 11 need: the fewest units worth granting (a hit of cost c that holds h units
 * needs c − h; less than that is granted as nothing, since a part would be held for no use), 12 mode: `q` for a
 * quota (a count of a whole period: available = limit − count, and an expired holding is **forfeited** — its units
 * stay counted, since the dead instance may have spent them since its last report; see quota/leased-quotas.ts).
 * Returns {granted, held now, count, previous count, available after the grant, holders}.
 */
const LEASE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function units(v)
  local sep = string.find(v, ':', 1, true)
  return tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
end
local quota = ARGV[12] == 'q'
local function sweep(h, c)
  local all = redis.call('HGETALL', h)
  local live = 0
  for i = 1, #all, 2 do
    local n, exp = units(all[i + 1])
    if exp <= now then
      redis.call('HDEL', h, all[i])
      if n > 0 and not quota then redis.call('DECRBY', c, n) end
    else
      live = live + 1
    end
  end
  return live
end
local slots = tonumber(ARGV[6]) == 0 and not quota
local holders = sweep(KEYS[2], KEYS[1])
local prev = 0
if not slots and not quota then
  sweep(KEYS[4], KEYS[3])
  prev = math.max(0, tonumber(redis.call('GET', KEYS[3]) or '0'))
end
local inst = ARGV[1]
local old = 0
local v = redis.call('HGET', KEYS[2], inst)
if v then old = units(v) else holders = holders + 1 end
local held = math.min(tonumber(ARGV[2]), old)
local release = math.min(tonumber(ARGV[3]), held)
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if quota then
  count = count + tonumber(ARGV[10])
elseif not v and not slots then
  count = count + tonumber(ARGV[10])
end
local drop = release
if slots then drop = drop + old - held end
held = held - release
count = math.max(0, count - drop)
local limit = tonumber(ARGV[5])
local avail
if slots or quota then
  avail = limit - count
else
  local w = tonumber(ARGV[6])
  avail = math.floor((limit * w - prev * tonumber(ARGV[7])) / w) - count
end
local want = tonumber(ARGV[4])
local need = math.max(1, tonumber(ARGV[11] or '1'))
local grant = 0
if want > 0 and avail >= need then
  grant = math.min(math.max(want, need), avail, math.max(need, math.floor(avail / (2 * holders))))
end
count = count + grant
held = held + grant
redis.call('SET', KEYS[1], count, 'PX', ARGV[9])
-- Kept at 0 units too: the entry says this instance is active on the key (holders), until its lease period ends.
redis.call('HSET', KEYS[2], inst, held .. ':' .. (now + tonumber(ARGV[8])))
redis.call('PEXPIRE', KEYS[2], ARGV[9])
return {grant, held, count, prev, math.max(0, avail - grant), holders}
`;

export interface LeaseRequest {
  /** Redis keys of the count and holdings (and, for a window, of the previous window's). */
  count: string;
  holdings: string;
  previousCount?: string;
  previousHoldings?: string;
  /** Units this instance holds now (unspent units of a window; slots it keeps). */
  held: number;
  /** Units of `held` given back. */
  release: number;
  want: number;
  limit: number;
  /** The window's length; 0 for slots. */
  windowMs: number;
  /** ms until the caller's window ends (windows only). */
  leftMs: number;
  /** How long the keys live after this call. */
  keyTtlMs: number;
  /** Units spent since this instance's last acknowledged report (windows). */
  spent?: number;
  /** The fewest units worth granting (default 1): less than this grants nothing. */
  need?: number;
  /**
   * A quota's count (a whole period, `windowMs` 0): an expired holding is forfeited rather than given back, and
   * `spent` is added to the count unconditionally (units admitted alone while Redis failed).
   */
  quota?: boolean;
}

export interface LeaseAnswer {
  granted: number;
  /** What this instance holds now, as Redis counts it (less than reported when its lease had expired). */
  held: number;
  count: number;
  previous: number;
  /** What the limit still allows after the grant, all instances together. */
  available: number;
  /** Instances active on this counted thing within a lease period (holding units or not), this one included. */
  holders: number;
}

export interface RedisLeaseOptions {
  url: string;
  /** This instance's id in holdings (random per process). */
  instance: string;
  /** How long a holding lives without renewal. */
  leaseTtlMs: number;
  commandTimeoutMs: number;
  connectTimeoutMs: number;
  onError: (error: Error) => void;
  onReady: () => void;
}

export interface RedisLeases {
  readonly redis: Redis;
  lease(request: LeaseRequest): Promise<LeaseAnswer>;
  /** A PING with the same deadline as lease calls. */
  ping(): Promise<void>;
  ready(): boolean;
  /** Resolves once the connection is ready. */
  connected(): Promise<void>;
  /**
   * Resolves once the connection is ready, or after `ms` (the longest a starting store makes a request wait); calls
   * while one wait is out share it.
   */
  untilReady(ms: number): Promise<void>;
}

interface WithLeaseCommand {
  gatehouseLease(...args: (string | number)[]): Promise<number[]>;
}

/** One connection to Redis with the lease script; no offline queue, so a call fails at once while disconnected. */
export function connectLeases(options: RedisLeaseOptions): RedisLeases {
  const redis = new Redis(options.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // A lease call sent again after a reconnection could grant twice; the caller asks again instead.
    autoResendUnfulfilledCommands: false,
    connectTimeout: options.connectTimeoutMs,
    // No commandTimeout or socketTimeout: both are timers that a blocked event loop fires before the socket is
    // read. Calls have their own deadline (`withDeadline`); a call that misses it drops the connection, which is
    // dialled again (the caller's backstop does the same for a handshake that never completes).
    reconnectOnError: (error: Error) => error.message.startsWith('READONLY'),
    retryStrategy: (attempt: number) =>
      Math.min(50 * 2 ** Math.min(attempt, 10), 2_000) + Math.floor(Math.random() * 100),
  });
  redis.on('error', (error: Error) => options.onError(error));
  redis.on('ready', () => options.onReady());
  redis.defineCommand('gatehouseLease', { numberOfKeys: 4, lua: LEASE_SCRIPT });
  const command = redis as unknown as WithLeaseCommand;
  let waiting: Promise<void> | undefined;

  return {
    redis,
    ready: () => redis.status === 'ready',
    connected: () =>
      redis.status === 'ready' ? Promise.resolve() : new Promise((resolve) => redis.once('ready', () => resolve())),
    // One wait shared by every caller while the connection is not ready (one listener, one timer, whatever the
    // number of requests waiting).
    untilReady: (ms) =>
      (waiting ??= new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timeout);
          redis.off('ready', done);
          waiting = undefined;
          resolve();
        };
        const timeout = setTimeout(done, ms);
        timeout.unref();
        redis.once('ready', done);
      })),
    ping: () => withDeadline(options.commandTimeoutMs, redis, () => redis.ping()).then(() => undefined),
    async lease(r) {
      const reply = await withDeadline(options.commandTimeoutMs, redis, () =>
        command.gatehouseLease(
          r.count,
          r.holdings,
          r.previousCount ?? r.count,
          r.previousHoldings ?? r.holdings,
          options.instance,
          r.held,
          r.release,
          r.want,
          r.limit,
          r.windowMs,
          Math.max(0, Math.ceil(r.leftMs)),
          options.leaseTtlMs,
          r.keyTtlMs,
          r.spent ?? 0,
          r.need ?? 1,
          r.quota === true ? 'q' : '',
        ),
      );
      const [granted, held, count, previous, available, holders] = reply.map(Number) as [
        number,
        number,
        number,
        number,
        number,
        number,
      ];
      return { granted, held, count, previous, available, holders };
    },
  };
}

/**
 * `fn()` with a deadline that tolerates a blocked event loop: ioredis's command timeout is a timer, and after the
 * loop was blocked (a saturated gateway) timers run before sockets are read, so an answer that arrived in time
 * would count as late — and the store would fall back to counting alone in the middle of a burst. Here the
 * deadline, once reached, waits one more turn of the loop (setImmediate runs after the poll phase reads sockets)
 * before it fails the call.
 */
export function withDeadline<T>(ms: number, redis: Redis, fn: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(
      () =>
        setImmediate(() => {
          if (settled) return;
          settled = true;
          // A peer that stopped answering would otherwise keep the connection until TCP gives up, minutes later.
          redis.disconnect(true);
          reject(Object.assign(new Error('Command timed out'), { code: 'ETIMEDOUT' }));
        }),
      ms,
    );
    fn().then(
      (value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(error as Error);
      },
    );
  });
}
