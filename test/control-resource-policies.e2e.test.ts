/**
 * Resource policies through the control plane: a real `gatehouse control start` process and its cloud gateway.
 * Policies are published with their collection and validated against its Cedar schema (a policy that does not
 * validate is refused, and the version in force stays); relationship data written through the admin API changes
 * decisions while traffic flows, within the propagation target.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, startControlPlane, type AdminApi, type ControlProcess } from './control-helpers.ts';
import { runCli, startUpstream, type Upstream } from './helpers.ts';

const ENV = '/workspaces/default/environments/DEV';
const BILLING = `${ENV}/collections/billing`;

function spec(upstream: string, cedarText: string) {
  return {
    name: 'billing',
    basePath: '/billing',
    upstream,
    project: 'default',
    endpoints: [
      {
        method: 'GET',
        path: '/projects/{projectId}',
        permission: 'projects:read',
        resource: { type: 'Project', param: 'projectId' },
      },
    ],
    policies: {
      cedar: cedarText,
      entityTypes: {
        Project: { attributes: { sharedWith: { type: 'Set', element: { type: 'Entity', name: 'Org' } } } },
      },
    },
  };
}

const SHARING = `@id("owner-org") permit (principal, action, resource is Project) when { principal has org && resource in principal.org };
@id("shared") permit (principal, action, resource is Project) when { principal has org && resource has sharedWith && resource.sharedWith.contains(principal.org) };`;

describe('resource policies through the control plane', () => {
  let cp: ControlProcess;
  let upstream: Upstream;
  let admin: AdminApi;
  let globexToken: string;
  let globexId: string;
  const call = (token: string, path: string) =>
    fetch(`${cp.gatewayUrl}/default/dev/billing${path}`, { headers: { authorization: `Bearer ${token}` } });

  before(async () => {
    upstream = await startUpstream();
    cp = await startControlPlane();
    admin = cp.api();
    assert.equal((await admin.post(`${ENV}/collections`, spec(upstream.url, SHARING))).status, 201);
    const published = await admin.post(`${BILLING}/publish`);
    assert.equal(published.status, 201, JSON.stringify(published.body));
    assert.equal(
      (await admin.post('/workspaces/default/roles', { name: 'reader', permissions: ['projects:*'] })).status,
      201,
    );
    const client = await admin.post('/workspaces/default/clients', {
      name: 'globex-app',
      role: 'reader',
      environments: ['DEV'],
      projects: ['default'],
      orgId: 'globex',
    });
    assert.equal(client.status, 201, JSON.stringify(client.body));
    globexToken = client.body.token as string;
    globexId = client.body.client.id as string;
    const project = await admin.put(`${BILLING}/entities/Project/3`, {
      attrs: { sharedWith: [] },
      parents: [{ type: 'Org', id: 'acme' }],
    });
    assert.equal(project.status, 200, JSON.stringify(project.body));
  });
  after(async () => {
    await cp?.stop();
    await upstream?.close();
  });

  it('refuses to publish a policy that does not validate, with Cedar’s error and location, and keeps the version in force', async () => {
    const draft = spec(
      upstream.url,
      `${SHARING}\n@id("typo") forbid (principal, action, resource) when { resource.sharedwith.isEmpty() };`,
    );
    assert.equal((await admin.put(BILLING, draft)).status, 200);
    const refused = await admin.post(`${BILLING}/publish`);
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'GH_ERR_ADMIN_INVALID_BODY');
    assert.equal(refused.body.errors[0].path, 'collection.policies.cedar');
    assert.match(refused.body.errors[0].message, /^policy "typo": .*sharedwith.* at line 3, column \d+/);
    assert.equal((await admin.get(BILLING)).body.publishedVersion, 1);
    assert.equal((await call(globexToken, '/projects/3')).status, 403); // the published policies still decide
    assert.equal((await admin.put(BILLING, spec(upstream.url, SHARING))).status, 200);
  });

  it('shares a project with another org and takes it back, through the admin API, while traffic flows', async () => {
    const statuses: number[] = [];
    let stop = false;
    const traffic = (async () => {
      while (!stop) statuses.push((await call(globexToken, '/projects/3')).status);
    })();
    try {
      await eventually(() => statuses.length > 3);
      const sharedAt = performance.now();
      const batch = {
        entities: [
          {
            uid: { type: 'Project', id: '3' },
            attrs: { sharedWith: [{ __entity: { type: 'Org', id: 'globex' } }] },
            parents: [{ type: 'Org', id: 'acme' }],
          },
        ],
      };
      const share = await admin.put(`${BILLING}/entities`, batch);
      assert.equal(share.status, 200, JSON.stringify(share.body));
      await eventually(() => statuses.at(-1) === 200);
      const shareMs = performance.now() - sharedAt;
      // Idempotent: the same write again changes nothing.
      assert.deepEqual((await admin.put(`${BILLING}/entities`, batch)).body, { upserted: 1, total: 1 });
      const revokedAt = performance.now();
      assert.equal((await admin.delete(`${BILLING}/entities/Project/3`)).status, 204);
      await eventually(() => statuses.at(-1) === 403);
      const revokeMs = performance.now() - revokedAt;
      assert.equal((await admin.delete(`${BILLING}/entities/Project/3`)).status, 204); // idempotent
      // The admin API answers once the cloud gateway enforces the change; the target is 1 s.
      assert.ok(shareMs < 1000 && revokeMs < 1000, `shared in ${shareMs} ms, revoked in ${revokeMs} ms`);
    } finally {
      stop = true;
      await traffic;
    }
    assert.deepEqual([...new Set(statuses)].sort(), [200, 403]);
  });

  it('lists and batch-deletes relationship data', async () => {
    const batch = await admin.put(`${BILLING}/entities`, {
      entities: [1, 2, 3].map((n) => ({ uid: { type: 'Project', id: `p${n}` }, attrs: { sharedWith: [] } })),
    });
    assert.deepEqual(batch.body, { upserted: 3, total: 3 });
    const listed = await admin.get(`${BILLING}/entities?limit=2`);
    assert.deepEqual(
      listed.body.items.map((e: { uid: { id: string } }) => e.uid.id),
      ['p1', 'p2'],
    );
    assert.equal(listed.body.total, 3);
    const deleted = await admin.post(`${BILLING}/entities/delete`, {
      uids: [
        { type: 'Project', id: 'p1' },
        { type: 'Project', id: 'p9' },
      ],
    });
    assert.deepEqual(deleted.body, { deleted: 1, total: 2 });
  });

  it('decides a request against the published policies with `gatehouse policy test`', async () => {
    const policyTest = (path: string) =>
      runCli([
        'policy',
        'test',
        '--url',
        cp.adminUrl,
        '--token',
        cp.token,
        '--env',
        'DEV',
        '--collection',
        'billing',
        '--client',
        globexId,
        '--path',
        path,
      ]);
    const denied = await policyTest('/projects/3');
    assert.equal(denied.code, 0, denied.stderr);
    assert.equal(denied.stdout.trim(), 'DENY: no permit policy applies');
    await admin.put(`${BILLING}/entities/Project/3`, {
      attrs: { sharedWith: [{ __entity: { type: 'Org', id: 'globex' } }] },
      parents: [{ type: 'Org', id: 'acme' }],
    });
    const allowed = await policyTest('/projects/3');
    assert.equal(allowed.stdout.trim(), 'ALLOW: permitted by shared');
    assert.equal((await call(globexToken, '/projects/3')).status, 200); // the gateway agrees
  });
});
