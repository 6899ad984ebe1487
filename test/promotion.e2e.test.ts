/**
 * Promotion end to end on real processes: a real `gatehouse control start`, one edge gateway per environment (DEV,
 * TEST, PROD) created through the admin API, bootstrapped with `gatehouse gateway bootstrap` and run with
 * `gatehouse gateway run`; a collection published in DEV on DEV's edge gateway is promoted DEV → TEST → PROD with
 * dry runs that show the diff, and called through each environment's edge gateway.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AdminApi, type ControlProcess, eventually, startControlPlane } from './control-helpers.ts';
import { createAndBootstrap, startEdge, type EdgeProcess } from './edge-helpers.ts';
import { runCli, startUpstream, type Upstream } from './helpers.ts';

const WS = '/workspaces/default';
const ENVIRONMENTS = ['DEV', 'TEST', 'PROD'] as const;
type Env = (typeof ENVIRONMENTS)[number];

describe('promotion DEV → TEST → PROD with an edge gateway in each environment', () => {
  let upstream: Upstream;
  let work: string;
  let cp: ControlProcess;
  let admin: AdminApi;
  let token: string;
  const edges = new Map<Env, EdgeProcess>();
  const gatewayName = (env: Env) => `${env.toLowerCase()}-edge`;
  const collections = (env: Env) => `${WS}/environments/${env}/collections`;

  const status = async (env: Env, path: string) =>
    (await fetch(`${edges.get(env)!.url}${path}`, { headers: { authorization: `Bearer ${token}` } })).status;

  before(async () => {
    upstream = await startUpstream();
    work = await mkdtemp(join(tmpdir(), 'gatehouse-promotion-'));
    cp = await startControlPlane({ extraArgs: ['--bootstrap-port', '0', '--sync-port', '0'] });
    admin = cp.api();
    for (const env of ENVIRONMENTS) {
      const dir = join(work, env);
      await createAndBootstrap(admin, gatewayName(env), dir, env);
      const edge = await startEdge(dir);
      edges.set(env, edge);
      await edge.waitFor(/"config applied from the control plane"/);
    }
    assert.equal((await admin.post(`${WS}/roles`, { name: 'order-reader', permissions: ['orders:*'] })).status, 201);
    const client = await admin.post(`${WS}/clients`, {
      name: 'shop',
      role: 'order-reader',
      environments: [...ENVIRONMENTS],
      projects: ['default'],
    });
    assert.equal(client.status, 201, JSON.stringify(client.body));
    token = client.body.token as string;
  });
  after(async () => {
    for (const edge of edges.values()) await edge.stop();
    await cp?.stop();
    await upstream?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('publishes in DEV on DEV’s edge gateway, then promotes version by version with a diff', async () => {
    const spec = {
      name: 'orders',
      basePath: '/orders',
      upstream: upstream.url,
      project: 'default',
      target: { type: 'edge', gateway: gatewayName('DEV') },
      endpoints: [{ method: 'GET', path: '/items', permission: 'orders:read' }],
    };
    assert.equal((await admin.post(collections('DEV'), spec)).status, 201);
    assert.equal((await admin.post(`${collections('DEV')}/orders/publish`)).status, 201);
    await eventually(async () => (await status('DEV', '/orders/items')) === 200);
    assert.equal(await status('TEST', '/orders/items'), 404);

    // A dry run names the destination's own edge gateway and writes nothing.
    const dry = await admin.post(`${collections('DEV')}/orders/promote`, { dryRun: true });
    assert.equal(dry.status, 200, JSON.stringify(dry.body));
    assert.equal(dry.body.dryRun, true);
    assert.deepEqual(dry.body.from, { environment: 'DEV', version: 1 });
    assert.deepEqual(dry.body.to, { environment: 'TEST', target: { type: 'edge', gateway: 'test-edge' } });
    assert.ok(
      dry.body.changes.some(
        (c: { path: string; to: unknown }) =>
          c.path === 'target' && JSON.stringify(c.to) === JSON.stringify({ type: 'edge', gateway: 'test-edge' }),
      ),
      JSON.stringify(dry.body.changes),
    );
    assert.equal((await admin.get(`${collections('TEST')}/orders`)).status, 404);

    // DEV → TEST: served by TEST's edge gateway once the call returns.
    const toTest = await admin.post(`${collections('DEV')}/orders/promote`, {});
    assert.equal(toTest.status, 201, JSON.stringify(toTest.body));
    assert.deepEqual(toTest.body.to, {
      environment: 'TEST',
      target: { type: 'edge', gateway: 'test-edge' },
      version: 1,
    });
    await eventually(async () => (await status('TEST', '/orders/items')) === 200);
    assert.equal(await status('PROD', '/orders/items'), 404);

    // TEST → PROD (the next environment), onto PROD's edge gateway, with the CLI command.
    const cli = await runCli(['collection', 'promote', 'orders', '--env', 'TEST', '--output', 'json'], {
      env: { GATEHOUSE_URL: cp.adminUrl, GATEHOUSE_TOKEN: cp.token, GATEHOUSE_WORKSPACE: undefined },
    });
    assert.equal(cli.code, 0, cli.stderr);
    const toProd = JSON.parse(cli.stdout) as { to: { environment: string; target: { gateway: string } } };
    assert.equal(toProd.to.environment, 'PROD');
    assert.equal(toProd.to.target.gateway, 'prod-edge');
    await eventually(async () => (await status('PROD', '/orders/items')) === 200);

    // A second version in DEV: the diff names the new endpoint and nothing else; PROD keeps serving version 1.
    const v2 = {
      ...spec,
      endpoints: [...spec.endpoints, { method: 'GET', path: '/items/{id}', permission: 'orders:read' }],
    };
    assert.equal((await admin.put(`${collections('DEV')}/orders`, v2)).status, 200);
    assert.equal((await admin.post(`${collections('DEV')}/orders/publish`)).status, 201);
    await eventually(async () => (await status('DEV', '/orders/items/7')) === 200);
    const diff = await admin.post(`${collections('DEV')}/orders/promote`, { dryRun: true });
    assert.deepEqual(diff.body.changes, [
      {
        path: 'endpoints["GET /items/{id}"]',
        change: 'added',
        to: { method: 'GET', path: '/items/{id}', permission: 'orders:read' },
      },
    ]);
    assert.equal(diff.body.to.previousVersion, 1);
    assert.equal((await admin.post(`${collections('DEV')}/orders/promote`, {})).status, 201);
    await eventually(async () => (await status('TEST', '/orders/items/7')) === 200);
    assert.equal(await status('PROD', '/orders/items/7'), 404);
    assert.equal(await status('PROD', '/orders/items'), 200);
    const prod = await admin.post(`${collections('TEST')}/orders/promote`, {});
    assert.equal(prod.status, 201);
    assert.deepEqual(prod.body.to, {
      environment: 'PROD',
      target: { type: 'edge', gateway: 'prod-edge' },
      previousVersion: 1,
      version: 2,
    });
    await eventually(async () => (await status('PROD', '/orders/items/7')) === 200);

    // Promoting what PROD already serves changes nothing; PROD is the last environment.
    const again = await admin.post(`${collections('TEST')}/orders/promote`, {});
    assert.equal(again.status, 200);
    assert.equal(again.body.changed, false);
    assert.deepEqual(again.body.changes, []);
    const last = await admin.post(`${collections('PROD')}/orders/promote`, {});
    assert.equal(last.status, 400);
    assert.match(last.body.detail, /PROD is the last environment/);
    // Each environment's record keeps its own target.
    for (const env of ENVIRONMENTS)
      assert.deepEqual((await admin.get(`${collections(env)}/orders`)).body.target, {
        type: 'edge',
        gateway: gatewayName(env),
      });
  });

  it('refuses an edge collection promoted to an environment without an edge gateway, naming what to do; project deployment targets like promotion', async () => {
    assert.equal((await admin.post(`${WS}/environments`, { name: 'STAGE' })).status, 201);
    const res = await admin.post(`${collections('DEV')}/orders/promote`, { to: 'STAGE', dryRun: true });
    assert.equal(res.status, 409, JSON.stringify(res.body));
    assert.equal(res.body.code, 'GH_ERR_ADMIN_NO_DEPLOYMENT_TARGET');
    assert.match(res.body.detail, /STAGE has no edge gateway: create one/);
    // Project deployment from DEV resolves targets the same way: onto PROD's own edge gateway.
    const invoices = {
      name: 'invoices',
      basePath: '/invoices',
      upstream: upstream.url,
      project: 'default',
      target: { type: 'edge', gateway: gatewayName('DEV') },
      endpoints: [{ method: 'GET', path: '/', permission: 'orders:read' }],
    };
    assert.equal((await admin.post(collections('DEV'), invoices)).status, 201);
    assert.equal((await admin.post(`${collections('DEV')}/invoices/publish`)).status, 201);
    const deployed = await admin.post(`${WS}/environments/DEV/projects/default/deploy`, {
      to: 'PROD',
      collections: ['invoices'],
    });
    assert.equal(deployed.status, 200, JSON.stringify(deployed.body));
    assert.deepEqual((await admin.get(`${collections('PROD')}/invoices`)).body.target, {
      type: 'edge',
      gateway: 'prod-edge',
    });
    await eventually(async () => (await status('PROD', '/invoices/')) === 200);

    const cloud = await admin.post(`${collections('DEV')}/orders/promote`, { to: 'STAGE', target: { type: 'cloud' } });
    assert.equal(cloud.status, 201, JSON.stringify(cloud.body));
    await eventually(async () => {
      const res = await fetch(`${cp.gatewayUrl}/default/stage/orders/items`, {
        headers: { authorization: `Bearer ${token}` },
      });
      // Routed (not 404): the cloud gateway's egress policy refuses a loopback upstream (502), which is beside the point.
      return res.status !== 404;
    });
  });
});
