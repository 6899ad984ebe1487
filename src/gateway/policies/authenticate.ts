/**
 * Authenticate: find the API key (`Authorization: Bearer`, `X-API-Key`, or the legacy key + email pair) and
 * resolve it in-process to its client. Gatehouse keys carry a checksum, so malformed keys are refused before
 * any lookup; the lookup itself is one SHA-256 and one Map.get.
 */
import { timingSafeEqual } from 'node:crypto';
import { refusal, type Refusal } from '../../shared/errors.ts';
import { hashKey, isWellFormedKey, KEY_PREFIX, redactKey } from '../../shared/api-key.ts';
import { headerKey } from '../http/header-rules.ts';
import { channels } from '../observability/channels.ts';
import type { KeyEntry } from '../snapshot/compiled.ts';
import type { Policy, RequestContext } from './policy.ts';
import { DERIVED_PREFIX, type DerivedClaims } from '../tokens/derived.ts';
import type { DerivedVerifier } from '../tokens/token-endpoint.ts';

export interface AuthenticateOptions {
  keys: ReadonlyMap<string, KeyEntry>;
  legacyKeys: ReadonlyMap<string, KeyEntry>;
  /** Lower-case header names of the legacy pair. */
  legacyKeyHeader: string;
  legacyEmailHeader: string;
  /** Verifies derived credentials (`ghd_…`) against the same keys; undefined: they are refused as malformed. */
  derived?: DerivedVerifier;
  now?: () => number;
}

const MISSING = refusal('GH_ERR_AUTH_MISSING_KEY');
const MALFORMED = refusal('GH_ERR_AUTH_MALFORMED_KEY');
const INVALID = refusal('GH_ERR_AUTH_INVALID_KEY');
const EXPIRED = refusal('GH_ERR_AUTH_EXPIRED_KEY');
const DISABLED = refusal('GH_ERR_AUTH_CLIENT_DISABLED');
const SHARED = Symbol('shared connection');

/**
 * The Gatehouse key a client connection presented and the entry it resolved to. A keep-alive connection usually
 * sends the same key on every request: when the header value is the same string again, the checksum, the SHA-256
 * and the lookup are skipped. Kept per connection (collected with the socket) and per compiled snapshot (this
 * policy is rebuilt with every snapshot, so a revoked or replaced key is never served from here).
 *
 * A connection that presents a second, different key is marked `SHARED` and is never remembered again: behind a
 * proxy that reuses one connection for many clients, a remembered key may be another client's, and comparing the
 * next request's value with it over and over would be a timing oracle on that key. So each remembered key is
 * compared with a different value at most once, and the plain string comparison suffices.
 */
interface ConnectionKey {
  /** 'authorization' or 'x-api-key': the header the key came from. */
  header: string;
  /** That header's whole value. */
  value: string;
  entry: KeyEntry;
  /** The claims when the value is a derived credential (its expiry is checked again on every request). */
  derived?: DerivedClaims | undefined;
}

export function authenticate(options: AuthenticateOptions): Policy {
  const { keys, legacyKeys, legacyKeyHeader, legacyEmailHeader, derived } = options;
  const now = options.now ?? Date.now;
  // Every header that may carry a credential is removed before forwarding, not only the one that was used.
  const credentialHeaders = [...new Set(['authorization', 'x-api-key', legacyKeyHeader, legacyEmailHeader])];
  const connectionKeys = new WeakMap<object, ConnectionKey | typeof SHARED>();

  return function authenticatePolicy(ctx: RequestContext) {
    const req = ctx.req;
    const headers = req.headers;
    const authorization = headers.authorization;
    const socket = req.socket;
    const known = connectionKeys.get(socket);
    if (known !== undefined && known !== SHARED) {
      const value =
        known.header === 'authorization'
          ? authorization
          : authorization === undefined
            ? headers['x-api-key']
            : undefined;
      if (value === known.value) {
        if (known.derived === undefined) return accept(ctx, known.entry);
        if (now() >= known.derived.e * 1000) return refusal('GH_ERR_DERIVED_EXPIRED');
        ctx.derived = known.derived;
        return accept(ctx, known.entry);
      }
      connectionKeys.set(socket, SHARED);
    }
    let key: string | undefined;
    let from = 'authorization';
    if (authorization !== undefined) {
      // The scheme is case-insensitive (RFC 9110 §11.1); the common spelling is checked without allocating.
      if (
        authorization.length > 7 &&
        (authorization.startsWith('Bearer ') || authorization.slice(0, 7).toLowerCase() === 'bearer ')
      )
        key = authorization.slice(7).trim();
    }
    if (key === undefined) {
      const header = headers['x-api-key'];
      if (typeof header === 'string') {
        key = header.trim();
        from = 'x-api-key';
      }
    }

    let entry: KeyEntry | undefined;
    if (key !== undefined && key.startsWith(DERIVED_PREFIX)) {
      // A derived credential: its root key's entry decides like the key itself, its own claims narrow it.
      if (derived === undefined) return keyRefused(ctx, key, MALFORMED);
      const resolved = derived.resolve(key);
      if ('code' in resolved) {
        // Attributed to its agent (and client, when its key is known) in the log and telemetry.
        if (resolved.claims !== undefined) ctx.derived = resolved.claims;
        if (resolved.entry !== undefined) {
          ctx.principal = resolved.entry.principal;
          ctx.key = resolved.entry;
        }
        return keyRefused(ctx, key, refusal(resolved.code));
      }
      ctx.derived = resolved.claims;
      if (known === undefined)
        connectionKeys.set(socket, {
          header: from,
          value: from === 'authorization' ? authorization! : (headers['x-api-key'] as string),
          entry: resolved.entry,
          derived: resolved.claims,
        });
      return accept(ctx, resolved.entry);
    }
    if (key !== undefined && key.startsWith(KEY_PREFIX)) {
      if (!isWellFormedKey(key)) return keyRefused(ctx, key, MALFORMED);
      entry = keys.get(hashKey(key));
      if (!entry) return keyRefused(ctx, key, INVALID);
      if (known === undefined)
        connectionKeys.set(socket, {
          header: from,
          value: from === 'authorization' ? authorization! : (headers['x-api-key'] as string),
          entry,
        });
    } else {
      // Legacy pair: a key of any format plus the email it was issued to.
      const legacyKey = headers[legacyKeyHeader];
      const email = headers[legacyEmailHeader];
      if (typeof legacyKey !== 'string' || typeof email !== 'string') return key === undefined ? MISSING : MALFORMED;
      if (legacyKey.length === 0 || legacyKey.length > 512) return MALFORMED;
      entry = legacyKeys.get(hashKey(legacyKey));
      if (!entry || !sameEmail(entry.principal.email!, email)) return INVALID;
    }
    return accept(ctx, entry);
  };

  /** The key resolved to `entry`: the client's own state (disabled, expired) decides on every request. */
  function accept(ctx: RequestContext, entry: KeyEntry) {
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
  }
}

/**
 * On a collection that needs no key, a credential a client sends anyway still never reaches the upstream: a
 * Gatehouse key or derived credential in `Authorization` or `X-API-Key`, and a legacy key + email pair that names a known legacy
 * client. Other `Authorization` values (the backend's own scheme) pass. The policy never refuses.
 */
export function stripCredentials(
  options: Pick<AuthenticateOptions, 'legacyKeys' | 'legacyKeyHeader' | 'legacyEmailHeader'>,
): Policy {
  const { legacyKeys, legacyKeyHeader, legacyEmailHeader } = options;
  return function stripCredentialsPolicy(ctx: RequestContext) {
    const headers = ctx.req.headers;
    let strip: string[] | undefined;
    // Every spelling counts: a backend behind CGI, WSGI or Rack reads `X_API_Key` as `X-API-Key` (headerKey).
    for (const raw in headers) {
      const value = headers[raw];
      if (typeof value !== 'string') continue;
      const name = headerKey(raw);
      if (
        (name === 'authorization' || name === 'x-api-key') &&
        (value.includes(KEY_PREFIX) || value.includes(DERIVED_PREFIX))
      )
        (strip ??= []).push(name);
      else if (name === legacyKeyHeader && value.length > 0 && value.length <= 512 && legacyKeys.has(hashKey(value)))
        (strip ??= []).push(legacyKeyHeader, legacyEmailHeader);
    }
    if (strip !== undefined) ctx.credentialHeaders = strip;
    return undefined;
  };
}

/** Telemetry learns which key was tried, by its display prefix only; nothing is built without a subscriber. */
function keyRefused(ctx: RequestContext, key: string, r: Refusal): Refusal {
  if (channels.keyRefused.hasSubscribers)
    channels.keyRefused.publish({ requestId: ctx.requestId, keyPrefix: redactKey(key) });
  return r;
}

function sameEmail(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given.trim().toLowerCase());
  return a.length === b.length && timingSafeEqual(a, b);
}
