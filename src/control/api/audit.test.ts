/**
 * The audit log through the admin API on real sockets (SQLite and PostgreSQL): every successful change recorded
 * once, by whom, with before and after and no secret; failures and reads not recorded; filters, cursor pages and
 * the permission; retention.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { startAdminPlane, USER_PASSWORD, type AdminPlane } from '../../testing/admin-plane.ts';
import { probePostgres } from '../../testing/postgres.ts';
import { startAuditRetention } from '../audit-retention.ts';
import { nowIso } from '../ids.ts';
import { redact, REDACTED } from './audit.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON of many shapes; tests assert on it
type Json = any;

async function call(base: string, method: string, path: string, headers: Record<string, string>, body?: unknown) {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    // Changes made with the session cookie are JSON requests even without a body (GH_ERR_ADMIN_UNSUPPORTED_MEDIA_TYPE).
    headers: { ...(method !== 'GET' ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Json };
}

const pgUnreachable = await probePostgres();

for (const database of ['sqlite', 'postgres'] as const) {
  describe(`the audit log (${database})`, { skip: database === 'postgres' && pgUnreachable }, () => {
    let cp: AdminPlane;
    let asUser: Record<string, string>;
    let asAdmin: Record<string, string>;
    let token = '';
    const log = (query = '') => call(cp.base, 'GET', `/workspaces/acme/audit-log${query}`, asAdmin);

    before(async () => {
      cp = await startAdminPlane({ database });
      asAdmin = { authorization: `Bearer ${cp.token}` };
      const login = await call(
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
      const cookie = String(login.body && (await fetchCookie()));
      async function fetchCookie() {
        const res = await fetch(`${cp.base}/api/v1/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ workspace: 'acme', email: 'ada@example.com', password: USER_PASSWORD }),
        });
        const body = (await res.json()) as { csrfToken: string };
        asUser = { 'x-csrf-token': body.csrfToken };
        return res.headers.get('set-cookie')!.split(';')[0]!;
      }
      asUser = { ...asUser!, cookie };
    });
    after(() => cp?.close());

    it('records each successful change once: who, what, which resource, before and after, without secrets', async () => {
      const role = await call(cp.base, 'POST', '/workspaces/acme/roles', asUser, {
        name: 'readers',
        permissions: ['orders:read'],
      });
      assert.equal(role.status, 201, JSON.stringify(role.body));
      const patched = await call(cp.base, 'PATCH', `/workspaces/acme/roles/${role.body.name}`, asUser, {
        description: 'read only',
      });
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
      const client = await call(cp.base, 'POST', '/workspaces/acme/clients', asAdmin, {
        name: 'billing',
        role: 'readers',
        environments: ['PROD'],
        projects: ['payments'],
      });
      assert.equal(client.status, 201, JSON.stringify(client.body));
      token = client.body.token;
      assert.match(token, /^ghk_/);
      const regenerated = await call(
        cp.base,
        'POST',
        `/workspaces/acme/clients/${client.body.client.id}/regenerate`,
        asAdmin,
        {},
      );
      assert.equal(regenerated.status, 200, JSON.stringify(regenerated.body));

      // Reads and refused changes leave nothing.
      await call(cp.base, 'GET', '/workspaces/acme/roles', asUser);
      const duplicate = await call(cp.base, 'POST', '/workspaces/acme/roles', asUser, {
        name: 'readers',
        permissions: [],
      });
      assert.equal(duplicate.status, 409);
      const noCsrf = await call(cp.base, 'DELETE', `/workspaces/acme/roles/${role.body.name}`, {
        cookie: asUser.cookie!,
      });
      assert.equal(noCsrf.status, 403);

      const page = await log();
      assert.equal(page.status, 200, JSON.stringify(page.body));
      const items = page.body.items as Json[];
      assert.deepEqual(
        items.map((e) => `${e.action} ${e.resourceType} ${e.actor.kind}:${e.actor.name}`),
        [
          'regenerateClientToken client client:admin',
          'createClient client client:admin',
          'updateRole role user:Ada',
          'createRole role user:Ada',
        ],
      );
      const [regen, createClient, updateRole, createRole] = items;
      assert.equal(createRole.resourceId, role.body.id);
      assert.equal(createRole.after.name, 'readers');
      assert.equal(createRole.ip, '127.0.0.1');
      assert.match(createRole.requestId, /^[0-9a-f-]{36}$/);
      assert.equal(updateRole.resourceId, role.body.id);
      assert.equal(updateRole.before.description, undefined);
      assert.equal(updateRole.after.description, 'read only');
      assert.equal(createClient.resourceId, client.body.client.id);
      assert.equal(regen.resourceId, client.body.client.id);
      assert.equal(createClient.actor.id, (await call(cp.base, 'GET', '/me', asAdmin)).body.id);
      // No token, old or new, anywhere in the log.
      const text = JSON.stringify(items);
      assert.equal(text.includes(token), false);
      assert.equal(text.includes(regenerated.body.token), false);
      assert.equal(/ghk_[0-9A-Za-z]{38}/.test(text), false);
    });

    it("keeps a gateway's registration token, inside its install command too, out of the log", async () => {
      const created = await call(cp.base, 'POST', '/workspaces/acme/gateways', asAdmin, {
        name: 'eu-1',
        environment: 'PROD',
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.match(created.body.install.command, /ghr_/);
      const [entry] = (await log('?action=createGateway')).body.items as Json[];
      assert.equal(entry.resourceId, created.body.gateway.id);
      assert.equal(entry.after.gateway.name, 'eu-1');
      assert.equal(JSON.stringify(entry).includes('ghr_'), false);
    });

    it('records the state before a deletion', async () => {
      const role = await call(cp.base, 'POST', '/workspaces/acme/roles', asAdmin, { name: 'temp', permissions: [] });
      assert.equal((await call(cp.base, 'DELETE', `/workspaces/acme/roles/${role.body.name}`, asUser)).status, 204);
      const [deleted] = (await log('?action=deleteRole')).body.items as Json[];
      assert.equal(deleted.resourceId, role.body.id);
      assert.equal(deleted.before.name, 'temp');
      assert.equal(deleted.after, undefined);
    });

    it('filters and pages newest first with a cursor', async () => {
      for (let i = 0; i < 5; i++) await call(cp.base, 'POST', '/workspaces/acme/projects', asAdmin, { name: `p${i}` });
      const seen: string[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await log(`?resourceType=project&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(page.status, 200, JSON.stringify(page.body));
        assert.ok(page.body.items.length <= 2);
        seen.push(...page.body.items.map((e: Json) => e.resourceId));
        cursor = page.body.nextCursor;
        if (!cursor) break;
      }
      assert.deepEqual(seen, ['p4', 'p3', 'p2', 'p1', 'p0']);
      const me = (await call(cp.base, 'GET', '/me', asUser)).body.id;
      const byUser = (await log(`?actor=${me}`)).body.items as Json[];
      assert.ok(byUser.length >= 3 && byUser.every((e) => e.actor.id === me));
      assert.equal((await log(`?since=${encodeURIComponent(nowIso(cp.now() + 1000))}`)).body.items.length, 0);
      assert.equal((await log(`?until=${encodeURIComponent(nowIso(cp.now() + 1000))}&limit=200`)).status, 200);
      for (const bad of ['?limit=201', '?limit=0', '?cursor=bm9wZQ', '?since=yesterday']) {
        const res = await log(bad);
        assert.equal(res.status, 400, bad);
        assert.equal(res.body.code, 'GH_ERR_ADMIN_INVALID_BODY');
      }
    });

    it('is readable only with admin:audit:read', async () => {
      const client = await call(cp.base, 'POST', '/workspaces/acme/clients', asAdmin, {
        name: 'no-audit',
        role: 'readers',
        environments: ['*'],
        projects: ['*'],
      });
      const res = await call(cp.base, 'GET', '/workspaces/acme/audit-log', {
        authorization: `Bearer ${client.body.token}`,
      });
      assert.equal(res.status, 403);
      assert.match(res.body.detail, /admin:audit:read/);
    });

    it('prunes entries older than the retention, on start and on its timer, and alerts resolved before it', async () => {
      const old = nowIso(cp.now() - 91 * 86_400_000);
      const alert = (id: string, resolvedAt?: string) => ({
        id,
        workspaceId: cp.workspace.id,
        kind: 'auth_failure_spike',
        key: id,
        message: 'authentication failures',
        raisedAt: old,
        deliveryAttempts: 0,
        ...(resolvedAt !== undefined && { resolvedAt }),
      });
      await cp.store.insertAlert(alert('alr_resolved_long_ago', old));
      await cp.store.insertAlert(alert('alr_still_open'));
      await cp.store.insertAuditEntry({
        id: 'aud_old',
        workspaceId: cp.workspace.id,
        at: old,
        actor: { kind: 'user', id: 'usr_x' },
        action: 'createRole',
        resourceType: 'role',
        requestId: 'r',
      });
      const before = (await log('?limit=200')).body.items.length;
      const retention = startAuditRetention({ store: cp.store, logger: pino({ level: 'silent' }), now: cp.now });
      await retention.close();
      const afterItems = (await log('?limit=200')).body.items as Json[];
      assert.equal(afterItems.length, before - 1);
      assert.equal(
        afterItems.some((e) => e.id === 'aud_old'),
        false,
      );
      assert.deepEqual(
        (await cp.store.listAlerts(cp.workspace.id)).map((a) => a.id).filter((id) => id.startsWith('alr_')),
        ['alr_still_open'],
        'the alert resolved 91 days ago is gone; the open one, raised as long ago, stays',
      );
      assert.equal(
        await startAuditRetention({ store: cp.store, logger: pino({ level: 'silent' }), now: cp.now }).prune(),
        0,
      );
    });
  });
}

describe('audit redaction', () => {
  it('drops secret-named fields and replaces any string holding an API key', () => {
    const key = `ghk_${'A'.repeat(38)}`;
    assert.deepEqual(
      redact({
        name: 'x',
        token: key,
        password: 'p',
        passwordHash: 'h',
        nested: [{ privateKey: 'k', clientSecret: 's', note: `leaked ${key}` }],
        keyPrefix: 'ghk_AbCd',
        install: { command: `docker run gatehouse gateway bootstrap -t ghr_${'b'.repeat(32)}`, expiresAt: 'soon' },
      }),
      {
        name: 'x',
        nested: [{ note: REDACTED }],
        keyPrefix: 'ghk_AbCd',
        install: { command: REDACTED, expiresAt: 'soon' },
      },
    );
  });
});
