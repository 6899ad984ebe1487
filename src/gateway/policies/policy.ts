/**
 * The one shape of every policy: a factory validates its options once, when a snapshot is compiled, and returns
 * a named function that either lets the request continue (returns undefined) or ends it with a Refusal.
 * A policy may return a promise only when it truly has to wait (e.g. minting a token on a cache miss).
 */
import type { Refusal } from '../../shared/errors.ts';
import type { Exchange } from '../http/exchange.ts';

/**
 * What a policy sees of a request: a view of the gateway's `Exchange` (where each field is described). `params`,
 * `query`, `derived` and `requestBody` are optional so that a context can be written out by hand in a test.
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
  Partial<Pick<Exchange, 'params' | 'query' | 'derived' | 'requestBody'>>;

export type PolicyResult = Refusal | undefined;
export type Policy = (ctx: RequestContext) => PolicyResult | Promise<PolicyResult>;
