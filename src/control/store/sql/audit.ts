/**
 * The audit log in SQL: entries newest first by (at, id), which is also the cursor of a page, and the mapping
 * between their rows and records. `before` and `after` are JSON text; secrets were removed before they got here.
 */
import type { Selectable } from 'kysely';
import type { AuditEntryRecord, AuditLogFilter, AuditOps } from '../store.ts';
import type { AuditLogTable } from '../tables.ts';
import { json, parsed, withOptional } from './rows.ts';
import type { Run } from './statement-runner.ts';

export function auditQueries(run: Run): AuditOps {
  return {
    async insertAuditEntry(e: AuditEntryRecord): Promise<void> {
      await run((db) => db.insertInto('audit_log').values(auditRow(e)).execute());
    },

    async listAuditLog(workspaceId: string, filter: AuditLogFilter): Promise<AuditEntryRecord[]> {
      const rows = await run((db) => {
        let q = db.selectFrom('audit_log').selectAll().where('workspace_id', '=', workspaceId);
        if (filter.actorId !== undefined) q = q.where('actor_id', '=', filter.actorId);
        if (filter.action !== undefined) q = q.where('action', '=', filter.action);
        if (filter.resourceType !== undefined) q = q.where('resource_type', '=', filter.resourceType);
        if (filter.resourceId !== undefined) q = q.where('resource_id', '=', filter.resourceId);
        if (filter.since !== undefined) q = q.where('at', '>=', filter.since);
        if (filter.until !== undefined) q = q.where('at', '<', filter.until);
        const cursor = filter.before;
        if (cursor !== undefined)
          q = q.where((eb) =>
            eb.or([eb('at', '<', cursor.at), eb.and([eb('at', '=', cursor.at), eb('id', '<', cursor.id)])]),
          );
        return q
          .orderBy('at', 'desc')
          .orderBy('id', 'desc')
          .limit(Math.max(0, Math.trunc(filter.limit)))
          .execute();
      });
      return rows.map(toAuditEntry);
    },

    async pruneAuditLog(before: string): Promise<number> {
      const result = await run((db) => db.deleteFrom('audit_log').where('at', '<', before).executeTakeFirst());
      return Number(result.numDeletedRows);
    },
  };
}

function auditRow(e: AuditEntryRecord): AuditLogTable {
  return {
    id: e.id,
    workspace_id: e.workspaceId,
    at: e.at,
    actor_kind: e.actor.kind,
    actor_id: e.actor.id,
    actor_name: e.actor.name ?? null,
    action: e.action,
    resource_type: e.resourceType,
    resource_id: e.resourceId ?? null,
    before: json(e.before),
    after: json(e.after),
    request_id: e.requestId,
    ip: e.ip ?? null,
  };
}

function toAuditEntry(r: Selectable<AuditLogTable>): AuditEntryRecord {
  return withOptional(
    {
      id: r.id,
      workspaceId: r.workspace_id,
      at: r.at,
      actor: withOptional(
        { kind: r.actor_kind === 'client' ? ('client' as const) : ('user' as const), id: r.actor_id },
        { name: r.actor_name },
      ),
      action: r.action,
      resourceType: r.resource_type,
      requestId: r.request_id,
    },
    { resourceId: r.resource_id, before: parsed(r.before), after: parsed(r.after), ip: r.ip },
  );
}
