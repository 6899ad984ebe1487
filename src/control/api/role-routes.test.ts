/** Deleting a client role: refused while API clients hold it (naming them), unless forced. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAdminPlane, type AdminPlane } from '../../testing/admin-plane.ts';

describe('deleteRole', () => {
  let cp: AdminPlane;
  before(async () => {
    cp = await startAdminPlane();
  });
  after(() => cp?.close());
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${cp.base}/api/v1/workspaces/acme${path}`, {
      method,
      headers: { authorization: `Bearer ${cp.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, type: res.headers.get('content-type'), body: text ? JSON.parse(text) : undefined };
  };

  it('is refused with 409 GH_ERR_ADMIN_ROLE_IN_USE naming the clients that hold the role; nothing is deleted', async () => {
    assert.equal((await call('POST', '/roles', { name: 'reader', permissions: ['orders:read'] })).status, 201);
    const ids: string[] = [];
    for (const name of ['billing-app', 'reporting-job']) {
      const c = await call('POST', '/clients', { name, role: 'reader', environments: ['DEV'], projects: ['payments'] });
      assert.equal(c.status, 201, JSON.stringify(c.body));
      ids.push(c.body.client.id as string);
    }
    const refused = await call('DELETE', '/roles/reader');
    assert.equal(refused.status, 409);
    assert.equal(refused.type, 'application/problem+json');
    assert.equal(refused.body.code, 'GH_ERR_ADMIN_ROLE_IN_USE');
    const clients = refused.body.clients as { id: string; name: string }[];
    assert.deepEqual(
      clients.toSorted((a, b) => a.name.localeCompare(b.name)),
      [
        { id: ids[0], name: 'billing-app' },
        { id: ids[1], name: 'reporting-job' },
      ],
    );
    assert.equal(
      refused.body.detail,
      `role "reader" is held by 2 API client(s): ${clients.map((c) => `${c.name} (${c.id})`).join(', ')}. Give them another role or delete them first, or delete with ?force=true to refuse their requests from then on`,
    );
    assert.equal((await call('GET', '/roles/reader')).status, 200);
    assert.equal((await call('DELETE', '/roles/reader?force=maybe')).status, 400);
    assert.equal((await call('DELETE', '/roles/reader?force=false')).status, 409);
  });

  it('deletes a role in use with ?force=true (as before: the clients keep a dangling role)', async () => {
    assert.equal((await call('DELETE', '/roles/reader?force=true')).status, 204);
    assert.equal((await call('GET', '/roles/reader')).status, 404);
    const clients = (await call('GET', '/clients')).body.items as { name: string; role: string }[];
    assert.match(clients.find((c) => c.name === 'billing-app')!.role, /^\(deleted role rol_/);
  });

  it('deletes a role no client holds without force', async () => {
    assert.equal((await call('POST', '/roles', { name: 'unused' })).status, 201);
    assert.equal((await call('DELETE', '/roles/unused')).status, 204);
  });
});
