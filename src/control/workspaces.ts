/** Creating a workspace with its environments, projects and built-in roles, and the first-start bootstrap. */
import type { WorkspaceInput } from '../config/resources.ts';
import { generateKey } from '../shared/api-key.ts';
import { newId, nowIso } from './ids.ts';
import type { StoreOps, WorkspaceRecord } from './store/store.ts';

/** Creates the workspace, its projects, the `admin` client role (everything) and the `admin` user role. */
export async function createWorkspace(tx: StoreOps, input: WorkspaceInput, now = Date.now()): Promise<WorkspaceRecord> {
  const createdAt = nowIso(now);
  const environments = input.environments.includes(input.devEnvironment)
    ? input.environments
    : [input.devEnvironment, ...input.environments];
  const workspace: WorkspaceRecord = {
    id: newId('wsp'),
    name: input.name,
    environments,
    devEnvironment: input.devEnvironment,
    createdAt,
  };
  await tx.insertWorkspace(workspace);
  for (const name of input.projects) await tx.insertProject({ workspaceId: workspace.id, name, createdAt });
  await tx.insertRole({
    id: newId('rol'),
    workspaceId: workspace.id,
    name: 'admin',
    description: 'Every admin API operation and every API endpoint',
    permissions: ['*'],
    endpoints: [],
    createdAt,
    updatedAt: createdAt,
  });
  await tx.insertUserRole({
    workspaceId: workspace.id,
    name: 'admin',
    privileges: ['clients', 'roles', 'collections', 'deploy', 'collaborators', 'gateways'],
    builtIn: true,
  });
  return workspace;
}

/** An admin API client of a workspace with the `admin` role and every environment and project; returns its token. */
export async function createAdminClient(
  tx: StoreOps,
  workspace: WorkspaceRecord,
  options: { name: string; operator?: boolean },
  now = Date.now(),
): Promise<{ clientId: string; token: string }> {
  const role = await tx.getRole({ workspaceId: workspace.id, name: 'admin' });
  if (!role) throw new Error(`workspace ${workspace.name} has no admin role`);
  const at = nowIso(now);
  const id = newId('cli');
  await tx.insertClient({
    id,
    workspaceId: workspace.id,
    kind: 'standard',
    name: options.name,
    roleId: role.id,
    environments: ['*'],
    projects: ['*'],
    status: 'active',
    operator: options.operator ?? false,
    createdAt: at,
    updatedAt: at,
  });
  const key = generateKey();
  await tx.insertKey({ id: key.id, clientId: id, hash: key.hash, createdAt: at });
  return { clientId: id, token: key.key };
}

/**
 * First start: when the installation has no workspace yet, create `default` and an operator admin client. The
 * token is returned once (the caller prints it); only its hash is stored.
 */
export async function bootstrapInstallation(
  store: { transaction<T>(fn: (tx: StoreOps) => Promise<T>): Promise<T> },
  now = Date.now(),
): Promise<{ workspace: WorkspaceRecord; token: string } | undefined> {
  return store.transaction(async (tx) => {
    if ((await tx.getSetting('bootstrapped')) !== undefined) return undefined;
    const workspace = await createWorkspace(
      tx,
      { name: 'default', environments: ['DEV', 'TEST', 'PROD'], devEnvironment: 'DEV', projects: ['default'] },
      now,
    );
    const { token } = await createAdminClient(tx, workspace, { name: 'installation admin', operator: true }, now);
    await tx.setSetting('bootstrapped', nowIso(now));
    return { workspace, token };
  });
}
