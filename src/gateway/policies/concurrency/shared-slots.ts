/**
 * Concurrency slots shared by every gateway instance on one Redis: a local semaphore per key whose size is the
 * number of slots this instance leases from Redis (`../rate-limit/redis-leases.ts`). The leases of all instances
 * together never exceed the cap, and a request runs only on a slot its instance leases, so the cap holds across
 * instances with 0 over while Redis answers.
 *
 * - A request takes a leased slot without a network hop; when every leased slot is in use it waits for one lease
 *   call (shared by every request waiting on the key), which grants at most a fair share of the free slots
 *   (`max(1, ⌊free / (2 × instances holding slots)⌋)`), so near the cap slots move one at a time.
 * - Slots not in use go back: at once while the key is contended (a lease call found no free slot), otherwise on
 *   the next tick (100 ms) down to the peak in use since the previous tick.
 * - Leases live `leaseTtlMs` (the `leaseTtl` setting, default 2 s) and are renewed every half period while held;
 *   a gateway that dies (SIGKILL, a crash, a partition) gives its slots back when its lease expires, at most one
 *   lease period later. An instance takes a slot only in the first half of its lease (the second half is slack for a
 *   renewal delayed by a busy event loop or a slow network), so Redis never gives back a slot still taken.
 * - While Redis fails (a call times out after `commandTimeoutMs`, or there is no connection), `degraded` is true:
 *   caps with `onStoreFailure: closed` are refused by the policy; `open` caps (the default) take slots from a local
 *   share, `⌈max / instances⌉` (instances holding slots at the last answer).
 */
import { randomBytes } from 'node:crypto';
import type { ConcurrencyStore } from '../../../shared/concurrency-store.ts';
import { connectLeases, type LeaseAnswer } from '../rate-limit/redis-leases.ts';

export interface SharedSlotsOptions {
  url: string;
  /** @default 'gatehouse:rl:' (the rate-limit store's prefix; slot keys are under `<prefix>c:`) */
  prefix?: string;
  /** @default 2000 */
  leaseTtlMs?: number;
  /** @default 500 */
  commandTimeoutMs?: number;
  /** @default 2000 */
  connectTimeoutMs?: number;
  /** @default 100 */
  tickMs?: number;
  onError?: (error: Error) => void;
}

export interface SharedSlots extends ConcurrencyStore {
  readonly degraded: boolean;
  /** Slots this instance leases for `key`, and how many of them are in use (tests). */
  leased(key: string): { held: number; inUse: number };
  connected(): Promise<void>;
  close(): Promise<void>;
}

interface Slots {
  key: string;
  max: number;
  held: number;
  inUse: number;
  /** performance.now() after which the leased slots may no longer be used. */
  expiresAt: number;
  calling: boolean;
  waiters: ((taken: boolean) => void)[];
  /** Most slots in use since the last tick. */
  peak: number;
  /** A lease call found no free slot: slots freed here go back at once. */
  contended: boolean;
  holders: number;
  /** Slots taken from the local share while Redis failed. */
  local: number;
}

export function createSharedSlots(options: SharedSlotsOptions): SharedSlots {
  const prefix = `${options.prefix ?? 'gatehouse:rl:'}c:`;
  const leaseTtlMs = options.leaseTtlMs ?? 2_000;
  const tickMs = options.tickMs ?? 100;
  const commandTimeoutMs = options.commandTimeoutMs ?? 500;
  let failing = false;
  let closed = false;
  let everReady = false;
  const onError = (error: Error) => {
    if (closed) return;
    failing = true;
    options.onError?.(error);
  };
  const link = connectLeases({
    url: options.url,
    instance: randomBytes(9).toString('base64url'),
    leaseTtlMs,
    commandTimeoutMs,
    connectTimeoutMs: options.connectTimeoutMs ?? 2_000,
    onError,
    onReady: () => {
      everReady = true;
    },
  });
  const all = new Map<string, Slots>();
  const keyTtl = 3 * leaseTtlMs;

  function call(s: Slots, held: number, want: number): Promise<LeaseAnswer> {
    const count = `${prefix}${s.key}`;
    return link.lease({
      count,
      holdings: `${count}\u0000h`,
      held,
      release: 0,
      want,
      limit: s.max,
      windowMs: 0,
      leftMs: 0,
      keyTtlMs: keyTtl,
    });
  }

  /** Reports what this instance keeps (less than it holds: the rest goes back), asking for `want` more. */
  async function lease(s: Slots, keep: number, want: number): Promise<void> {
    s.calling = true;
    // Shrink first: a slot being given back must not be taken while the call is out.
    if (keep < s.held) s.held = keep;
    const sentAt = performance.now();
    try {
      const answer = await call(s, s.held, want);
      failing = false;
      s.held = answer.held;
      s.expiresAt = sentAt + leaseTtlMs / 2;
      s.holders = answer.holders;
      s.contended = answer.available === 0;
    } catch (error) {
      onError(error as Error);
    }
    s.calling = false;
    const waiters = s.waiters;
    s.waiters = [];
    let i = 0;
    for (; i < waiters.length && usable(s) && s.inUse < s.held; i++) {
      take(s);
      waiters[i]!(true);
    }
    const rest = waiters.slice(i);
    if (rest.length === 0) return;
    if (failing) {
      for (const w of rest) w(takeLocal(s));
    } else if (!s.contended) {
      // The fair-share cap granted fewer than were waiting, or they came during a renewal or a give-back: ask.
      s.waiters = rest;
      void lease(s, s.held, rest.length);
    } else {
      for (const w of rest) w(false);
    }
  }

  const usable = (s: Slots) => performance.now() < s.expiresAt;
  function take(s: Slots): true {
    s.inUse++;
    if (s.inUse > s.peak) s.peak = s.inUse;
    return true;
  }
  function takeLocal(s: Slots): boolean {
    const share = Math.max(1, Math.ceil(s.max / Math.max(1, s.holders)));
    if (s.inUse + s.local >= share) return false;
    s.local++;
    return true;
  }

  function acquire(key: string, max: number): boolean | Promise<boolean> {
    let s = all.get(key);
    if (s === undefined || s.max !== max) {
      if (s !== undefined && s.held > s.inUse && !s.calling) void lease(s, s.inUse, 0);
      const next: Slots = s ?? {
        key,
        max,
        held: 0,
        inUse: 0,
        expiresAt: 0,
        calling: false,
        waiters: [],
        peak: 0,
        contended: false,
        holders: 1,
        local: 0,
      };
      next.max = max;
      all.set(key, next);
      s = next;
    }
    if (s.inUse < s.held && usable(s)) return take(s);
    if (!everReady && !failing && !closed) {
      // Starting up: wait for the connection (at most one command timeout) rather than decide alone.
      return link.untilReady(commandTimeoutMs).then(() => {
        if (!everReady) failing = true;
        return acquire(key, max);
      });
    }
    if (failing || !link.ready() || closed) return takeLocal(s);
    const target = s;
    return new Promise<boolean>((resolve) => {
      target.waiters.push(resolve);
      if (!target.calling) void lease(target, target.held, target.waiters.length);
    });
  }

  function release(key: string): void {
    const s = all.get(key);
    if (s === undefined) return;
    if (s.local > 0) {
      s.local--;
      return;
    }
    if (s.inUse > 0) s.inUse--;
    if (s.waiters.length > 0 || s.calling) return;
    if (s.contended && s.held > s.inUse) void lease(s, s.inUse, 0);
  }

  const timer = setInterval(() => {
    const t = performance.now();
    if (failing && link.ready() && !closed) {
      link.ping().then(
        () => (failing = false),
        () => {},
      );
    }
    for (const [key, s] of all) {
      if (s.calling) continue;
      const keep = Math.max(s.inUse, s.peak);
      s.peak = s.inUse;
      if (s.held > keep && !failing) void lease(s, keep, 0);
      else if (s.held > 0 && s.expiresAt - t < leaseTtlMs / 4 && !failing) void lease(s, s.held, 0);
      else if (s.held === 0 && s.inUse === 0 && s.local === 0 && s.waiters.length === 0) all.delete(key);
    }
  }, tickMs);
  timer.unref();

  return {
    acquire,
    release,
    get degraded() {
      return failing || (everReady && !link.ready() && !closed);
    },
    leased: (key) => ({ held: all.get(key)?.held ?? 0, inUse: all.get(key)?.inUse ?? 0 }),
    connected() {
      return link.connected();
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      if (link.ready()) {
        const back = [...all.values()].filter((s) => s.held > 0).map((s) => call(s, 0, 0).catch(() => {}));
        await Promise.race([Promise.all(back), new Promise((r) => setTimeout(r, 1_000).unref())]);
        await link.redis.quit().catch(() => link.redis.disconnect());
      } else link.redis.disconnect();
      all.clear();
    },
  };
}
