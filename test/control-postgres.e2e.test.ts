/**
 * The same control plane on PostgreSQL (`DATABASE_URL`): a real `gatehouse control start` process whose state
 * lives in its own schema of the local server, through the full client lifecycle and a restart. Skipped with a
 * notice where no PostgreSQL answers — except under CI, where a missing server is a failure.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { eventually, startControlPlane, type ControlProcess } from './control-helpers.ts';
import { startUpstream, type Upstream } from './helpers.ts';

const BASE_URL = process.env.GATEHOUSE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = `gh_e2e_${process.pid}_${randomBytes(4).toString('hex')}`;

async function reachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: BASE_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query(`CREATE SCHEMA ${SCHEMA}`);
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

const available = await reachable();
if (!available && process.env.CI) throw new Error(`PostgreSQL is not reachable at ${BASE_URL}: CI needs it for the control plane's PostgreSQL tests`);

describe('control plane on PostgreSQL', { skip: available ? false : `PostgreSQL not reachable at ${BASE_URL} — skipped` }, () => {
  let cp: ControlProcess;
  let upstream: Upstream;
  let firstToken = '';
  const url = `${BASE_URL}?options=${encodeURIComponent(`-c search_path=${SCHEMA}`)}`;

  before(async () => {
    upstream = await startUpstream();
    cp = await startControlPlane({ databaseUrl: url });
  });
  after(async () => {
    await cp?.stop();
    await upstream?.close();
    const client = new pg.Client({ connectionString: BASE_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    await client.end();
  });

  it('runs the client lifecycle and keeps its state across a restart', async () => {
    const admin = cp.api();
    const me = await admin.get('/me');
    assert.equal(me.status, 200);
    const dev = '/workspaces/default/environments/DEV';
    assert.equal((await admin.post(`${dev}/collections`, { name: 'orders', basePath: '/orders', upstream: upstream.url, project: 'default', endpoints: [{ method: 'GET', path: '/list', permission: 'orders:read' }] })).status, 201);
    assert.equal((await admin.post(`${dev}/collections/orders/publish`)).status, 201);
    assert.equal((await admin.post('/workspaces/default/roles', { name: 'orders', permissions: ['orders:read'] })).status, 201);
    const created = await admin.post('/workspaces/default/clients', { name: 'app', role: 'orders', environments: ['DEV'], projects: ['default'] });
    assert.equal(created.status, 201);
    const call = async (token: string) => (await fetch(`${cp.gatewayUrl}/default/dev/orders/list`, { headers: { authorization: `Bearer ${token}` } })).status;
    assert.equal(await call(created.body.token), 200);

    const regenerated = await admin.post(`/workspaces/default/clients/${created.body.client.id}/regenerate`);
    await eventually(async () => (await call(created.body.token)) === 401, 1000, 'old token refused');
    assert.equal(await call(regenerated.body.token), 200);

    // Restart on the same database: the state (and the tokens' hashes) survive; no second bootstrap token.
    const token = cp.token;
    firstToken = token;
    await cp.stop();
    cp = await startControlPlane({ databaseUrl: url });
    assert.equal(cp.token, '', 'the admin token is printed only on the very first start');
    cp.token = token;
    assert.equal(await call(regenerated.body.token), 200);
    assert.equal((await cp.api(token).delete('/workspaces/default/roles/orders')).status, 204);
    await eventually(async () => (await call(regenerated.body.token)) === 401, 1000, 'deleted role refused');
  });

  it("enforces a change made through one replica on another replica's cloud gateway within a second", async () => {
    const replica = await startControlPlane({ databaseUrl: url });
    try {
      const admin = cp.api(firstToken);
      const dev = '/workspaces/default/environments/DEV';
      assert.equal((await admin.post(`${dev}/collections`, { name: 'replicated', basePath: '/replicated', upstream: upstream.url, project: 'default', endpoints: [{ method: 'GET', path: '/x', permission: 'r:read' }] })).status, 201);
      assert.equal((await admin.post(`${dev}/collections/replicated/publish`)).status, 201);
      await admin.post('/workspaces/default/roles', { name: 'replicated', permissions: ['r:read'] });
      const created = await admin.post('/workspaces/default/clients', { name: 'r', role: 'replicated', environments: ['DEV'], projects: ['default'] });
      const call = async () => (await fetch(`${replica.gatewayUrl}/default/dev/replicated/x`, { headers: { authorization: `Bearer ${created.body.token}` } })).status;
      await eventually(async () => (await call()) === 200, 1000, 'the other replica serves the new client');
      assert.equal((await admin.delete(`/workspaces/default/clients/${created.body.client.id}`)).status, 204);
      await eventually(async () => (await call()) === 401, 1000, 'the other replica refuses the deleted client');
    } finally {
      await replica.stop();
    }
  });
});
