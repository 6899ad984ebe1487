/**
 * Admin API: the audit log of a workspace, newest first, filtered and paged with an opaque cursor. Whoever holds
 * `admin:audit:read` sees the whole workspace's log (every environment and project): grant it accordingly.
 */
import { z } from 'zod';
import { parseDuration } from '../../config/duration.ts';
import type { AuditEntryRecord } from '../store/store.ts';
import { invalid } from './errors.ts';
import { operation, type Operation } from './operation.ts';
import { queryInt, queryText, queryTime } from './query.ts';

const W = '/api/v1/workspaces/{workspace}';
export const AUDIT_PERMISSION = 'admin:audit:read';
const MAX_LIMIT = 200;
const DEFAULT_LIMIT = 50;

export const AuditEntrySchemaOut = z.strictObject({
  id: z.string(),
  at: z.string().describe('When the change was made (ISO 8601)'),
  actor: z.strictObject({
    kind: z.enum(['client', 'user']),
    id: z.string(),
    name: z.string().optional().describe("The client's name, or the user's name or email"),
  }),
  action: z.string().describe('The admin API operation id, e.g. `createClient`'),
  resourceType: z.string().describe('e.g. `client`, `role`, `collection`, `gateway`'),
  resourceId: z.string().optional(),
  before: z.unknown().optional().describe('The resource before the change, secrets removed (when recorded)'),
  after: z.unknown().optional().describe('The resource after the change, or the answer, secrets removed'),
  requestId: z.string().describe('The X-Request-Id of the change'),
  ip: z.string().optional().describe('The address the change came from'),
});

export const AuditLogPageSchema = z.strictObject({
  items: z.array(AuditEntrySchemaOut),
  nextCursor: z.string().optional().describe('Pass as `?cursor=` for the next (older) page; absent on the last page'),
});

function toEntry(e: AuditEntryRecord): z.output<typeof AuditEntrySchemaOut> {
  const { workspaceId: _w, ...rest } = e;
  return rest;
}

/** An ISO timestamp or a duration back from now (`15m`, `7d`). */
function time(query: URLSearchParams, name: string, now: number): string | undefined {
  const value = query.get(name);
  if (value === null || value === '') return undefined;
  const ago = parseDuration(value);
  if (ago !== undefined) return new Date(now - ago).toISOString();
  const at = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(at))
    throw invalid(`query.${name}`, 'must be an ISO 8601 timestamp or a duration such as "15m", "2h" or "7d"');
  return new Date(at).toISOString();
}

function encodeCursor(e: AuditEntryRecord): string {
  return Buffer.from(JSON.stringify([e.at, e.id])).toString('base64url');
}

function decodeCursor(value: string): { at: string; id: string } {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
    if (Array.isArray(parsed) && parsed.length === 2 && parsed.every((p) => typeof p === 'string'))
      return { at: parsed[0] as string, id: parsed[1] as string };
  } catch {
    // answered below
  }
  throw invalid('query.cursor', 'is not a cursor this API returned (pass nextCursor as it came)');
}

export const auditOperations: Operation[] = [
  operation({
    id: 'listAuditLog',
    method: 'GET',
    path: `${W}/audit-log`,
    summary:
      'Who changed what and when, newest first: `?actor=` (client or user id), `?action=` (operation id), `?resourceType=`, `?resourceId=`, `?since=` and `?until=` (ISO time or a duration back from now), `?limit=` (1–200, default 50), `?cursor=` (the previous page’s nextCursor)',
    tag: 'Audit',
    permission: AUDIT_PERMISSION,
    query: z.object({
      actor: queryText('Only changes by this client or user id'),
      action: queryText('Only this operation id (e.g. createClient)'),
      resourceType: queryText('Only this resource type (e.g. client)'),
      resourceId: queryText('Only this resource id'),
      since: queryTime('From this ISO 8601 time, or this long ago (15m, 7d)'),
      until: queryTime('Up to this ISO 8601 time, or this long ago'),
      limit: queryInt(MAX_LIMIT, `At most this many (default ${DEFAULT_LIMIT})`),
      cursor: queryText("The previous page's nextCursor"),
    }),
    response: AuditLogPageSchema,
    async handler({ workspace, query, plane }) {
      const raw = query.get('limit');
      if (raw !== null && (!/^\d{1,3}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_LIMIT))
        throw invalid('query.limit', `must be an integer from 1 to ${MAX_LIMIT}`);
      const limit = raw === null ? DEFAULT_LIMIT : Number(raw);
      const text = (name: string) => {
        const v = query.get(name);
        return v === null || v === '' ? undefined : v;
      };
      const now = plane.now();
      const cursor = text('cursor');
      const filter = {
        actorId: text('actor'),
        action: text('action'),
        resourceType: text('resourceType'),
        resourceId: text('resourceId'),
        since: time(query, 'since', now),
        until: time(query, 'until', now),
        before: cursor === undefined ? undefined : decodeCursor(cursor),
      };
      const defined = Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined));
      // One more than asked for says whether there is a next page.
      const rows = await plane.store.listAuditLog(workspace.id, { ...defined, limit: limit + 1 });
      const items = rows.slice(0, limit);
      return {
        items: items.map(toEntry),
        ...(rows.length > limit ? { nextCursor: encodeCursor(items.at(-1)!) } : {}),
      };
    },
  }),
];
