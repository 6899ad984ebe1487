/**
 * Alerts in SQL (one open alert per workspace and key; undelivered ones for the webhook), and the mapping between
 * their rows and records.
 */
import type { Selectable } from 'kysely';
import type { AlertOps, AlertRecord } from '../store.ts';
import type { AlertsTable } from '../tables.ts';
import { json, parsed, withOptional } from './rows.ts';
import type { Run } from './statement-runner.ts';

export function alertQueries(run: Run): AlertOps {
  return {
    async insertAlert(a: AlertRecord): Promise<void> {
      await run((db) => db.insertInto('alerts').values(alertRow(a)).execute());
    },

    async updateAlert(a: AlertRecord): Promise<boolean> {
      const { id: _id, ...row } = alertRow(a);
      const result = await run((db) => db.updateTable('alerts').set(row).where('id', '=', a.id).executeTakeFirst());
      return result.numUpdatedRows > 0n;
    },

    async getOpenAlert(workspaceId: string, key: string): Promise<AlertRecord | undefined> {
      const row = await run((db) =>
        db
          .selectFrom('alerts')
          .selectAll()
          .where('workspace_id', '=', workspaceId)
          .where('key', '=', key)
          .where('resolved_at', 'is', null)
          .executeTakeFirst(),
      );
      return row && toAlert(row);
    },

    async listAlerts(workspaceId: string, filter?: { open?: boolean; limit?: number }): Promise<AlertRecord[]> {
      const rows = await run((db) => {
        let q = db.selectFrom('alerts').selectAll().where('workspace_id', '=', workspaceId);
        if (filter?.open !== undefined) q = q.where('resolved_at', filter.open ? 'is' : 'is not', null);
        q = q.orderBy('raised_at', 'desc').orderBy('id', 'desc');
        if (filter?.limit !== undefined) q = q.limit(Math.max(0, Math.trunc(filter.limit)));
        return q.execute();
      });
      return rows.map(toAlert);
    },

    async listUndeliveredAlerts(limit: number): Promise<AlertRecord[]> {
      const rows = await run((db) =>
        db
          .selectFrom('alerts')
          .selectAll()
          .where('delivered_at', 'is', null)
          .orderBy('raised_at')
          .orderBy('id')
          .limit(Math.max(0, Math.trunc(limit)))
          .execute(),
      );
      return rows.map(toAlert);
    },
  };
}

function alertRow(a: AlertRecord): AlertsTable {
  return {
    id: a.id,
    workspace_id: a.workspaceId,
    gateway_id: a.gatewayId ?? null,
    kind: a.kind,
    key: a.key,
    message: a.message,
    details: json(a.details),
    raised_at: a.raisedAt,
    resolved_at: a.resolvedAt ?? null,
    delivered_at: a.deliveredAt ?? null,
    delivery_attempts: a.deliveryAttempts,
  };
}

function toAlert(r: Selectable<AlertsTable>): AlertRecord {
  return withOptional(
    {
      id: r.id,
      workspaceId: r.workspace_id,
      kind: r.kind,
      key: r.key,
      message: r.message,
      raisedAt: r.raised_at,
      deliveryAttempts: r.delivery_attempts,
    },
    {
      gatewayId: r.gateway_id,
      details: parsed<Record<string, unknown>>(r.details),
      resolvedAt: r.resolved_at,
      deliveredAt: r.delivered_at,
    },
  );
}
