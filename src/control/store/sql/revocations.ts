/** Derived credentials revoked on their own (docs/agents.md) in SQL, and the mapping of their rows. */
import type { Selectable } from 'kysely';
import type { DerivedRevocationRecord, RevocationOps } from '../store.ts';
import type { DerivedRevocationsTable } from '../tables.ts';
import { withOptional } from './rows.ts';
import type { Run } from './statement-runner.ts';

export function revocationQueries(run: Run): RevocationOps {
  return {
    async insertDerivedRevocation(r) {
      await run((db) =>
        db
          .insertInto('derived_revocations')
          .values({
            id: r.id,
            workspace_id: r.workspaceId,
            client_id: r.clientId,
            credential: r.credential ?? null,
            agent: r.agent ?? null,
            session: r.session ?? null,
            issued_before: r.issuedBefore ?? null,
            reason: r.reason ?? null,
            revoked_at: r.revokedAt,
            expires_at: r.expiresAt,
          })
          .execute(),
      );
    },

    async listDerivedRevocations(workspaceId, filter) {
      const rows = await run((db) => {
        let q = db
          .selectFrom('derived_revocations')
          .selectAll()
          .where('workspace_id', '=', workspaceId)
          .where('expires_at', '>', filter.now);
        if (filter.clientId !== undefined) q = q.where('client_id', '=', filter.clientId);
        return q.orderBy('revoked_at').orderBy('id').execute();
      });
      return rows.map(toRevocation);
    },

    async pruneDerivedRevocations(now) {
      const result = await run((db) =>
        db.deleteFrom('derived_revocations').where('expires_at', '<=', now).executeTakeFirst(),
      );
      return Number(result.numDeletedRows);
    },
  };
}

function toRevocation(r: Selectable<DerivedRevocationsTable>): DerivedRevocationRecord {
  return withOptional(
    {
      id: r.id,
      workspaceId: r.workspace_id,
      clientId: r.client_id,
      revokedAt: r.revoked_at,
      expiresAt: r.expires_at,
    },
    { credential: r.credential, agent: r.agent, session: r.session, issuedBefore: r.issued_before, reason: r.reason },
  );
}
