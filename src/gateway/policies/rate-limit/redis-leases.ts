/**
 * Leases of allowance from Redis: one connection and one Lua script that hand each gateway instance a share of
 * what a limit still allows, atomically, and take back what a dead instance held. Used by the exact rate-limit store
 * (`lease-store.ts`: units of a sliding window, spent as requests are admitted) and by concurrency caps
 * (`../concurrency/shared-slots.ts`: slots, given back when requests end).
 *
 * Per counted thing Redis keeps a **count** (everything leased, plus, for a window, every unit spent) and a hash
 * of **holdings** (instance id → `units:expiresAt`, Redis time). Every call of the script:
 * 1. sweeps expired holdings (an instance that died, or was cut off for longer than the lease period), giving
 *    their units back to the count — this is how a killed gateway's allowance and slots return;
 * 2. takes this instance's report: the units it still holds (`held`; for a window, what it did not spend — the
 *    difference stays counted as spent; for slots, what it keeps — the difference is given back) and `release`;
 * 3. grants at most `want` more, never beyond what the limit allows now, and at most a fair share:
 *    `max(1, ⌊available / (2 × holders)⌋)`. So an instance's share follows its own demand (the caller asks for
 *    its recent rate × a horizon), shrinks as more instances hold leases, and near the limit the last units go
 *    out one at a time;
 * 4. renews this instance's holding for one lease period.
 *
 * Time in the script is Redis's (`TIME`), so lease expiry does not depend on gateway clocks agreeing; the window
 * arithmetic uses `left` (ms until the caller's window ends), computed by the caller as the rate-limit contract
 * requires. A caller treats its units as void once `leaseTtlMs` has passed since it *sent* the call that granted
 * them, which is always before Redis expires them.
 */
import { Redis } from 'ioredis';

/**
 * KEYS: 1 count, 2 holdings, 3 previous window's count, 4 previous window's holdings (3 and 4 unused for slots).
 * ARGV: 1 instance, 2 held, 3 release, 4 want, 5 limit, 6 window ms (0: slots), 7 left ms, 8 lease ms, 9 key ttl ms.
 * Returns {granted, held now, count, previous count, available after the grant, holders}.
 */
const LEASE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function units(v)
  local sep = string.find(v, ':', 1, true)
  return tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
end
local function sweep(h, c)
  local all = redis.call('HGETALL', h)
  local live = 0
  for i = 1, #all, 2 do
    local n, exp = units(all[i + 1])
    if exp <= now then
      redis.call('HDEL', h, all[i])
      if n > 0 then redis.call('DECRBY', c, n) end
    else
      live = live + 1
    end
  end
  return live
end
local slots = tonumber(ARGV[6]) == 0
local holders = sweep(KEYS[2], KEYS[1])
local prev = 0
if not slots then
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
local drop = release
if slots then drop = drop + old - held end
held = held - release
count = math.max(0, count - drop)
local limit = tonumber(ARGV[5])
local avail
if slots then
  avail = limit - count
else
  local w = tonumber(ARGV[6])
  avail = math.floor((limit * w - prev * tonumber(ARGV[7])) / w) - count
end
local want = tonumber(ARGV[4])
local grant = 0
if want > 0 and avail > 0 then
  grant = math.min(want, avail, math.max(1, math.floor(avail / (2 * holders))))
end
count = count + grant
held = held + grant
redis.call('SET', KEYS[1], count, 'PX', ARGV[9])
if held > 0 then
  redis.call('HSET', KEYS[2], inst, held .. ':' .. (now + tonumber(ARGV[8])))
  redis.call('PEXPIRE', KEYS[2], ARGV[9])
else
  redis.call('HDEL', KEYS[2], inst)
end
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
}

export interface LeaseAnswer {
  granted: number;
  /** What this instance holds now, as Redis counts it (less than reported when its lease had expired). */
  held: number;
  count: number;
  previous: number;
  /** What the limit still allows after the grant, all instances together. */
  available: number;
  /** Instances holding a lease on this counted thing, this one included. */
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
  ready(): boolean;
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
    commandTimeout: options.commandTimeoutMs,
    socketTimeout: options.commandTimeoutMs,
    reconnectOnError: (error: Error) => error.message.startsWith('READONLY'),
    retryStrategy: (attempt: number) =>
      Math.min(50 * 2 ** Math.min(attempt, 10), 2_000) + Math.floor(Math.random() * 100),
  });
  redis.on('error', (error: Error) => options.onError(error));
  redis.on('ready', () => options.onReady());
  redis.defineCommand('gatehouseLease', { numberOfKeys: 4, lua: LEASE_SCRIPT });
  const command = redis as unknown as WithLeaseCommand;
  return {
    redis,
    ready: () => redis.status === 'ready',
    async lease(r) {
      const reply = await command.gatehouseLease(
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
