/**
 * Alerts in SQL (one open alert per workspace and key; undelivered ones for the webhook), and the mapping between
 * their rows and records.
 */
import type { Insertable, Selectable } from 'kysely';
import { isSealed, KeyRingError, type KeyRing } from '../../secrets/key-ring.ts';
import type { AlertDeliveryRecord, AlertDestinationRecord, AlertOps, AlertRecord, AlertRuleRecord } from '../store.ts';
import type { AlertDeliveriesTable, AlertDestinationsTable, AlertRulesTable, AlertsTable } from '../tables.ts';
import { json, parsed, withOptional } from './rows.ts';
import type { Run } from './statement-runner.ts';

export function alertQueries(run: Run, ring?: KeyRing): AlertOps {
  /** A destination's secret is sealed under its own name, so that a sealed value copied to another row won't open. */
  const secretName = (id: string) => `alert-destination:${id}:secret`;
  const seal = (id: string, secret: string) => (ring ? ring.seal(secretName(id), secret) : secret);
  const open = (id: string, stored: string) => {
    if (!isSealed(stored)) return stored;
    if (!ring)
      throw new KeyRingError(
        `the secret of alert destination ${id} is encrypted, but no encryption key is configured: set GATEHOUSE_ENCRYPTION_KEY or GATEHOUSE_ENCRYPTION_KEY_FILE`,
      );
    return ring.open(secretName(id), stored);
  };
  const toDestination = (r: Selectable<AlertDestinationsTable>): AlertDestinationRecord => ({
    id: r.id,
    workspaceId: r.workspace_id,
    name: r.name,
    url: r.url,
    secret: open(r.id, r.secret),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  });
  const destinationRow = (d: AlertDestinationRecord): AlertDestinationsTable => ({
    id: d.id,
    workspace_id: d.workspaceId,
    name: d.name,
    url: d.url,
    secret: seal(d.id, d.secret),
    created_at: d.createdAt,
    updated_at: d.updatedAt,
  });

  return {
    async insertAlert(a: AlertRecord): Promise<void> {
      await run((db) => db.insertInto('alerts').values(alertRow(a)).execute());
    },

    async updateAlert(a: AlertRecord): Promise<boolean> {
      const { id: _id, ...row } = alertRow(a);
      const result = await run((db) => db.updateTable('alerts').set(row).where('id', '=', a.id).executeTakeFirst());
      return result.numUpdatedRows > 0n;
    },

    async pruneResolvedAlerts(before: string): Promise<number> {
      // Their deliveries go by the foreign key's ON DELETE CASCADE (on SQLite too: foreign keys are on).
      const result = await run((db) =>
        db
          .deleteFrom('alerts')
          .where('resolved_at', 'is not', null)
          .where('resolved_at', '<', before)
          .executeTakeFirst(),
      );
      return Number(result.numDeletedRows);
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

    async listAlerts(
      workspaceId: string,
      filter?: { open?: boolean; limit?: number; before?: { at: string; id: string } },
    ): Promise<AlertRecord[]> {
      const rows = await run((db) => {
        let q = db.selectFrom('alerts').selectAll().where('workspace_id', '=', workspaceId);
        if (filter?.open !== undefined) q = q.where('resolved_at', filter.open ? 'is' : 'is not', null);
        const before = filter?.before;
        if (before)
          q = q.where((eb) =>
            eb.or([
              eb('raised_at', '<', before.at),
              eb.and([eb('raised_at', '=', before.at), eb('id', '<', before.id)]),
            ]),
          );
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

    async listAlertRules(workspaceId: string): Promise<AlertRuleRecord[]> {
      const rows = await run((db) =>
        db.selectFrom('alert_rules').selectAll().where('workspace_id', '=', workspaceId).orderBy('name').execute(),
      );
      return rows.map(toRule);
    },

    async getAlertRule(workspaceId: string, ref: { id?: string; name?: string }): Promise<AlertRuleRecord | undefined> {
      const row = await run((db) => {
        let q = db.selectFrom('alert_rules').selectAll().where('workspace_id', '=', workspaceId);
        if (ref.id !== undefined) q = q.where('id', '=', ref.id);
        if (ref.name !== undefined) q = q.where('name', '=', ref.name);
        return q.executeTakeFirst();
      });
      return row && toRule(row);
    },

    async insertAlertRule(r: AlertRuleRecord): Promise<void> {
      await run((db) => db.insertInto('alert_rules').values(ruleRow(r)).execute());
    },

    async updateAlertRule(r: AlertRuleRecord): Promise<boolean> {
      const { id: _id, ...row } = ruleRow(r);
      const result = await run((db) =>
        db.updateTable('alert_rules').set(row).where('id', '=', r.id).executeTakeFirst(),
      );
      return result.numUpdatedRows > 0n;
    },

    async deleteAlertRule(workspaceId: string, id: string): Promise<boolean> {
      const result = await run((db) =>
        db.deleteFrom('alert_rules').where('workspace_id', '=', workspaceId).where('id', '=', id).executeTakeFirst(),
      );
      return result.numDeletedRows > 0n;
    },

    async listAlertDestinations(workspaceId: string): Promise<AlertDestinationRecord[]> {
      const rows = await run((db) =>
        db
          .selectFrom('alert_destinations')
          .selectAll()
          .where('workspace_id', '=', workspaceId)
          .orderBy('name')
          .execute(),
      );
      return rows.map(toDestination);
    },

    async getAlertDestination(
      workspaceId: string,
      ref: { id?: string; name?: string },
    ): Promise<AlertDestinationRecord | undefined> {
      const row = await run((db) => {
        let q = db.selectFrom('alert_destinations').selectAll().where('workspace_id', '=', workspaceId);
        if (ref.id !== undefined) q = q.where('id', '=', ref.id);
        if (ref.name !== undefined) q = q.where('name', '=', ref.name);
        return q.executeTakeFirst();
      });
      return row && toDestination(row);
    },

    async insertAlertDestination(d: AlertDestinationRecord): Promise<void> {
      await run((db) => db.insertInto('alert_destinations').values(destinationRow(d)).execute());
    },

    async updateAlertDestination(d: AlertDestinationRecord): Promise<boolean> {
      const { id: _id, ...row } = destinationRow(d);
      const result = await run((db) =>
        db.updateTable('alert_destinations').set(row).where('id', '=', d.id).executeTakeFirst(),
      );
      return result.numUpdatedRows > 0n;
    },

    async deleteAlertDestination(workspaceId: string, id: string): Promise<boolean> {
      // Explicitly, not only by the foreign key: SQLite enforces cascades only with foreign_keys on.
      await run((db) => db.deleteFrom('alert_deliveries').where('destination_id', '=', id).execute());
      const result = await run((db) =>
        db
          .deleteFrom('alert_destinations')
          .where('workspace_id', '=', workspaceId)
          .where('id', '=', id)
          .executeTakeFirst(),
      );
      return result.numDeletedRows > 0n;
    },

    async insertAlertDelivery(d: AlertDeliveryRecord): Promise<void> {
      await run((db) => db.insertInto('alert_deliveries').values(deliveryRow(d)).execute());
    },

    async updateAlertDelivery(d: AlertDeliveryRecord): Promise<boolean> {
      const { id: _id, ...row } = deliveryRow(d);
      const result = await run((db) =>
        db.updateTable('alert_deliveries').set(row).where('id', '=', d.id).executeTakeFirst(),
      );
      return result.numUpdatedRows > 0n;
    },

    async listDueAlertDeliveries(now: string, maxAttempts: number, limit: number): Promise<AlertDeliveryRecord[]> {
      const rows = await run((db) =>
        db
          .selectFrom('alert_deliveries')
          .selectAll()
          .where('delivered_at', 'is', null)
          .where('next_attempt_at', '<=', now)
          .where('attempts', '<', maxAttempts)
          .orderBy('next_attempt_at')
          .orderBy('id')
          .limit(Math.max(0, Math.trunc(limit)))
          .execute(),
      );
      return rows.map(toDelivery);
    },

    async listAlertDeliveries(workspaceId: string, alertIds: readonly string[]): Promise<AlertDeliveryRecord[]> {
      if (alertIds.length === 0) return [];
      const rows = await run((db) =>
        db
          .selectFrom('alert_deliveries')
          .selectAll()
          .where('workspace_id', '=', workspaceId)
          .where('alert_id', 'in', alertIds)
          .orderBy('created_at')
          .orderBy('id')
          .execute(),
      );
      return rows.map(toDelivery);
    },
  };
}

function ruleRow(r: AlertRuleRecord): Insertable<AlertRulesTable> {
  return {
    id: r.id,
    workspace_id: r.workspaceId,
    name: r.name,
    kind: r.kind,
    gateway_id: r.gatewayId ?? null,
    threshold: r.threshold ?? null,
    destination_ids: json(r.destinationIds),
    enabled: r.enabled,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
  };
}

function toRule(r: Selectable<AlertRulesTable>): AlertRuleRecord {
  return withOptional(
    {
      id: r.id,
      workspaceId: r.workspace_id,
      name: r.name,
      kind: r.kind,
      destinationIds: JSON.parse(r.destination_ids) as string[],
      enabled: Boolean(r.enabled),
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    },
    { gatewayId: r.gateway_id, threshold: r.threshold },
  );
}

function deliveryRow(d: AlertDeliveryRecord): AlertDeliveriesTable {
  return {
    id: d.id,
    workspace_id: d.workspaceId,
    alert_id: d.alertId,
    destination_id: d.destinationId,
    state: d.state,
    payload: d.payload,
    attempts: d.attempts,
    next_attempt_at: d.nextAttemptAt,
    delivered_at: d.deliveredAt ?? null,
    last_status: d.lastStatus ?? null,
    last_error: d.lastError ?? null,
    created_at: d.createdAt,
  };
}

function toDelivery(r: Selectable<AlertDeliveriesTable>): AlertDeliveryRecord {
  return withOptional(
    {
      id: r.id,
      workspaceId: r.workspace_id,
      alertId: r.alert_id,
      destinationId: r.destination_id,
      state: r.state as 'raised' | 'resolved',
      payload: r.payload,
      attempts: r.attempts,
      nextAttemptAt: r.next_attempt_at,
      createdAt: r.created_at,
    },
    { deliveredAt: r.delivered_at, lastStatus: r.last_status, lastError: r.last_error },
  );
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
