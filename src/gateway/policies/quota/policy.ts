/**
 * Daily and monthly quotas per client (all its keys, and every credential derived from them) and per org (all its
 * clients), counted per collection (its route) in calendar periods of the collection's `quotas.timeZone` (UTC by
 * default). A request spends its endpoint's `cost` of every quota that applies, all or nothing: a request refused
 * by one quota takes nothing from the others.
 *
 * Runs after rate limits and concurrency caps, so a request they refuse spends no quota. Every admitted answer
 * carries a quota in the IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers), appended to the rate limits'
 * own: the quota with the fewest units left, as the rate limits name their tightest, in `RateLimit-Policy`
 * (`"client-daily";q=1000;w=86400`, `w`: the period's length in seconds) and in `RateLimit`
 * (`"client-daily";r=990;t=3600`, `t`: seconds until its period ends). The fewest units left is what bounds the
 * caller's next requests, and one item instead of one per quota keeps every answer short: header bytes (built,
 * validated by Node, written and parsed) were most of what quotas cost a request. A refusal is 429
 * `GH_ERR_QUOTA_EXHAUSTED` naming the quota and when it resets, with `Retry-After`, and lists every quota.
 */
import type { QuotaPolicies } from '../../../config/schema.ts';
import type { Refusal } from '../../../shared/errors.ts';
import type { QuotaCounter, QuotaDecision, QuotaStore } from '../../../shared/quota-store.ts';
import { channels } from '../../observability/channels.ts';
import type { Principal } from '../../snapshot/compiled.ts';
import type { Policy, PolicyResult, QuotaDebit, RequestContext } from '../policy.ts';
import { shareChain, type DerivedClaims, type ShareCounter } from '../../tokens/derived.ts';
import { periodClock, type Period, type PeriodKind } from './periods.ts';

export interface QuotaOptions {
  store: QuotaStore;
  /** The collection's quotas, merged with the snapshot defaults. */
  quotas: QuotaPolicies;
  /** The collection's name (events). */
  collection: string;
  /** The collection's entry in the route table: counters are keyed by it, as rate limits are. */
  route: string;
}

interface Applied {
  /** `client-daily`, `org-monthly`: the name in the RateLimit fields and in refusals. */
  name: string;
  /** The start of its `RateLimit` item: `"client-daily";r=`. */
  item: string;
  scope: 'client' | 'org' | 'agent';
  subject: string;
  /** For the share of a credential the request's was delegated from: that credential (its refusal names it). */
  delegatedFrom?: ShareCounter | undefined;
  kind: PeriodKind;
  limit: number;
  key: string;
  clock: (now: number) => Period;
}

interface Resolved {
  applied: Applied[];
  /** Names of the quotas that refuse while the store is degraded (`onStoreFailure: closed`). */
  closed: string[];
  /** The current periods' counters and RateLimit-Policy value, built once per period (not per request). */
  current?: Current | undefined;
  /** Derived credentials with a limit share → their quotas, so that theirs too are built once per period. */
  shares?: Map<string, Resolved> | undefined;
}

/** Credentials with a share remembered per principal; past it the memo starts again (they live minutes). */
const MAX_SHARES = 10_000;

interface Current {
  periods: Period[];
  /** What telemetry reports of each admitted request (the client's and org's quotas, not an agent's share). */
  usage: QuotaDebit['quotas'];
  counters: QuotaCounter[];
  /** Every quota's `RateLimit-Policy` item (refusals list them all). */
  policy: string;
  /** Each quota's own item, for the answers that name it. */
  items: string[];
  /**
   * Per quota, the rate limits' `RateLimit-Policy` value last seen before its item, and the two joined: a rate
   * limit's value is one string per key, so an answer reuses the joined value instead of building (and validating
   * a new copy of) it.
   */
  after: (string | undefined)[];
  joined: string[];
  /** The last debit reported (`ctx.quotaDebit`): one object per period and cost, not one per request. */
  debit?: QuotaDebit | undefined;
  /** Valid from `from` (inclusive) to `until` (exclusive): the latest start and the earliest end of its periods. */
  from: number;
  until: number;
}

function build(r: Resolved, now: number): Current {
  const periods: Period[] = [];
  const counters: QuotaCounter[] = [];
  const usage: { scope: 'client' | 'org'; subject: string; period: PeriodKind; periodId: string }[] = [];
  const items: string[] = [];
  let from = -Infinity;
  let until = Infinity;
  for (const a of r.applied) {
    const p = a.clock(now);
    periods.push(p);
    counters.push({ key: a.key, limit: a.limit, period: p.id, endsAt: p.end });
    if (a.scope !== 'agent') usage.push({ scope: a.scope, subject: a.subject, period: a.kind, periodId: p.id });
    items.push(`"${a.name}";q=${a.limit};w=${Math.ceil((p.end - p.start) / 1000)}`);
    from = Math.max(from, p.start);
    until = Math.min(until, p.end);
  }
  return { periods, usage, counters, policy: items.join(', '), items, after: [], joined: [], from, until };
}

const KINDS: readonly PeriodKind[] = ['daily', 'monthly'];

export function quota(options: QuotaOptions): Policy {
  const { store, quotas, collection, route } = options;
  const timeZone = quotas.timeZone ?? 'UTC';
  const clocks = { daily: periodClock('daily', timeZone), monthly: periodClock('monthly', timeZone) };
  const resolved = new WeakMap<Principal, Resolved | null>();

  function resolve(principal: Principal): Resolved | null {
    const applied: Applied[] = [];
    const closed: string[] = [];
    for (const scope of ['client', 'org'] as const) {
      const q = scope === 'client' ? (principal.quota ?? quotas.client) : quotas.org;
      const subject = scope === 'client' ? principal.id : principal.orgId;
      if (q === undefined || subject === undefined) continue;
      for (const kind of KINDS) {
        const limit = q[kind];
        if (limit === undefined) continue;
        const name = `${scope}-${kind}`;
        applied.push({
          name,
          item: `"${name}";r=`,
          scope,
          subject,
          kind,
          limit,
          key: `${route}\u0000quota\u0000${scope}\u0000${subject}\u0000${kind}`,
          clock: clocks[kind],
        });
        if (q.onStoreFailure === 'closed') closed.push(name);
      }
    }
    return applied.length === 0 ? null : { applied, closed };
  }

  return function quotaPolicy(ctx: RequestContext): PolicyResult | Promise<PolicyResult> {
    const principal = ctx.principal!;
    let r = resolved.get(principal);
    if (r === undefined) {
      r = resolve(principal);
      resolved.set(principal, r);
    }
    if (r === null) return undefined;
    if (r.closed.length > 0 && store.degraded === true) return unavailable(r);
    const derived = ctx.derived;
    if (derived !== undefined) r = sharedOf(r, derived);
    const now = Date.now();
    let c = r.current;
    if (c === undefined || now >= c.until || now < c.from) r.current = c = build(r, now);
    const cost = ctx.endpoint.cost;
    const d = store.debit(c.counters, cost, r.closed.length === 0);
    const s = r;
    const current = c;
    return d instanceof Promise
      ? d.then((decision) => decide(ctx, s, current, decision, now, cost))
      : decide(ctx, s, current, d, now, cost);
  };

  /**
   * `withShare`, remembered per credential id (its shares are part of the signed credential: one id, one set of
   * shares). A credential without any share resolves to `r` itself, remembered too.
   */
  function sharedOf(r: Resolved, derived: DerivedClaims): Resolved {
    const shares = (r.shares ??= new Map());
    let own = shares.get(derived.j);
    if (own === undefined) {
      if (shares.size >= MAX_SHARES) shares.clear();
      const chain = shareChain(derived);
      shares.set(derived.j, (own = chain.length === 0 ? r : withShare(r, chain)));
    }
    return own;
  }

  /**
   * The quotas of a derived credential with a limit share: its own counters (a share of its client's quotas, else of
   * its org's) come first, then those of every credential it was delegated from that has a share (so that the
   * credentials delegated from one stay within its share together), and all are debited together with its client's
   * and org's, all or nothing.
   */
  function withShare(r: Resolved, chain: readonly ShareCounter[]): Resolved {
    const scope = r.applied.some((a) => a.scope === 'client') ? 'client' : 'org';
    const own: Applied[] = [];
    for (const c of chain) {
      const prefix = c.own ? 'agent' : `agent-d${c.depth}`;
      for (const a of r.applied) {
        if (a.scope !== scope) continue;
        own.push({
          ...a,
          name: `${prefix}-${a.kind}`,
          item: `"${prefix}-${a.kind}";r=`,
          scope: 'agent',
          subject: c.id,
          delegatedFrom: c.own ? undefined : c,
          limit: Math.max(1, Math.floor(a.limit * c.share)),
          key: `${route}\u0000quota\u0000agent\u0000${c.id}\u0000${a.kind}`,
        });
      }
    }
    return { applied: [...own, ...r.applied], closed: r.closed };
  }

  function decide(
    ctx: RequestContext,
    r: Resolved,
    current: Current,
    d: QuotaDecision,
    now: number,
    cost: number,
  ): PolicyResult {
    if (d.unavailable === true) return unavailable(r);
    const { periods, policy } = current;
    if (!d.allowed) {
      let live = '';
      for (let i = 0; i < r.applied.length; i++) live += `${i === 0 ? '' : ', '}${item(r, periods, d, i, now)}`;
      return refuse(ctx, r, periods[d.refused]!, d, now, cost, policy, live);
    }
    // The quota with the fewest units left; of equals, the one whose period ends last (the longer wait).
    let tightest = 0;
    for (let i = 1; i < r.applied.length; i++) {
      const left = r.applied[i]!.limit - d.used[i]!;
      const best = r.applied[tightest]!.limit - d.used[tightest]!;
      if (left < best || (left === best && periods[i]!.end > periods[tightest]!.end)) tightest = i;
    }
    addHeaders(ctx, current, tightest, item(r, periods, d, tightest, now));
    let debit = current.debit;
    if (debit === undefined || debit.units !== cost) current.debit = debit = { quotas: current.usage, units: cost };
    ctx.quotaDebit = debit;
    return undefined;
  }

  /** One quota's `RateLimit` item: units left and whole seconds until its period ends. */
  function item(r: Resolved, periods: Period[], d: QuotaDecision, i: number, now: number): string {
    // `t` as a small integer (| 0: at most a month of seconds), so that it is printed from V8's number cache.
    const t = Math.max(1, Math.ceil((periods[i]!.end - now) / 1000)) | 0;
    return `${r.applied[i]!.item}${Math.max(0, r.applied[i]!.limit - d.used[i]!)};t=${t}`;
  }

  function refuse(
    ctx: RequestContext,
    r: Resolved,
    period: Period,
    d: QuotaDecision,
    now: number,
    cost: number,
    policy: string,
    live: string,
  ): Refusal {
    const a = r.applied[d.refused]!;
    const headers: Record<string, string> = {};
    const h = ctx.responseHeaders;
    if (h !== undefined) for (let i = 0; i < h.length; i += 2) headers[h[i]!] = h[i + 1]!;
    headers['ratelimit-policy'] = headers['ratelimit-policy'] ? `${headers['ratelimit-policy']}, ${policy}` : policy;
    headers.ratelimit = headers.ratelimit ? `${headers.ratelimit}, ${live}` : live;
    headers['retry-after'] = String(Math.max(1, Math.ceil((period.end - now) / 1000)));
    const resetsAt = new Date(period.end).toISOString();
    const used = d.used[d.refused]!;
    const costs = cost === 1 ? '' : ` This operation costs ${cost} units.`;
    if (channels.quotaExhausted.hasSubscribers)
      channels.quotaExhausted.publish({ scope: a.scope, period: a.kind, collection, clientId: ctx.principal!.id });
    return {
      code: 'GH_ERR_QUOTA_EXHAUSTED',
      detail: `${
        a.delegatedFrom === undefined
          ? `The ${a.scope}'s ${a.kind} quota`
          : `The share of the credential it was delegated from (${a.delegatedFrom.id}, at delegation depth ${a.delegatedFrom.depth}) of the ${a.kind} quota`
      } of ${a.limit} units is used up (${used} used in ${period.id}, ${timeZone}); it resets at ${resetsAt}.${costs}${
        a.delegatedFrom === undefined ? '' : ' Every credential delegated from it counts against it (its limit_share).'
      }`,
      headers,
      extensions: { quota: a.name, limit: a.limit, used, period: period.id, resetsAt },
    };
  }

  function unavailable(r: Resolved): Refusal {
    const names = r.closed.join(' and ');
    return {
      code: 'GH_ERR_QUOTA_STORE_UNAVAILABLE',
      detail: `The ${names} quota${r.closed.length > 1 ? 's' : ''} cannot be checked: the shared quota store is unavailable and ${r.closed.length > 1 ? 'they are' : 'it is'} configured to fail closed (onStoreFailure: closed).`,
      headers: { 'retry-after': '1' },
    };
  }
}

/** Appends the quotas to the RateLimit fields a rate limit may have set already (one list per field). */
function addHeaders(ctx: RequestContext, current: Current, named: number, live: string): void {
  const policy = current.items[named]!;
  const h = ctx.responseHeaders;
  if (h === undefined) {
    ctx.responseHeaders = ['ratelimit-policy', policy, 'ratelimit', live];
    return;
  }
  const p = h.indexOf('ratelimit-policy');
  if (p === -1) h.push('ratelimit-policy', policy);
  else {
    const before = h[p + 1]!;
    if (current.after[named] !== before) {
      current.after[named] = before;
      current.joined[named] = `${before}, ${policy}`;
    }
    h[p + 1] = current.joined[named]!;
  }
  const l = h.indexOf('ratelimit');
  if (l === -1) h.push('ratelimit', live);
  else h[l + 1] = `${h[l + 1]}, ${live}`;
}
