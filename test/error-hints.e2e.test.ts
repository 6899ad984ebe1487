/**
 * Errors that say what to do, on a real control plane's cloud gateway: a 404 for a path that lacks its
 * `/<workspace>/<environment>` prefix names the path that would match, and a 403 for an endpoint the role does not
 * grant names the permission it needs — unless the collection opts out (`hidePermissions`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AdminApi, type ControlProcess, eventually, startControlPlane } from './control-helpers.ts';

const WS = '/workspaces/default';
const DEV = `${WS}/environments/DEV`;

describe('error hints on the cloud gateway', () => {
  let cp: ControlProcess;
  let admin: AdminApi;
  let token: string;
  const spec = {
    name: 'orders',
    basePath: '/orders',
    upstream: 'http://upstream.invalid',
    project: 'default',
    endpoints: [
      { method: 'GET', path: '/items', permission: 'orders:read' },
      { method: 'POST', path: '/items', permission: 'orders:write' },
    ],
  };
  const problem = async (method: string, path: string) => {
    const res = await fetch(`${cp.gatewayUrl}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  before(async () => {
    cp = await startControlPlane();
    admin = cp.api();
    assert.equal((await admin.post(`${DEV}/collections`, spec)).status, 201);
    assert.equal((await admin.post(`${DEV}/collections/orders/publish`)).status, 201);
    assert.equal((await admin.post(`${WS}/roles`, { name: 'reader', permissions: ['orders:read'] })).status, 201);
    const client = await admin.post(`${WS}/clients`, {
      name: 'shop',
      role: 'reader',
      environments: ['DEV'],
      projects: ['default'],
    });
    assert.equal(client.status, 201, JSON.stringify(client.body));
    token = client.body.token as string;
    await eventually(async () => (await problem('POST', '/default/dev/orders/items')).status === 403);
  });
  after(async () => {
    await cp?.stop();
  });

  it('a 404 names the /<workspace>/<environment> path that would match', async () => {
    const r = await problem('GET', '/orders/items?x=1');
    assert.equal(r.status, 404);
    assert.equal(r.body.code, 'GH_ERR_ROUTE_NOT_FOUND');
    assert.match(
      String(r.body.detail),
      /No API collection serves \/orders\/items\. .*\/<workspace>\/<environment>: try \/default\/dev\/orders\/items \(collection "orders"\)/,
    );
    // A path that matches nothing anywhere gets the plain 404.
    const nothing = await problem('GET', '/nothing/here');
    assert.equal(nothing.status, 404);
    assert.equal(nothing.body.detail, undefined);
  });

  it('a 403 names the permission the endpoint needs', async () => {
    const r = await problem('POST', '/default/dev/orders/items');
    assert.equal(r.status, 403);
    assert.equal(r.body.code, 'GH_ERR_AUTH_FORBIDDEN_ENDPOINT');
    assert.equal(r.body.requiredPermission, 'orders:write');
    assert.match(String(r.body.detail), /POST \/default\/dev\/orders\/items needs the permission "orders:write"/);
  });

  it('a collection with hidePermissions keeps the permission out of its 403s', async () => {
    assert.equal((await admin.put(`${DEV}/collections/orders`, { ...spec, hidePermissions: true })).status, 200);
    assert.equal((await admin.post(`${DEV}/collections/orders/publish`)).status, 201);
    await eventually(async () => (await problem('POST', '/default/dev/orders/items')).body.detail === undefined);
    const r = await problem('POST', '/default/dev/orders/items');
    assert.equal(r.status, 403);
    assert.equal(r.body.requiredPermission, undefined);
    assert.doesNotMatch(JSON.stringify(r.body), /orders:write/);
  });
});
