/**
 * Rate limit per API key, per client and per org (customer), before traffic reaches the upstream. Limits come
 * from the client's overrides, else the collection's, else the snapshot defaults; counters are per collection.
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
  collection: string;
}

export function rateLimit(options: RateLimitOptions): Policy {
  const { store, limits, collection } = options;
  const prefix = `${collection}\u0000`;

  return function rateLimitPolicy(ctx: RequestContext) {
    const principal = ctx.principal!;
    const keyLimit = principal.limits.key ?? limits.key;
    const clientLimit = principal.limits.client ?? limits.client;
    const orgLimit = principal.orgId !== undefined ? limits.org : undefined;
    if (keyLimit === undefined && clientLimit === undefined && orgLimit === undefined) return undefined;

    const applied: AppliedLimit[] = [];
    let refused: AppliedLimit | undefined;
    const check = (name: AppliedLimit['name'], limit: RateLimit, id: string) => {
      const decision = store.hit(`${prefix}${name}\u0000${id}`, limit.limit, limit.window);
      const entry: AppliedLimit = { name, limit: limit.limit, windowMs: limit.window, decision };
      applied.push(entry);
      if (!decision.allowed && !refused) refused = entry;
    };
    // Narrowest first: a refused hit is not counted, so a key over its limit does not drain its org's budget.
    if (keyLimit) check('key', keyLimit, ctx.key!.hash);
    if (clientLimit && !refused) check('client', clientLimit, principal.id);
    if (orgLimit && !refused) check('org', orgLimit, principal.orgId!);

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
