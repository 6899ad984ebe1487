/**
 * The audit log, written in one place: the admin API server records every successful state-changing operation
 * (`record`, called by server.ts after the handler). What was changed comes from the operation's metadata: the
 * resource type and id follow from its path template (`/clients/{client}` → client, the `{client}` value; a create
 * on `/clients` → client, the answer's `id`), unless the operation says otherwise (`Operation.audit`) or the handler
 * notes the id, the state before or after (`RequestInfo.audit`). By default "after" is the operation's answer.
 * Secrets never reach the log: fields named like tokens, passwords, hashes, secrets or private keys are dropped,
 * and any string that holds a whole API key or a gateway registration token (install commands) is replaced.
 */
import { containsKey } from '../../config/telemetry.ts';
import { newId, nowIso } from '../ids.ts';
import type { AuditEntryRecord } from '../store/store.ts';
import type { Caller, ControlContext, Operation } from './operation.ts';

/** What a handler may tell the audit log about the change it made (all optional). */
export interface AuditNote {
  resourceId?: string;
  before?: unknown;
  after?: unknown;
}

/** Field names whose values are secrets (or derived from one) and never stored. */
const SECRET_FIELD = /(?:token|password|secret|hash|privatekey|private_key|keypem|^key$|^jwk$|^d$|credential)/i;
/** A gateway registration token (`ghr_` + 32 characters, see config/edge.ts) anywhere in a string, e.g. a command. */
const REGISTRATION_TOKEN = /ghr_[A-Za-z0-9]{32}/;
/** What a redacted value becomes (so that the entry still says the field was there). */
export const REDACTED = '[redacted]';
/** Path parameters that scope a resource rather than name it. */
const SCOPE_PARAMS = new Set(['workspace', 'environment']);

/** `value` with every secret removed: secret-named fields dropped, strings holding an API key replaced. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 20) return REDACTED;
  if (typeof value === 'string') return containsKey(value) || REGISTRATION_TOKEN.test(value) ? REDACTED : value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (SECRET_FIELD.test(k)) continue;
      out[k] = redact(v, depth + 1);
    }
    return out;
  }
  return value;
}

/** The resource type and id an operation's path names (see the file comment), before the handler's notes. */
export function auditTarget(
  op: Pick<Operation, 'path' | 'audit'>,
  params: Readonly<Record<string, string>>,
  note: AuditNote,
  answer: unknown,
): { resourceType: string; resourceId?: string } {
  const segments = op.path.replace(/^\/api\/v1\//, '').split('/');
  const isParam = (s: string) => /^\{\w+\}$/.test(s);
  const named = (param: string | undefined) => (param === undefined ? undefined : params[param]);
  // The id the handler noted, else the one the resource carries (before or after), else the path's reference.
  const id = (fromPath: string | undefined) => note.resourceId ?? idOf(note.before) ?? idOf(answer) ?? fromPath;
  if (op.audit) return withId(op.audit.resourceType, note.resourceId ?? named(op.audit.idParam) ?? idOf(answer));
  const last = segments.at(-1)!;
  if (isParam(last) && !SCOPE_PARAMS.has(last.slice(1, -1)))
    return withId(singular(segments.at(-2) ?? 'resource'), id(named(last.slice(1, -1))));
  return withId(singular(isParam(last) ? (segments.at(-2) ?? 'resource') : last), id(undefined));
}

function withId(resourceType: string, resourceId: string | undefined) {
  return resourceId === undefined ? { resourceType } : { resourceType, resourceId };
}

function singular(segment: string): string {
  return segment.endsWith('s') ? segment.slice(0, -1) : segment;
}

/** The id (or else the name) of a resource as answered, also when wrapped (`{ client: {…}, token }`). */
function idOf(answer: unknown, depth = 0): string | undefined {
  if (answer === null || typeof answer !== 'object' || Array.isArray(answer)) return undefined;
  const { id, name } = answer as { id?: unknown; name?: unknown };
  if (typeof id === 'string' || typeof id === 'number') return String(id);
  if (typeof name === 'string') return name;
  if (depth > 0) return undefined;
  for (const value of Object.values(answer)) {
    const inner = idOf(value, depth + 1);
    if (inner !== undefined) return inner;
  }
  return undefined;
}

let sequence = 0;
/** Entry ids sort in the order entries were made within this process (the tie-break of equal times). */
function auditId(now: number): string {
  sequence = (sequence + 1) % 1e6;
  return `aud_${now.toString(36).padStart(9, '0')}${sequence.toString(36).padStart(4, '0')}${newId('aud').slice(4, 14)}`;
}

/** Writes the entry of one successful change; a failure is logged (the change itself is already committed). */
export async function recordAudit(
  plane: ControlContext,
  entry: {
    op: Operation;
    caller: Caller;
    workspaceId: string;
    params: Readonly<Record<string, string>>;
    note: AuditNote;
    answer: unknown;
    requestId: string;
    ip: string;
  },
): Promise<void> {
  const { op, caller, note } = entry;
  const now = plane.now();
  const target = auditTarget(op, entry.params, note, entry.answer);
  const after = note.after !== undefined ? note.after : entry.answer;
  const record: AuditEntryRecord = {
    id: auditId(now),
    workspaceId: entry.workspaceId,
    at: nowIso(now),
    actor: {
      kind: caller.kind,
      id: caller.id,
      ...(caller.displayName !== undefined ? { name: caller.displayName } : {}),
    },
    action: op.id,
    resourceType: target.resourceType,
    ...(target.resourceId !== undefined ? { resourceId: target.resourceId } : {}),
    ...(note.before !== undefined ? { before: redact(note.before) } : {}),
    ...(after !== undefined ? { after: redact(after) } : {}),
    requestId: entry.requestId,
    ...(entry.ip ? { ip: entry.ip } : {}),
  };
  try {
    await plane.store.insertAuditEntry(record);
  } catch (err) {
    plane.logger.error({ err, reqId: entry.requestId, action: op.id }, 'writing the audit log entry failed');
  }
}
