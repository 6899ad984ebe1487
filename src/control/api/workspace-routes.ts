/** Admin API: the caller, workspaces, environments and projects. */
import { z } from 'zod';
import {
  UserSchemaOut,
  EnvironmentInputSchema,
  ProjectInputSchema,
  ProjectSchema,
  WorkspaceInputSchema,
  WorkspaceSchema,
} from '../../config/resources.ts';
import { nowIso } from '../ids.ts';
import type { StoreOps, WorkspaceRecord } from '../store/store.ts';
import { createWorkspace } from '../workspaces.ts';
import { AdminError, conflict, fromStore, notFound } from './errors.ts';
import { requireVisibleProject } from './lookup.ts';
import { operation, type CallerSession, type Operation } from './operation.ts';
import { hasProject } from './scope.ts';

const W = '/api/v1/workspaces/{workspace}';

export function toWorkspace(w: WorkspaceRecord) {
  return {
    id: w.id,
    name: w.name,
    environments: w.environments,
    devEnvironment: w.devEnvironment,
    createdAt: w.createdAt,
  };
}

/** What /me adds for a console session: the user, the CSRF token and both expiries. */
async function sessionOf(userId: string, session: CallerSession, store: StoreOps) {
  const user = await store.getUser({ id: userId });
  if (!user) throw notFound('user');
  const { workspaceId, passwordHash: _p, ...rest } = user;
  return {
    user: { ...rest, workspace: workspaceId },
    csrfToken: session.csrfToken,
    idleExpiresAt: session.idleExpiresAt,
    expiresAt: session.expiresAt,
  };
}

export const MeSchema = z.strictObject({
  kind: z.enum(['client', 'user']),
  id: z.string(),
  workspace: WorkspaceSchema,
  operator: z.boolean(),
  permissions: z.array(z.string()),
  environments: z.array(z.string()),
  projects: z.array(z.string()),
  /** Console sessions only (absent for API clients). */
  user: UserSchemaOut.optional().describe('The signed-in console user (session cookie only)'),
  csrfToken: z
    .string()
    .optional()
    .describe('Session cookie only: send as X-CSRF-Token on every state-changing request; keep it in memory only'),
  idleExpiresAt: z.string().optional().describe('Session cookie only: when the session ends unless used again'),
  expiresAt: z.string().optional().describe('Session cookie only: when the session ends however active'),
});

export const workspaceOperations: Operation[] = [
  operation({
    id: 'getCaller',
    method: 'GET',
    path: '/api/v1/me',
    summary:
      'Who am I: the calling client or user, its workspace, effective permissions and scope; for a console session also the user, its CSRF token and the idle and absolute expiry',
    tag: 'Workspaces',
    permission: null,
    response: MeSchema,
    async handler({ caller, plane }) {
      const ws = await plane.store.getWorkspace({ id: caller.workspaceId });
      if (!ws) throw notFound('workspace');
      return {
        kind: caller.kind,
        id: caller.id,
        workspace: toWorkspace(ws),
        operator: caller.operator,
        permissions: caller.permissions,
        environments: caller.environments,
        projects: caller.projects,
        ...(caller.session ? await sessionOf(caller.id, caller.session, plane.store) : {}),
      };
    },
  }),
  operation({
    id: 'listWorkspaces',
    method: 'GET',
    path: '/api/v1/workspaces',
    summary: 'List the workspaces the caller can act on (operators: every workspace)',
    tag: 'Workspaces',
    permission: 'admin:workspaces:read',
    response: z.object({ items: z.array(WorkspaceSchema) }),
    async handler({ caller, plane }) {
      const all = await plane.store.listWorkspaces();
      return { items: all.filter((w) => caller.operator || w.id === caller.workspaceId).map(toWorkspace) };
    },
  }),
  operation({
    id: 'createWorkspace',
    method: 'POST',
    path: '/api/v1/workspaces',
    summary: 'Create a workspace (operator clients only)',
    tag: 'Workspaces',
    permission: 'admin:workspaces:write',
    body: WorkspaceInputSchema,
    response: WorkspaceSchema,
    status: 201,
    async handler({ caller, body, plane }) {
      if (!caller.operator) throw new AdminError('GH_ERR_ADMIN_FORBIDDEN', 'only operator clients create workspaces');
      if (await plane.store.getWorkspace({ name: body.name }))
        throw conflict(`body.name: a workspace named "${body.name}" already exists`);
      const ws = await plane.store.transaction((tx) => createWorkspace(tx, body, plane.now()));
      await plane.changed(ws.id);
      return toWorkspace(ws);
    },
  }),
  operation({
    id: 'getWorkspace',
    method: 'GET',
    path: W,
    summary: 'Get a workspace',
    tag: 'Workspaces',
    permission: 'admin:workspaces:read',
    response: WorkspaceSchema,
    async handler({ workspace }) {
      return toWorkspace(workspace);
    },
  }),
  operation({
    id: 'addEnvironment',
    method: 'POST',
    path: `${W}/environments`,
    summary: 'Add an environment to a workspace',
    tag: 'Workspaces',
    permission: 'admin:workspaces:write',
    body: EnvironmentInputSchema,
    response: WorkspaceSchema,
    status: 201,
    async handler({ workspace, body, plane }) {
      if (workspace.environments.includes(body.name))
        throw conflict(`body.name: environment "${body.name}" already exists`);
      const next = { ...workspace, environments: [...workspace.environments, body.name] };
      await plane.store.updateWorkspace(next);
      await plane.changed(workspace.id);
      return toWorkspace(next);
    },
  }),
  operation({
    id: 'listProjects',
    method: 'GET',
    path: `${W}/projects`,
    summary: "List the workspace's projects within the caller's scope",
    tag: 'Workspaces',
    permission: 'admin:projects:read',
    response: z.object({ items: z.array(ProjectSchema) }),
    async handler({ caller, workspace, plane }) {
      const projects = await plane.store.listProjects(workspace.id);
      return { items: projects.filter((p) => hasProject(caller, p.name)).map(({ workspaceId: _w, ...p }) => p) };
    },
  }),
  operation({
    id: 'createProject',
    method: 'POST',
    path: `${W}/projects`,
    summary: 'Create a project (callers scoped to all projects only)',
    tag: 'Workspaces',
    permission: 'admin:projects:write',
    body: ProjectInputSchema,
    response: ProjectSchema,
    status: 201,
    async handler({ caller, workspace, body, plane }) {
      if (!caller.projects.includes('*'))
        throw new AdminError('GH_ERR_ADMIN_OUT_OF_SCOPE', 'only callers scoped to every project ("*") create projects');
      const project = { workspaceId: workspace.id, ...body, createdAt: nowIso(plane.now()) };
      await plane.store.insertProject(project).catch((e: unknown) => {
        throw fromStore(e, { 'project.name': `body.name: project "${body.name}" already exists` });
      });
      const { workspaceId: _w, ...out } = project;
      return out;
    },
  }),
  operation({
    id: 'deleteProject',
    method: 'DELETE',
    path: `${W}/projects/{project}`,
    summary: 'Delete a project that holds no collections',
    tag: 'Workspaces',
    permission: 'admin:projects:write',
    status: 204,
    async handler({ caller, workspace, params, plane }) {
      requireVisibleProject(caller, params.project!);
      const used = (await plane.store.listCollections(workspace.id)).filter((c) => c.project === params.project);
      if (used.length)
        throw conflict(
          `project "${params.project}" still holds collections: ${used.map((c) => `${c.environment}/${c.name}`).join(', ')}`,
        );
      if (!(await plane.store.deleteProject(workspace.id, params.project!)))
        throw notFound(`project "${params.project}"`);
      return undefined;
    },
  }),
];
