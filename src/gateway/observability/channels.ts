/**
 * Named diagnostics channels (undici's idea): the request path publishes, metrics, logs and telemetry subscribe.
 * Publishing to a channel nobody subscribes to costs one boolean check.
 */
import diagnostics from 'node:diagnostics_channel';
import type { ErrorCode } from '../http/errors.ts';

export interface AuthFailureEvent {
  readonly reason: ErrorCode;
  readonly collection: string;
  readonly clientIp: string;
  /** The client, when the key was found but refused (disabled, expired, scope, IP). */
  readonly clientId: string | undefined;
  readonly requestId: string;
}

export interface RateLimitedEvent {
  readonly scope: 'key' | 'client' | 'org';
  readonly collection: string;
  readonly clientId: string;
  readonly requestId: string;
}

export interface UpstreamErrorEvent {
  readonly collection: string;
  readonly code: ErrorCode;
  readonly error: Error;
  readonly requestId: string;
}

export const channels = {
  authFailure: diagnostics.channel('gatehouse:policy:auth-failure'),
  rateLimited: diagnostics.channel('gatehouse:policy:rate-limited'),
  upstreamError: diagnostics.channel('gatehouse:upstream:error'),
} as const;
