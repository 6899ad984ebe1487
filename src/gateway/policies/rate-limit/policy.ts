/**
 * Rate limit per API key, per client and per org (customer), before traffic reaches the upstream. Limits come
 * from the client's overrides, else the collection's, else the snapshot defaults; counters are per collection
 * (its route: host and base path).
 * Every answer carries IETF RateLimit-Policy / RateLimit headers; a refusal is 429 with Retry-After.
 */
import type { RateLimit } from '../../../config/schema.ts';
import { refusal } from '../../http/errors.ts';
import { channels } from '../../observability/channels.ts';
import type { Policy, RequestContext } from '../policy.ts';
import { rateLimitHeaders, type AppliedLimit } from './headers.ts';
import type { RateLimitStore } from './memory-store.ts';

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

export function rateLimit(options: RateLimitOptions): Policy {
  const { store, limits, collection, route } = options;
  const keyPrefix = `${route}\u0000key\u0000`;
  const clientPrefix = `${route}\u0000client\u0000`;
  const orgPrefix = `${route}\u0000org\u0000`;

  return function rateLimitPolicy(ctx: RequestContext) {
    const principal = ctx.principal!;
    const keyLimit = principal.limits.key ?? limits.key;
    const clientLimit = principal.limits.client ?? limits.client;
    const orgLimit = principal.orgId !== undefined ? limits.org : undefined;
    if (keyLimit === undefined && clientLimit === undefined && orgLimit === undefined) return undefined;

    const applied: AppliedLimit[] = [];
    let refused: AppliedLimit | undefined;
    // Narrowest first: a refused hit is not counted, so a key over its limit does not drain its org's budget.
    if (keyLimit) refused = check(store, applied, 'key', keyLimit, keyPrefix + ctx.key!.hash);
    if (clientLimit && !refused) refused = check(store, applied, 'client', clientLimit, clientPrefix + principal.id);
    if (orgLimit && !refused) refused = check(store, applied, 'org', orgLimit, orgPrefix + principal.orgId!);

    const headers = rateLimitHeaders(applied, refused);
    if (refused) {
      if (channels.rateLimited.hasSubscribers) {
        channels.rateLimited.publish({ scope: refused.name, collection, clientId: principal.id, requestId: ctx.requestId });
      }
      return refusal('GH_ERR_RATE_LIMITED', `The ${refused.name} rate limit of ${refused.limit} requests per ${refused.windowMs / 1000}s is exhausted.`, headers);
    }
    ctx.responseHeaders = headers;
    return undefined;
  };
}

/** Counts one hit; returns the applied limit when it refused. */
function check(store: RateLimitStore, applied: AppliedLimit[], name: AppliedLimit['name'], limit: RateLimit, counter: string): AppliedLimit | undefined {
  const decision = store.hit(counter, limit.limit, limit.window);
  const entry: AppliedLimit = { name, limit: limit.limit, windowMs: limit.window, decision };
  applied.push(entry);
  return decision.allowed ? undefined : entry;
}
