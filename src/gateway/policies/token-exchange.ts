/**
 * Token exchange: the API key never reaches the upstream; a short-lived JWT (client, user, org, permissions,
 * environment) signed by the gateway does. Tokens are cached per key, environment and project, and re-minted
 * before they expire, so the common case is one Map lookup.
 */
import { refusal } from '../../shared/errors.ts';
import type { KeyEntry } from '../snapshot/compiled.ts';
import type { DerivedClaims } from '../tokens/derived.ts';
import type { Minter, TokenSubject } from '../tokens/minter.ts';
import type { Policy, RequestContext } from './policy.ts';

const FAILED = refusal('GH_ERR_TOKEN_EXCHANGE_FAILED');

export interface TokenExchangeOptions {
  minter: Minter;
  environment: string;
  project: string;
  /** The collection's own `aud`, when it has one; otherwise the minter's (`tokenExchange.audience`). */
  audience?: string | readonly string[];
  /** Called when minting fails (logged with the request id; the caller sees only a problem code). */
  onError: (error: unknown, ctx: RequestContext) => void;
}

export function tokenExchange(options: TokenExchangeOptions): Policy {
  const { minter, environment, project, audience, onError } = options;
  // Tokens differ by audience too: a collection with its own never gets another's cached token.
  const suffix = `\u0000${environment}\u0000${project}${audience === undefined ? '' : `\u0000${JSON.stringify(audience)}`}`;
  // The cache key of each key entry, built once (the entry belongs to the snapshot this policy was compiled with).
  const cacheKeys = new WeakMap<KeyEntry, string>();

  const derivedKeys = new WeakMap<DerivedClaims, string>();

  return function tokenExchangePolicy(ctx: RequestContext) {
    const entry = ctx.key!;
    const derived = ctx.derived;
    let cacheKey = derived === undefined ? cacheKeys.get(entry) : derivedKeys.get(derived);
    if (cacheKey === undefined) {
      // A derived credential's token carries its narrowed permissions and `act`: cached per credential.
      if (derived === undefined) cacheKeys.set(entry, (cacheKey = entry.hash + suffix));
      else derivedKeys.set(derived, (cacheKey = `${derived.j}\u0000derived${suffix}`));
    }
    const cached = minter.cachedAuthorization(cacheKey);
    if (cached !== undefined) {
      ctx.upstreamAuthorization = cached;
      return undefined;
    }
    const p = ctx.principal!;
    const subject: TokenSubject = {
      clientId: p.id,
      userId: p.userId,
      orgId: p.orgId,
      permissions: derived === undefined ? p.role.permissions : derived.s,
      environment,
      project,
      metadata: p.metadata,
      ...(audience !== undefined && { audience }),
      ...(derived !== undefined && { actor: derived.a }),
    };
    try {
      const minted = minter.token(cacheKey, subject);
      if (typeof minted === 'string') {
        ctx.upstreamAuthorization = `Bearer ${minted}`;
        return undefined;
      }
      return minted.then(
        (token) => {
          ctx.upstreamAuthorization = `Bearer ${token}`;
          return undefined;
        },
        (error: unknown) => {
          onError(error, ctx);
          return FAILED;
        },
      );
    } catch (error) {
      onError(error, ctx);
      return FAILED;
    }
  };
}
