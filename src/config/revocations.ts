/**
 * Revocations of single derived credentials (docs/agents.md#revoking-one-credential): a credential by its id (the
 * `jti` its payload carries, shown in the access log), or every credential an API client minted for one agent (or
 * one session of it) before a moment. The control plane keeps them per workspace and puts those still in force
 * into every snapshot of the client's environments, so they reach every gateway the way a key revocation does; a
 * standalone gateway lists them in its file (`revokedCredentials`).
 *
 * An entry expires with the longest lifetime a credential it can match may still have (`expiresAt`): past it every
 * such credential has expired anyway, and the entry is dropped, so the list never grows without bound.
 *
 * This module imports nothing from `schema.ts` (which imports it).
 */
import { z } from 'zod';

/**
 * The longest lifetime of a derived credential when `tokenExchange.derived.maxTtl` is not set (always, under the
 * control plane): a revocation made now has matched every credential it can once this much time has passed.
 */
export const DEFAULT_DERIVED_MAX_TTL_MS = 3_600_000;

/** A derived credential's id: 16 random bytes, base64url (the `j` of its payload). */
export const CredentialIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{22}$/, 'must be a derived credential id: 22 base64url characters (its "jti")');

/** An agent's or session's name as minted (`agent_id`, `agent_session`: 1-200 characters). */
const AgentNameSchema = z.string().min(1).max(200);

export const RevokedCredentialSchema = z
  .strictObject({
    /** The revocation's own id (unique in a snapshot). */
    id: z.string().min(1).max(128),
    /** The API client whose credentials this revokes: a credential of another client's key never matches. */
    client: z.string().min(1).max(128),
    /** One credential, by its id; the credentials delegated from it end with it. */
    credential: CredentialIdSchema.optional(),
    /** Every credential minted for this agent (anywhere in its delegation chain) before `issuedBefore`. */
    agent: AgentNameSchema.optional(),
    /** With `agent`: only that agent's credentials of this session. */
    session: AgentNameSchema.optional(),
    /** With `agent`: credentials minted at or after this moment are not revoked. */
    issuedBefore: z.iso.datetime({ offset: true }).optional(),
    /** When the entry may be dropped: no credential it matches can still be valid. */
    expiresAt: z.iso.datetime({ offset: true }),
  })
  .superRefine((r, ctx) => {
    if ((r.credential === undefined) === (r.agent === undefined))
      ctx.addIssue({ code: 'custom', message: 'names either a credential or an agent, exactly one of them' });
    if (r.agent !== undefined && r.issuedBefore === undefined)
      ctx.addIssue({ code: 'custom', path: ['issuedBefore'], message: 'is required with agent' });
    if (r.agent === undefined && (r.session !== undefined || r.issuedBefore !== undefined))
      ctx.addIssue({ code: 'custom', path: ['session'], message: 'session and issuedBefore go with agent' });
  });
export type RevokedCredential = z.output<typeof RevokedCredentialSchema>;

/** The admin API's request: one credential by id, or an agent's (or one session's) credentials. */
export const RevokeDerivedInputSchema = z
  .strictObject({
    credential: CredentialIdSchema.optional().describe(
      'The id of one derived credential (the `jti` of its payload, the `credential` of the access log)',
    ),
    agent: AgentNameSchema.optional().describe(
      'Revoke every credential the client minted for this agent (`agent_id`) until now',
    ),
    session: AgentNameSchema.optional().describe(
      'With `agent`: only the credentials of this session (`agent_session`)',
    ),
    reason: z.string().max(500).optional().describe('Why, for the audit log'),
  })
  .superRefine((r, ctx) => {
    if ((r.credential === undefined) === (r.agent === undefined))
      ctx.addIssue({
        code: 'custom',
        message: 'name either "credential" (one credential\'s id) or "agent" (optionally with "session"), not both',
      });
    if (r.session !== undefined && r.agent === undefined)
      ctx.addIssue({ code: 'custom', path: ['session'], message: '"session" needs "agent"' });
  });
export type RevokeDerivedInput = z.output<typeof RevokeDerivedInputSchema>;

/** A revocation as the admin API returns it. */
export const DerivedRevocationSchema = z.object({
  id: z.string(),
  client: z.string().describe('The API client id'),
  credential: z.string().optional(),
  agent: z.string().optional(),
  session: z.string().optional(),
  issuedBefore: z.string().optional(),
  reason: z.string().optional(),
  revokedAt: z.string(),
  expiresAt: z.string().describe('When the revocation is dropped: every credential it can match has expired by then'),
});
export type DerivedRevocation = z.output<typeof DerivedRevocationSchema>;
