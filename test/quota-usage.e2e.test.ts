/**
 * Authoritative quota usage end to end: a real control plane (`gatehouse control start`, SQLite) with its cloud
 * gateway; a collection with a client quota and an org quota and an endpoint of cost 3, published through the admin
 * API; requests through the gateway; then the usage the gateway reported in telemetry, read back through
 * `GET …/clients/{client}/usage` and `GET …/orgs/{org}/usage`, and the refusal once the quota is used up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, startControlPlane, type AdminApi, type ControlProcess } from './control-helpers.ts';
import { periodOf } from '../src/gateway/policies/quota/periods.ts';
import { expectProblem, startUpstream, type Upstream } from './helpers.ts';

const DEV = '/workspaces/default/environments/DEV';

describe('quota usage reported to the control plane', () => {
  let cp: ControlProcess;
  let upstream: Upstream;
  let admin: AdminApi;
  let token = '';
  let clientId = '';

  before(async () => {
    upstream = await startUpstream();
    cp = await startControlPlane();
    admin = cp.api();
    const created = await admin.post(`${DEV}/collections`, {
      name: 'search',
      basePath: '/search',
      upstream: upstream.url,
      project: 'default',
      quotas: { client: { daily: 10 }, org: { monthly: 1000 } },
      endpoints: [
        { method: 'GET', path: '/items', permission: 'items:read' },
        { method: 'POST', path: '/query', permission: 'items:read', cost: 3 },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal((await admin.post(`${DEV}/collections/search/publish`)).status, 201);
    assert.equal(
      (await admin.post('/workspaces/default/roles', { name: 'reader', permissions: ['items:read'] })).status,
      201,
    );
    const client = await admin.post('/workspaces/default/clients', {
      name: 'search app',
      role: 'reader',
      environments: ['DEV'],
      projects: ['default'],
      orgId: 'acme',
    });
    assert.equal(client.status, 201, JSON.stringify(client.body));
    ({ token } = client.body as { token: string });
    clientId = (client.body as { client: { id: string } }).client.id;
  });
  after(async () => {
    await cp?.stop();
    await upstream?.close();
  });

  const call = (path: string, method = 'GET') =>
    fetch(`${cp.gatewayUrl}/default/dev/search${path}`, { method, headers: { authorization: `Bearer ${token}` } });

  it('stores the units the gateway admitted per client, org and period, and serves them', async () => {
    // The client may be enforced a moment after it is created.
    await eventually(async () => (await call('/items')).status === 200, 10_000, 'the client to be enforced');
    for (const res of await Promise.all([call('/query', 'POST'), call('/query', 'POST'), call('/items')]))
      assert.equal(res.status, 200);
    const day = periodOf('daily', Date.now());
    const month = periodOf('monthly', Date.now());
    // The cloud gateway sends its telemetry every 10 s.
    await eventually(
      async () => {
        const usage = await admin.get(`/workspaces/default/clients/${clientId}/usage`);
        const items = (usage.body as { items: { units: number }[] }).items;
        return usage.status === 200 && items.length === 1 && items[0]!.units === 8;
      },
      30_000,
      'the usage to be reported',
      250,
    );
    const usage = await admin.get(`/workspaces/default/clients/${clientId}/usage`);
    assert.deepEqual(
      (usage.body as { items: unknown[] }).items.map((i) => ({ ...(i as object), updatedAt: 'x' })),
      [{ collection: 'search', period: 'daily', periodId: day.id, units: 8, updatedAt: 'x' }],
    );
    const org = await admin.get('/workspaces/default/orgs/acme/usage?period=monthly');
    assert.deepEqual(
      (org.body as { items: { collection: string; periodId: string; units: number }[] }).items.map(
        (i) => `${i.collection} ${i.periodId} ${i.units}`,
      ),
      [`search ${month.id} 8`],
    );
  });

  it("applies a client's own quota, set through the admin API, instead of the collection's", async () => {
    const created = await admin.post('/workspaces/default/clients', {
      name: 'tiny app',
      role: 'reader',
      environments: ['DEV'],
      projects: ['default'],
      quotas: { client: { daily: 1 } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const { token: tiny, client } = created.body as { token: string; client: { id: string; quotas: unknown } };
    assert.deepEqual(client.quotas, { client: { daily: 1 } });
    assert.deepEqual(
      ((await admin.get(`/workspaces/default/clients/${client.id}`)).body as { quotas: unknown }).quotas,
      { client: { daily: 1 } },
    );
    const get = () =>
      fetch(`${cp.gatewayUrl}/default/dev/search/items`, { headers: { authorization: `Bearer ${tiny}` } });
    await eventually(async () => (await get()).status === 200, 10_000, 'the client to be enforced');
    const refused = await expectProblem(await get(), 429, 'GH_ERR_QUOTA_EXHAUSTED');
    assert.equal(refused.limit, 1);
  });

  it('refuses once the daily quota is used up, counting the cost of each call', async () => {
    const refused = await call('/query', 'POST');
    const body = await expectProblem(refused, 429, 'GH_ERR_QUOTA_EXHAUSTED');
    assert.equal(body.used, 8);
    assert.equal((await call('/items')).status, 200);
    assert.equal((await call('/items')).status, 200);
    await expectProblem(await call('/items'), 429, 'GH_ERR_QUOTA_EXHAUSTED');
  });
});
