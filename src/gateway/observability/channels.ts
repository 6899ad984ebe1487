/**
 * Named diagnostics channels (undici's idea): the request path publishes, metrics, logs and telemetry subscribe.
 * Publishing to a channel nobody subscribes to costs one boolean check.
 */
import diagnostics from 'node:diagnostics_channel';
import type { ErrorCode } from '../../shared/errors.ts';
import type { QuotaDebit } from '../policies/policy.ts';
import type { CompiledCollection, CompiledEndpoint, KeyEntry, Principal } from '../snapshot/compiled.ts';
import type { DerivedClaims } from '../tokens/derived.ts';

export interface AuthFailureEvent {
  readonly reason: ErrorCode;
  readonly collection: string;
  readonly clientIp: string;
  /** The client, when the key was found but refused (disabled, expired, scope, IP). */
  readonly clientId: string | undefined;
  readonly requestId: string;
}

export interface RateLimitedEvent {
  readonly scope: 'key' | 'client' | 'org' | 'agent';
  readonly collection: string;
  readonly clientId: string;
  readonly requestId: string;
}

/** A request refused because a quota is used up (GH_ERR_QUOTA_EXHAUSTED). */
export interface QuotaExhaustedEvent {
  readonly scope: 'client' | 'org' | 'agent';
  readonly period: 'daily' | 'monthly';
  readonly collection: string;
  readonly clientId: string;
}

export interface UpstreamErrorEvent {
  readonly collection: string;
  readonly code: ErrorCode;
  readonly error: Error;
  readonly requestId: string;
}

/**
 * One request answered — proxied, refused, or a WebSocket upgrade — once its status is known. Only references
 * are passed: a subscriber derives what it needs (labels are built only when read).
 */
export interface RequestEndEvent {
  /** The GatewayServer that answered: several gateways may share a process, subscribers filter on it. */
  readonly server: object;
  readonly requestId: string;
  readonly method: string;
  /** Undefined when no collection or endpoint matched (the request was refused before routing completed). */
  readonly collection: CompiledCollection | undefined;
  readonly endpoint: CompiledEndpoint | undefined;
  readonly status: number;
  readonly ms: number;
  /** The client whose key was found (also when it was then refused). */
  readonly principal: Principal | undefined;
  readonly key: KeyEntry | undefined;
  /** The derived credential the request carried (also when it was refused, once its MAC checked out). */
  readonly derived: DerivedClaims | undefined;
  readonly clientIp: string;
  /** The refusal's or upstream failure's error code. */
  readonly code: ErrorCode | undefined;
  /** The quotas the request was admitted against (set by the quota policy): telemetry reports their usage. */
  readonly quota?: QuotaDebit | undefined;
}

/**
 * A Gatehouse-format key refused without a match (malformed or unknown), by its display prefix (`redactKey`):
 * published just before the refusal's `requestEnd`, so that telemetry can say which key was tried.
 */
export interface KeyRefusedEvent {
  readonly requestId: string;
  readonly keyPrefix: string;
}

/**
 * The shared rate-limit store became degraded (it counts locally), is still degraded (repeated every 15 s while
 * failures go on), or recovered. Telemetry turns `degraded` into a security event for the control plane's alerting.
 */
export interface RateLimitStoreStateEvent {
  /** The GatewayServer of the instance whose store it is (undefined while the instance is being created). */
  readonly server: object | undefined;
  readonly status: 'degraded' | 'ok';
  /** Why it is degraded, for the operator (never a secret). */
  readonly reason: string | undefined;
  /** When the current status began (ms since the epoch). */
  readonly since: number;
}

export const channels = {
  authFailure: diagnostics.channel('gatehouse:policy:auth-failure'),
  rateLimited: diagnostics.channel('gatehouse:policy:rate-limited'),
  quotaExhausted: diagnostics.channel('gatehouse:policy:quota-exhausted'),
  upstreamError: diagnostics.channel('gatehouse:upstream:error'),
  keyRefused: diagnostics.channel('gatehouse:policy:key-refused'),
  requestEnd: diagnostics.channel('gatehouse:request:end'),
  rateLimitStore: diagnostics.channel('gatehouse:rate-limit-store:state'),
} as const;
