/**
 * Authenticate: find the API key (`Authorization: Bearer`, `X-API-Key`, or the legacy key + email pair) and
 * resolve it in-process to its client. Gatehouse keys carry a checksum, so malformed keys are refused before
 * any lookup; the lookup itself is one SHA-256 and one Map.get.
 */
import { timingSafeEqual } from 'node:crypto';
import { refusal, type Refusal } from '../http/errors.ts';
import { hashKey, isWellFormedKey, KEY_PREFIX, redactKey } from '../keys/api-key.ts';
import { channels } from '../observability/channels.ts';
import type { KeyEntry } from '../snapshot/compiled.ts';
import type { Policy, RequestContext } from './policy.ts';

export interface AuthenticateOptions {
  keys: ReadonlyMap<string, KeyEntry>;
  legacyKeys: ReadonlyMap<string, KeyEntry>;
  /** Lower-case header names of the legacy pair. */
  legacyKeyHeader: string;
  legacyEmailHeader: string;
  now?: () => number;
}

const MISSING = refusal('GH_ERR_AUTH_MISSING_KEY');
const MALFORMED = refusal('GH_ERR_AUTH_MALFORMED_KEY');
const INVALID = refusal('GH_ERR_AUTH_INVALID_KEY');
const EXPIRED = refusal('GH_ERR_AUTH_EXPIRED_KEY');
const DISABLED = refusal('GH_ERR_AUTH_CLIENT_DISABLED');

export function authenticate(options: AuthenticateOptions): Policy {
  const { keys, legacyKeys, legacyKeyHeader, legacyEmailHeader } = options;
  const now = options.now ?? Date.now;
  // Every header that may carry a credential is removed before forwarding, not only the one that was used.
  const credentialHeaders = [...new Set(['authorization', 'x-api-key', legacyKeyHeader, legacyEmailHeader])];

  return function authenticatePolicy(ctx: RequestContext) {
    const headers = ctx.req.headers;
    let key: string | undefined;
    const authorization = headers.authorization;
    if (authorization !== undefined) {
      // The scheme is case-insensitive (RFC 9110 §11.1); the common spelling is checked without allocating.
      if (authorization.length > 7 && (authorization.startsWith('Bearer ') || authorization.slice(0, 7).toLowerCase() === 'bearer ')) key = authorization.slice(7).trim();
    }
    if (key === undefined) {
      const header = headers['x-api-key'];
      if (typeof header === 'string') {
        key = header.trim();
      }
    }

    let entry: KeyEntry | undefined;
    if (key !== undefined && key.startsWith(KEY_PREFIX)) {
      if (!isWellFormedKey(key)) return keyRefused(ctx, key, MALFORMED);
      entry = keys.get(hashKey(key));
      if (!entry) return keyRefused(ctx, key, INVALID);
    } else {
      // Legacy pair: a key of any format plus the email it was issued to.
      const legacyKey = headers[legacyKeyHeader];
      const email = headers[legacyEmailHeader];
      if (typeof legacyKey !== 'string' || typeof email !== 'string') return key === undefined ? MISSING : MALFORMED;
      if (legacyKey.length === 0 || legacyKey.length > 512) return MALFORMED;
      entry = legacyKeys.get(hashKey(legacyKey));
      if (!entry || !sameEmail(entry.principal.email!, email)) return INVALID;
    }
    ctx.credentialHeaders = credentialHeaders;

    const principal = entry.principal;
    ctx.principal = principal;
    ctx.key = entry;
    if (principal.disabled) return DISABLED;
    if (entry.expiresAt !== Infinity || principal.expiresAt !== Infinity) {
      const t = now();
      if (t >= entry.expiresAt || t >= principal.expiresAt) return EXPIRED;
    }
    return undefined;
  };
}

/** Telemetry learns which key was tried, by its display prefix only; nothing is built without a subscriber. */
function keyRefused(ctx: RequestContext, key: string, r: Refusal): Refusal {
  if (channels.keyRefused.hasSubscribers) channels.keyRefused.publish({ requestId: ctx.requestId, keyPrefix: redactKey(key) });
  return r;
}

function sameEmail(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given.trim().toLowerCase());
  return a.length === b.length && timingSafeEqual(a, b);
}
