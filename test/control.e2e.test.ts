/**
 * The control plane end to end: a real `gatehouse control start` process (SQLite in a temp data directory), its
 * admin API, and its embedded cloud gateway in front of a real upstream. Every change made through the admin API
 * must be enforced by the cloud gateway within a second.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { adminApi, eventually, startControlPlane, type AdminApi, type ControlProcess } from './control-helpers.ts';
import { runCli, startUpstream, type Upstream } from './helpers.ts';

const DEV = '/workspaces/default/environments/DEV';

function billing(upstream: string, overrides: Record<string, unknown> = {}) {
  return {
    name: 'billing',
    basePath: '/billing',
    upstream,
    project: 'default',
    endpoints: [
      { method: 'GET', path: '/invoices', permission: 'invoices:read' },
      { method: 'POST', path: '/invoices', permission: 'invoices:write' },
      { method: 'GET', path: '/invoices/{id}', permission: 'invoices:read' },
    ],
    ...overrides,
  };
}

describe('control plane: clients, roles and the cloud gateway', () => {
  let cp: ControlProcess;
  let upstream: Upstream;
  let admin: AdminApi;
  const gw = (path: string, token?: string, init: RequestInit = {}) =>
    fetch(`${cp.gatewayUrl}/default/dev/billing${path}`, {
      ...init,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string>) },
    });
  const statusOf = async (path: string, token: string) => {
    const res = await gw(path, token);
    await res.arrayBuffer();
    return res.status;
  };

  before(async () => {
    upstream = await startUpstream();
    cp = await startControlPlane();
    admin = cp.api();
    assert.match(cp.token, /^ghk_/);
    const created = await admin.post(`${DEV}/collections`, billing(upstream.url));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const published = await admin.post(`${DEV}/collections/billing/publish`);
    assert.equal(published.status, 201, JSON.stringify(published.body));
    assert.equal(published.body.version, 1);
  });
  after(async () => {
    await cp?.stop();
    await upstream?.close();
  });

  it('prints the installation admin token once and never stores it in clear', async () => {
    const me = await admin.get('/me');
    assert.equal(me.status, 200);
    assert.equal(me.body.operator, true);
    assert.deepEqual(me.body.permissions, ['*']);
    const { readFile } = await import('node:fs/promises');
    const db = await readFile(`${cp.dataDir}/gatehouse.db`);
    assert.equal(db.includes(Buffer.from(cp.token)), false, 'the token is in the database file');
    // The banner names the console and how to sign in to it the first time.
    const banner = cp.output.join('\n');
    assert.match(banner, new RegExp(`^ {2}console {8}${cp.adminUrl}/console/ `, 'm'));
    assert.match(banner, /^ {2}gatehouse user create --email you@example\.com$/m);
  });

  it('creates a role and a client, shows the token once, and the token calls the cloud gateway', async () => {
    const role = await admin.post('/workspaces/default/roles', {
      name: 'invoice-reader',
      permissions: ['invoices:read'],
    });
    assert.equal(role.status, 201, JSON.stringify(role.body));
    const created = await admin.post('/workspaces/default/clients', {
      name: 'billing app',
      role: 'invoice-reader',
      environments: ['DEV'],
      projects: ['default'],
      userId: 'u-42',
      orgId: 'acme',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const { token, client } = created.body as { token: string; client: { id: string } };
    assert.match(token, /^ghk_[A-Za-z0-9]{38}$/);

    // Never again: not in the client, not in the list.
    const read = await admin.get(`/workspaces/default/clients/${client.id}`);
    const list = await admin.get('/workspaces/default/clients');
    assert.equal(JSON.stringify(read.body).includes(token), false);
    assert.equal(JSON.stringify(list.body).includes(token), false);
    assert.ok(!('token' in read.body));

    const res = await gw('/invoices/7', token);
    assert.equal(res.status, 200);
    const seen = (await res.json()) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/invoices/7');
    const jwt = seen.headers.authorization!.replace(/^Bearer /, '');
    const { payload } = await jwtVerify(jwt, createRemoteJWKSet(new URL(`${cp.gatewayUrl}/.well-known/jwks.json`)), {
      audience: 'urn:gatehouse:default:dev',
    });
    assert.equal(payload.client_id, client.id);
    assert.equal(payload.user_id, 'u-42');
    assert.equal(payload.org_id, 'acme');
    assert.deepEqual(payload.permissions, ['invoices:read']);
    assert.equal(await statusOf('/invoices', 'ghk_' + 'x'.repeat(38)), 401);
    const post = await gw('/invoices', token, { method: 'POST' });
    assert.equal(post.status, 403);
    assert.equal(((await post.json()) as { code: string }).code, 'GH_ERR_AUTH_FORBIDDEN_ENDPOINT');
  });

  it('finds an API client by its id or its name; a name two clients share is refused 409 with their ids', async () => {
    await admin.post('/workspaces/default/roles', { name: 'by-name', permissions: ['invoices:read'] });
    const body = { role: 'by-name', environments: ['DEV'], projects: ['default'] };
    const one = await admin.post('/workspaces/default/clients', { name: 'named-app', ...body });
    assert.equal(one.status, 201, JSON.stringify(one.body));
    const id = one.body.client.id as string;
    const byName = await admin.get('/workspaces/default/clients/named-app');
    assert.equal(byName.status, 200, JSON.stringify(byName.body));
    assert.equal(byName.body.id, id);
    assert.equal((await admin.get(`/workspaces/default/clients/${id}`)).body.id, id);
    const patched = await admin.patch('/workspaces/default/clients/named-app', { status: 'disabled' });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.status, 'disabled');
    assert.equal((await admin.get('/workspaces/default/clients/no-such-app')).status, 404);

    const two = await admin.post('/workspaces/default/clients', { name: 'named-app', ...body });
    assert.equal(two.status, 201, JSON.stringify(two.body));
    const ambiguous = await admin.get('/workspaces/default/clients/named-app');
    assert.equal(ambiguous.status, 409, JSON.stringify(ambiguous.body));
    assert.equal(ambiguous.body.code, 'GH_ERR_ADMIN_CONFLICT');
    assert.match(ambiguous.body.detail, new RegExp(`named "named-app" \\(${id}, ${two.body.client.id}\\)`));
    // The ids still name each one.
    assert.equal((await admin.get(`/workspaces/default/clients/${two.body.client.id}`)).status, 200);
    assert.equal((await admin.delete(`/workspaces/default/clients/${two.body.client.id}`)).status, 204);
    assert.equal((await admin.delete('/workspaces/default/clients/named-app')).status, 204);
    assert.equal((await admin.get(`/workspaces/default/clients/${id}`)).status, 404);
  });

  it('regenerate: the old token is refused within a second and the new one works; deleting the role refuses it', async () => {
    await admin.post('/workspaces/default/roles', { name: 'rotating', permissions: ['invoices:*'] });
    const created = await admin.post('/workspaces/default/clients', {
      name: 'rotating app',
      role: 'rotating',
      environments: ['DEV'],
      projects: ['default'],
    });
    const oldToken = created.body.token as string;
    const id = created.body.client.id as string;
    assert.equal(await statusOf('/invoices', oldToken), 200);

    // "Within a second" counts from the admin API's answer: on a busy machine the call itself can take a while.
    const regenerated = await admin.post(`/workspaces/default/clients/${id}/regenerate`);
    assert.equal(regenerated.status, 200, JSON.stringify(regenerated.body));
    const newToken = regenerated.body.token as string;
    assert.notEqual(newToken, oldToken);
    const refusedAfter = await eventually(
      async () => (await statusOf('/invoices', oldToken)) === 401,
      10_000,
      'old token refused',
    );
    assert.ok(refusedAfter < 1000, `the old token was refused ${refusedAfter} ms after the regeneration was answered`);
    assert.equal(await statusOf('/invoices', newToken), 200);
    assert.equal((await gw('/invoices', newToken, { method: 'POST' })).status, 200, 'invoices:* grants invoices:write');

    assert.equal((await admin.delete('/workspaces/default/roles/rotating?force=true')).status, 204);
    const roleRefusedAfter = await eventually(
      async () => [401, 403].includes(await statusOf('/invoices', newToken)),
      10_000,
      'deleted role refused',
    );
    assert.ok(
      roleRefusedAfter < 1000,
      `the token was refused ${roleRefusedAfter} ms after the role's deletion was answered`,
    );
    const client = await admin.get(`/workspaces/default/clients/${id}`);
    assert.match(client.body.role, /deleted role/);
  });

  it("rotates the environment's signing key: new tokens use the new key, old tokens still verify until they expire", async () => {
    const created = await admin.post('/workspaces/default/clients', {
      name: 'rotation',
      role: 'invoice-reader',
      environments: ['DEV'],
      projects: ['default'],
    });
    const jwtOf = async () =>
      (
        (await (await gw('/invoices', created.body.token)).json()) as { headers: Record<string, string> }
      ).headers.authorization!.slice(7);
    const kidOf = (jwt: string) =>
      (JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
    const before = await admin.get(`${DEV}/signing-keys`);
    assert.equal(before.status, 200, JSON.stringify(before.body));
    assert.equal(JSON.stringify(before.body).includes('"d"'), false, 'a private key in the answer');
    const oldJwt = await jwtOf();
    assert.equal(kidOf(oldJwt), before.body.active);

    const rotated = await admin.post(`${DEV}/signing-keys/rotate`);
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assert.notEqual(rotated.body.active, before.body.active);
    const retired = rotated.body.keys.find((k: { kid: string }) => k.kid === before.body.active);
    assert.ok(
      retired?.retiresAt && Date.parse(retired.retiresAt) > Date.now() + 5 * 60_000 - 5000,
      'published until its tokens expired',
    );
    const newJwt = await jwtOf();
    assert.equal(kidOf(newJwt), rotated.body.active, 'tokens are minted with the new key at once');

    const issuer = `${cp.gatewayUrl}/default/dev`;
    const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
    for (const jwt of [oldJwt, newJwt]) await jwtVerify(jwt, jwks, { issuer, audience: 'urn:gatehouse:default:dev' });
  });

  it('regenerate with a grace period keeps the old token working until it ends', async () => {
    const created = await admin.post('/workspaces/default/clients', {
      name: 'graceful',
      role: 'invoice-reader',
      environments: ['DEV'],
      projects: ['default'],
    });
    const oldToken = created.body.token as string;
    const regenerated = await admin.post(`/workspaces/default/clients/${created.body.client.id}/regenerate`, {
      gracePeriod: '1h',
    });
    assert.equal(regenerated.status, 200);
    assert.equal(regenerated.body.client.keys.length, 2);
    assert.ok(
      regenerated.body.client.keys.some(
        (k: { expiresAt?: string }) => k.expiresAt && Date.parse(k.expiresAt) > Date.now() + 3500_000,
      ),
    );
    assert.equal(await statusOf('/invoices', oldToken), 200);
    assert.equal(await statusOf('/invoices', regenerated.body.token), 200);
    const bad = await admin.post(`/workspaces/default/clients/${created.body.client.id}/regenerate`, {
      gracePeriod: '90d',
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.errors[0].path, 'body.gracePeriod');
  });

  it('deleting a client refuses its token at once; changing its role is enforced at once', async () => {
    await admin.post('/workspaces/default/roles', { name: 'changing', permissions: ['invoices:read'] });
    const created = await admin.post('/workspaces/default/clients', {
      name: 'short-lived',
      role: 'changing',
      environments: ['DEV'],
      projects: ['default'],
    });
    const token = created.body.token as string;
    assert.equal((await gw('/invoices', token, { method: 'POST' })).status, 403);
    assert.equal(
      (await admin.patch('/workspaces/default/roles/changing', { permissions: ['invoices:read', 'invoices:write'] }))
        .status,
      200,
    );
    await eventually(
      async () => (await gw('/invoices', token, { method: 'POST' })).status === 200,
      10_000,
      'role change enforced',
    );

    const disabled = await admin.patch(`/workspaces/default/clients/${created.body.client.id}`, { status: 'disabled' });
    assert.equal(disabled.status, 200);
    await eventually(async () => (await statusOf('/invoices', token)) === 403, 10_000, 'disabled');

    assert.equal((await admin.delete(`/workspaces/default/clients/${created.body.client.id}`)).status, 204);
    await eventually(async () => (await statusOf('/invoices', token)) === 401, 10_000, 'deleted client refused');
    assert.equal((await admin.get(`/workspaces/default/clients/${created.body.client.id}`)).status, 404);
  });

  it('edits reach the gateway only when published, and an earlier version can be republished', async () => {
    const created = await admin.post('/workspaces/default/clients', {
      name: 'versions',
      role: 'invoice-reader',
      environments: ['DEV'],
      projects: ['default'],
    });
    const token = created.body.token as string;
    const draft = billing(upstream.url, {
      endpoints: [
        ...billing(upstream.url).endpoints,
        { method: 'GET', path: '/receipts', permission: 'invoices:read' },
      ],
    });
    const put = await admin.put(`${DEV}/collections/billing`, draft);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.unpublishedChanges, true);
    assert.equal(await statusOf('/receipts', token), 404, 'a draft is not served');

    const v2 = await admin.post(`${DEV}/collections/billing/publish`);
    assert.equal(v2.body.version, 2);
    assert.equal(await statusOf('/receipts', token), 200);
    const again = await admin.post(`${DEV}/collections/billing/publish`);
    assert.equal(again.status, 200, 'nothing new to publish');
    assert.equal(again.body.version, 2);

    const rollback = await admin.post(`${DEV}/collections/billing/publish`, { version: 1 });
    assert.equal(rollback.status, 201);
    assert.equal(rollback.body.version, 3);
    assert.equal(rollback.body.restoredFrom, 1);
    assert.equal(await statusOf('/receipts', token), 404);
    const versions = await admin.get(`${DEV}/collections/billing/versions`);
    assert.deepEqual(
      versions.body.items.map((v: { version: number }) => v.version),
      [3, 2, 1],
    );
    const current = await admin.get(`${DEV}/collections/billing`);
    assert.equal(current.body.publishedVersion, 3);
    assert.equal(current.body.unpublishedChanges, false, 'the draft was reset to the restored version');
  });

  it('answers collections in their input form, so what GET returns can be PUT back unchanged', async () => {
    const created = await admin.post(
      `${DEV}/collections`,
      billing(upstream.url, {
        name: 'roundtrip',
        basePath: '/roundtrip',
        upstream: { url: upstream.url, connectTimeout: '2s' },
        rateLimits: { key: { limit: 5, window: '1m' } },
      }),
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.upstream.connectTimeout, '2s');
    const {
      id: _id,
      environment: _e,
      revision,
      publishedVersion: _p,
      unpublishedChanges: _u,
      createdAt: _c,
      updatedAt: _up,
      ...input
    } = created.body;
    const put = await admin.put(`${DEV}/collections/roundtrip`, input);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.revision, revision, 'an unchanged PUT is not an edit');
    assert.equal(put.body.upstream.connectTimeout, '2s');
    assert.equal(put.body.rateLimits.key.window, '1m');
    assert.equal((await admin.delete(`${DEV}/collections/roundtrip`)).status, 204);
  });

  it('refuses bad input with the field named, and writes nothing', async () => {
    const before = (await admin.get(`${DEV}/collections`)).body.items.length;
    const cases: [unknown, number, string][] = [
      [
        billing(upstream.url, {
          name: 'bad-path',
          basePath: '/bad',
          endpoints: [{ method: 'GET', path: 'no-slash', permission: 'x' }],
        }),
        400,
        'body.endpoints[0].path',
      ],
      [billing('ftp://example.com', { name: 'ftp', basePath: '/ftp' }), 400, 'body.upstream.url'],
      [billing(upstream.url, { name: 'unknown-project', basePath: '/p', project: 'nope' }), 400, 'body.project'],
      [billing(upstream.url, { name: 'billing-copy' }), 409, 'basePath'],
      [billing(upstream.url, { name: 'extra', basePath: '/extra', colour: 'red' }), 400, 'body'],
    ];
    for (const [body, status, field] of cases) {
      const res = await admin.post(`${DEV}/collections`, body);
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
      assert.match(res.body.detail, new RegExp(field.replace(/[[\].]/g, '\\$&')), JSON.stringify(res.body));
    }
    const unknownRole = await admin.post('/workspaces/default/clients', {
      name: 'x',
      role: 'no-such-role',
      environments: ['DEV'],
      projects: ['default'],
    });
    assert.equal(unknownRole.status, 400);
    assert.equal(unknownRole.body.errors[0].path, 'body.role');
    const badJson = await fetch(`${cp.adminUrl}/api/v1/workspaces/default/roles`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cp.token}`, 'content-type': 'application/json' },
      body: '{"name":',
    });
    assert.equal(badJson.status, 400);
    assert.equal((await admin.get(`${DEV}/collections`)).body.items.length, before, 'nothing partial was written');
  });

  it('imports a legacy client (key + email) that works until deleted and is never regenerable', async () => {
    const key = 'legacy-secret-key-0001';
    const created = await admin.post('/workspaces/default/legacy-clients', {
      name: 'old partner',
      role: 'invoice-reader',
      environments: ['DEV'],
      projects: ['default'],
      email: 'ops@partner.example',
      key,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(JSON.stringify(created.body).includes(key), false);
    const call = () =>
      fetch(`${cp.gatewayUrl}/default/dev/billing/invoices`, {
        headers: { 'x-api-key': key, 'x-api-email': 'ops@partner.example' },
      });
    assert.equal((await call()).status, 200);
    assert.equal((await admin.post(`/workspaces/default/clients/${created.body.id}/regenerate`)).status, 409);
    assert.equal((await admin.delete(`/workspaces/default/clients/${created.body.id}`)).status, 204);
    await eventually(async () => (await call()).status === 401, 10_000, 'legacy client deleted');
  });

  it('serves its OpenAPI 3.1 document with every operation and its permission', async () => {
    const res = await fetch(`${cp.adminUrl}/api/openapi.json`);
    assert.equal(res.status, 200);
    const doc = (await res.json()) as {
      openapi: string;
      paths: Record<string, Record<string, { operationId: string; 'x-gatehouse-permission'?: string }>>;
    };
    assert.equal(doc.openapi, '3.1.0');
    const ops = Object.values(doc.paths).flatMap((p) => Object.values(p));
    assert.ok(ops.length >= 30, `${ops.length} operations`);
    const create = doc.paths['/api/v1/workspaces/{workspace}/clients']!.post!;
    assert.equal(create.operationId, 'createClient');
    assert.equal(create['x-gatehouse-permission'], 'admin:clients:write');
  });

  it('refuses the admin API without a valid token', async () => {
    assert.equal((await adminApi(cp.adminUrl, undefined).get('/me')).status, 401);
    assert.equal((await adminApi(cp.adminUrl, 'not-a-token').get('/me')).status, 401);
    assert.equal((await adminApi(cp.adminUrl, 'ghk_' + 'A'.repeat(38)).get('/me')).status, 401);
  });

  it('answers an unknown route 404 and a wrong method 405 with Allow', async () => {
    assert.equal((await admin.get('/no-such-thing')).status, 404);
    const wrong = await admin.delete('/me');
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'GET');
  });
});

describe('control plane: project, environment and IP scoping', () => {
  let cp: ControlProcess;
  let upstream: Upstream;
  let admin: AdminApi;
  const call = async (env: string, collection: string, token: string) => {
    const res = await fetch(`${cp.gatewayUrl}/default/${env}/${collection}/items`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const body = (await res.json()) as { code?: string };
    return res.status === 200 ? 200 : `${res.status} ${body.code}`;
  };
  const collection = (name: string, project: string) => ({
    name,
    basePath: `/${name}`,
    upstream: upstream.url,
    project,
    endpoints: [{ method: 'GET', path: '/items', permission: 'items:read' }],
  });

  before(async () => {
    upstream = await startUpstream();
    cp = await startControlPlane();
    admin = cp.api();
    for (const p of ['alpha', 'beta'])
      assert.equal((await admin.post('/workspaces/default/projects', { name: p })).status, 201);
    for (const [name, project] of [
      ['a-api', 'alpha'],
      ['b-api', 'beta'],
    ] as const) {
      assert.equal((await admin.post(`${DEV}/collections`, collection(name, project))).status, 201);
      assert.equal((await admin.post(`${DEV}/collections/${name}/publish`)).status, 201);
    }
    const deployed = await admin.post(`${DEV}/projects/alpha/deploy`, { to: 'PROD' });
    assert.equal(deployed.status, 200, JSON.stringify(deployed.body));
    assert.deepEqual(deployed.body.deployed, [{ name: 'a-api', version: 1 }]);
    await admin.post('/workspaces/default/roles', { name: 'items', permissions: ['items:read'] });
    await admin.post('/workspaces/default/roles', {
      name: 'alpha-admin',
      permissions: ['items:read', 'admin:collections:*', 'admin:clients:*', 'admin:roles:read', 'admin:projects:read'],
    });
  });
  after(async () => {
    await cp?.stop();
    await upstream?.close();
  });

  it('lets a client reach only collections of its projects and environments', async () => {
    const { body } = await admin.post('/workspaces/default/clients', {
      name: 'alpha dev',
      role: 'items',
      environments: ['DEV'],
      projects: ['alpha'],
    });
    assert.equal(await call('dev', 'a-api', body.token), 200);
    assert.equal(await call('dev', 'b-api', body.token), '403 GH_ERR_AUTH_FORBIDDEN_SCOPE');
    assert.equal(
      await call('prod', 'a-api', body.token),
      '401 GH_ERR_AUTH_INVALID_KEY',
      'a DEV-only client does not exist in PROD',
    );
    const both = await admin.post('/workspaces/default/clients', {
      name: 'alpha everywhere',
      role: 'items',
      environments: ['DEV', 'PROD'],
      projects: ['alpha'],
    });
    assert.equal(await call('prod', 'a-api', both.body.token), 200);
    assert.equal(
      await call('prod', 'b-api', both.body.token),
      '404 GH_ERR_ROUTE_NOT_FOUND',
      'project beta was not deployed',
    );
  });

  it('confines an admin API client to its projects and environments', async () => {
    const created = await admin.post('/workspaces/default/clients', {
      name: 'alpha admin',
      role: 'alpha-admin',
      environments: ['DEV'],
      projects: ['alpha'],
    });
    assert.equal(created.status, 201);
    const scoped = cp.api(created.body.token);

    const list = await scoped.get(`${DEV}/collections`);
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.items.map((c: { name: string }) => c.name),
      ['a-api'],
    );
    assert.equal((await scoped.get(`${DEV}/collections/b-api`)).status, 404);
    assert.equal((await scoped.put(`${DEV}/collections/b-api`, collection('b-api', 'beta'))).status, 404);
    assert.equal((await scoped.delete(`${DEV}/collections/b-api`)).status, 404);
    const intoBeta = await scoped.post(`${DEV}/collections`, collection('b-two', 'beta'));
    assert.equal(intoBeta.status, 403);
    assert.equal(intoBeta.body.code, 'GH_ERR_ADMIN_OUT_OF_SCOPE');
    assert.equal((await scoped.get('/workspaces/default/environments/PROD/collections')).status, 403);
    assert.equal((await scoped.post(`${DEV}/collections`, collection('a-two', 'alpha'))).status, 201);

    const projects = await scoped.get('/workspaces/default/projects');
    assert.deepEqual(
      projects.body.items.map((p: { name: string }) => p.name),
      ['alpha'],
    );

    // Clients: only those within its scope, and none broader than itself.
    await admin.post('/workspaces/default/clients', {
      name: 'beta app',
      role: 'items',
      environments: ['DEV'],
      projects: ['beta'],
    });
    const clients = await scoped.get('/workspaces/default/clients');
    assert.ok(clients.body.items.length > 0);
    for (const c of clients.body.items) assert.deepEqual([c.environments, c.projects], [['DEV'], ['alpha']]);
    const broader = await scoped.post('/workspaces/default/clients', {
      name: 'x',
      role: 'items',
      environments: ['DEV'],
      projects: ['beta'],
    });
    assert.equal(broader.status, 403);
    const escalate = await scoped.post('/workspaces/default/clients', {
      name: 'x',
      role: 'admin',
      environments: ['DEV'],
      projects: ['alpha'],
    });
    assert.equal(escalate.status, 403, 'cannot hand out the admin role');
    assert.equal(
      (await scoped.post('/workspaces/default/roles', { name: 'r', permissions: ['items:read'] })).status,
      403,
      'admin:roles:write not granted',
    );
    const mine = await scoped.post('/workspaces/default/clients', {
      name: 'alpha app',
      role: 'items',
      environments: ['DEV'],
      projects: ['alpha'],
    });
    assert.equal(mine.status, 201);
  });

  it('offers project deployment and collaborator management only in DEV', async () => {
    const deploy = await admin.post('/workspaces/default/environments/PROD/projects/alpha/deploy', { to: 'TEST' });
    assert.equal(deploy.status, 409);
    assert.equal(deploy.body.code, 'GH_ERR_ADMIN_DEV_ONLY');
    const users = await admin.get('/workspaces/default/environments/TEST/collaborators');
    assert.equal(users.status, 409);
    assert.equal((await admin.get(`${DEV}/collaborators`)).status, 200);
  });

  it('enforces allowed IP ranges on proxied traffic and on the admin API', async () => {
    const created = await admin.post('/workspaces/default/clients', {
      name: 'office only',
      role: 'alpha-admin',
      environments: ['DEV'],
      projects: ['alpha'],
      allowedIps: ['10.0.0.0/8', '2001:db8::/32'],
    });
    const token = created.body.token as string;
    assert.equal(await call('dev', 'a-api', token), '403 GH_ERR_AUTH_IP_NOT_ALLOWED');
    const adminRes = await cp.api(token).get(`${DEV}/collections`);
    assert.equal(adminRes.status, 403);
    assert.equal(adminRes.body.code, 'GH_ERR_ADMIN_FORBIDDEN');

    assert.equal(
      (await admin.patch(`/workspaces/default/clients/${created.body.client.id}`, { allowedIps: ['127.0.0.0/8'] }))
        .status,
      200,
    );
    await eventually(async () => (await call('dev', 'a-api', token)) === 200, 10_000, 'new IP range enforced');
    assert.equal((await cp.api(token).get(`${DEV}/collections`)).status, 200);
  });

  it('keeps workspaces apart; only operator clients act on every workspace', async () => {
    const ws = await admin.post('/workspaces', { name: 'customer-1' });
    assert.equal(ws.status, 201, JSON.stringify(ws.body));
    // The operator (installation admin) acts on the new workspace.
    assert.equal(
      (await admin.post('/workspaces/customer-1/roles', { name: 'items', permissions: ['items:read'] })).status,
      201,
    );
    const theirs = await admin.post('/workspaces/customer-1/clients', {
      name: 'customer admin',
      role: 'admin',
      environments: ['*'],
      projects: ['*'],
    });
    assert.equal(theirs.status, 201);
    const customer = cp.api(theirs.body.token);
    assert.equal((await customer.get('/workspaces/customer-1/clients')).status, 200);
    assert.equal(
      (await customer.get('/workspaces/default/clients')).status,
      404,
      'another workspace is not even visible',
    );
    assert.equal((await customer.get(`${DEV}/collections`)).status, 404);
    const list = await customer.get('/workspaces');
    assert.deepEqual(
      list.body.items.map((w: { name: string }) => w.name),
      ['customer-1'],
    );
    assert.equal((await customer.post('/workspaces', { name: 'customer-2' })).status, 403);
    const operatorFlag = await customer.post('/workspaces/customer-1/clients', {
      name: 'x',
      role: 'admin',
      environments: ['*'],
      projects: ['*'],
      operator: true,
    });
    assert.equal(operatorFlag.status, 403);
    // Their token does not open the default workspace's gateway routes either.
    assert.equal(await call('dev', 'a-api', theirs.body.token), '401 GH_ERR_AUTH_INVALID_KEY');
  });

  it('lets console users log in; a user role without the clients privilege cannot manage clients', async () => {
    assert.equal(
      (await admin.post('/workspaces/default/user-roles', { name: 'developer', privileges: ['collections'] })).status,
      201,
    );
    const user = await admin.post(`${DEV}/collaborators`, {
      email: 'dev@example.com',
      role: 'developer',
      password: 'a long enough password',
    });
    assert.equal(user.status, 201, JSON.stringify(user.body));
    assert.equal(JSON.stringify(user.body).includes('password'), false);
    const wrong = await adminApi(cp.adminUrl, undefined).post('/auth/login', {
      workspace: 'default',
      email: 'dev@example.com',
      password: 'wrong password!!',
    });
    assert.equal(wrong.status, 401);
    const login = await adminApi(cp.adminUrl, undefined).post('/auth/login', {
      workspace: 'default',
      email: 'dev@example.com',
      password: 'a long enough password',
    });
    assert.equal(login.status, 200);
    const setCookie = login.headers.get('set-cookie')!;
    assert.match(setCookie, /gh_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict/);
    // Changes made with the cookie carry the session's CSRF token (GH_ERR_ADMIN_CSRF without it).
    const session = adminApi(cp.adminUrl, undefined, {
      cookie: setCookie.split(';')[0]!,
      'x-csrf-token': login.body.csrfToken as string,
    });
    assert.equal((await session.get('/me')).body.kind, 'user');
    assert.equal((await session.get(`${DEV}/collections`)).status, 200);
    assert.equal((await session.get('/workspaces/default/clients')).status, 403);
    assert.equal((await session.post('/auth/logout')).status, 204);
    assert.equal((await session.get('/me')).status, 401);
  });
});

describe('control plane: no escalation, no cross-project writes', () => {
  let cp: ControlProcess;
  let upstream: Upstream;
  let admin: AdminApi;

  before(async () => {
    upstream = await startUpstream();
    cp = await startControlPlane();
    admin = cp.api();
    for (const p of ['alpha', 'beta']) await admin.post('/workspaces/default/projects', { name: p });
    await admin.post('/workspaces/default/roles', {
      name: 'client-manager',
      permissions: ['admin:clients:*', 'admin:roles:read'],
    });
    await admin.post('/workspaces/default/roles', {
      name: 'collaborators',
      permissions: ['admin:collaborators:*', 'admin:workspaces:read', 'admin:roles:read', 'admin:projects:read'],
    });
    await admin.post('/workspaces/default/roles', {
      name: 'deployer',
      permissions: ['admin:collections:*', 'admin:deploy', 'admin:snapshots:read'],
    });
  });
  after(async () => {
    await cp?.stop();
    await upstream?.close();
  });

  it('does not let a client manager regenerate, change or delete a stronger client', async () => {
    const manager = await admin.post('/workspaces/default/clients', {
      name: 'manager',
      role: 'client-manager',
      environments: ['*'],
      projects: ['*'],
    });
    const api = cp.api(manager.body.token);
    const me = await admin.get('/me');
    const installationAdmin = me.body.id as string;
    for (const res of [
      await api.post(`/workspaces/default/clients/${installationAdmin}/regenerate`),
      await api.patch(`/workspaces/default/clients/${installationAdmin}`, { name: 'mine now' }),
      await api.delete(`/workspaces/default/clients/${installationAdmin}`),
    ]) {
      assert.equal(res.status, 403, JSON.stringify(res.body));
      assert.equal(res.body.code, 'GH_ERR_ADMIN_FORBIDDEN');
    }
    assert.equal((await admin.get('/me')).status, 200, 'the installation admin token still works');
  });

  it('does not let a collaborator manager create a console admin or users beyond its own scope', async () => {
    const scoped = await admin.post('/workspaces/default/clients', {
      name: 'team lead',
      role: 'collaborators',
      environments: ['DEV'],
      projects: ['alpha'],
    });
    const wide = await admin.post('/workspaces/default/clients', {
      name: 'people ops',
      role: 'collaborators',
      environments: ['*'],
      projects: ['*'],
    });
    const user = { email: 'mallory@example.com', role: 'admin', password: 'a long enough password' };
    assert.equal((await cp.api(scoped.body.token).post(`${DEV}/collaborators`, user)).status, 403);
    assert.equal(
      (await cp.api(wide.body.token).post(`${DEV}/collaborators`, user)).status,
      403,
      'the admin user role holds "*"',
    );
    assert.equal(
      (
        await cp
          .api(wide.body.token)
          .post('/workspaces/default/user-roles', { name: 'sneaky', privileges: ['clients'] })
      ).status,
      403,
    );
    assert.equal(
      (await admin.post('/workspaces/default/user-roles', { name: 'people', privileges: ['collaborators'] })).status,
      201,
    );
    assert.equal((await cp.api(wide.body.token).post(`${DEV}/collaborators`, { ...user, role: 'people' })).status, 201);
  });

  it('keeps a PATCH to the fields it names: a disabled client stays disabled', async () => {
    const created = await admin.post('/workspaces/default/clients', {
      name: 'paused',
      role: 'client-manager',
      environments: ['DEV'],
      projects: ['alpha'],
    });
    assert.equal(
      (await admin.patch(`/workspaces/default/clients/${created.body.client.id}`, { status: 'disabled' })).body.status,
      'disabled',
    );
    const renamed = await admin.patch(`/workspaces/default/clients/${created.body.client.id}`, { name: 'paused app' });
    assert.equal(renamed.body.status, 'disabled');
    assert.equal(renamed.body.name, 'paused app');
  });

  it("never deploys over another project's collection", async () => {
    const spec = (project: string, url: string) => ({
      name: 'billing',
      basePath: '/billing',
      upstream: url,
      project,
      endpoints: [{ method: 'GET', path: '/x', permission: 'x' }],
    });
    const prod = '/workspaces/default/environments/PROD';
    assert.equal((await admin.post(`${prod}/collections`, spec('beta', upstream.url))).status, 201);
    const deployer = await admin.post('/workspaces/default/clients', {
      name: 'alpha deployer',
      role: 'deployer',
      environments: ['DEV', 'PROD'],
      projects: ['alpha'],
    });
    const api = cp.api(deployer.body.token);
    assert.equal((await api.post(`${DEV}/collections`, spec('alpha', 'https://evil.example'))).status, 201);
    assert.equal((await api.post(`${DEV}/collections/billing/publish`)).status, 201);
    const deploy = await api.post(`${DEV}/projects/alpha/deploy`, { to: 'PROD' });
    assert.equal(deploy.status, 409, JSON.stringify(deploy.body));
    const untouched = await admin.get(`${prod}/collections/billing`);
    assert.equal(untouched.body.project, 'beta');
    assert.equal(untouched.body.upstream.url, upstream.url);
  });

  it('shows snapshots only to callers scoped to everything, and never the key hashes', async () => {
    const deployer = await admin.post('/workspaces/default/clients', {
      name: 'alpha reader',
      role: 'deployer',
      environments: ['DEV'],
      projects: ['alpha'],
    });
    assert.equal((await cp.api(deployer.body.token).get(`${DEV}/snapshot`)).status, 403);
    const full = await admin.get(`${DEV}/snapshot`);
    assert.equal(full.status, 200);
    assert.ok(full.body.snapshot.clients.length > 0);
    assert.doesNotMatch(JSON.stringify(full.body.snapshot), /[0-9a-f]{64}/, 'a key hash in the answer');
  });

  it('throttles failed logins and refuses cookie requests that are not JSON', async () => {
    assert.equal((await admin.post('/workspaces/default/user-roles', { name: 'viewer', privileges: [] })).status, 201);
    assert.equal(
      (
        await admin.post(`${DEV}/collaborators`, {
          email: 'viewer@example.com',
          role: 'viewer',
          password: 'the right password',
        })
      ).status,
      201,
    );
    const anonymous = adminApi(cp.adminUrl, undefined);
    let last;
    for (let i = 0; i < 11; i++)
      last = await anonymous.post('/auth/login', {
        workspace: 'default',
        email: 'viewer@example.com',
        password: `wrong password ${i}`,
      });
    assert.equal(last!.status, 429);
    assert.equal(last!.body.code, 'GH_ERR_ADMIN_TOO_MANY_ATTEMPTS');
    assert.match(last!.headers.get('retry-after')!, /^\d+$/);
    assert.equal(
      (
        await anonymous.post('/auth/login', {
          workspace: 'default',
          email: 'viewer@example.com',
          password: 'the right password',
        })
      ).status,
      429,
      'even the right password waits',
    );

    // Another account logs in; a form-style POST with its cookie is refused.
    assert.equal(
      (
        await admin.post(`${DEV}/collaborators`, {
          email: 'other@example.com',
          role: 'viewer',
          password: 'another password!',
        })
      ).status,
      201,
    );
    const login = await anonymous.post('/auth/login', {
      workspace: 'default',
      email: 'other@example.com',
      password: 'another password!',
    });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const form = await fetch(`${cp.adminUrl}/api/v1/auth/logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'a=1',
    });
    assert.equal(form.status, 415);
    assert.equal((await adminApi(cp.adminUrl, undefined, { cookie }).get('/me')).status, 200, 'still logged in');
  });
});

describe('control plane: public URL', () => {
  it('names each workspace environment’s token issuer after --public-url', async () => {
    const cp = await startControlPlane({ extraArgs: ['--public-url', 'https://api.example.com'] });
    try {
      const snapshot = await cp.api().get(`${DEV}/snapshot`);
      assert.equal(snapshot.status, 200, JSON.stringify(snapshot.body));
      assert.equal(snapshot.body.snapshot.tokenExchange.issuer, 'https://api.example.com/default/dev');
    } finally {
      await cp.stop();
    }
  });

  it('refuses a --public-url that is not an http(s) URL, exit 2', async () => {
    const r = await runCli([
      'control',
      'start',
      '--public-url',
      'api.example.com',
      '--data-dir',
      '/nonexistent-never-created',
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--public-url must be an http/);
  });
});
