/**
 * Rate limit per API key, per client and per org (customer), before traffic reaches the upstream. Limits come
 * from the client's overrides, else the collection's, else the snapshot defaults; counters are per collection
 * (its route: host and base path).
 * Every answer carries IETF RateLimit-Policy / RateLimit headers; a refusal is 429 with Retry-After. A request spends
 * its endpoint's `cost` (default 1) of every limit, so an expensive operation uses a limit up faster.
 *
 * While a shared store is degraded (Redis unreachable, it counts locally), a limit with `onStoreFailure: closed`
 * refuses the requests it governs with 503 GH_ERR_RATE_LIMIT_STORE_UNAVAILABLE and `Retry-After: 1`, before any
 * hit is counted; `open` limits (the default) go on, held per instance. The check reads one field of the store.
 *
 * A derived credential with a limit share is counted first against its own share, then against the share of every
 * credential it was delegated from (the `cl` claim), narrowest first like the key's own limits: the share that
 * refuses, and every limit after it, count nothing; the narrower shares before it have counted the hit (a store hit
 * is not taken back). Credentials minted without `cl` count against their own share only.
 */
import type { RateLimit } from '../../../config/schema.ts';
import { refusal, type Refusal } from '../../../shared/errors.ts';
import { channels } from '../../observability/channels.ts';
import type { Policy, PolicyResult, RequestContext } from '../policy.ts';
import { failClosed, perKeyEntry, type StoreUnavailable } from '../per-key.ts';
import type { KeyEntry } from '../../snapshot/compiled.ts';
import { rateLimitHeader, rateLimitHeaders, rateLimitPolicyHeader, type AppliedLimit } from './headers.ts';
import type { RateLimitDecision, RateLimitStore } from '../../../shared/rate-limit-store.ts';
import { shareChain, type ShareCounter } from '../../tokens/derived.ts';

export interface RateLimitOptions {
  store: RateLimitStore;
  /** Collection-level limits (already merged with the snapshot defaults). */
  limits: { key?: RateLimit; client?: RateLimit; org?: RateLimit };
  /** The collection's name (in events and metrics). */
  collection: string;
  /**
   * The collection's entry in the route table (host and base path), unique among every collection the gateway
   * serves. Every counter is keyed by it: on the multi-tenant cloud gateway names and org ids are chosen by
   * each tenant, and only the base path (under the tenant's prefix) tells two tenants' collections apart.
   */
  route: string;
}

const STORE_UNAVAILABLE: StoreUnavailable = {
  code: 'GH_ERR_RATE_LIMIT_STORE_UNAVAILABLE',
  what: 'rate limit',
  store: 'rate-limit store',
};

/** What one key's requests to one collection are counted against; resolved on its first request. */
interface KeyLimits {
  key: RateLimit | undefined;
  client: RateLimit | undefined;
  org: RateLimit | undefined;
  /** Counter names, built once: a string's hash is computed once, so the store's lookups stay cheap. */
  keyCounter: string;
  clientCounter: string;
  orgCounter: string;
  /** The RateLimit-Policy value: it depends on configuration only. */
  policyHeader: string;
  /** The applicable limits that refuse while the store is degraded (`onStoreFailure: closed`), by name. */
  closed: AppliedLimit['name'][];
}

export function rateLimit(options: RateLimitOptions): Policy {
  const { store, limits, collection, route } = options;
  const keyPrefix = `${route}\u0000key\u0000`;
  const clientPrefix = `${route}\u0000client\u0000`;
  const orgPrefix = `${route}\u0000org\u0000`;
  const agentPrefix = `${route}\u0000agent\u0000`;
  const limitsOf = perKeyEntry(resolve);

  function resolve(entry: KeyEntry): KeyLimits | null {
    const principal = entry.principal;
    const key = principal.limits.key ?? limits.key;
    const client = principal.limits.client ?? limits.client;
    const org = principal.orgId !== undefined ? limits.org : undefined;
    if (key === undefined && client === undefined && org === undefined) return null;
    const policy: { name: AppliedLimit['name']; limit: number; windowMs: number }[] = [];
    if (key) policy.push({ name: 'key', limit: key.limit, windowMs: key.window });
    if (client) policy.push({ name: 'client', limit: client.limit, windowMs: client.window });
    if (org) policy.push({ name: 'org', limit: org.limit, windowMs: org.window });
    const closed = (['key', 'client', 'org'] as const).filter(
      (name) => ({ key, client, org })[name]?.onStoreFailure === 'closed',
    );
    return {
      key,
      client,
      org,
      closed,
      keyCounter: keyPrefix + entry.hash,
      clientCounter: clientPrefix + principal.id,
      orgCounter: org ? orgPrefix + principal.orgId! : '',
      policyHeader: rateLimitPolicyHeader(policy),
    };
  }

  return function rateLimitPolicy(ctx: RequestContext) {
    const s = limitsOf(ctx.key!);
    if (s === null) return undefined;
    const unavailable = failClosed(store, s.closed, STORE_UNAVAILABLE);
    if (unavailable) return unavailable;

    // Narrowest first: a refused hit is not counted, so a key over its limit does not drain its org's budget.
    // Decided synchronously while the store answers synchronously (the memory store; a lease store holding units);
    // a hit that has to wait for the shared store continues in `decideFrom`.
    const now = Date.now();
    const derived = ctx.derived;
    if (derived === undefined) return decideFrom(ctx, s, now, 0, undefined, undefined);
    const chain = shareChain(derived);
    if (chain.length === 0) return decideFrom(ctx, s, now, 0, undefined, undefined);
    // A derived credential with a limit share: its own counter first (the narrowest), then the share of every
    // credential it was delegated from (so that the credentials delegated from one stay within its share together),
    // then its root key's limits, which its traffic still counts against.
    return hitShares(ctx, s, (s.key ?? s.client ?? s.org)!, chain, 0, now, undefined);
  };

  /**
   * Hits the shares of `chain` from `step` on, then the key's limits; `best` is the tightest share decided so far.
   * A share's limit is that fraction of the narrowest configured limit, at least 1.
   */
  function hitShares(
    ctx: RequestContext,
    s: KeyLimits,
    base: RateLimit,
    chain: readonly ShareCounter[],
    step: number,
    now: number,
    best: AppliedLimit | undefined,
  ): PolicyResult | Promise<PolicyResult> {
    for (; step < chain.length; step++) {
      const c = chain[step]!;
      const limit = Math.max(1, Math.floor(base.limit * c.share));
      const r = store.hit(agentPrefix + c.id, limit, base.window, now, ctx.endpoint.cost);
      if (r instanceof Promise) {
        const at = step;
        const before = best;
        return r.then((d) => {
          if (!d.allowed) return refuseShare(ctx, c, limit, base.window, d);
          return hitShares(ctx, s, base, chain, at + 1, now, tightestShare(before, c, limit, base.window, d));
        });
      }
      if (!r.allowed) return refuseShare(ctx, c, limit, base.window, r);
      best = tightestShare(best, c, limit, base.window, r);
    }
    const tightest = best!;
    const r = decideFrom(ctx, s, now, 0, undefined, undefined);
    return r instanceof Promise ? r.then((x) => withAgent(ctx, x, tightest)) : withAgent(ctx, r, tightest);
  }

  /** The tighter of `best` and the share `c` just decided. */
  function tightestShare(
    best: AppliedLimit | undefined,
    c: ShareCounter,
    limit: number,
    windowMs: number,
    d: RateLimitDecision,
  ): AppliedLimit {
    if (best !== undefined && !tighter(d, best.decision)) return best;
    return { name: shareName(c), limit, windowMs, decision: d };
  }

  /** Adds the tightest share to the RateLimit fields of an admitted request. */
  function withAgent(ctx: RequestContext, result: PolicyResult, a: AppliedLimit): PolicyResult {
    if (result !== undefined) return result;
    const h = ctx.responseHeaders!;
    h[1] = `${rateLimitPolicyHeader([a])}, ${h[1]}`;
    h[3] = `${rateLimitHeader(a.name, a.decision)}, ${h[3]}`;
    return undefined;
  }

  function refuseShare(
    ctx: RequestContext,
    c: ShareCounter,
    limit: number,
    windowMs: number,
    d: RateLimitDecision,
  ): Refusal {
    if (channels.rateLimited.hasSubscribers)
      channels.rateLimited.publish({
        scope: 'agent',
        collection,
        clientId: ctx.principal!.id,
        requestId: ctx.requestId,
      });
    const applied: AppliedLimit = { name: shareName(c), limit, windowMs, decision: d };
    const rate = `${limit} requests per ${windowMs / 1000}s`;
    return refusal(
      'GH_ERR_RATE_LIMITED',
      c.own
        ? `The agent's share of the rate limit, ${rate}, is exhausted (the derived credential's limit_share).`
        : `The share of the credential it was delegated from (${c.id}, at delegation depth ${c.depth}), ${rate}, is used up: every credential delegated from it counts against it (its limit_share).`,
      rateLimitHeaders([applied], applied),
    );
  }

  /**
   * Hits the limits from `step` on (0 key, 1 client, 2 org), given the decisions made so far; returns a promise
   * only when the store does.
   */
  function decideFrom(
    ctx: RequestContext,
    s: KeyLimits,
    now: number,
    step: number,
    key: RateLimitDecision | undefined,
    client: RateLimitDecision | undefined,
  ): PolicyResult | Promise<PolicyResult> {
    let org: RateLimitDecision | undefined;
    for (; step < 3; step++) {
      const limit = step === 0 ? s.key : step === 1 ? s.client : s.org;
      if (limit === undefined) continue;
      const counter = step === 0 ? s.keyCounter : step === 1 ? s.clientCounter : s.orgCounter;
      const result = store.hit(counter, limit.limit, limit.window, now, ctx.endpoint.cost);
      if (result instanceof Promise) {
        const at = step;
        return result.then((d) => {
          if (!d.allowed) return refuseAt(ctx, s, at, d, key, client);
          if (at === 2) return finish(ctx, s, key, client, d);
          return decideFrom(ctx, s, now, at + 1, at === 0 ? d : key, at === 1 ? d : client);
        });
      }
      if (!result.allowed) return refuseAt(ctx, s, step, result, key, client);
      if (step === 0) key = result;
      else if (step === 1) client = result;
      else org = result;
    }
    return finish(ctx, s, key, client, org);
  }

  function refuseAt(
    ctx: RequestContext,
    s: KeyLimits,
    step: number,
    d: RateLimitDecision,
    key: RateLimitDecision | undefined,
    client: RateLimitDecision | undefined,
  ): Refusal {
    if (step === 0) return refuse(ctx, s, d, undefined, undefined);
    if (step === 1) return refuse(ctx, s, key, d, undefined);
    return refuse(ctx, s, key, client, d);
  }

  /** Sets the RateLimit headers of an admitted request: the most restrictive decision names itself. */
  function finish(
    ctx: RequestContext,
    s: KeyLimits,
    key: RateLimitDecision | undefined,
    client: RateLimitDecision | undefined,
    org: RateLimitDecision | undefined,
  ): undefined {
    let tightest: RateLimitDecision | undefined = key;
    let tightestName: AppliedLimit['name'] = 'key';
    if (client !== undefined && (tightest === undefined || tighter(client, tightest))) {
      tightest = client;
      tightestName = 'client';
    }
    if (org !== undefined && (tightest === undefined || tighter(org, tightest))) {
      tightest = org;
      tightestName = 'org';
    }
    ctx.responseHeaders = ['ratelimit-policy', s.policyHeader, 'ratelimit', rateLimitHeader(tightestName, tightest!)];
    return undefined;
  }

  /** The refusal by the last decision given, with headers for every limit checked up to it. */
  function refuse(
    ctx: RequestContext,
    s: KeyLimits,
    key: RateLimitDecision | undefined,
    client: RateLimitDecision | undefined,
    org: RateLimitDecision | undefined,
  ) {
    const applied: AppliedLimit[] = [];
    if (key) applied.push({ name: 'key', limit: s.key!.limit, windowMs: s.key!.window, decision: key });
    if (client) applied.push({ name: 'client', limit: s.client!.limit, windowMs: s.client!.window, decision: client });
    if (org) applied.push({ name: 'org', limit: s.org!.limit, windowMs: s.org!.window, decision: org });
    const refused = applied[applied.length - 1]!;
    if (channels.rateLimited.hasSubscribers) {
      channels.rateLimited.publish({
        scope: refused.name,
        collection,
        clientId: ctx.principal!.id,
        requestId: ctx.requestId,
      });
    }
    const cost = ctx.endpoint.cost;
    const what =
      cost === 1
        ? ''
        : cost > refused.limit
          ? ` This operation costs ${cost} units, more than the whole limit: it can never pass under it.`
          : ` This operation costs ${cost} units.`;
    return refusal(
      'GH_ERR_RATE_LIMITED',
      `The ${refused.name} rate limit of ${refused.limit} requests per ${refused.windowMs / 1000}s is exhausted.${what}`,
      rateLimitHeaders(applied, refused),
    );
  }
}

/** A share's name in the RateLimit fields: `agent` for the credential's own, `agent-d<depth>` for an ancestor's. */
function shareName(c: ShareCounter): AppliedLimit['name'] {
  return c.own ? 'agent' : `agent-d${c.depth}`;
}

/** Whether `a` is more restrictive than `b`: less remaining; on a tie, the later reset. */
function tighter(a: RateLimitDecision, b: RateLimitDecision): boolean {
  return a.remaining < b.remaining || (a.remaining === b.remaining && a.resetMs > b.resetMs);
}
