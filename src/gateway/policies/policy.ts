/**
 * The one shape of every policy: a factory validates its options once, when a snapshot is compiled, and returns
 * a named function that either lets the request continue (returns undefined) or ends it with a Refusal.
 * A policy may return a promise only when it truly has to wait (e.g. minting a token on a cache miss).
 */
import type { Refusal } from '../../shared/errors.ts';
import type { Exchange } from '../http/exchange.ts';

/**
 * What a policy sees of a request: a view of the gateway's `Exchange` (where each field is described). `params`,
 * `query`, `derived`, `quotaDebit` and `requestBody` are optional so that a context can be written out by hand in a
 * test.
 */
export type RequestContext = Pick<
  Exchange,
  | 'req'
  | 'res'
  | 'requestId'
  | 'clientIp'
  | 'collection'
  | 'endpoint'
  | 'forwardPath'
  | 'forwardedHost'
  | 'principal'
  | 'key'
  | 'credentialHeaders'
  | 'responseHeaders'
  | 'upstreamAuthorization'
> &
  Partial<Pick<Exchange, 'params' | 'query' | 'derived' | 'quotaDebit' | 'requestBody'>>;

/** One admitted request's debit of its quotas (a derived credential's own share is not in it: its client's is). */
export interface QuotaDebit {
  /** The quotas, each of one calendar period: built once per period by the quota policy, shared by requests. */
  readonly quotas: readonly {
    readonly scope: 'client' | 'org';
    /** The client id or org id. */
    readonly subject: string;
    readonly period: 'daily' | 'monthly';
    /** `2026-12-07` or `2026-12` in the quotas' time zone. */
    readonly periodId: string;
  }[];
  readonly units: number;
}

export type PolicyResult = Refusal | undefined;
export type Policy = (ctx: RequestContext) => PolicyResult | Promise<PolicyResult>;
