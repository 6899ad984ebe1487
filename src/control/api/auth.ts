/**
 * Admin API authentication. A request carries one credential: an API client token (`Authorization: Bearer`
 * or `X-API-Key`) or a console session cookie. Tokens are looked up by their SHA-256 in the store on every
 * request, so a regenerated, deleted or disabled client — or a deleted role — is refused at once.
 */
import type { IncomingMessage } from 'node:http';
import type { Privilege } from '../../config/resources.ts';
import { blockList, inBlockList } from '../../shared/block-list.ts';
import { hashKey, isWellFormedKey } from '../../shared/api-key.ts';
import type { Store } from '../store/store.ts';
import { AdminError } from './errors.ts';
import type { Caller } from './operation.ts';

export const SESSION_COOKIE = 'gh_session';

/** What each user privilege grants in admin API permissions. Every user may read the workspace and roles. */
export const PRIVILEGE_PERMISSIONS: Record<Privilege, string[]> = {
  clients: ['admin:clients:*'],
  roles: ['admin:roles:*'],
  collections: [
    'admin:collections:*',
    'admin:entities:*',
    'admin:projects:*',
    'admin:snapshots:read',
    'admin:telemetry:read',
  ],
  deploy: ['admin:deploy'],
  collaborators: ['admin:collaborators:*'],
  gateways: ['admin:gateways:*', 'admin:telemetry:read'],
};
const USER_BASE = ['admin:workspaces:read', 'admin:roles:read', 'admin:projects:read'];

const unauthenticated = (detail: string) => new AdminError('GH_ERR_ADMIN_UNAUTHENTICATED', detail);

export async function authenticate(req: IncomingMessage, store: Store, now: number): Promise<Caller> {
  const token = bearer(req);
  if (token !== undefined) return authenticateToken(token, req.socket.remoteAddress, store, now);
  const session = cookie(req, SESSION_COOKIE);
  if (session !== undefined) return authenticateSession(session, store, now);
  throw unauthenticated('send an API client token as "Authorization: Bearer <token>", or log in');
}

async function authenticateToken(
  token: string,
  address: string | undefined,
  store: Store,
  now: number,
): Promise<Caller> {
  if (!isWellFormedKey(token)) throw unauthenticated('the token is malformed (not a Gatehouse API client token)');
  const found = await store.findKey(hashKey(token));
  if (!found) throw unauthenticated('unknown token: it was never issued, was regenerated, or its client was deleted');
  const { key, client } = found;
  if (key.expiresAt && Date.parse(key.expiresAt) <= now)
    throw unauthenticated('the token has expired (it was regenerated)');
  if (client.expiresAt && Date.parse(client.expiresAt) <= now) throw unauthenticated('the API client has expired');
  if (client.kind === 'legacy') throw unauthenticated('legacy clients cannot use the admin API');
  if (client.status !== 'active') throw new AdminError('GH_ERR_ADMIN_FORBIDDEN', 'the API client is disabled');
  const role = await store.getRole({ id: client.roleId });
  if (!role) throw unauthenticated("the API client's role was deleted");
  if (client.allowedIps?.length && !ipAllowed(client.allowedIps, address)) {
    throw new AdminError('GH_ERR_ADMIN_FORBIDDEN', 'requests from this IP address are not allowed for this API client');
  }
  return {
    kind: 'client',
    id: client.id,
    workspaceId: client.workspaceId,
    operator: client.operator,
    permissions: role.permissions,
    environments: client.environments,
    projects: client.projects,
  };
}

async function authenticateSession(value: string, store: Store, now: number): Promise<Caller> {
  const session = await store.getSession(hashKey(value));
  if (!session || Date.parse(session.expiresAt) <= now) throw unauthenticated('the session has expired: log in again');
  const user = await store.getUser({ id: session.userId });
  if (!user) throw unauthenticated('the user was removed from the workspace');
  const permissions = await userPermissions(store, user.workspaceId, user.role);
  return {
    kind: 'user',
    id: user.id,
    workspaceId: user.workspaceId,
    operator: false,
    permissions,
    environments: ['*'],
    projects: ['*'],
  };
}

export async function userPermissions(store: Store, workspaceId: string, roleName: string): Promise<string[]> {
  if (roleName === 'admin') return ['*'];
  const role = (await store.listUserRoles(workspaceId)).find((r) => r.name === roleName);
  return [...USER_BASE, ...(role?.privileges ?? []).flatMap((p) => PRIVILEGE_PERMISSIONS[p])];
}

function bearer(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(auth);
    if (!match) throw unauthenticated('the Authorization header must be "Bearer <token>"');
    return match[1];
  }
  const key = req.headers['x-api-key'];
  return typeof key === 'string' ? key.trim() : undefined;
}

export function cookie(req: Pick<IncomingMessage, 'headers'>, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function ipAllowed(ranges: readonly string[], address: string | undefined): boolean {
  return address !== undefined && inBlockList(blockList(ranges), address);
}
