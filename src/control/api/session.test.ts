/**
 * Console sessions on the admin API, through real sockets: the cookie's attributes, the CSRF token every change
 * made with the cookie must carry, idle and absolute expiry, and sign-out. SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { hashKey } from '../../shared/api-key.ts';
import { startAdminPlane, USER_PASSWORD, type AdminPlane } from '../../testing/admin-plane.ts';
import { probePostgres } from '../../testing/postgres.ts';
import { openCertificateAuthority } from '../pki/ca.ts';
import { OPERATIONS } from './operations.ts';
import { createAdminServer } from './server.ts';

const MIN = 60_000;
const SETTINGS = { idleMs: 30 * MIN, lifetimeMs: 12 * 60 * MIN };

interface Res {
  status: number;
  headers: Headers;
  body: Record<string, unknown> & { code?: string; detail?: string };
}

async function call(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: unknown,
): Promise<Res> {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Res['body']) : {} };
}

const pgUnreachable = await probePostgres();

for (const database of ['sqlite', 'postgres'] as const) {
  describe(`console sessions (${database})`, { skip: database === 'postgres' && pgUnreachable }, () => {
    let cp: AdminPlane;
    before(async () => {
      cp = await startAdminPlane({ database, sessions: SETTINGS });
    });
    after(() => cp?.close());

    async function login(): Promise<{ cookie: string; csrf: string; setCookie: string; body: Res['body'] }> {
      const res = await call(
        cp.base,
        'POST',
        '/auth/login',
        {},
        {
          workspace: 'acme',
          email: 'ada@example.com',
          password: USER_PASSWORD,
        },
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const setCookie = res.headers.get('set-cookie')!;
      return { cookie: setCookie.split(';')[0]!, csrf: res.body.csrfToken as string, setCookie, body: res.body };
    }
    const project = (name: string) => ({ name });

    it('sets an HttpOnly, SameSite=Strict cookie on / (not Secure over plain HTTP) and answers the CSRF token', async () => {
      const { setCookie, csrf, cookie, body } = await login();
      assert.match(setCookie, /^gh_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200$/);
      assert.match(csrf, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(body.expiresAt, new Date(cp.now() + 12 * 60 * MIN).toISOString());
      assert.equal(body.idleExpiresAt, new Date(cp.now() + 30 * MIN).toISOString());
      // Only the hash of the cookie's value is stored, and the CSRF token is not the cookie's value.
      const value = cookie.slice('gh_session='.length);
      assert.ok(await cp.store.getSession(hashKey(value)));
      assert.notEqual(csrf, value);

      const me = await call(cp.base, 'GET', '/me', { cookie });
      assert.equal(me.status, 200);
      assert.equal(me.body.kind, 'user');
      assert.equal(me.body.csrfToken, csrf);
      assert.deepEqual(me.body.permissions, ['*']);
      assert.equal((me.body.user as { email: string }).email, 'ada@example.com');
      assert.equal((me.body.workspace as { name: string }).name, 'acme');
      assert.equal(me.body.expiresAt, body.expiresAt);
    });

    it('refuses a change made with the cookie but without the CSRF token, or with a wrong one', async () => {
      const { cookie, csrf } = await login();
      const path = '/workspaces/acme/projects';
      const missing = await call(cp.base, 'POST', path, { cookie }, project('p-missing'));
      assert.equal(missing.status, 403);
      assert.equal(missing.body.code, 'GH_ERR_ADMIN_CSRF');
      assert.match(missing.body.detail!, /X-CSRF-Token/);
      const wrong = await call(cp.base, 'POST', path, { cookie, 'x-csrf-token': csrf.slice(1) + 'A' }, project('p-w'));
      assert.equal(wrong.status, 403);
      assert.equal(wrong.body.code, 'GH_ERR_ADMIN_CSRF');
      // Another session's token is wrong too: the token is bound to its session.
      const other = await login();
      const foreign = await call(cp.base, 'POST', path, { cookie, 'x-csrf-token': other.csrf }, project('p-f'));
      assert.equal(foreign.status, 403);
      assert.equal((await cp.store.listProjects(cp.workspace.id)).length, 1, 'nothing was created');

      const ok = await call(cp.base, 'POST', path, { cookie, 'x-csrf-token': csrf }, project('p-ok'));
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
      // Reads need no token; API clients (Authorization) need none either.
      assert.equal((await call(cp.base, 'GET', path, { cookie })).status, 200);
      const byToken = await call(cp.base, 'POST', path, { authorization: `Bearer ${cp.token}` }, project('p-tok'));
      assert.equal(byToken.status, 201);
    });

    it('ends a session idle for 30 minutes, and slides the idle expiry with each request', async () => {
      const { cookie } = await login();
      for (let i = 0; i < 4; i++) {
        cp.advance(20 * MIN);
        assert.equal((await call(cp.base, 'GET', '/me', { cookie })).status, 200, `request ${i} after 20 min`);
      }
      cp.advance(30 * MIN);
      const idle = await call(cp.base, 'GET', '/me', { cookie });
      assert.equal(idle.status, 401);
      assert.equal(idle.body.code, 'GH_ERR_ADMIN_UNAUTHENTICATED');
      assert.match(idle.body.detail!, /30 min without a request/);
      assert.equal(await cp.store.getSession(hashKey(cookie.slice('gh_session='.length))), undefined, 'deleted');
    });

    it('ends a session 12 hours after sign-in however active it is', async () => {
      const { cookie } = await login();
      for (let elapsed = 0; elapsed < 12 * 60 * MIN - 20 * MIN; elapsed += 20 * MIN) {
        cp.advance(20 * MIN);
        assert.equal((await call(cp.base, 'GET', '/me', { cookie })).status, 200);
      }
      cp.advance(20 * MIN);
      const expired = await call(cp.base, 'GET', '/me', { cookie });
      assert.equal(expired.status, 401);
      assert.match(expired.body.detail!, /maximum lifetime \(12 h after sign-in\)/);
    });

    it('signs out only with the CSRF token, deleting the session on the server and clearing the cookie', async () => {
      const { cookie, csrf } = await login();
      const forged = await call(cp.base, 'POST', '/auth/logout', { cookie }, {});
      assert.equal(forged.status, 403);
      assert.equal(forged.body.code, 'GH_ERR_ADMIN_CSRF');
      assert.equal((await call(cp.base, 'GET', '/me', { cookie })).status, 200, 'still signed in');

      const out = await call(cp.base, 'POST', '/auth/logout', { cookie, 'x-csrf-token': csrf }, {});
      assert.equal(out.status, 204);
      assert.match(out.headers.get('set-cookie')!, /^gh_session=; HttpOnly; SameSite=Strict; Path=\/; Max-Age=0$/);
      assert.equal(await cp.store.getSession(hashKey(cookie.slice('gh_session='.length))), undefined);
      const after = await call(cp.base, 'GET', '/me', { cookie });
      assert.equal(after.status, 401);
      assert.match(after.body.detail!, /no such session/);
      // The old cookie (replayed) changes nothing, token or not.
      const replay = await call(
        cp.base,
        'POST',
        '/workspaces/acme/projects',
        { cookie, 'x-csrf-token': csrf },
        {
          name: 'p-replay',
        },
      );
      assert.equal(replay.status, 401);
    });
  });
}

describe('console sessions over TLS', () => {
  it('marks the session cookie Secure when the admin listener is TLS', async () => {
    const cp = await startAdminPlane();
    const dir = await mkdtemp(join(tmpdir(), 'gatehouse-tls-'));
    const ca = await openCertificateAuthority(dir);
    const { certPem, keyPem } = await ca.issueServerCertificate(['127.0.0.1', 'localhost']);
    // The admin server behind a TLS listener: its requests arrive on TLS sockets.
    const admin = createAdminServer({ plane: cp.context, operations: OPERATIONS });
    const tls = createTlsServer({ cert: certPem, key: keyPem }, (socket) => admin.emit('connection', socket));
    await new Promise<void>((ok) => tls.listen(0, '127.0.0.1', ok));
    try {
      const { port } = tls.address() as AddressInfo;
      const setCookie = await new Promise<string>((ok, fail) => {
        const req = httpsRequest(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/api/v1/auth/login',
            ca: ca.certPem,
            headers: { 'content-type': 'application/json' },
          },
          (res) => {
            res.resume();
            ok(String(res.headers['set-cookie']));
          },
        );
        req.on('error', fail);
        req.end(JSON.stringify({ workspace: 'acme', email: 'ada@example.com', password: USER_PASSWORD }));
      });
      assert.match(setCookie, /; HttpOnly; SameSite=Strict; Path=\/; Max-Age=\d+; Secure$/);
    } finally {
      await new Promise<void>((r) => tls.close(() => r()));
      admin.close();
      await cp.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
