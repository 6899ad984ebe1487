/**
 * Admin API authentication. A request carries one credential: an API client token (`Authorization: Bearer`
 * or `X-API-Key`) or a console session cookie. Tokens are looked up by their SHA-256 in the store on every
 * request, so a regenerated, deleted or disabled client — or a deleted role — is refused at once.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Privilege } from '../../config/resources.ts';
import { blockList, inBlockList } from '../../shared/block-list.ts';
import { hashKey, isWellFormedKey } from '../../shared/api-key.ts';
import type { Store } from '../store/store.ts';
import { AdminError } from './errors.ts';
import { nowIso } from '../ids.ts';
import type { Caller, SessionSettings } from './operation.ts';

export const SESSION_COOKIE = 'gh_session';

/** Console sessions end after 30 minutes without a request, and 12 hours after sign-in. */
export const DEFAULT_SESSION_SETTINGS: SessionSettings = { idleMs: 30 * 60_000, lifetimeMs: 12 * 3600_000 };
/** A request this soon after the recorded last use does not write it again (one write per session per 15 s). */
const TOUCH_EVERY_MS = 15_000;

/**
 * The CSRF token of a session: an HMAC of a fixed label keyed by the cookie's value. Only who holds the cookie's
 * value (the browser, never script: the cookie is HttpOnly) or got the token from the API can know it; the store
 * keeps neither (only the value's SHA-256), so a copy of the database does not yield it either.
 */
export function csrfTokenOf(sessionValue: string): string {
  return createHmac('sha256', sessionValue).update('gatehouse console csrf v1').digest('base64url');
}

/** Whether the `X-CSRF-Token` header sent is the session's token (compared in constant time). */
export function csrfMatches(sent: string | string[] | undefined, expected: string): boolean {
  if (typeof sent !== 'string') return false;
  const a = Buffer.from(sent);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The session cookie's attributes: HttpOnly, SameSite=Strict, Path=/, and Secure when the listener is TLS. */
export function sessionCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

/** Whether the request came over TLS (the cookie is then marked Secure). */
export function overTls(req: Pick<IncomingMessage, 'socket'>): boolean {
  return (req.socket as { encrypted?: boolean }).encrypted === true;
}

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
  // Not admin:audit:read: a user manager could then create users it cannot itself be (escalation check); the
  // audit log is for admin users and API clients whose role grants admin:audit:read.
  collaborators: ['admin:collaborators:*'],
  gateways: ['admin:gateways:*', 'admin:telemetry:read', 'admin:alerts:*'],
};
const USER_BASE = ['admin:workspaces:read', 'admin:roles:read', 'admin:projects:read'];

const unauthenticated = (detail: string) => new AdminError('GH_ERR_ADMIN_UNAUTHENTICATED', detail);

export async function authenticate(
  req: IncomingMessage,
  store: Store,
  now: number,
  sessions: SessionSettings = DEFAULT_SESSION_SETTINGS,
): Promise<Caller> {
  const token = bearer(req);
  if (token !== undefined) return authenticateToken(token, req.socket.remoteAddress, store, now);
  const session = cookie(req, SESSION_COOKIE);
  if (session !== undefined) return authenticateSession(session, store, now, sessions);
  throw unauthenticated('send an API client token as "Authorization: Bearer <token>", or log in');
}

/** The minute each client last recorded as used by this process: at most one write per client and minute. */
const recordedUse = new Map<string, string>();

/** A token's use of the admin API counts as its client's last use, as a gateway's reported requests do. */
async function recordAdminUse(store: Store, clientId: string, now: number): Promise<void> {
  const minute = new Date(now - (now % 60_000)).toISOString();
  if (recordedUse.get(clientId) === minute) return;
  await store.recordClientUse([{ clientId, at: minute }]);
  recordedUse.set(clientId, minute);
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
  await recordAdminUse(store, client.id, now);
  return {
    kind: 'client',
    id: client.id,
    displayName: client.name,
    workspaceId: client.workspaceId,
    operator: client.operator,
    permissions: role.permissions,
    environments: client.environments,
    projects: client.projects,
  };
}

/**
 * A console session: refused once past its absolute expiry (the earlier of what was set at sign-in and sign-in plus
 * the lifetime now configured) or idle for `idleMs`; an expired session is deleted. Each use slides the idle expiry.
 */
async function authenticateSession(
  value: string,
  store: Store,
  now: number,
  settings: SessionSettings,
): Promise<Caller> {
  const hash = hashKey(value);
  const session = await store.getSession(hash);
  if (!session) throw unauthenticated('no such session (signed out, or expired and removed): log in again');
  const expiresAt = Math.min(Date.parse(session.expiresAt), Date.parse(session.createdAt) + settings.lifetimeMs);
  if (expiresAt <= now) {
    await store.deleteSession(hash);
    throw unauthenticated(
      `the session reached its maximum lifetime (${minutes(settings.lifetimeMs)} after sign-in): log in again`,
    );
  }
  const lastSeen = Date.parse(session.lastSeenAt);
  if (lastSeen + settings.idleMs <= now) {
    await store.deleteSession(hash);
    throw unauthenticated(`the session expired after ${minutes(settings.idleMs)} without a request: log in again`);
  }
  const touched = now - lastSeen >= TOUCH_EVERY_MS;
  if (touched) await store.touchSession(hash, nowIso(now));
  const user = await store.getUser({ id: session.userId });
  if (!user) throw unauthenticated('the user was removed from the workspace');
  const permissions = await userPermissions(store, user.workspaceId, user.role);
  return {
    kind: 'user',
    id: user.id,
    displayName: user.name ?? user.email,
    workspaceId: user.workspaceId,
    operator: false,
    permissions,
    environments: ['*'],
    projects: ['*'],
    session: {
      hash,
      csrfToken: csrfTokenOf(value),
      idleExpiresAt: nowIso(Math.min((touched ? now : lastSeen) + settings.idleMs, expiresAt)),
      expiresAt: nowIso(expiresAt),
    },
  };
}

function minutes(ms: number): string {
  const m = Math.round(ms / 60_000);
  return m % 60 === 0 ? `${m / 60} h` : `${m} min`;
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

/** Refuses a request whose `X-CSRF-Token` is missing or not the session's token. */
export function requireCsrf(req: Pick<IncomingMessage, 'headers'>, expected: string): void {
  const sent = req.headers['x-csrf-token'];
  if (sent === undefined)
    throw new AdminError(
      'GH_ERR_ADMIN_CSRF',
      'this request is authenticated by the session cookie and changes state: send the X-CSRF-Token header with the token from GET /api/v1/me',
    );
  if (!csrfMatches(sent, expected))
    throw new AdminError(
      'GH_ERR_ADMIN_CSRF',
      "the X-CSRF-Token header is not this session's token: take it from GET /api/v1/me (it changes at every sign-in)",
    );
}
