/**
 * Rate-limit response headers in the structured-field form of draft-ietf-httpapi-ratelimit-headers (-08 and
 * later): `RateLimit-Policy` lists each quota policy with its quota `q` and window `w` (seconds); `RateLimit`
 * reports the live `r` (remaining) and `t` (seconds until the quota resets) of a policy named the same way.
 *
 *     ratelimit-policy: "key";q=100;w=60, "client";q=1000;w=3600
 *     ratelimit: "key";r=42;t=17
 */
import type { RateLimitDecision } from '../../../shared/rate-limit-store.ts';

export interface AppliedLimit {
  /**
   * Who is counted: one API key, all keys of one client, all clients of one org, one derived credential's share
   * (`agent`), or the share of a credential it was delegated from (`agent-d1`: the one at delegation depth 1). Also
   * the policy's name.
   */
  name: 'key' | 'client' | 'org' | 'agent' | `agent-d${number}`;
  limit: number;
  windowMs: number;
  decision: RateLimitDecision;
}

/**
 * Headers for a response given every limit that applied: `ratelimit-policy` lists them all; `ratelimit` names the
 * most restrictive (lowest remaining; ties go to the longest reset). On a refusal also `retry-after` (whole seconds,
 * rounded up, at least 1). Header names are lower-case; no limits, no headers.
 * @param refused the limit that refused the request, if one did (normally also in `applied`).
 */
export function rateLimitHeaders(
  applied: readonly AppliedLimit[],
  refused: AppliedLimit | undefined,
): Record<string, string> {
  const limits = refused === undefined || applied.includes(refused) ? applied : [...applied, refused];
  if (limits.length === 0) return {};

  let tightest = limits[0]!;
  for (const a of limits) {
    const d = a.decision;
    const t = tightest.decision;
    if (d.remaining < t.remaining || (d.remaining === t.remaining && d.resetMs > t.resetMs)) tightest = a;
  }

  const headers: Record<string, string> = {
    'ratelimit-policy': rateLimitPolicyHeader(limits),
    ratelimit: rateLimitHeader(tightest.name, tightest.decision),
  };
  if (refused !== undefined) headers['retry-after'] = String(seconds(refused.decision.retryAfterMs));
  return headers;
}

/**
 * The `RateLimit-Policy` value for these limits, in order. It depends only on the configuration, so the rate-limit
 * policy computes it once per key and collection.
 */
export function rateLimitPolicyHeader(
  limits: readonly { name: AppliedLimit['name']; limit: number; windowMs: number }[],
): string {
  let policy = '';
  // Structured-field integers: a window that is not a whole number of seconds is shown rounded up.
  for (const a of limits) policy += `${policy === '' ? '' : ', '}"${a.name}";q=${a.limit};w=${seconds(a.windowMs)}`;
  return policy;
}

/** The `RateLimit` value: the live state of one named limit. */
export function rateLimitHeader(name: AppliedLimit['name'], decision: RateLimitDecision): string {
  return `"${name}";r=${decision.remaining};t=${Math.ceil(decision.resetMs / 1000)}`;
}

/** Whole seconds, rounded up, at least 1. */
function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
