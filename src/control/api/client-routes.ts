/**
 * Admin API: API clients and legacy clients. A token is shown exactly once — in the answer to create or
 * regenerate — and stored only as its SHA-256. Regenerating invalidates the old token at once or after a stated
 * grace period; deleting a client invalidates its tokens at once. A caller sees and manages only clients whose
 * environments and projects lie within its own, and cannot hand out a role with admin permissions it lacks.
 * `{client}` is the client's id or its name (a name several visible clients share is refused 409, naming their ids).
 */
import { z } from 'zod';
import {
  ClientInputSchema,
  ClientPatchSchema,
  ClientSchemaOut,
  ClientWithTokenSchema,
  LegacyClientInputSchema,
  RegenerateInputSchema,
  type ClientInput,
} from '../../config/resources.ts';
import { generateKey, hashKey } from '../../shared/api-key.ts';
import { encodeRateLimits } from '../../config/snapshot-encoding.ts';
import { newId, nowIso } from '../ids.ts';
import type { ClientRecord, KeyRecord, RoleRecord, StoreOps, WorkspaceRecord } from '../store/store.ts';
import { AdminError, conflict, fromStore, invalid } from './errors.ts';
import { requireKnownEnvironment, visibleClient } from './lookup.ts';
import { operation, type Caller, type Operation } from './operation.ts';
import { checkGrantable } from './role-routes.ts';
import { clientInScope } from './scope.ts';

const W = '/api/v1/workspaces/{workspace}';

async function toClient(
  tx: StoreOps,
  c: ClientRecord,
  roles?: Map<string, RoleRecord>,
  keys?: KeyRecord[],
  usage?: Map<string, string>,
) {
  const role = roles ? roles.get(c.roleId) : await tx.getRole({ id: c.roleId });
  const { workspaceId, roleId: _r, ...rest } = c;
  const lastUsedAt = (usage ?? (await tx.listClientUsage(workspaceId))).get(c.id);
  return {
    ...rest,
    ...(lastUsedAt !== undefined ? { lastUsedAt } : {}),
    ...(rest.rateLimits ? { rateLimits: encodeRateLimits(rest.rateLimits) } : {}),
    workspace: workspaceId,
    role: role?.name ?? `(deleted role ${c.roleId})`,
    keys: (keys ?? (await tx.listKeys(c.id))).map((k) => ({
      id: k.id,
      createdAt: k.createdAt,
      ...(k.expiresAt ? { expiresAt: k.expiresAt } : {}),
    })),
  };
}

type ClientScopeFields = Pick<ClientInput, 'role' | 'environments' | 'projects' | 'operator'>;

/** Validates references and scope of a client's role, environments, projects and operator flag; returns the role. */
async function checkClient(
  tx: StoreOps,
  caller: Caller,
  workspace: WorkspaceRecord,
  c: ClientScopeFields,
): Promise<RoleRecord> {
  const role = await tx.getRole({ workspaceId: workspace.id, name: c.role });
  if (!role) throw invalid('body.role', `unknown role "${c.role}"`);
  c.environments.forEach((e, i) => {
    if (e !== '*') requireKnownEnvironment(workspace, e, `body.environments[${i}]`);
  });
  const projects = new Set((await tx.listProjects(workspace.id)).map((p) => p.name));
  c.projects.forEach((p, i) => {
    if (p !== '*' && !projects.has(p)) throw invalid(`body.projects[${i}]`, `unknown project "${p}"`);
  });
  if (!clientInScope(caller, c))
    throw new AdminError(
      'GH_ERR_ADMIN_OUT_OF_SCOPE',
      "body: the client's environments and projects must lie within the caller's own",
    );
  if (c.operator && !caller.operator)
    throw new AdminError('GH_ERR_ADMIN_FORBIDDEN', 'body.operator: only an operator client creates operator clients');
  checkGrantable(caller, role.permissions, `role "${role.name}" permissions`);
  return role;
}

/**
 * Whether the caller may change, regenerate or delete this existing client: an operator client only by an
 * operator, and a client whose role holds admin permissions only by a caller holding them too. Otherwise a caller
 * allowed to manage clients could take over a stronger client's token (regenerate) or remove it.
 */
async function checkManageable(tx: StoreOps, caller: Caller, client: ClientRecord): Promise<void> {
  if (client.operator && !caller.operator)
    throw new AdminError('GH_ERR_ADMIN_FORBIDDEN', 'only an operator client manages operator clients');
  const role = await tx.getRole({ id: client.roleId });
  if (role) checkGrantable(caller, role.permissions, `the client's role "${role.name}" permissions`);
}

function record(
  workspace: WorkspaceRecord,
  input: ClientInput,
  role: RoleRecord,
  kind: ClientRecord['kind'],
  at: string,
  email?: string,
): ClientRecord {
  const { role: _role, ...fields } = input;
  const out: ClientRecord = {
    id: newId('cli'),
    workspaceId: workspace.id,
    kind,
    ...fields,
    roleId: role.id,
    createdAt: at,
    updatedAt: at,
  };
  if (email) out.email = email;
  return stripUndefined(out);
}

function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

export const clientOperations: Operation[] = [
  operation({
    id: 'listClients',
    method: 'GET',
    path: `${W}/clients`,
    summary: "List API clients within the caller's environments and projects",
    tag: 'Clients',
    permission: 'admin:clients:read',
    response: z.object({ items: z.array(ClientSchemaOut) }),
    responseForm: 'input',
    async handler({ caller, workspace, plane }) {
      const roles = new Map((await plane.store.listRoles(workspace.id)).map((r) => [r.id, r]));
      const keys = Map.groupBy(await plane.store.listWorkspaceKeys(workspace.id), (k) => k.clientId);
      const usage = await plane.store.listClientUsage(workspace.id);
      const items = [];
      for (const c of await plane.store.listClients(workspace.id))
        if (clientInScope(caller, c)) items.push(await toClient(plane.store, c, roles, keys.get(c.id) ?? [], usage));
      return { items };
    },
  }),
  operation({
    id: 'createClient',
    method: 'POST',
    path: `${W}/clients`,
    summary: 'Create an API client; the answer holds its token, shown this once',
    tag: 'Clients',
    permission: 'admin:clients:write',
    body: ClientInputSchema,
    response: ClientWithTokenSchema,
    responseForm: 'input',
    status: 201,
    async handler({ caller, workspace, body, plane }) {
      const key = generateKey();
      const client = await plane.store.transaction(async (tx) => {
        const role = await checkClient(tx, caller, workspace, body);
        const c = record(workspace, body, role, 'standard', nowIso(plane.now()));
        await tx.insertClient(c);
        await tx.insertKey({ id: key.id, clientId: c.id, hash: key.hash, createdAt: c.createdAt });
        return toClient(tx, c);
      });
      await plane.changed(workspace.id);
      return { client, token: key.key };
    },
  }),
  operation({
    id: 'createLegacyClient',
    method: 'POST',
    path: `${W}/legacy-clients`,
    summary: 'Import a legacy client (existing API key + email); usable until deleted, never regenerable',
    tag: 'Clients',
    permission: 'admin:clients:write',
    body: LegacyClientInputSchema,
    response: ClientSchemaOut,
    responseForm: 'input',
    status: 201,
    async handler({ caller, workspace, body, plane }) {
      const { email, key, ...input } = body;
      const client = await plane.store.transaction(async (tx) => {
        const role = await checkClient(tx, caller, workspace, input);
        const c = record(workspace, input, role, 'legacy', nowIso(plane.now()), email);
        await tx.insertClient(c);
        await tx
          .insertKey({ id: 'legacy', clientId: c.id, hash: hashKey(key), createdAt: c.createdAt })
          .catch((e: unknown) => {
            throw fromStore(e, { 'key.hash': 'body.key: this key is already in use' });
          });
        return toClient(tx, c);
      });
      await plane.changed(workspace.id);
      return client;
    },
  }),
  operation({
    id: 'getClient',
    method: 'GET',
    path: `${W}/clients/{client}`,
    summary: 'Get an API client (never its token)',
    tag: 'Clients',
    permission: 'admin:clients:read',
    response: ClientSchemaOut,
    responseForm: 'input',
    async handler({ caller, workspace, params, plane }) {
      return toClient(plane.store, await visibleClient(plane.store, caller, workspace, params.client!));
    },
  }),
  operation({
    id: 'updateClient',
    method: 'PATCH',
    path: `${W}/clients/{client}`,
    summary: "Change an API client's role, scope, limits, expiry or status; enforced at once",
    tag: 'Clients',
    permission: 'admin:clients:write',
    body: ClientPatchSchema,
    response: ClientSchemaOut,
    responseForm: 'input',
    async handler({ caller, workspace, params, body, plane, audit }) {
      const client = await plane.store.transaction(async (tx) => {
        const current = await visibleClient(tx, caller, workspace, params.client!);
        await checkManageable(tx, caller, current);
        audit.before = await toClient(tx, current);
        const currentRole = await tx.getRole({ id: current.roleId });
        const merged = {
          role: body.role ?? currentRole?.name ?? '',
          environments: body.environments ?? current.environments,
          projects: body.projects ?? current.projects,
          operator: body.operator ?? current.operator,
        };
        const role = await checkClient(tx, caller, workspace, merged);
        const { role: _r, ...changes } = body;
        const next = stripUndefined({ ...current, ...changes, roleId: role.id, updatedAt: nowIso(plane.now()) });
        await tx.updateClient(next);
        return toClient(tx, next);
      });
      await plane.changed(workspace.id);
      return client;
    },
  }),
  operation({
    id: 'deleteClient',
    method: 'DELETE',
    path: `${W}/clients/{client}`,
    summary: 'Delete an API client; every request with its tokens fails at once',
    tag: 'Clients',
    permission: 'admin:clients:write',
    status: 204,
    async handler({ caller, workspace, params, plane, audit }) {
      const c = await visibleClient(plane.store, caller, workspace, params.client!);
      if (c.id === caller.id) throw conflict('a client cannot delete itself');
      await checkManageable(plane.store, caller, c);
      audit.before = await toClient(plane.store, c);
      await plane.store.deleteClient(c.id);
      await plane.changed(workspace.id);
      return undefined;
    },
  }),
  operation({
    id: 'regenerateClientToken',
    method: 'POST',
    path: `${W}/clients/{client}/regenerate`,
    summary: 'Issue a new token; the old one stops working at once or after the grace period',
    tag: 'Clients',
    permission: 'admin:clients:write',
    audit: { resourceType: 'client', idParam: 'client' },
    body: RegenerateInputSchema,
    response: ClientWithTokenSchema,
    responseForm: 'input',
    async handler({ caller, workspace, params, body, plane }) {
      const key = generateKey();
      const client = await plane.store.transaction(async (tx) => {
        const c = await visibleClient(tx, caller, workspace, params.client!);
        await checkManageable(tx, caller, c);
        if (c.kind === 'legacy')
          throw conflict('legacy clients cannot be regenerated: delete the client and create a standard one');
        const now = plane.now();
        for (const old of await tx.listKeys(c.id)) {
          if (body.gracePeriod) {
            const until = now + body.gracePeriod;
            if (!old.expiresAt || Date.parse(old.expiresAt) > until)
              await tx.updateKeyExpiry(c.id, old.id, nowIso(until));
          } else {
            await tx.deleteKey(c.id, old.id);
          }
        }
        await tx.insertKey({ id: key.id, clientId: c.id, hash: key.hash, createdAt: nowIso(now) });
        return toClient(tx, c);
      });
      await plane.changed(workspace.id);
      return { client, token: key.key };
    },
  }),
];
