/**
 * The same control plane on PostgreSQL (`DATABASE_URL`): a real `gatehouse control start` process whose state
 * lives in its own schema of the local server, through the full client lifecycle and a restart. Skipped with a
 * notice where no PostgreSQL answers — except under CI, where a missing server is a failure.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { redactUrl } from '../src/config/redact-url.ts';
import { POSTGRES_HOW_TO, probePostgres, TEST_DATABASE_URL } from '../src/testing/postgres.ts';
import { eventually, startControlPlane, type ControlProcess } from './control-helpers.ts';
import { startUpstream, type Upstream } from './helpers.ts';

const BASE_URL = TEST_DATABASE_URL;
const SCHEMA = `gh_e2e_${process.pid}_${randomBytes(4).toString('hex')}`;

// Retries with back-off (up to 30 s) before declaring PostgreSQL absent: a busy machine is slow to accept.
const unreachable = await probePostgres(BASE_URL);
if (unreachable !== undefined && process.env.CI)
  throw new Error(
    `PostgreSQL not reachable at ${redactUrl(BASE_URL)} (${unreachable}): CI needs it for the control plane's PostgreSQL tests; ${POSTGRES_HOW_TO}`,
  );
if (unreachable === undefined) {
  const client = new pg.Client({ connectionString: BASE_URL });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA ${SCHEMA}`);
  } finally {
    await client.end();
  }
}

describe(
  'control plane on PostgreSQL',
  {
    skip:
      unreachable === undefined
        ? false
        : `PostgreSQL not reachable at ${redactUrl(BASE_URL)} (${unreachable}) — skipped; ${POSTGRES_HOW_TO}`,
  },
  () => {
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
      assert.equal(
        (
          await admin.post(`${dev}/collections`, {
            name: 'orders',
            basePath: '/orders',
            upstream: upstream.url,
            project: 'default',
            endpoints: [{ method: 'GET', path: '/list', permission: 'orders:read' }],
          })
        ).status,
        201,
      );
      assert.equal((await admin.post(`${dev}/collections/orders/publish`)).status, 201);
      assert.equal(
        (await admin.post('/workspaces/default/roles', { name: 'orders', permissions: ['orders:read'] })).status,
        201,
      );
      const created = await admin.post('/workspaces/default/clients', {
        name: 'app',
        role: 'orders',
        environments: ['DEV'],
        projects: ['default'],
      });
      assert.equal(created.status, 201);
      const call = async (token: string) =>
        (await fetch(`${cp.gatewayUrl}/default/dev/orders/list`, { headers: { authorization: `Bearer ${token}` } }))
          .status;
      assert.equal(await call(created.body.token), 200);

      const regenerated = await admin.post(`/workspaces/default/clients/${created.body.client.id}/regenerate`);
      await eventually(async () => (await call(created.body.token)) === 401, 10_000, 'old token refused');
      assert.equal(await call(regenerated.body.token), 200);

      // Restart on the same database: the state (and the tokens' hashes) survive; no second bootstrap token.
      const token = cp.token;
      firstToken = token;
      await cp.stop();
      cp = await startControlPlane({ databaseUrl: url });
      assert.equal(cp.token, '', 'the admin token is printed only on the very first start');
      cp.token = token;
      assert.equal(await call(regenerated.body.token), 200);
      assert.equal((await cp.api(token).delete('/workspaces/default/roles/orders?force=true')).status, 204);
      await eventually(async () => (await call(regenerated.body.token)) === 401, 10_000, 'deleted role refused');
    });

    it("enforces a change made through one replica on another replica's cloud gateway within a second", async () => {
      const replica = await startControlPlane({ databaseUrl: url });
      try {
        const admin = cp.api(firstToken);
        const dev = '/workspaces/default/environments/DEV';
        assert.equal(
          (
            await admin.post(`${dev}/collections`, {
              name: 'replicated',
              basePath: '/replicated',
              upstream: upstream.url,
              project: 'default',
              endpoints: [{ method: 'GET', path: '/x', permission: 'r:read' }],
            })
          ).status,
          201,
        );
        assert.equal((await admin.post(`${dev}/collections/replicated/publish`)).status, 201);
        await admin.post('/workspaces/default/roles', { name: 'replicated', permissions: ['r:read'] });
        const created = await admin.post('/workspaces/default/clients', {
          name: 'r',
          role: 'replicated',
          environments: ['DEV'],
          projects: ['default'],
        });
        const call = async () =>
          (
            await fetch(`${replica.gatewayUrl}/default/dev/replicated/x`, {
              headers: { authorization: `Bearer ${created.body.token}` },
            })
          ).status;
        // Generous deadlines (they only cost time when failing); the promise of "within a second" is asserted apart.
        const served = await eventually(
          async () => (await call()) === 200,
          10_000,
          'the other replica serves the new client',
        );
        assert.ok(served < 1000, `the other replica served the new client after ${served} ms`);
        assert.equal((await admin.delete(`/workspaces/default/clients/${created.body.client.id}`)).status, 204);
        const refused = await eventually(
          async () => (await call()) === 401,
          10_000,
          'the other replica refuses the deleted client',
        );
        assert.ok(refused < 1000, `the other replica refused the deleted client after ${refused} ms`);
      } finally {
        await replica.stop();
      }
    });
  },
);
