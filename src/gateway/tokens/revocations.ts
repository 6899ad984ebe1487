/**
 * The snapshot's revocations of single derived credentials (`revokedCredentials`, see src/config/revocations.ts),
 * indexed once per snapshot: a check is a Map lookup per id of the credential's chain and per actor, and nothing
 * at all while the list is empty.
 */
import type { RevokedCredential } from '../../config/revocations.ts';
import type { DerivedClaims } from './derived.ts';

interface AgentRevocation {
  readonly session: string | undefined;
  /** Credentials minted before this (epoch ms) are revoked. */
  readonly before: number;
}

export class CredentialRevocations {
  /** Credential id → the client it belongs to. */
  readonly #byCredential = new Map<string, string>();
  /** `client \0 agent` → its revocations. */
  readonly #byAgent = new Map<string, AgentRevocation[]>();
  readonly size: number;

  constructor(list: readonly RevokedCredential[] = [], now: () => number = Date.now) {
    const t = now();
    let size = 0;
    for (const r of list) {
      if (Date.parse(r.expiresAt) <= t) continue; // every credential it could match has expired
      size++;
      if (r.credential !== undefined) this.#byCredential.set(r.credential, r.client);
      else {
        const key = `${r.client}\u0000${r.agent!}`;
        let entries = this.#byAgent.get(key);
        if (entries === undefined) this.#byAgent.set(key, (entries = []));
        entries.push({ session: r.session, before: Date.parse(r.issuedBefore!) });
      }
    }
    this.size = size;
  }

  /**
   * Whether the credential, whose root key belongs to `clientId`, is revoked: itself or one it was delegated from
   * by id, or an agent of its chain (with the session, when the revocation names one) before it was minted.
   */
  revoked(claims: DerivedClaims, clientId: string): boolean {
    if (this.size === 0) return false;
    if (this.#byCredential.size > 0) {
      if (this.#byCredential.get(claims.j) === clientId) return true;
      if (claims.c !== undefined) for (const id of claims.c) if (this.#byCredential.get(id) === clientId) return true;
    }
    if (this.#byAgent.size > 0) {
      // Credentials minted before revocations existed carry no time: they count as minted before any of them.
      const issued = claims.i ?? 0;
      for (let actor: DerivedClaims['a'] | undefined = claims.a; actor !== undefined; actor = actor.act) {
        const entries = this.#byAgent.get(`${clientId}\u0000${actor.sub}`);
        if (entries === undefined) continue;
        for (const r of entries)
          if (issued < r.before && (r.session === undefined || r.session === actor.session)) return true;
      }
    }
    return false;
  }
}
