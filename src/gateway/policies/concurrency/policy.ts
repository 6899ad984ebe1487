/**
 * Concurrency caps per API key, per client and per org: at most `max` requests in flight at once, across every
 * gateway instance that shares the limit store. A request takes a slot of each cap that applies (narrowest first)
 * and gives them back when its response ends or its connection closes (a WebSocket holds its slots while open).
 *
 * Over a cap: 429 `GH_ERR_CONCURRENCY_LIMITED` with `Retry-After: 1`, or, when the collection sets
 * `concurrency.queue`, a wait for a slot of at most `maxWait` with at most `maxLength` requests waiting per cap on
 * this instance (woken when a request of the same cap ends here, and re-checked every 20 ms for slots freed on
 * other instances). While the shared store is unavailable, caps with `onStoreFailure: closed` refuse with 503
 * `GH_ERR_CONCURRENCY_STORE_UNAVAILABLE`.
 *
 * A derived credential with a `limit_share` takes a slot of its own cap first — the share of the narrowest cap that
 * applies, at least 1, never queued — then a slot of the cap of every credential it was delegated from that has a
 * share (so that the credentials delegated from one stay within its cap together), and then its key's slots, as any
 * request of the key. A request refused by one of them gives back the slots it took of the others at once.
 */
import type { ServerResponse } from 'node:http';
import type { ConcurrencyCap, ConcurrencyPolicies } from '../../../config/schema.ts';
import type { ConcurrencyStore } from '../../../shared/concurrency-store.ts';
import { refusal, type Refusal } from '../../../shared/errors.ts';
import type { KeyEntry } from '../../snapshot/compiled.ts';
import type { Policy, PolicyResult, RequestContext } from '../policy.ts';
import { failClosed, perKeyEntry, type StoreUnavailable } from '../per-key.ts';
import { shareChain, type ShareCounter } from '../../tokens/derived.ts';
import type { ClientConcurrency, ConcurrencyStats } from './stats.ts';

export interface ConcurrencyOptions {
  store: ConcurrencyStore;
  /** The collection's caps (merged with the snapshot defaults). */
  caps: ConcurrencyPolicies;
  /** The collection's route (host and base path): every counter is keyed by it, as rate-limit counters are. */
  route: string;
  stats: ConcurrencyStats;
}

const SCOPES = ['key', 'client', 'org'] as const;
type Scope = (typeof SCOPES)[number];
const NO_SHARES: readonly ShareCounter[] = [];
const NO_COUNTERS: readonly string[] = [];
/** How often a queued request re-checks the store for slots freed on other instances. */
const QUEUE_POLL_MS = 20;

const STORE_UNAVAILABLE: StoreUnavailable = {
  code: 'GH_ERR_CONCURRENCY_STORE_UNAVAILABLE',
  what: 'concurrency cap',
  store: 'limit store',
};

/** One key's caps on this collection, resolved on its first request. */
interface KeyCaps {
  caps: (ConcurrencyCap | undefined)[];
  counters: string[];
  closed: Scope[];
  client: ClientConcurrency;
}

/** One request's slots: which it holds, and whether it has ended. */
interface Held {
  taken: boolean[];
  ended: boolean;
  counted: boolean;
  caps: KeyCaps;
  /** A derived credential's shares (its own, then its ancestors'; empty for none) and their counters, in order. */
  shares: readonly ShareCounter[];
  shareCounters: readonly string[];
  /** How many of `shareCounters` (from the first) it holds a slot of. */
  sharesHeld: number;
  /** The policy's function that gives every slot back (called once: the answer is complete or the connection closed). */
  end: (held: Held) => void;
}

/**
 * The request's `Held`, on its response: one shared 'close' listener finds it there, so a request adds a listener but
 * allocates no closure or once-wrapper for it (as the proxy's own client-close listener does).
 */
const kHeld = Symbol('gatehouse.concurrency.held');
type WithHeld = ServerResponse & { [kHeld]?: Held | undefined };

function onResponseClose(this: WithHeld): void {
  const held = this[kHeld];
  this[kHeld] = undefined;
  held?.end(held);
}

export function concurrency(options: ConcurrencyOptions): Policy {
  const { store, caps, route, stats } = options;
  const queue = caps.queue;
  const capsOf = perKeyEntry(resolve);
  /** Per counter, the queued requests to wake when a slot of it is released here. */
  const waiting = new Map<string, (() => void)[]>();
  /** Each credential's share counters on this collection, built once per credential (its chain is remembered). */
  const shareCounters = new WeakMap<readonly ShareCounter[], readonly string[]>();

  function resolve(entry: KeyEntry): KeyCaps | null {
    const p = entry.principal;
    const applied = [caps.key, caps.client, p.orgId !== undefined ? caps.org : undefined];
    if (applied.every((c) => c === undefined)) return null;
    return {
      caps: applied,
      counters: [
        `${route}\u0000key\u0000${entry.hash}`,
        `${route}\u0000client\u0000${p.id}`,
        p.orgId !== undefined ? `${route}\u0000org\u0000${p.orgId}` : '',
      ],
      closed: SCOPES.filter((_, i) => applied[i]?.onStoreFailure === 'closed'),
      client: stats.of(p.id),
    };
  }

  function releaseAll(s: KeyCaps, held: Held): void {
    for (let i = 0; i < 3; i++) {
      if (!held.taken[i]) continue;
      held.taken[i] = false;
      store.release(s.counters[i]!);
      if (queue !== undefined) waiting.get(s.counters[i]!)?.shift()?.();
    }
    if (held.counted) {
      held.counted = false;
      s.client.inFlight--;
    }
    if (held.sharesHeld > 0) releaseShares(held);
  }

  function refuse(s: KeyCaps, step: number, queued: boolean): Refusal {
    s.client.refused++;
    const scope = SCOPES[step]!;
    return refusal(
      'GH_ERR_CONCURRENCY_LIMITED',
      `The ${scope} concurrency cap of ${s.caps[step]!.max} request${s.caps[step]!.max === 1 ? '' : 's'} in flight is reached${queued ? `, and no slot freed within ${queue!.maxWait / 1000}s` : ''}.`,
      { 'retry-after': '1' },
    );
  }

  /** Takes the slots from `step` on; a promise only when the store (or the queue) makes the request wait. */
  function takeFrom(s: KeyCaps, held: Held, step: number): PolicyResult | Promise<PolicyResult> {
    for (; step < 3; step++) {
      const cap = s.caps[step];
      if (cap === undefined) continue;
      const r = store.acquire(s.counters[step]!, cap.max);
      if (r === true) {
        held.taken[step] = true;
        continue;
      }
      const at = step;
      const next = (taken: boolean): PolicyResult | Promise<PolicyResult> => {
        if (held.ended) {
          if (taken) store.release(s.counters[at]!);
          releaseAll(s, held);
          return undefined;
        }
        if (taken) {
          held.taken[at] = true;
          return takeFrom(s, held, at + 1);
        }
        if (queue === undefined) {
          releaseAll(s, held);
          return refuse(s, at, false);
        }
        return wait(s, held, at);
      };
      return r === false ? next(false) : r.then(next);
    }
    s.client.inFlight++;
    held.counted = true;
    return undefined;
  }

  /** Waits in the cap's queue for a slot, up to `queue.maxWait`. */
  function wait(s: KeyCaps, held: Held, step: number): PolicyResult | Promise<PolicyResult> {
    const counter = s.counters[step]!;
    let list = waiting.get(counter);
    if (list === undefined) waiting.set(counter, (list = []));
    if (list.length >= queue!.maxLength) {
      releaseAll(s, held);
      return refuse(s, step, false);
    }
    s.client.queued++;
    s.client.queuedTotal++;
    const deadline = performance.now() + queue!.maxWait;
    const queued = list;
    return new Promise<PolicyResult>((done) => {
      let timer: NodeJS.Timeout | undefined;
      let trying = false;
      const leave = () => {
        clearTimeout(timer);
        const i = queued.indexOf(wake);
        if (i >= 0) queued.splice(i, 1);
        if (queued.length === 0 && waiting.get(counter) === queued) waiting.delete(counter);
        s.client.queued--;
      };
      const attempt = async () => {
        if (trying) return;
        trying = true;
        const taken = await store.acquire(counter, s.caps[step]!.max);
        trying = false;
        if (held.ended) {
          if (taken) store.release(counter);
          leave();
          releaseAll(s, held);
          return done(undefined);
        }
        if (taken) {
          leave();
          held.taken[step] = true;
          return done(takeFrom(s, held, step + 1));
        }
        if (performance.now() >= deadline) {
          leave();
          releaseAll(s, held);
          return done(refuse(s, step, true));
        }
        timer = setTimeout(() => void attempt(), Math.min(QUEUE_POLL_MS, Math.max(1, deadline - performance.now())));
      };
      const wake = () => {
        clearTimeout(timer);
        void attempt();
      };
      queued.push(wake);
      timer = setTimeout(() => void attempt(), QUEUE_POLL_MS);
    });
  }

  function end(held: Held): void {
    held.ended = true;
    releaseAll(held.caps, held);
  }

  function releaseShares(held: Held): void {
    for (let i = 0; i < held.sharesHeld; i++) store.release(held.shareCounters[i]!);
    held.sharesHeld = 0;
  }

  function countersOf(chain: readonly ShareCounter[]): readonly string[] {
    let counters = shareCounters.get(chain);
    if (counters === undefined)
      shareCounters.set(chain, (counters = chain.map((c) => `${route}\u0000agent\u0000${c.id}`)));
    return counters;
  }

  /**
   * Takes a slot of each share's cap from `step` on (the share of `base`, the narrowest cap, at least 1; never
   * queued), then the key's slots. A refusal gives back the share slots taken.
   */
  function takeShares(s: KeyCaps, held: Held, base: number, step: number): PolicyResult | Promise<PolicyResult> {
    for (; step < held.shares.length; step++) {
      const max = Math.max(1, Math.floor(base * held.shares[step]!.share));
      const counter = held.shareCounters[step]!;
      const r = store.acquire(counter, max);
      if (r === true) {
        held.sharesHeld++;
        continue;
      }
      const at = step;
      const next = (taken: boolean): PolicyResult | Promise<PolicyResult> => {
        if (held.ended) {
          if (taken) store.release(counter);
          releaseShares(held);
          return undefined;
        }
        if (!taken) {
          releaseShares(held);
          return refuseShare(held.shares[at]!, max);
        }
        held.sharesHeld++;
        return takeShares(s, held, base, at + 1);
      };
      return r === false ? next(false) : r.then(next);
    }
    return takeFrom(s, held, 0);
  }

  function refuseShare(c: ShareCounter, max: number): Refusal {
    const inFlight = `${max} request${max > 1 ? 's' : ''} in flight`;
    return refusal(
      'GH_ERR_CONCURRENCY_LIMITED',
      c.own
        ? `The agent's share of the concurrency cap, ${inFlight}, is reached (the derived credential's limit_share).`
        : `The share of the credential it was delegated from (${c.id}, at delegation depth ${c.depth}) of the concurrency cap, ${inFlight}, is reached: every credential delegated from it counts against it (its limit_share).`,
      { 'retry-after': '1' },
    );
  }

  return function concurrencyPolicy(ctx: RequestContext) {
    const s = capsOf(ctx.key!);
    if (s === null) return undefined;
    const unavailable = failClosed(store, s.closed, STORE_UNAVAILABLE);
    if (unavailable) return unavailable;
    // The client went away while an earlier policy waited (e.g. for Redis): its 'close' has fired already, so a slot
    // taken now would never be given back. Nothing is held; the request ends when it is forwarded (the proxy sees
    // the closed response and does not call the upstream).
    if (ctx.res !== null ? ctx.res.closed || ctx.res.destroyed : ctx.req.socket.destroyed) return undefined;
    const derived = ctx.derived;
    // A derived credential with a limit share: a slot of its own cap and of each ancestor's (shares of the narrowest
    // cap) first.
    const shares = derived === undefined ? NO_SHARES : shareChain(derived);
    const held: Held = {
      taken: [false, false, false],
      ended: false,
      counted: false,
      caps: s,
      shares,
      shareCounters: shares.length === 0 ? NO_COUNTERS : countersOf(shares),
      sharesHeld: 0,
      end,
    };
    // The slots go back when the answer is complete or the connection closes, whichever comes first.
    untilClosed(ctx, held);
    if (shares.length === 0) return takeFrom(s, held, 0);
    return takeShares(s, held, s.caps.find((c) => c !== undefined)!.max, 0);
  };
}

/** Calls `held.end` once the answer is complete or the connection closes (for an upgrade: its socket closes). */
function untilClosed(ctx: RequestContext, held: Held): void {
  const res = ctx.res as WithHeld | null;
  if (res === null) {
    ctx.req.socket.once('close', () => held.end(held));
    return;
  }
  res[kHeld] = held;
  res.on('close', onResponseClose);
}
