/** Quota usage in SQL: units per calendar period, added up on insert (the same SQL on SQLite and PostgreSQL). */
import type { QuotaUsageOps, QuotaUsageRecord } from '../store.ts';
import type { Run } from './statement-runner.ts';

/** Rows per INSERT statement. */
const BATCH = 500;

export function quotaUsageQueries(run: Run): QuotaUsageOps {
  return {
    async addQuotaUsage(rows: readonly QuotaUsageRecord[]): Promise<void> {
      // PostgreSQL refuses an INSERT … ON CONFLICT that touches one row twice: equal keys are added up first.
      const merged = new Map<string, QuotaUsageRecord>();
      for (const r of rows) {
        const key = [r.workspaceId, r.scope, r.subject, r.period, r.periodId, r.collection].join('\u0000');
        const m = merged.get(key);
        if (m === undefined) merged.set(key, { ...r });
        else {
          m.units += r.units;
          if (r.updatedAt > m.updatedAt) m.updatedAt = r.updatedAt;
        }
      }
      const all = [...merged.values()].map((r) => ({
        workspace_id: r.workspaceId,
        collection: r.collection,
        scope: r.scope,
        subject: r.subject,
        period: r.period,
        period_id: r.periodId,
        units: r.units,
        updated_at: r.updatedAt,
      }));
      for (let i = 0; i < all.length; i += BATCH) {
        const batch = all.slice(i, i + BATCH);
        await run((db) =>
          db
            .insertInto('quota_usage')
            .values(batch)
            .onConflict((oc) =>
              oc
                .columns(['workspace_id', 'scope', 'subject', 'period', 'period_id', 'collection'])
                .doUpdateSet((eb) => ({
                  units: eb(eb.ref('quota_usage.units'), '+', eb.ref('excluded.units')),
                  updated_at: eb.ref('excluded.updated_at'),
                })),
            )
            .execute(),
        );
      }
    },

    async listQuotaUsage(workspaceId, filter): Promise<QuotaUsageRecord[]> {
      const rows = await run((db) => {
        let q = db
          .selectFrom('quota_usage')
          .selectAll()
          .where('workspace_id', '=', workspaceId)
          .where('scope', '=', filter.scope)
          .where('subject', '=', filter.subject);
        if (filter.period !== undefined) q = q.where('period', '=', filter.period);
        return q
          .orderBy('period_id', 'desc')
          .orderBy('period')
          .orderBy('collection')
          .limit(filter.limit ?? 1000)
          .execute();
      });
      return rows.map((r) => ({
        workspaceId: r.workspace_id,
        collection: r.collection,
        scope: r.scope as QuotaUsageRecord['scope'],
        subject: r.subject,
        period: r.period as QuotaUsageRecord['period'],
        periodId: r.period_id,
        units: Number(r.units),
        updatedAt: r.updated_at,
      }));
    },
  };
}
