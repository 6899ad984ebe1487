/**
 * Mints the short-lived JWT that the gateway forwards upstream in exchange for an API key, with a per-key cache:
 * a request reuses its key's token until the token nears expiry or the signing key rotates, so signing stays off
 * the hot path.
 */
import { randomBytes } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import type { TokenExchange } from '../../config/schema.ts';
import type { Actor } from './derived.ts';
import type { SigningKeyStore } from './keystore.ts';

export type ClaimName = TokenExchange['claims'][number];

/** Who a token speaks for: built by the caller from the API client, its role and the collection being called. */
export interface TokenSubject {
  clientId: string;
  userId?: string;
  orgId?: string;
  permissions: readonly string[];
  environment: string;
  project: string;
  metadata?: Record<string, string | number | boolean>;
  /** `aud` for this token instead of the minter's (a collection's own audience). */
  audience?: string | readonly string[];
  /** RFC 8693 `act`: the agent (and session) a derived credential was minted for. */
  actor?: Actor;
}

export interface MinterOptions {
  /** `iss` of every token. */
  issuer: string;
  /** `aud` of every token. */
  audience: string | string[];
  /** Token lifetime (ms); `exp` is rounded down to whole seconds. */
  ttlMs: number;
  /** Claims added besides iss, aud, sub, iat, exp and jti. Absent optional values are left out. */
  claims: readonly ClaimName[];
  keys: SigningKeyStore;
  now?: () => number;
  /** Most cached tokens; the oldest go first. Default 100,000. */
  maxEntries?: number;
}

export interface Minter {
  /**
   * A cached token while it has more than 20% of its lifetime (and at least 5s) left and was signed with the
   * store's current key; otherwise mints one (async). `cacheKey` identifies API key + environment + project
   * (+ audience, when the subject carries its own).
   * Calls for the same `cacheKey` while a mint is in flight share it.
   */
  token(cacheKey: string, subject: TokenSubject): string | Promise<string>;
  /** Synchronous cache probe for the hot path: the cached token, or undefined when token() would mint. */
  cached(cacheKey: string): string | undefined;
  /**
   * The same probe, answering `Bearer <token>`: the header value is built once per token, so the request path
   * neither concatenates nor re-flattens a long string on every request.
   */
  cachedAuthorization(cacheKey: string): string | undefined;
  /** Drops cached tokens and forgets mints in flight (config reload: a changed role must not keep old permissions). */
  clear(): void;
  readonly size: number;
  /** The keys it signs with (derived credentials are MAC'd with a secret derived from the current one). */
  readonly keys: SigningKeyStore;
}

interface CacheEntry {
  readonly token: string;
  readonly authorization: string;
  readonly kid: string;
  /** Served until this time (ms); afterwards re-minted. */
  readonly refreshAt: number;
}

/** A token is re-minted once less than this share of its lifetime is left… */
const REFRESH_SHARE = 0.2;
/** …or less than this (ms), whichever is longer. */
const REFRESH_MIN_MS = 5_000;
const DEFAULT_MAX_ENTRIES = 100_000;

export function createMinter(options: MinterOptions): Minter {
  const { issuer, audience, ttlMs, keys } = options;
  if (typeof issuer !== 'string' || issuer === '') throw new TypeError('issuer must be a non-empty string');
  if (
    Array.isArray(audience)
      ? audience.length === 0 || audience.some((a) => typeof a !== 'string' || a === '')
      : typeof audience !== 'string' || audience === ''
  ) {
    throw new TypeError('audience must be a non-empty string or a non-empty array of them');
  }
  if (!(Number.isFinite(ttlMs) && ttlMs >= 1_000))
    throw new TypeError('ttlMs must be at least 1000 (tokens carry whole seconds)');
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  if (!(Number.isInteger(maxEntries) && maxEntries > 0)) throw new TypeError('maxEntries must be a positive integer');
  const now = options.now ?? Date.now;
  const aud = Array.isArray(audience) ? [...audience] : audience;
  const claims = new Set(options.claims);
  // Tokens whose remaining lifetime falls below this are not served from the cache.
  const refreshBefore = Math.max(ttlMs * REFRESH_SHARE, REFRESH_MIN_MS);

  const cache = new Map<string, CacheEntry>();
  const inFlight = new Map<string, Promise<string>>();
  // clear() bumps this so that mints started before it do not fill the cache with stale subjects.
  let generation = 0;

  function fresh(cacheKey: string): CacheEntry | undefined {
    const entry = cache.get(cacheKey);
    return entry !== undefined && entry.refreshAt > now() && entry.kid === keys.current().kid ? entry : undefined;
  }

  function cached(cacheKey: string): string | undefined {
    return fresh(cacheKey)?.token;
  }

  function token(cacheKey: string, subject: TokenSubject): string | Promise<string> {
    const hit = cached(cacheKey);
    if (hit !== undefined) return hit;
    const pending = inFlight.get(cacheKey);
    if (pending !== undefined) return pending;
    const started = generation;
    const minting = mint(subject).then(
      ({ token, kid, expMs }) => {
        if (inFlight.get(cacheKey) === minting) inFlight.delete(cacheKey);
        if (started === generation)
          remember(cacheKey, { token, authorization: `Bearer ${token}`, kid, refreshAt: expMs - refreshBefore });
        return token;
      },
      (error: unknown) => {
        if (inFlight.get(cacheKey) === minting) inFlight.delete(cacheKey);
        throw error;
      },
    );
    inFlight.set(cacheKey, minting);
    return minting;
  }

  /** Inserts as newest. All tokens share one lifetime, so insertion order is expiry order: stale ones sit in front. */
  function remember(cacheKey: string, entry: CacheEntry): void {
    cache.delete(cacheKey);
    const t = now();
    for (const [k, e] of cache) {
      if (cache.size < maxEntries && e.refreshAt > t) break;
      cache.delete(k);
    }
    cache.set(cacheKey, entry);
  }

  async function mint(subject: TokenSubject): Promise<{ token: string; kid: string; expMs: number }> {
    const key = keys.current();
    const iat = Math.floor(now() / 1000);
    const exp = iat + Math.floor(ttlMs / 1000);
    // No nbf: it would equal iat. jti: 128 random bits, base64url (22 characters): the token travels with every request
    // to the backend, so its size matters.
    const audience =
      subject.audience === undefined
        ? aud
        : typeof subject.audience === 'string'
          ? subject.audience
          : [...subject.audience];
    const payload: JWTPayload = {
      iss: issuer,
      aud: audience,
      sub: subject.clientId,
      iat,
      exp,
      jti: randomBytes(16).toString('base64url'),
    };
    if (claims.has('client_id')) payload.client_id = subject.clientId;
    if (claims.has('user_id') && subject.userId !== undefined) payload.user_id = subject.userId;
    if (claims.has('org_id') && subject.orgId !== undefined) payload.org_id = subject.orgId;
    if (claims.has('permissions')) payload.permissions = [...subject.permissions];
    if (claims.has('environment')) payload.environment = subject.environment;
    if (claims.has('project')) payload.project = subject.project;
    if (claims.has('metadata') && subject.metadata !== undefined) payload.metadata = { ...subject.metadata };
    if (subject.actor !== undefined) payload.act = { ...subject.actor };
    const token = await new SignJWT(payload)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .sign(key.privateKey);
    return { token, kid: key.kid, expMs: exp * 1000 };
  }

  return {
    token,
    cached,
    cachedAuthorization(cacheKey) {
      return fresh(cacheKey)?.authorization;
    },
    clear() {
      generation++;
      cache.clear();
      inFlight.clear();
    },
    get size() {
      return cache.size;
    },
    keys,
  };
}
