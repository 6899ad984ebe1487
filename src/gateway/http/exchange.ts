/**
 * One request on its way through the gateway (`Exchange`) and the loop that runs a collection's frozen policy
 * chain over it, synchronously while the policies answer synchronously.
 */
import type { DerivedClaims } from '../tokens/derived.ts';
import type { QuotaDebit } from '../policies/policy.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCode, Refusal } from '../../shared/errors.ts';
import { channels } from '../observability/channels.ts';
import type { Policy, PolicyResult, RequestContext } from '../policies/policy.ts';
import type { CompiledCollection, CompiledEndpoint, KeyEntry, Principal } from '../snapshot/compiled.ts';
import type { Routed } from './route.ts';

/**
 * One request on its way through the gateway: the policies' context (`RequestContext`, a view of this class) plus
 * what forwarding and the access log need. One object per request (the policy chain, the proxy and the log all work
 * on it).
 */
export class Exchange {
  readonly req: IncomingMessage;
  /** Null for WebSocket upgrades (the answer is written to the raw socket). */
  readonly res: ServerResponse | null;
  readonly requestId: string;
  /** Client address after trusted-proxy resolution (IPv4-mapped IPv6 unwrapped). */
  readonly clientIp: string;
  readonly collection: CompiledCollection;
  readonly endpoint: CompiledEndpoint;
  /** Canonical path relative to the collection's base path (what is forwarded after the upstream's own path). */
  readonly forwardPath: string;
  /**
   * The client's Host, forwarded in `X-Forwarded-Host` and `Forwarded`, when the gateway vouches for it: the
   * collection names its host, or the Host is one of `server.publicHosts`. Undefined: no host is forwarded.
   */
  readonly forwardedHost: string | undefined;
  /** The raw (canonical, still encoded) path parameter segments, in template order; read with `comparableParam`. */
  readonly params: readonly string[];
  /** Set by `authenticate`. */
  principal: Principal | undefined = undefined;
  key: KeyEntry | undefined = undefined;
  /** Set by `authenticate` when the credential is a derived one (`key` is then its root API key). */
  derived: DerivedClaims | undefined = undefined;
  /** Header names (lower-case) that carry or may carry a credential, removed before forwarding. */
  credentialHeaders: string[] | undefined = undefined;
  /** Response headers a policy wants on the final answer (rate-limit headers), as flat name/value pairs. */
  responseHeaders: string[] | undefined = undefined;
  /** The Authorization value the upstream receives (`Bearer <minted JWT>`), set by token exchange. */
  upstreamAuthorization: string | undefined = undefined;
  /** The quotas this request was admitted against, and its cost (set by the quota policy; telemetry reports it). */
  quotaDebit: QuotaDebit | undefined = undefined;
  /** The request body, when request validation read it whole: forwarded instead of the (consumed) stream. */
  requestBody: Buffer | undefined = undefined;
  /** performance.now() when the request arrived. */
  readonly start: number;
  readonly method: string;
  /** Canonical path. */
  readonly path: string;
  /** The raw query string, without `?` ('' for none). */
  readonly query: string;
  /** The socket peer, and the X-Forwarded-For to extend when that peer is a trusted proxy. */
  readonly peerIp: string;
  readonly trustedForwardedFor: string | undefined;

  constructor(
    req: IncomingMessage,
    res: ServerResponse | null,
    requestId: string,
    start: number,
    routed: Routed,
    ip: ClientAddress,
  ) {
    this.req = req;
    this.res = res;
    this.requestId = requestId;
    this.clientIp = ip.clientIp;
    this.collection = routed.collection;
    this.endpoint = routed.endpoint;
    this.forwardPath = routed.forwardPath;
    this.forwardedHost = routed.forwardedHost;
    this.params = routed.params;
    this.start = start;
    this.method = req.method ?? 'GET';
    this.path = routed.path;
    this.query = routed.query;
    this.peerIp = ip.peerIp;
    this.trustedForwardedFor = ip.trustedForwardedFor;
  }
}

export interface ClientAddress {
  clientIp: string;
  peerIp: string;
  trustedForwardedFor: string | undefined;
}

/** Where a policy chain ends: every policy let the request through, one refused it, or one threw (a bug). */
export interface ChainEnd<C extends RequestContext> {
  passed(ctx: C): void;
  refused(ctx: C, r: Refusal): void;
  failed(ctx: C, error: unknown): void;
}

/** Runs policies in order, synchronously while they answer synchronously. A policy that throws is a bug: `failed`. */
export function runChain<C extends RequestContext>(
  ctx: C,
  chain: readonly Policy[],
  from: number,
  end: ChainEnd<C>,
): void {
  for (let i = from; i < chain.length; i++) {
    let result: PolicyResult | Promise<PolicyResult>;
    try {
      result = chain[i]!(ctx);
    } catch (error) {
      return end.failed(ctx, error);
    }
    if (result === undefined) continue;
    if (isPromise(result)) {
      result
        .then(
          (r) => (r === undefined ? runChain(ctx, chain, i + 1, end) : end.refused(ctx, r)),
          (error: unknown) => end.failed(ctx, error),
        )
        .catch((error: unknown) => end.failed(ctx, error)); // a throw further down the chain or in the proxy call, after the wait
      return;
    }
    return end.refused(ctx, result);
  }
  end.passed(ctx);
}

function isPromise(value: PolicyResult | Promise<PolicyResult>): value is Promise<PolicyResult> {
  return typeof (value as Promise<PolicyResult>).then === 'function';
}

export function publishAuthFailure(ctx: RequestContext, code: ErrorCode): void {
  if (code.startsWith('GH_ERR_AUTH_') && channels.authFailure.hasSubscribers) {
    channels.authFailure.publish({
      reason: code,
      collection: ctx.collection.name,
      clientIp: ctx.clientIp,
      clientId: ctx.principal?.id,
      requestId: ctx.requestId,
    });
  }
}
