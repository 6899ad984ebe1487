/**
 * The gateway's token endpoint (`POST /oauth2/token`; on the cloud gateway `/<workspace>/<environment>/oauth2/token`):
 * OAuth 2.0 Token Exchange (RFC 8693). A client exchanges its API key — or a derived credential, for a delegation
 * chain — for a derived credential that can only be narrower: permissions, lifetime, client IP ranges, pinned
 * path parameters. Anything wider is refused with RFC 6749 error JSON (`invalid_scope`, `invalid_request`,
 * `invalid_target`) plus the Gatehouse error code. One instance per compiled table (so per tenant), over its keys.
 *
 * Request parameters (application/x-www-form-urlencoded):
 * - `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`
 * - `subject_token`: the API key or derived credential; `subject_token_type`: `urn:ietf:params:oauth:token-type:access_token`
 * - `agent_id` (required) and `agent_session` (optional): who the credential is for, carried in RFC 8693's `act`
 * - `scope` (space-separated permissions; default: the parent's), `expires_in` (seconds; default 15 min)
 * - `ip_ranges` (space-separated CIDR), `resource_pin` (repeatable `name=value`: a path parameter's value)
 * - `limit_share`: a fraction in (0, 1] (`0.25`) of the parent's rate limits and quotas that the credential may use
 *   on its own (its traffic still counts against the parent's); a delegated credential's share is of its parent's,
 *   and its traffic counts against every ancestor's share too (the `cl` claim carries them)
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { DEFAULT_DERIVED_MAX_TTL_MS } from '../../config/revocations.ts';
import { ERRORS, type ErrorCode } from '../../shared/errors.ts';
import { hashKey, isWellFormedKey, KEY_PREFIX } from '../../shared/api-key.ts';
import { blockList } from '../../shared/block-list.ts';
import { coversPattern } from '../../shared/permissions.ts';
import type { KeyEntry } from '../snapshot/compiled.ts';
import {
  type Actor,
  ancestorShares,
  DERIVED_PREFIX,
  type DerivedClaims,
  encodeDerived,
  verifyDerived,
} from './derived.ts';
import type { SigningKeyStore } from './keystore.ts';
import { CredentialRevocations } from './revocations.ts';

export const TOKEN_PATH = '/oauth2/token';
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
/** Lifetime when the request names none (capped by the settings and the parent). */
const DEFAULT_TTL_S = 900;
export const DEFAULT_DERIVED = { maxTtlMs: DEFAULT_DERIVED_MAX_TTL_MS, maxDepth: 3 } as const;
/** Verified credentials remembered per table; past this many the memory starts over. */
const CACHE_MAX = 10_000;

export interface DerivedSettings {
  /** Longest lifetime of a derived credential (ms). */
  maxTtlMs: number;
  /** Longest delegation chain (1: only API keys may mint). */
  maxDepth: number;
}

/**
 * A verified derived credential and its root API key's entry; or why it is refused, with the claims (and entry)
 * when its MAC checked out, so that the refusal is attributed to its agent.
 */
export type Resolved =
  | { claims: DerivedClaims; entry: KeyEntry }
  | { code: ErrorCode; claims?: DerivedClaims | undefined; entry?: KeyEntry | undefined };

/** Verifies derived credentials against one table's keys: one HMAC, then a Map lookup for repeats. */
export class DerivedVerifier {
  readonly #keys: ReadonlyMap<string, KeyEntry>;
  readonly #store: SigningKeyStore;
  readonly #now: () => number;
  #cache = new Map<string, DerivedClaims>();
  readonly #ranges = new WeakMap<DerivedClaims, BlockList>();
  readonly #revocations: CredentialRevocations;
  /** Revocation decisions per credential (the revocations are this snapshot's: they never change here). */
  readonly #revoked = new WeakMap<DerivedClaims, boolean>();

  constructor(
    keys: ReadonlyMap<string, KeyEntry>,
    store: SigningKeyStore,
    now: () => number = Date.now,
    revocations: CredentialRevocations = new CredentialRevocations(),
  ) {
    this.#keys = keys;
    this.#store = store;
    this.#now = now;
    this.#revocations = revocations;
  }

  resolve(token: string): Resolved {
    const signing = this.#store.current();
    let claims = this.#cache.get(token);
    if (claims === undefined || claims.k !== signing.kid) {
      claims = signing.secret === undefined ? undefined : verifyDerived(token, signing.kid, signing.secret);
      if (claims === undefined) return { code: 'GH_ERR_DERIVED_INVALID' };
      if (this.#cache.size >= CACHE_MAX) this.#cache = new Map();
      this.#cache.set(token, claims);
    }
    if (this.#now() >= claims.e * 1000) return { code: 'GH_ERR_DERIVED_EXPIRED', claims };
    const entry = this.#keys.get(claims.p);
    if (entry === undefined) return { code: 'GH_ERR_DERIVED_PARENT_REVOKED', claims };
    if (this.#revocations.size > 0) {
      let revoked = this.#revoked.get(claims);
      if (revoked === undefined)
        this.#revoked.set(claims, (revoked = this.#revocations.revoked(claims, entry.principal.id)));
      if (revoked) return { code: 'GH_ERR_DERIVED_REVOKED', claims, entry };
    }
    return { claims, entry };
  }

  /** The credential's own IP ranges as a BlockList (built once per credential), or undefined when it has none. */
  ranges(claims: DerivedClaims): BlockList | undefined {
    if (claims.ip === undefined) return undefined;
    let list = this.#ranges.get(claims);
    if (list === undefined) this.#ranges.set(claims, (list = blockList(claims.ip)));
    return list;
  }
}

export interface TokenAnswer {
  status: number;
  body: Record<string, unknown>;
  /** Gatehouse code of a refusal (for the log). */
  code?: ErrorCode;
}

function oauthError(error: string, code: ErrorCode, description: string): TokenAnswer {
  return { status: ERRORS[code].status, body: { error, error_description: description, code }, code };
}

export class TokenEndpoint {
  readonly #keys: ReadonlyMap<string, KeyEntry>;
  readonly #store: SigningKeyStore;
  readonly #settings: DerivedSettings;
  readonly #now: () => number;
  readonly verifier: DerivedVerifier;

  constructor(
    keys: ReadonlyMap<string, KeyEntry>,
    store: SigningKeyStore,
    settings: DerivedSettings,
    verifier: DerivedVerifier,
    now: () => number = Date.now,
  ) {
    this.#keys = keys;
    this.#store = store;
    this.#settings = settings;
    this.verifier = verifier;
    this.#now = now;
  }

  /** Answers one token request (its form parameters, from `clientIp`). */
  exchange(form: URLSearchParams, clientIp: string): TokenAnswer {
    const bad = (description: string) => oauthError('invalid_request', 'GH_ERR_DERIVED_REQUEST_INVALID', description);
    const grantType = form.get('grant_type');
    if (grantType !== TOKEN_EXCHANGE_GRANT)
      return oauthError(
        'unsupported_grant_type',
        'GH_ERR_DERIVED_REQUEST_INVALID',
        `grant_type must be ${TOKEN_EXCHANGE_GRANT}.`,
      );
    const subject = form.get('subject_token');
    if (!subject) return bad('subject_token is required: the API key or derived credential to narrow.');
    if (form.get('subject_token_type') !== ACCESS_TOKEN_TYPE)
      return bad(`subject_token_type must be ${ACCESS_TOKEN_TYPE}.`);
    const agent = form.get('agent_id');
    if (!agent || agent.length > 200)
      return bad('agent_id is required (at most 200 characters): the agent the credential is for.');
    const session = form.get('agent_session') ?? undefined;
    if (session !== undefined && (session === '' || session.length > 200))
      return bad('agent_session must be 1 to 200 characters when given.');

    // The parent: an API key or a derived credential.
    let entry: KeyEntry | undefined;
    let parent: DerivedClaims | undefined;
    if (subject.startsWith(KEY_PREFIX)) {
      entry = isWellFormedKey(subject) ? this.#keys.get(hashKey(subject)) : undefined;
      if (entry === undefined)
        return oauthError('invalid_grant', 'GH_ERR_AUTH_INVALID_KEY', 'subject_token is not a valid API key.');
    } else if (subject.startsWith(DERIVED_PREFIX)) {
      const resolved = this.verifier.resolve(subject);
      if ('code' in resolved)
        return oauthError('invalid_grant', resolved.code, `subject_token is refused: ${ERRORS[resolved.code].title}.`);
      ({ entry, claims: parent } = resolved);
    } else {
      return oauthError(
        'invalid_grant',
        'GH_ERR_AUTH_MALFORMED_KEY',
        'subject_token is neither an API key nor a derived credential.',
      );
    }
    const principal = entry.principal;
    const now = this.#now();
    if (principal.disabled)
      return oauthError('invalid_grant', 'GH_ERR_AUTH_CLIENT_DISABLED', 'The API client is disabled.');
    const parentExpiry = Math.min(
      entry.expiresAt,
      principal.expiresAt,
      parent === undefined ? Infinity : parent.e * 1000,
    );
    if (now >= parentExpiry)
      return oauthError('invalid_grant', 'GH_ERR_AUTH_EXPIRED_KEY', 'The parent credential has expired.');
    const family = isIPv4(clientIp) ? 'ipv4' : 'ipv6';
    const parentRanges = parent === undefined ? undefined : this.verifier.ranges(parent);
    if (
      (principal.allowedIps !== undefined && !principal.allowedIps.check(clientIp, family)) ||
      (parentRanges !== undefined && !parentRanges.check(clientIp, family))
    )
      return oauthError(
        'invalid_grant',
        'GH_ERR_AUTH_IP_NOT_ALLOWED',
        `The parent credential may not be used from ${clientIp}.`,
      );

    const depth = (parent?.d ?? 0) + 1;
    if (depth > this.#settings.maxDepth)
      return oauthError(
        'invalid_request',
        'GH_ERR_DERIVED_DEPTH',
        `Delegation is limited to ${this.#settings.maxDepth} level(s); this credential is already ${depth - 1} level(s) deep.`,
      );

    // Scope: every requested permission must be covered by one of the parent's.
    const held = parent?.s ?? principal.role.permissions;
    const scopeParam = form.get('scope');
    const scope = scopeParam === null ? [...held] : [...new Set(scopeParam.split(' ').filter(Boolean))];
    if (scope.length === 0) return oauthError('invalid_scope', 'GH_ERR_DERIVED_WIDENING', 'scope names no permission.');
    const wider = scope.filter((s) => !held.some((h) => coversPattern(h, s)));
    if (wider.length > 0)
      return oauthError(
        'invalid_scope',
        'GH_ERR_DERIVED_WIDENING',
        `The requested scope is wider than the parent credential's: ${wider.map((s) => `"${s}"`).join(', ')} not granted (the parent grants: ${held.join(' ')}). Ask for a subset.`,
      );

    // Lifetime: within the cap and the parent's own expiry.
    let ttlS = DEFAULT_TTL_S;
    const expiresIn = form.get('expires_in');
    if (expiresIn !== null) {
      if (!/^[1-9][0-9]{0,8}$/.test(expiresIn)) return bad('expires_in must be a positive whole number of seconds.');
      ttlS = Number(expiresIn);
      const cap = Math.floor(this.#settings.maxTtlMs / 1000);
      if (ttlS > cap)
        return oauthError(
          'invalid_request',
          'GH_ERR_DERIVED_WIDENING',
          `expires_in ${ttlS}s exceeds the longest lifetime allowed, ${cap}s.`,
        );
      const left = Math.floor((parentExpiry - now) / 1000);
      if (ttlS > left)
        return oauthError(
          'invalid_request',
          'GH_ERR_DERIVED_WIDENING',
          `expires_in ${ttlS}s outlives the parent credential, which expires in ${left}s.`,
        );
    } else ttlS = Math.min(ttlS, Math.floor(this.#settings.maxTtlMs / 1000), Math.floor((parentExpiry - now) / 1000));
    if (ttlS < 1)
      return oauthError('invalid_grant', 'GH_ERR_AUTH_EXPIRED_KEY', 'The parent credential expires within a second.');

    // IP ranges: each within one of the parent's (the derived credential's own, else the API client's).
    let ip: string[] | undefined;
    const ipParam = form.get('ip_ranges');
    if (ipParam !== null) {
      ip = ipParam.split(' ').filter(Boolean);
      const within = parent?.ip ?? principal.allowedIpRanges;
      for (const range of ip) {
        const parsed = parseCidr(range);
        if (parsed === undefined) return bad(`ip_ranges: "${range}" is not an IPv4 or IPv6 CIDR range.`);
        if (within !== undefined && !within.some((outer) => insideCidr(parsed, outer)))
          return oauthError(
            'invalid_request',
            'GH_ERR_DERIVED_WIDENING',
            `ip_ranges: "${range}" is not within the parent credential's ranges (${within.join(' ')}).`,
          );
      }
      ip = ip.map((r) => (r.includes('/') ? r : `${r}/${isIPv4(r) ? 32 : 128}`));
    } else if (parent?.ip !== undefined) ip = [...parent.ip];

    // Resource pins: the parent's stay; new ones may be added, none changed.
    const pins: Record<string, string> = { ...parent?.r };
    for (const pin of form.getAll('resource_pin')) {
      const eq = pin.indexOf('=');
      if (eq < 1 || eq === pin.length - 1) return bad(`resource_pin: "${pin}" is not name=value.`);
      const name = pin.slice(0, eq);
      const value = pin.slice(eq + 1);
      if (pins[name] !== undefined && pins[name] !== value)
        return oauthError(
          'invalid_target',
          'GH_ERR_DERIVED_WIDENING',
          `resource_pin: the parent credential pins ${name}=${pins[name]}; it cannot be changed to ${value}.`,
        );
      pins[name] = value;
    }

    // Limit share: a fraction of the parent's (its own share, else the whole): never more.
    let share = parent?.l;
    const shareParam = form.get('limit_share');
    if (shareParam !== null) {
      if (!/^[0-9]{1,6}(\.[0-9]{1,6})?$/.test(shareParam) || !(Number(shareParam) > 0))
        return bad(`limit_share must be a fraction greater than 0 and at most 1 (e.g. 0.25), got "${shareParam}".`);
      if (Number(shareParam) > 1)
        return oauthError(
          'invalid_request',
          'GH_ERR_DERIVED_WIDENING',
          `limit_share ${shareParam} is more than the parent's limits: give a fraction of them, at most 1 (e.g. 0.25).`,
        );
      share = (parent?.l ?? 1) * Number(shareParam);
    }

    // The ancestors' shares, parallel to `c`: this credential's traffic counts against each of them too.
    const shares = parent === undefined ? undefined : ancestorShares(parent);

    const signing = this.#store.current();
    if (signing.secret === undefined)
      return oauthError(
        'server_error',
        'GH_ERR_TOKEN_EXCHANGE_FAILED',
        'This gateway has no key to sign derived credentials with.',
      );
    const actor: Actor = {
      sub: agent,
      ...(session !== undefined && { session }),
      ...(parent !== undefined && { act: parent.a }),
    };
    const minted = encodeDerived(
      {
        k: signing.kid,
        p: entry.hash,
        e: Math.floor(now / 1000) + ttlS,
        s: scope,
        d: depth,
        a: actor,
        ...(ip !== undefined && { ip }),
        ...(Object.keys(pins).length > 0 && { r: pins }),
        i: now,
        ...(parent !== undefined && { c: [...(parent.c ?? []), parent.j] }),
        ...(share !== undefined && { l: share }),
        ...(shares !== undefined && { cl: shares }),
      },
      signing.secret,
    );
    return {
      status: 200,
      body: {
        access_token: minted.token,
        issued_token_type: ACCESS_TOKEN_TYPE,
        token_type: 'Bearer',
        expires_in: ttlS,
        scope: scope.join(' '),
        // Not an RFC 8693 member (RFC 6749 §5.1 allows more): what the admin API revokes this one credential by.
        credential_id: minted.j,
        ...(share !== undefined && { limit_share: share }),
      },
    };
  }
}

interface Cidr {
  family: 'ipv4' | 'ipv6';
  address: string;
  bits: number;
}

function parseCidr(range: string): Cidr | undefined {
  const [address = '', bitsText, extra] = range.split('/');
  if (extra !== undefined) return undefined;
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (family === undefined) return undefined;
  const max = family === 'ipv4' ? 32 : 128;
  const bits = bitsText === undefined ? max : /^[0-9]{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
  return bits >= 0 && bits <= max ? { family, address, bits } : undefined;
}

/** Whether `inner` lies within the CIDR `outer`: the same family, no shorter prefix, and its address inside. */
function insideCidr(inner: Cidr, outer: string): boolean {
  const o = parseCidr(outer);
  if (o === undefined || o.family !== inner.family || inner.bits < o.bits) return false;
  const list = new BlockList();
  list.addSubnet(o.address, o.bits, o.family);
  return list.check(inner.address, inner.family);
}
