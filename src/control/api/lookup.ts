/**
 * Finding what an admin API request names. A resource named in the path is answered "… not found" (404) both when
 * it does not exist and when it lies outside the caller's workspace or scope, so that a caller learns nothing about
 * resources it may not see. An environment named in a body must be one of the workspace's (400 otherwise).
 */
import type {
  ClientRecord,
  CollectionRecord,
  GatewayRecord,
  RoleRecord,
  StoreOps,
  UserRecord,
  WorkspaceRecord,
} from '../store/store.ts';
import { conflict, invalid, notFound } from './errors.ts';
import type { Caller } from './operation.ts';
import { clientInScope, hasEnvironment, hasProject } from './scope.ts';

/** `record` when it exists and `visible` allows it; otherwise "`what` not found". */
export function found<T>(record: T | undefined, what: string, visible: (r: T) => boolean = () => true): T {
  if (!record || !visible(record)) throw notFound(what);
  return record;
}

/**
 * The API client with this id, or else of this name, if it is the workspace's and within the caller's scope. Names
 * are not unique: a name that several visible clients share is refused (409) with their ids, so the caller picks one.
 */
export async function visibleClient(
  tx: StoreOps,
  caller: Caller,
  workspace: WorkspaceRecord,
  ref: string,
): Promise<ClientRecord> {
  const visible = (c: ClientRecord): boolean => c.workspaceId === workspace.id && clientInScope(caller, c);
  const byId = await tx.getClient(ref);
  if (byId && visible(byId)) return byId;
  const named = (await tx.listClients(workspace.id)).filter((c) => c.name === ref && visible(c));
  if (named.length > 1)
    throw conflict(
      `${named.length} API clients are named "${ref}" (${named.map((c) => c.id).join(', ')}): name one by its id`,
    );
  return found(named[0], `API client "${ref}"`);
}

/** The collection of this name in the environment, if its project is among the caller's. */
export async function visibleCollection(
  tx: StoreOps,
  caller: Caller,
  workspace: WorkspaceRecord,
  environment: string,
  name: string,
): Promise<CollectionRecord> {
  return found(
    await tx.getCollection({ workspaceId: workspace.id, environment, name }),
    `collection "${name}" in ${environment}`,
    (c) => hasProject(caller, c.project),
  );
}

/** The edge gateway of this name or id, if it is the workspace's and its environment is among the caller's. */
export async function visibleGateway(
  tx: StoreOps,
  caller: Caller,
  workspace: WorkspaceRecord,
  ref: string,
): Promise<GatewayRecord> {
  return found(
    (await tx.getGateway({ workspaceId: workspace.id, name: ref })) ?? (await tx.getGateway({ id: ref })),
    `edge gateway "${ref}"`,
    (g) => g.workspaceId === workspace.id && hasEnvironment(caller, g.environment),
  );
}

/** The workspace's client role of this name. */
export async function findRole(tx: StoreOps, workspace: WorkspaceRecord, name: string): Promise<RoleRecord> {
  return found(await tx.getRole({ workspaceId: workspace.id, name }), `role "${name}"`);
}

/** The workspace's console user with this id. */
export async function findUser(tx: StoreOps, workspace: WorkspaceRecord, id: string): Promise<UserRecord> {
  return found(await tx.getUser({ id }), `user "${id}"`, (u) => u.workspaceId === workspace.id);
}

/** Refuses a project outside the caller's scope as "not found", like one that does not exist. */
export function requireVisibleProject(caller: Caller, project: string): void {
  if (!hasProject(caller, project)) throw notFound(`project "${project}"`);
}

/** Refuses an environment the workspace does not have, naming the ones it has. */
export function requireKnownEnvironment(workspace: WorkspaceRecord, environment: string, where: string): void {
  if (!workspace.environments.includes(environment))
    throw invalid(where, `unknown environment "${environment}" (environments: ${workspace.environments.join(', ')})`);
}
