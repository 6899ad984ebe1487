/**
 * What gateways report, in SQL: request counts per minute (added up on insert) and security events, and the
 * mapping between their rows and records.
 */
import type { Selectable } from 'kysely';
import { NONE } from '../../../config/telemetry.ts';
import type { SecurityEventRecord, TelemetryOps, TelemetryRecord } from '../store.ts';
import type { SecurityEventsTable, TelemetryTable } from '../tables.ts';
import { clientQueries } from './clients.ts';
import { addToRollups, pruneRollups } from './rollups.ts';
import { withOptional } from './rows.ts';
import type { Run } from './statement-runner.ts';

/** Each client's "last used" follows the requests reported (clients.ts). */
function recordUse(run: Run, uses: { clientId: string; at: string }[]): Promise<void> {
  return clientQueries(run).recordClientUse(uses);
}

export function telemetryQueries(run: Run): TelemetryOps {
  return {
    async addTelemetry(rows: readonly TelemetryRecord[]): Promise<void> {
      // PostgreSQL refuses an INSERT … ON CONFLICT that touches one row twice, so equal keys are added up here first.
      const merged = mergeTelemetry(rows);
      for (let i = 0; i < merged.length; i += TELEMETRY_BATCH) {
        const batch = merged.slice(i, i + TELEMETRY_BATCH);
        await run((db) =>
          db
            .insertInto('telemetry')
            .values(batch)
            .onConflict((oc) =>
              oc
                .columns([
                  'workspace_id',
                  'gateway_id',
                  'minute',
                  'collection',
                  'endpoint',
                  'client_id',
                  'agent',
                  'session',
                  'status',
                ])
                .doUpdateSet((eb) => ({
                  count: eb(eb.ref('telemetry.count'), '+', eb.ref('excluded.count')),
                  duration_ms_sum: eb(eb.ref('telemetry.duration_ms_sum'), '+', eb.ref('excluded.duration_ms_sum')),
                  // CASE rather than greatest() (PostgreSQL) or max() (SQLite): the same SQL on both.
                  duration_ms_max: eb
                    .case()
                    .when(eb.ref('excluded.duration_ms_max'), '>', eb.ref('telemetry.duration_ms_max'))
                    .then(eb.ref('excluded.duration_ms_max'))
                    .else(eb.ref('telemetry.duration_ms_max'))
                    .end(),
                })),
            )
            .execute(),
        );
      }
      await addToRollups(run, rows);
      await recordUse(
        run,
        rows.map((r) => ({ clientId: r.clientId, at: r.minute })),
      );
    },

    async listTelemetry(
      workspaceId: string,
      filter: { since: string; gatewayId?: string },
    ): Promise<TelemetryRecord[]> {
      const rows = await run((db) => {
        let q = db
          .selectFrom('telemetry')
          .selectAll()
          .where('workspace_id', '=', workspaceId)
          .where('minute', '>=', filter.since);
        if (filter.gatewayId !== undefined) q = q.where('gateway_id', '=', filter.gatewayId);
        return q
          .orderBy('minute')
          .orderBy('gateway_id')
          .orderBy('collection')
          .orderBy('endpoint')
          .orderBy('client_id')
          .orderBy('agent')
          .orderBy('session')
          .orderBy('status')
          .execute();
      });
      return rows.map(toTelemetry);
    },

    async pruneTelemetry(before: string): Promise<number> {
      const result = await run((db) => db.deleteFrom('telemetry').where('minute', '<', before).executeTakeFirst());
      await pruneRollups(run, before);
      return Number(result.numDeletedRows);
    },

    async claimTelemetryBatch(batch): Promise<boolean> {
      const result = await run((db) =>
        db
          .insertInto('telemetry_batches')
          .values({
            gateway_id: batch.gatewayId,
            instance_id: batch.instanceId,
            sequence: batch.sequence,
            received_at: batch.at,
          })
          .onConflict((oc) => oc.columns(['gateway_id', 'instance_id', 'sequence']).doNothing())
          .executeTakeFirst(),
      );
      return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
    },

    async pruneTelemetryBatches(before: string): Promise<number> {
      const result = await run((db) =>
        db.deleteFrom('telemetry_batches').where('received_at', '<', before).executeTakeFirst(),
      );
      return Number(result.numDeletedRows);
    },

    async insertSecurityEvents(events: readonly SecurityEventRecord[]): Promise<void> {
      for (let i = 0; i < events.length; i += SECURITY_EVENT_BATCH) {
        const batch = events.slice(i, i + SECURITY_EVENT_BATCH).map(securityEventRow);
        await run((db) => db.insertInto('security_events').values(batch).execute());
      }
    },

    async listSecurityEvents(
      workspaceId: string,
      filter: { since: string; gatewayId?: string; limit?: number },
    ): Promise<SecurityEventRecord[]> {
      const rows = await run((db) => {
        let q = db
          .selectFrom('security_events')
          .selectAll()
          .where('workspace_id', '=', workspaceId)
          .where('at', '>=', filter.since);
        if (filter.gatewayId !== undefined) q = q.where('gateway_id', '=', filter.gatewayId);
        q = q.orderBy('at', 'desc').orderBy('id', 'desc');
        if (filter.limit !== undefined) q = q.limit(Math.max(0, Math.trunc(filter.limit)));
        return q.execute();
      });
      return rows.map(toSecurityEvent);
    },

    async countSecurityEvents(
      workspaceId: string,
      filter: { since: string; gatewayId?: string; kind?: string },
    ): Promise<number> {
      const row = await run((db) => {
        let q = db
          .selectFrom('security_events')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('workspace_id', '=', workspaceId)
          .where('at', '>=', filter.since);
        if (filter.gatewayId !== undefined) q = q.where('gateway_id', '=', filter.gatewayId);
        if (filter.kind !== undefined) q = q.where('kind', '=', filter.kind);
        return q.executeTakeFirstOrThrow();
      });
      // PostgreSQL returns count(*) as a bigint string.
      return Number(row.n);
    },

    async pruneSecurityEvents(before: string): Promise<number> {
      const result = await run((db) => db.deleteFrom('security_events').where('at', '<', before).executeTakeFirst());
      return Number(result.numDeletedRows);
    },
  };
}

/** Rows per INSERT: well below SQLite's and PostgreSQL's limits on bound parameters. */
/** Rows per INSERT: well below SQLite's and PostgreSQL's limits on bound parameters. */
const TELEMETRY_BATCH = 500;
const SECURITY_EVENT_BATCH = 500;

/** The rows as table rows, those with equal keys added up (counts and sums added, the maximum kept). */
function mergeTelemetry(rows: readonly TelemetryRecord[]): TelemetryTable[] {
  const byKey = new Map<string, TelemetryTable>();
  for (const t of rows) {
    const agent = t.agent ?? NONE;
    const session = t.session ?? NONE;
    const key = JSON.stringify([
      t.workspaceId,
      t.gatewayId,
      t.minute,
      t.collection,
      t.endpoint,
      t.clientId,
      agent,
      session,
      t.status,
    ]);
    const seen = byKey.get(key);
    if (seen === undefined) {
      byKey.set(key, {
        workspace_id: t.workspaceId,
        gateway_id: t.gatewayId,
        minute: t.minute,
        collection: t.collection,
        endpoint: t.endpoint,
        client_id: t.clientId,
        agent,
        session,
        status: t.status,
        count: t.count,
        duration_ms_sum: t.durationMsSum,
        duration_ms_max: t.durationMsMax,
      });
    } else {
      seen.count += t.count;
      seen.duration_ms_sum += t.durationMsSum;
      seen.duration_ms_max = Math.max(seen.duration_ms_max, t.durationMsMax);
    }
  }
  return [...byKey.values()];
}

function toTelemetry(r: Selectable<TelemetryTable>): TelemetryRecord {
  return {
    workspaceId: r.workspace_id,
    gatewayId: r.gateway_id,
    minute: r.minute,
    collection: r.collection,
    endpoint: r.endpoint,
    clientId: r.client_id,
    ...(r.agent !== NONE && { agent: r.agent }),
    ...(r.session !== NONE && { session: r.session }),
    status: r.status,
    count: r.count,
    durationMsSum: r.duration_ms_sum,
    durationMsMax: r.duration_ms_max,
  };
}

function securityEventRow(e: SecurityEventRecord): SecurityEventsTable {
  return {
    id: e.id,
    workspace_id: e.workspaceId,
    gateway_id: e.gatewayId,
    at: e.at,
    kind: e.kind,
    reason: e.reason,
    collection: e.collection ?? null,
    client_id: e.clientId ?? null,
    key_label: e.keyLabel ?? null,
    ip: e.ip ?? null,
    agent: e.agent ?? null,
    session: e.session ?? null,
  };
}

function toSecurityEvent(r: Selectable<SecurityEventsTable>): SecurityEventRecord {
  return withOptional(
    { id: r.id, workspaceId: r.workspace_id, gatewayId: r.gateway_id, at: r.at, kind: r.kind, reason: r.reason },
    {
      collection: r.collection,
      clientId: r.client_id,
      keyLabel: r.key_label,
      ip: r.ip,
      agent: r.agent,
      session: r.session,
    },
  );
}
