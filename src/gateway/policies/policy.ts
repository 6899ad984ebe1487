/**
 * The one shape of every policy: a factory validates its options once, when a snapshot is compiled, and returns
 * a named function that either lets the request continue (returns undefined) or ends it with a Refusal.
 * A policy may return a promise only when it truly has to wait (e.g. minting a token on a cache miss).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DerivedClaims } from '../tokens/derived.ts';
import type { Refusal } from '../../shared/errors.ts';
import type { CompiledCollection, CompiledEndpoint, KeyEntry, Principal } from '../snapshot/compiled.ts';

export interface RequestContext {
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
  readonly params?: readonly string[] | undefined;
  /** The raw query string, without `?` ('' for none). */
  readonly query?: string | undefined;
  /** Set by `authenticate`. */
  principal: Principal | undefined;
  key: KeyEntry | undefined;
  /** Set by `authenticate` when the credential is a derived one (`key` is then its root API key). */
  derived?: DerivedClaims | undefined;
  /** Header names (lower-case) that carry or may carry a credential, removed before forwarding. */
  credentialHeaders: string[] | undefined;
  /** Response headers a policy wants on the final answer (rate-limit headers), as flat name/value pairs. */
  responseHeaders: string[] | undefined;
  /** The Authorization value the upstream receives (`Bearer <minted JWT>`), set by token exchange. */
  upstreamAuthorization: string | undefined;
  /** The quotas this request was admitted against, and its cost (set by the quota policy; telemetry reports it). */
  quotaDebit?: QuotaDebit | undefined;
  /** The request body, when request validation read it whole: forwarded instead of the (consumed) stream. */
  requestBody?: Buffer | undefined;
}

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
