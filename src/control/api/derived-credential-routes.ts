/**
 * Admin API: revoking single derived credentials (docs/agents.md#revoking-one-credential) of an API client — one
 * credential by its id, or every credential the client minted for an agent (or one session of it) until now —
 * without touching the client's key or its other credentials. A revocation reaches every gateway of the client's
 * environments with the next snapshot, like a key revocation; the answer comes once the cloud gateway enforces it.
 * It is kept until every credential it can match has expired (the longest lifetime of a derived credential), then
 * dropped.
 *
 * Who may: a caller whose role grants `admin:clients:write` (listing: `admin:clients:read`), on a client within its
 * scope; and an API client on itself, with its own key and no admin permission, so that the holder of the parent
 * key revokes the credentials it minted (what RFC 7009's revocation endpoint offers, here with the propagation of
 * every other revocation).
 */
import { z } from 'zod';
import {
  DEFAULT_DERIVED_MAX_TTL_MS,
  DerivedRevocationSchema,
  RevokeDerivedInputSchema,
  type DerivedRevocation,
} from '../../config/revocations.ts';
import { newId, nowIso } from '../ids.ts';
import type { DerivedRevocationRecord } from '../store/store.ts';
import { AdminError, conflict } from './errors.ts';
import { visibleClient } from './lookup.ts';
import { operation, type Caller, type Operation } from './operation.ts';
import { anyGrants } from './permissions.ts';

/**
 * Revocations in force per workspace at most: each is in every snapshot of its client's environments until it
 * expires (an hour), so the bound keeps snapshots small. Revoking the API key (regenerate) ends every credential.
 */
export const MAX_REVOCATIONS = 10_000;

const C = '/api/v1/workspaces/{workspace}/clients/{client}/derived-credential-revocations';

/** The caller manages the client, or is the client itself (its own credentials). */
function requireAllowed(caller: Caller, clientId: string, permission: string): void {
  if (caller.kind === 'client' && caller.id === clientId) return;
  if (!anyGrants(caller.permissions, permission))
    throw new AdminError(
      'GH_ERR_ADMIN_FORBIDDEN',
      `this caller's role does not grant ${permission}, and it is not the client "${clientId}" itself`,
    );
}

function toRevocation(r: DerivedRevocationRecord): DerivedRevocation {
  const { workspaceId: _w, clientId, ...rest } = r;
  return { ...rest, client: clientId };
}

export const derivedCredentialOperations: Operation[] = [
  operation({
    id: 'revokeDerivedCredentials',
    method: 'POST',
    path: C,
    summary:
      "Revoke one derived credential (by its id) or an agent's (or one session's) credentials minted until now; the client's key and its other credentials keep working. Needs admin:clients:write, or the caller is the client itself (its own key)",
    tag: 'Clients',
    // Checked by the handler: admin:clients:write, or the client itself.
    permission: null,
    audit: { resourceType: 'client', idParam: 'client' },
    body: RevokeDerivedInputSchema,
    response: DerivedRevocationSchema,
    status: 201,
    async handler({ caller, workspace, params, body, plane }) {
      const now = plane.now();
      const record = await plane.store.transaction(async (tx) => {
        requireAllowed(caller, params.client!, 'admin:clients:write');
        const client = await visibleClient(tx, caller, workspace, params.client!);
        await tx.pruneDerivedRevocations(nowIso(now));
        if ((await tx.listDerivedRevocations(workspace.id, { now: nowIso(now) })).length >= MAX_REVOCATIONS)
          throw conflict(
            `the workspace already has ${MAX_REVOCATIONS} derived-credential revocations in force (each lasts until the credentials it matches have expired): revoke by agent or session instead of one credential at a time, or regenerate the client's key`,
          );
        const r: DerivedRevocationRecord = {
          id: newId('drv'),
          workspaceId: workspace.id,
          clientId: client.id,
          ...(body.credential !== undefined && { credential: body.credential }),
          ...(body.agent !== undefined && { agent: body.agent, issuedBefore: nowIso(now) }),
          ...(body.session !== undefined && { session: body.session }),
          ...(body.reason !== undefined && { reason: body.reason }),
          revokedAt: nowIso(now),
          // Every credential minted until now has expired by then (gateways of this control plane use the default cap).
          expiresAt: nowIso(now + DEFAULT_DERIVED_MAX_TTL_MS),
        };
        await tx.insertDerivedRevocation(r);
        return r;
      });
      await plane.changed(workspace.id);
      return toRevocation(record);
    },
  }),
  operation({
    id: 'listDerivedCredentialRevocations',
    method: 'GET',
    path: C,
    summary:
      "The client's derived-credential revocations still in force, oldest first. Needs admin:clients:read, or the caller is the client itself",
    tag: 'Clients',
    // Checked by the handler: admin:clients:read, or the client itself.
    permission: null,
    response: z.object({ items: z.array(DerivedRevocationSchema) }),
    async handler({ caller, workspace, params, plane }) {
      requireAllowed(caller, params.client!, 'admin:clients:read');
      const client = await visibleClient(plane.store, caller, workspace, params.client!);
      const list = await plane.store.listDerivedRevocations(workspace.id, {
        now: nowIso(plane.now()),
        clientId: client.id,
      });
      return { items: list.map(toRevocation) };
    },
  }),
];
