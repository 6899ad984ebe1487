/**
 * Derived credentials: short-lived, attenuated credentials an API client mints for an agent at the gateway's token
 * endpoint (OAuth 2.0 Token Exchange, RFC 8693; see token-endpoint.ts).
 *
 * Shape: `ghd_<payload>.<mac>`, both base64url; the payload is JSON (claims below), the MAC is HMAC-SHA256 over
 * the payload's base64url text with a secret derived (HKDF) from the environment's current token-signing key. Every
 * gateway of the environment already holds that key (the snapshot's `signingKeys`, or the shared keys file), so any
 * of them verifies a credential in-process, without a network hop, at the cost of one HMAC — and a verified
 * credential is remembered by its text, so a repeat costs one Map lookup.
 *
 * A credential names the SHA-256 of its root API key (`p`): the key's entry in the snapshot decides on every
 * request, so revoking, regenerating, disabling or deleting that key (a snapshot delta) ends every credential
 * derived from it, delegated ones included. A signing-key rotation ends them too (mint again). A single credential
 * is revoked by its id `j` (the snapshot's `revokedCredentials`), which also ends those delegated from it: they
 * carry their ancestors' ids (`c`).
 */
import { hash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

export const DERIVED_PREFIX = 'ghd_';

/** Who a credential was minted for: RFC 8693's `act` claim (nested for delegation chains). */
export interface Actor {
  readonly sub: string;
  readonly session?: string;
  readonly act?: Actor;
}

export interface DerivedClaims {
  /** Format version. */
  readonly v: 1;
  /** kid of the signing key whose derived secret made the MAC. */
  readonly k: string;
  /** SHA-256 hex of the root API key. */
  readonly p: string;
  /** Expiry, epoch seconds. */
  readonly e: number;
  /** Permissions (a subset of the parent's). */
  readonly s: readonly string[];
  /** Delegation depth: 1 minted from an API key, 2 from a depth-1 credential, … */
  readonly d: number;
  /** Unique id (16 random bytes, base64url): the token cache key and the log's handle. */
  readonly j: string;
  readonly a: Actor;
  /** Allowed client IP ranges (CIDR), when narrowed. */
  readonly ip?: readonly string[];
  /** Path parameter values the credential is pinned to. */
  readonly r?: Readonly<Record<string, string>>;
  /** When it was minted, epoch ms (absent on credentials minted before revocations existed). */
  readonly i?: number;
  /** The ids (`j`) of the credentials it was delegated from, root first: revoking one of them ends this one. */
  readonly c?: readonly string[];
  /**
   * Its share of the root client's rate limits and quotas, a fraction in (0, 1] (a delegated credential's is its own
   * request × its parent's). Absent: no share of its own; its traffic counts against the parent's limits only.
   */
  readonly l?: number;
  /**
   * The limit shares (`l`) of the credentials in `c`, in the same order; null for one without a share. Its traffic
   * counts against each of them as against its own, so that the credentials delegated from one together stay within
   * its share. Absent on credentials minted before it existed (and when no ancestor has a share): only its own
   * share is enforced.
   */
  readonly cl?: readonly (number | null)[];
}

/** A limit share a credential's traffic counts against: its own, or one of the credentials it was delegated from. */
export interface ShareCounter {
  /** The credential's id (`j`): its counters are keyed by it. */
  readonly id: string;
  /** Its fraction of the root client's limits. */
  readonly share: number;
  /** Its delegation depth (`d`): 1 minted from the API key, … */
  readonly depth: number;
  /** Whether it is the credential presenting the request (else an ancestor). */
  readonly own: boolean;
}

const chains = new WeakMap<DerivedClaims, readonly ShareCounter[]>();

/**
 * Every limit share a credential's requests count against, narrowest first: its own share, then its parent's, …,
 * up to the root's nearest child (a share is at most its parent's). Empty for a credential with no share at all.
 * Built once per credential (the verifier keeps one claims object per credential text).
 */
export function shareChain(claims: DerivedClaims): readonly ShareCounter[] {
  let chain = chains.get(claims);
  if (chain !== undefined) return chain;
  const out: ShareCounter[] = [];
  if (claims.l !== undefined) out.push({ id: claims.j, share: claims.l, depth: claims.d, own: true });
  const { c, cl } = claims;
  if (c !== undefined && cl !== undefined)
    for (let i = Math.min(c.length, cl.length) - 1; i >= 0; i--) {
      const share = cl[i];
      // The ancestors are c[0] (depth 1) … c[c.length - 1] (depth d - 1).
      if (typeof share === 'number') out.push({ id: c[i]!, share, depth: i + 1, own: false });
    }
  chains.set(claims, (chain = out));
  return chain;
}

/**
 * The `cl` claim of a credential delegated from `parent`: the parent's ancestors' shares and its own. A parent
 * minted before `cl` existed contributes its own share only (its ancestors' are not known: null). Undefined when
 * none of them has a share, so that such a credential stays as short as before.
 */
export function ancestorShares(parent: DerivedClaims): (number | null)[] | undefined {
  const above = parent.cl ?? (parent.c ?? []).map(() => null);
  const shares = [...above, parent.l ?? null];
  return shares.some((s) => s !== null) ? shares : undefined;
}

/** The secret MACs are made with, derived from a signing key's private part `d` (base64url) and its kid. */
export function derivationSecret(d: string, kid: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(d, 'base64url'), kid, 'gatehouse derived credential v1', 32));
}

/** The HMAC pads of each secret (RFC 2104), made once. */
const pads = new WeakMap<Buffer, { inner: Buffer; outer: Buffer }>();

/**
 * HMAC-SHA256 (RFC 2104) as two one-shot `hash` calls over precomputed pads: the same bytes as `createHmac`, which
 * costs several times more per call (a test ties the two).
 */
export function hmacSha256(secret: Buffer, message: string): Buffer {
  let p = pads.get(secret);
  if (p === undefined) {
    const inner = Buffer.alloc(64, 0x36);
    const outer = Buffer.alloc(64, 0x5c);
    for (let i = 0; i < secret.length; i++) {
      inner[i]! ^= secret[i]!;
      outer[i]! ^= secret[i]!;
    }
    pads.set(secret, (p = { inner, outer }));
  }
  const innerHash = hash('sha256', Buffer.concat([p.inner, Buffer.from(message, 'latin1')]), 'buffer');
  return hash('sha256', Buffer.concat([p.outer, innerHash]), 'buffer');
}

export function encodeDerived(
  claims: Omit<DerivedClaims, 'j' | 'v'>,
  secret: Buffer,
): DerivedClaims & { token: string } {
  const full: DerivedClaims = { v: 1, ...claims, j: randomBytes(16).toString('base64url') };
  const payload = Buffer.from(JSON.stringify(full)).toString('base64url');
  const mac = hmacSha256(secret, payload).toString('base64url');
  return { ...full, token: `${DERIVED_PREFIX}${payload}.${mac}` };
}

/** Longest credential accepted (a delegation chain of a few actors and pins stays far below). */
const MAX_LENGTH = 4096;

/**
 * The claims of a well-formed credential whose MAC checks out with `secret` (made for `kid`), else undefined.
 * Expiry and the parent key are the caller's to check.
 */
export function verifyDerived(token: string, kid: string, secret: Buffer): DerivedClaims | undefined {
  if (token.length > MAX_LENGTH || !token.startsWith(DERIVED_PREFIX)) return undefined;
  const dot = token.indexOf('.', DERIVED_PREFIX.length);
  if (dot === -1) return undefined;
  const payload = token.slice(DERIVED_PREFIX.length, dot);
  const given = Buffer.from(token.slice(dot + 1), 'base64url');
  const expected = hmacSha256(secret, payload);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  let claims: DerivedClaims;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as DerivedClaims;
  } catch {
    return undefined;
  }
  // The MAC vouches for the content; the kid must be the one the secret belongs to.
  return claims.v === 1 && claims.k === kid ? claims : undefined;
}
