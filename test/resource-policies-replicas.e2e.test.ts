/**
 * Relationship data across control-plane replicas (PostgreSQL): two real `gatehouse control start` processes on one
 * schema, an edge gateway connected to replica A, and relationship data written through replica B's admin API. The
 * change reaches A through LISTEN/NOTIFY, and A pushes it on the entity stream: the decisions of A's cloud gateway
 * and of the edge gateway change within the propagation target (1 s). Skipped with a notice where no PostgreSQL
 * answers — except under CI, where a missing server is a failure.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { redactUrl } from '../src/config/redact-url.ts';
import { POSTGRES_HOW_TO, probePostgres, TEST_DATABASE_URL } from '../src/testing/postgres.ts';
import { adminApi, eventually, startControlPlane, type ControlProcess } from './control-helpers.ts';
import { createAndBootstrap, startEdge, type EdgeProcess } from './edge-helpers.ts';
import { startUpstream, type Upstream } from './helpers.ts';

const SCHEMA = `gh_e2e_rel_${process.pid}_${randomBytes(4).toString('hex')}`;
const WS = '/workspaces/default';
const PROD = `${WS}/environments/PROD`;
const POLICY = `@id("shared") permit (principal, action, resource is Project) when { principal has org && resource has sharedWith && resource.sharedWith.contains(principal.org) };`;

const unreachable = await probePostgres(TEST_DATABASE_URL);
if (unreachable !== undefined && process.env.CI)
  throw new Error(
    `PostgreSQL not reachable at ${redactUrl(TEST_DATABASE_URL)} (${unreachable}): CI needs it; ${POSTGRES_HOW_TO}`,
  );

function spec(upstream: string, target: Record<string, string>) {
  return {
    name: 'projects',
    basePath: '/projects',
    upstream,
    project: 'default',
    target,
    endpoints: [
      {
        method: 'GET',
        path: '/{projectId}',
        permission: 'projects:read',
        resource: { type: 'Project', param: 'projectId' },
      },
    ],
    policies: {
      cedar: POLICY,
      entityTypes: {
        Project: { attributes: { sharedWith: { type: 'Set', element: { type: 'Entity', name: 'Org' } } } },
      },
    },
  };
}

describe(
  'relationship data across control-plane replicas',
  { skip: unreachable === undefined ? false : `PostgreSQL not reachable (${unreachable}); ${POSTGRES_HOW_TO}` },
  () => {
    const url = `${TEST_DATABASE_URL}?options=${encodeURIComponent(`-c search_path=${SCHEMA}`)}`;
    const extraArgs = ['--bootstrap-port', '0', '--sync-port', '0', '--public-url', 'http://127.0.0.1'];
    let upstream: Upstream;
    let work: string;
    let a: ControlProcess;
    let b: ControlProcess;
    let edge: EdgeProcess;
    let token: string;

    before(async () => {
      const db = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await db.connect();
      await db.query(`create schema ${SCHEMA}`);
      await db.end();
      upstream = await startUpstream();
      work = await mkdtemp(join(tmpdir(), 'gatehouse-rel-replicas-'));
      a = await startControlPlane({ databaseUrl: url, extraArgs });
      b = await startControlPlane({ databaseUrl: url, extraArgs });
      const admin = adminApi(a.adminUrl, a.token);
      const dir = join(work, 'edge');
      await createAndBootstrap(admin, 'edge-1', dir);
      for (const [name, target] of [
        ['projects', { type: 'edge', gateway: 'edge-1' }],
        ['cloud-projects', { type: 'cloud' }],
      ] as const) {
        const created = await admin.post(`${PROD}/collections`, {
          ...spec(upstream.url, target),
          name,
          basePath: `/${name}`,
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        assert.equal((await admin.post(`${PROD}/collections/${name}/publish`)).status, 201);
      }
      assert.equal((await admin.post(`${WS}/roles`, { name: 'reader', permissions: ['projects:read'] })).status, 201);
      const client = await admin.post(`${WS}/clients`, {
        name: 'globex-app',
        role: 'reader',
        environments: ['PROD'],
        projects: ['default'],
        orgId: 'globex',
      });
      assert.equal(client.status, 201, JSON.stringify(client.body));
      token = client.body.token as string;
      edge = await startEdge(dir);
      await edge.waitFor(/"config applied from the control plane"/);
    });
    after(async () => {
      await edge?.stop();
      await a?.stop();
      await b?.stop();
      await upstream?.close();
      await rm(work, { recursive: true, force: true });
      const db = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await db.connect();
      await db.query(`drop schema if exists ${SCHEMA} cascade`);
      await db.end();
    });

    it('a relationship written through replica B changes decisions at A’s edge gateway and A’s cloud gateway within a second', async () => {
      const adminB = adminApi(b.adminUrl, a.token); // the installation's admin token, printed by A's first start
      const atEdge = async () => {
        const res = await fetch(`${edge.url}/projects/3`, { headers: { authorization: `Bearer ${token}` } });
        await res.arrayBuffer();
        return res.status;
      };
      const atCloudA = async () => {
        const res = await fetch(`${a.gatewayUrl}/default/prod/cloud-projects/3`, {
          headers: { authorization: `Bearer ${token}` },
        });
        await res.arrayBuffer();
        return res.status;
      };
      await eventually(async () => (await atEdge()) === 403, 10_000, 'the edge denies before the share');
      assert.equal(await atCloudA(), 403);

      const shared = { attrs: { sharedWith: [{ __entity: { type: 'Org', id: 'globex' } }] }, parents: [] };
      for (const collection of ['projects', 'cloud-projects']) {
        const start = performance.now();
        const put = await adminB.put(`${PROD}/collections/${collection}/entities/Project/3`, shared);
        assert.equal(put.status, 200, JSON.stringify(put.body));
        const check = collection === 'projects' ? atEdge : atCloudA;
        await eventually(async () => (await check()) === 200, 5_000, `${collection}: allowed after the share`);
        const sharedMs = performance.now() - start;
        const revoke = performance.now();
        assert.equal((await adminB.delete(`${PROD}/collections/${collection}/entities/Project/3`)).status, 204);
        await eventually(async () => (await check()) === 403, 5_000, `${collection}: denied after the revocation`);
        const revokedMs = performance.now() - revoke;
        assert.ok(
          sharedMs < 1000 && revokedMs < 1000,
          `${collection}: shared in ${sharedMs.toFixed(0)} ms, revoked in ${revokedMs.toFixed(0)} ms`,
        );
      }
    });
  },
);
