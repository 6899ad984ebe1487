/**
 * What a re-import changes: operations added, removed and changed (matched by method and template shape, so a
 * renamed path parameter is a change, not a removal), permissions that appear or disappear, and the roles that
 * name a permission or an endpoint that would disappear.
 */
import type { Endpoint, EndpointRef, Role } from '../schema.ts';
import { templateShape } from './templates.ts';

export interface OperationRef {
  method: string;
  path: string;
  operationId?: string;
  permission: string;
}

export interface EndpointDiff {
  operations: {
    added: OperationRef[];
    removed: OperationRef[];
    /** `fields`: what differs (permission, permissionSets, path, public, cost, validate, request, summary, operationId). */
    changed: (OperationRef & { fields: string[] })[];
  };
  permissions: { added: string[]; removed: string[] };
  /** Roles that would lose something: a permission they name, or an endpoint they grant, disappears. */
  roles: { role: string; permissions: string[]; endpoints: { method: string; path: string }[] }[];
  /** Nothing changes. */
  empty: boolean;
}

const FIELDS = [
  'path',
  'permission',
  'permissionSets',
  'public',
  'cost',
  'validate',
  'request',
  'summary',
  'operationId',
] as const;

/** The permission names an endpoint list uses (its permissions and every permission of its sets). */
export function permissionNames(endpoints: readonly Endpoint[]): Set<string> {
  const out = new Set<string>();
  for (const e of endpoints) {
    if (e.permissionSets) for (const set of e.permissionSets) for (const p of set) out.add(p);
    else out.add(e.permission);
  }
  return out;
}

export function diffEndpoints(
  collection: string,
  before: readonly Endpoint[],
  after: readonly Endpoint[],
  roles: readonly Pick<Role, 'name' | 'permissions' | 'endpoints'>[],
  /** Permissions other collections still use: they do not disappear. */
  elsewhere: ReadonlySet<string> = new Set(),
): EndpointDiff {
  const key = (e: Endpoint) => `${e.method} ${templateShape(e.path)}`;
  const ref = (e: Endpoint): OperationRef => ({
    method: e.method,
    path: e.path,
    ...(e.operationId !== undefined ? { operationId: e.operationId } : {}),
    permission: e.permission,
  });
  const old = new Map(before.map((e) => [key(e), e]));
  const now = new Map(after.map((e) => [key(e), e]));
  const added = after.filter((e) => !old.has(key(e))).map(ref);
  const removedEndpoints = before.filter((e) => !now.has(key(e)));
  const changed: EndpointDiff['operations']['changed'] = [];
  for (const e of after) {
    const was = old.get(key(e));
    if (!was) continue;
    const fields = FIELDS.filter((f) => JSON.stringify(was[f]) !== JSON.stringify(e[f]));
    if (fields.length > 0) changed.push({ ...ref(e), fields });
  }
  const oldNames = permissionNames(before);
  const newNames = permissionNames(after);
  const gone = [...oldNames].filter((p) => !newNames.has(p) && !elsewhere.has(p)).sort();
  const goneSet = new Set(gone);
  const removedShapes = new Set(removedEndpoints.map(key));
  const affected: EndpointDiff['roles'] = [];
  for (const r of roles) {
    const permissions = r.permissions.filter((p) => goneSet.has(p));
    const endpoints = r.endpoints
      .filter(
        (e: EndpointRef) => e.collection === collection && removedShapes.has(`${e.method} ${templateShape(e.path)}`),
      )
      .map((e) => ({ method: e.method, path: e.path }));
    if (permissions.length > 0 || endpoints.length > 0) affected.push({ role: r.name, permissions, endpoints });
  }
  const permissionsAdded = [...newNames].filter((p) => !oldNames.has(p)).sort();
  return {
    operations: { added, removed: removedEndpoints.map(ref), changed },
    permissions: { added: permissionsAdded, removed: gone },
    roles: affected,
    empty: added.length === 0 && removedEndpoints.length === 0 && changed.length === 0,
  };
}
