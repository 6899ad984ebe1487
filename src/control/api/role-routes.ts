/**
 * Admin API: client roles. A role lists permission patterns (admin API operations such as `admin:clients:write`,
 * collection endpoint permissions such as `invoices:read`, wildcards `prefix:*` and `*`) and individual collection
 * endpoints. Changing or deleting a role takes effect at once for every client holding it. A caller can hand out
 * only admin permissions it holds itself.
 */
import { z } from 'zod';
import { RoleInputSchema, RolePatchSchema, RoleSchemaOut } from '../../config/resources.ts';
import { newId, nowIso } from '../ids.ts';
import type { RoleRecord, StoreOps, WorkspaceRecord } from '../store/store.ts';
import { AdminError, conflict, invalid } from './errors.ts';
import { findRole } from './lookup.ts';
import { operation, type Caller, type Operation } from './operation.ts';
import { covers, isAdminPattern } from './permissions.ts';
import { queryBoolean } from './query.ts';
import { clientInScope } from './scope.ts';

const W = '/api/v1/workspaces/{workspace}';

function toRole(r: RoleRecord) {
  const { workspaceId: _w, ...out } = r;
  return out;
}

/** Refuses a role that would grant admin permissions the caller does not hold (privilege escalation). */
export function checkGrantable(caller: Caller, permissions: readonly string[], where: string): void {
  permissions.forEach((p, i) => {
    if (isAdminPattern(p) && !caller.permissions.some((held) => covers(held, p))) {
      throw new AdminError(
        'GH_ERR_ADMIN_FORBIDDEN',
        `${where}[${i}]: "${p}" grants admin API operations this caller does not hold itself`,
      );
    }
  });
}

/** Every endpoint reference must name an existing collection endpoint of the workspace (draft or published). */
async function checkEndpoints(
  tx: StoreOps,
  workspace: WorkspaceRecord,
  endpoints: RoleRecord['endpoints'],
): Promise<void> {
  if (!endpoints.length) return;
  const collections = await tx.listCollections(workspace.id);
  const shape = (p: string) => p.replace(/\{[^}]+\}/g, '{}');
  for (const [i, ref] of endpoints.entries()) {
    const matches = collections.filter((c) => c.name === ref.collection);
    if (!matches.length) throw invalid(`body.endpoints[${i}].collection`, `unknown collection "${ref.collection}"`);
    const specs = [];
    for (const c of matches) {
      specs.push(c.spec);
      if (c.publishedVersion) specs.push((await tx.getCollectionVersion(c.id, c.publishedVersion))!.spec);
    }
    if (!specs.some((s) => s.endpoints.some((e) => e.method === ref.method && shape(e.path) === shape(ref.path)))) {
      throw invalid(`body.endpoints[${i}]`, `collection "${ref.collection}" has no endpoint ${ref.method} ${ref.path}`);
    }
  }
}

export const roleOperations: Operation[] = [
  operation({
    id: 'listRoles',
    method: 'GET',
    path: `${W}/roles`,
    summary: "List the workspace's client roles",
    tag: 'Roles',
    permission: 'admin:roles:read',
    response: z.object({ items: z.array(RoleSchemaOut) }),
    async handler({ workspace, plane }) {
      return { items: (await plane.store.listRoles(workspace.id)).map(toRole) };
    },
  }),
  operation({
    id: 'createRole',
    method: 'POST',
    path: `${W}/roles`,
    summary: 'Create a client role',
    tag: 'Roles',
    permission: 'admin:roles:write',
    body: RoleInputSchema,
    response: RoleSchemaOut,
    status: 201,
    async handler({ caller, workspace, body, plane }) {
      checkGrantable(caller, body.permissions, 'body.permissions');
      const role = await plane.store.transaction(async (tx) => {
        if (await tx.getRole({ workspaceId: workspace.id, name: body.name }))
          throw conflict(`body.name: role "${body.name}" already exists`);
        await checkEndpoints(tx, workspace, body.endpoints);
        const at = nowIso(plane.now());
        const record: RoleRecord = {
          id: newId('rol'),
          workspaceId: workspace.id,
          ...body,
          createdAt: at,
          updatedAt: at,
        };
        await tx.insertRole(record);
        return record;
      });
      return toRole(role);
    },
  }),
  operation({
    id: 'getRole',
    method: 'GET',
    path: `${W}/roles/{role}`,
    summary: 'Get a client role',
    tag: 'Roles',
    permission: 'admin:roles:read',
    response: RoleSchemaOut,
    async handler({ workspace, params, plane }) {
      return toRole(await findRole(plane.store, workspace, params.role!));
    },
  }),
  operation({
    id: 'updateRole',
    method: 'PATCH',
    path: `${W}/roles/{role}`,
    summary: 'Change a client role; every client holding it is affected at once',
    tag: 'Roles',
    permission: 'admin:roles:write',
    body: RolePatchSchema,
    response: RoleSchemaOut,
    async handler({ caller, workspace, params, body, plane, audit }) {
      if (body.permissions) checkGrantable(caller, body.permissions, 'body.permissions');
      const role = await plane.store.transaction(async (tx) => {
        const current = await findRole(tx, workspace, params.role!);
        audit.before = toRole(current);
        checkGrantable(caller, current.permissions, "the role's current permissions");
        if (
          body.name &&
          body.name !== current.name &&
          (await tx.getRole({ workspaceId: workspace.id, name: body.name }))
        )
          throw conflict(`body.name: role "${body.name}" already exists`);
        if (body.endpoints) await checkEndpoints(tx, workspace, body.endpoints);
        const next: RoleRecord = {
          ...current,
          ...Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined)),
          updatedAt: nowIso(plane.now()),
        };
        await tx.updateRole(next);
        return next;
      });
      await plane.changed(workspace.id);
      return toRole(role);
    },
  }),
  operation({
    id: 'deleteRole',
    method: 'DELETE',
    path: `${W}/roles/{role}`,
    summary:
      'Delete a client role; refused (409 GH_ERR_ADMIN_ROLE_IN_USE, naming them) while API clients hold it, unless `?force=true` (their requests then fail at once)',
    tag: 'Roles',
    permission: 'admin:roles:write',
    query: z.object({
      force: queryBoolean(
        'Delete even while API clients hold the role: their requests are refused from then on (default false)',
      ),
    }),
    status: 204,
    async handler({ caller, workspace, params, query, plane, audit }) {
      const role = await findRole(plane.store, workspace, params.role!);
      audit.before = toRole(role);
      if (role.name === 'admin') throw conflict('the built-in admin role cannot be deleted');
      checkGrantable(caller, role.permissions, "the role's permissions");
      if (query.get('force') !== 'true') {
        const holders = (await plane.store.listClients(workspace.id)).filter((c) => c.roleId === role.id);
        if (holders.length > 0) {
          const shown = holders.filter((c) => clientInScope(caller, c));
          const hidden = holders.length - shown.length;
          const names = [
            ...shown.map((c) => `${c.name} (${c.id})`),
            ...(hidden ? [`${hidden} more outside your environments and projects`] : []),
          ];
          throw new AdminError(
            'GH_ERR_ADMIN_ROLE_IN_USE',
            `role "${role.name}" is held by ${holders.length} API client(s): ${names.join(', ')}. Give them another role or delete them first, or delete with ?force=true to refuse their requests from then on`,
            undefined,
            {},
            { clients: shown.map((c) => ({ id: c.id, name: c.name })) },
          );
        }
      }
      await plane.store.deleteRole(role.id);
      await plane.changed(workspace.id);
      return undefined;
    },
  }),
];
