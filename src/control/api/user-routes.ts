/**
 * Admin API: console users (collaborators), their roles, and password login. Collaborator management exists only
 * in the workspace's development environment. Sessions are random cookie values stored as SHA-256, sent as
 * HttpOnly SameSite=Strict cookies.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import {
  LoginInputSchema,
  UserInputSchema,
  UserRoleInputSchema,
  UserRoleSchemaOut,
  UserSchemaOut,
} from '../../config/resources.ts';
import { hashKey } from '../../shared/api-key.ts';
import { newId, nowIso } from '../ids.ts';
import { DUMMY_HASH, hashPassword, verifyPassword } from '../passwords.ts';
import type { UserRecord } from '../store/store.ts';
import {
  cookie,
  csrfTokenOf,
  DEFAULT_SESSION_SETTINGS,
  PRIVILEGE_PERMISSIONS,
  requireCsrf,
  SESSION_COOKIE,
  sessionCookie,
  userPermissions,
} from './auth.ts';
import { AdminError, conflict, fromStore, invalid } from './errors.ts';
import { findUser } from './lookup.ts';
import { operation, Reply, type Caller, type Operation } from './operation.ts';
import { checkGrantable } from './role-routes.ts';
import { LoginThrottle } from './login-throttle.ts';
import { scopedToAll } from './scope.ts';

const W = '/api/v1/workspaces/{workspace}';
const COLLAB = `${W}/environments/{environment}/collaborators`;

const throttle = new LoginThrottle();

/**
 * Console users act on every environment and project of their workspace, with their role's permissions: only a
 * caller holding all of that itself may create such a user, give it a role, or remove it.
 */
async function checkUserGrantable(caller: Caller, permissions: readonly string[], what: string): Promise<void> {
  if (!scopedToAll(caller)) {
    throw new AdminError(
      'GH_ERR_ADMIN_FORBIDDEN',
      `${what}: console users reach every environment and project, so only a caller scoped to all ("*") manages them`,
    );
  }
  checkGrantable(caller, permissions, what);
}

function toUser(u: UserRecord) {
  const { workspaceId, passwordHash: _p, ...rest } = u;
  return { ...rest, workspace: workspaceId };
}

/** A console session as login answers it: the user, the CSRF token to send on changes, and both expiries. */
export const SessionSchemaOut = z.object({
  user: UserSchemaOut,
  csrfToken: z.string().describe('Send as X-CSRF-Token on every state-changing request; keep it in memory only'),
  idleExpiresAt: z.string().describe('When the session ends unless used again (sliding)'),
  expiresAt: z.string().describe('When the session ends however active'),
});

export const userOperations: Operation[] = [
  operation({
    id: 'login',
    method: 'POST',
    path: '/api/v1/auth/login',
    summary: 'Log in with email and password; sets an HttpOnly session cookie',
    tag: 'Users',
    permission: 'public',
    body: LoginInputSchema,
    response: SessionSchemaOut,
    async handler({ body, plane, ip, tls }) {
      const account = `${body.workspace}\0${body.email.toLowerCase()}`;
      const wait = throttle.blocked(account, ip, plane.now());
      if (wait !== undefined) {
        throw new AdminError(
          'GH_ERR_ADMIN_TOO_MANY_ATTEMPTS',
          `too many failed logins for this account or address; retry in ${Math.ceil(wait / 1000)} s`,
          undefined,
          { 'retry-after': String(Math.ceil(wait / 1000)) },
        );
      }
      const ws = await plane.store.getWorkspace({ name: body.workspace });
      const user = ws ? await plane.store.getUser({ workspaceId: ws.id, email: body.email.toLowerCase() }) : undefined;
      // Verify against a dummy hash when there is no such user, so timing does not tell which emails exist.
      const ok = await throttle.verify(() => verifyPassword(body.password, user?.passwordHash ?? DUMMY_HASH));
      if (!user || !ok) {
        throttle.failed(account, ip, plane.now());
        throw new AdminError('GH_ERR_ADMIN_UNAUTHENTICATED', 'wrong workspace, email or password');
      }
      throttle.succeeded(account);
      const value = randomBytes(32).toString('base64url');
      const now = plane.now();
      const { idleMs, lifetimeMs } = plane.sessions ?? DEFAULT_SESSION_SETTINGS;
      const expiresAt = nowIso(now + lifetimeMs);
      await plane.store.insertSession({
        hash: hashKey(value),
        userId: user.id,
        workspaceId: user.workspaceId,
        createdAt: nowIso(now),
        expiresAt,
        lastSeenAt: nowIso(now),
      });
      await plane.store.deleteExpiredSessions(nowIso(now));
      return new Reply(
        200,
        {
          user: toUser(user),
          csrfToken: csrfTokenOf(value),
          idleExpiresAt: nowIso(now + Math.min(idleMs, lifetimeMs)),
          expiresAt,
        },
        { 'set-cookie': sessionCookie(value, Math.floor(lifetimeMs / 1000), tls) },
      );
    },
  }),
  operation({
    id: 'logout',
    method: 'POST',
    path: '/api/v1/auth/logout',
    summary:
      "End the current session: deleted on the server, the cookie cleared. With a live session cookie it needs the session's X-CSRF-Token",
    tag: 'Users',
    permission: 'public',
    status: 204,
    async handler({ headers, plane, tls }) {
      const value = cookie({ headers }, SESSION_COOKIE);
      if (value) {
        const hash = hashKey(value);
        // A live session is ended only by its own console (no cross-site sign-out); a dead one is just forgotten.
        if (await plane.store.getSession(hash)) requireCsrf({ headers }, csrfTokenOf(value));
        await plane.store.deleteSession(hash);
      }
      return new Reply(204, undefined, { 'set-cookie': sessionCookie('', 0, tls) });
    },
  }),
  operation({
    id: 'listUserRoles',
    method: 'GET',
    path: `${W}/user-roles`,
    summary: 'List console user roles',
    tag: 'Users',
    permission: 'admin:collaborators:read',
    response: z.object({ items: z.array(UserRoleSchemaOut) }),
    async handler({ workspace, plane }) {
      return { items: (await plane.store.listUserRoles(workspace.id)).map(({ workspaceId: _w, ...r }) => r) };
    },
  }),
  operation({
    id: 'createUserRole',
    method: 'POST',
    path: `${W}/user-roles`,
    summary: 'Create a custom console user role (with or without the "clients" privilege, …)',
    tag: 'Users',
    permission: 'admin:collaborators:write',
    body: UserRoleInputSchema,
    response: UserRoleSchemaOut,
    status: 201,
    async handler({ caller, workspace, body, plane }) {
      await checkUserGrantable(
        caller,
        body.privileges.flatMap((p) => PRIVILEGE_PERMISSIONS[p]),
        'body.privileges',
      );
      if ((await plane.store.listUserRoles(workspace.id)).some((r) => r.name === body.name))
        throw conflict(`body.name: user role "${body.name}" already exists`);
      const role = { workspaceId: workspace.id, ...body, builtIn: false };
      await plane.store.insertUserRole(role);
      return { name: role.name, privileges: role.privileges, builtIn: false };
    },
  }),
  operation({
    id: 'listCollaborators',
    method: 'GET',
    path: COLLAB,
    summary: "List the workspace's console users",
    tag: 'Users',
    permission: 'admin:collaborators:read',
    devOnly: true,
    response: z.object({ items: z.array(UserSchemaOut) }),
    async handler({ workspace, plane }) {
      return { items: (await plane.store.listUsers(workspace.id)).map(toUser) };
    },
  }),
  operation({
    id: 'addCollaborator',
    method: 'POST',
    path: COLLAB,
    summary: 'Add a console user with a role',
    tag: 'Users',
    permission: 'admin:collaborators:write',
    devOnly: true,
    body: UserInputSchema,
    response: UserSchemaOut,
    status: 201,
    async handler({ caller, workspace, body, plane }) {
      if (!(await plane.store.listUserRoles(workspace.id)).some((r) => r.name === body.role))
        throw invalid('body.role', `unknown user role "${body.role}"`);
      await checkUserGrantable(
        caller,
        await userPermissions(plane.store, workspace.id, body.role),
        `body.role "${body.role}"`,
      );
      const user: UserRecord = {
        id: newId('usr'),
        workspaceId: workspace.id,
        email: body.email.toLowerCase(),
        ...(body.name ? { name: body.name } : {}),
        role: body.role,
        passwordHash: await hashPassword(body.password),
        createdAt: nowIso(plane.now()),
      };
      await plane.store.insertUser(user).catch((e: unknown) => {
        throw fromStore(e, { 'user.email': `body.email: a user with email ${user.email} already exists` });
      });
      return toUser(user);
    },
  }),
  operation({
    id: 'removeCollaborator',
    method: 'DELETE',
    path: `${COLLAB}/{user}`,
    summary: 'Remove a console user and end its sessions',
    tag: 'Users',
    permission: 'admin:collaborators:write',
    devOnly: true,
    status: 204,
    async handler({ caller, workspace, params, plane }) {
      const user = await findUser(plane.store, workspace, params.user!);
      await checkUserGrantable(
        caller,
        await userPermissions(plane.store, workspace.id, user.role),
        `user "${user.email}" with role "${user.role}"`,
      );
      await plane.store.deleteUser(user.id);
      return undefined;
    },
  }),
];
