/**
 * The multi-tenant cloud gateway keeps tenants apart beyond their keys: a real `gatehouse control start` process
 * with two workspaces that chose the same collection name and the same org id. Each tenant's JWTs carry its own
 * issuer, its rate-limit counters are its own, and no tenant's upstream reaches the control plane, link-local
 * addresses or (with `--cloud-egress public`) anything but public addresses.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { startDemoUpstream } from '../src/demo/upstream.ts';
import { eventually, startControlPlane, type AdminApi, type ControlProcess } from './control-helpers.ts';
import { startUpstream, type Upstream } from './helpers.ts';

const AUDIENCE = 'urn:gatehouse:default:dev';

function collection(name: string, basePath: string, upstream: string, more: Record<string, unknown> = {}) {
  return {
    name,
    basePath,
    upstream,
    project: 'default',
    endpoints: [{ method: 'GET', path: '/invoices', permission: 'invoices:read' }],
    ...more,
  };
}

/** Creates and publishes a collection in the workspace's DEV environment. */
async function publish(admin: AdminApi, workspace: string, spec: ReturnType<typeof collection>): Promise<void> {
  const env = `/workspaces/${workspace}/environments/DEV`;
  const created = await admin.post(`${env}/collections`, spec);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const published = await admin.post(`${env}/collections/${spec.name}/publish`);
  assert.equal(published.status, 201, JSON.stringify(published.body));
}

/** A client of the workspace with the same org and user ids in every workspace: tenants choose them freely. */
async function client(admin: AdminApi, workspace: string): Promise<string> {
  assert.equal(
    (await admin.post(`/workspaces/${workspace}/roles`, { name: 'reader', permissions: ['invoices:read'] })).status,
    201,
  );
  const created = await admin.post(`/workspaces/${workspace}/clients`, {
    name: 'app',
    role: 'reader',
    environments: ['DEV'],
    projects: ['default'],
    orgId: 'acme',
    userId: 'u-1',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body.token as string;
}

async function problem(res: Response): Promise<string> {
  const text = await res.text();
  return `${res.status} ${res.status >= 400 ? (JSON.parse(text) as { code: string }).code : ''}`.trim();
}

describe('cloud gateway: tenants with the same collection name and org id', () => {
  let cp: ControlProcess;
  let upstream: Upstream;
  let admin: AdminApi;
  let tokenA: string;
  let tokenB: string;
  const call = (tenant: string, path: string, token?: string) =>
    fetch(`${cp.gatewayUrl}/${tenant}/dev${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const jwtSeenBy = (res: { headers: Record<string, string> }) => res.headers.authorization!.replace(/^Bearer /, '');

  before(async () => {
    upstream = await startUpstream();
    cp = await startControlPlane();
    admin = cp.api();
    assert.equal((await admin.post('/workspaces', { name: 'tenant-b' })).status, 201);
    for (const ws of ['default', 'tenant-b']) {
      await publish(admin, ws, collection('billing', '/billing', upstream.url));
      await publish(
        admin,
        ws,
        collection('metered', '/metered', upstream.url, { rateLimits: { org: { limit: 3, window: '1h' } } }),
      );
    }
    tokenA = await client(admin, 'default');
    tokenB = await client(admin, 'tenant-b');
  });
  after(async () => {
    await cp?.stop();
    await upstream?.close();
  });

  it("stamps each tenant's own issuer, so a token minted for tenant B fails tenant A's issuer check", async () => {
    const issuerA = `${cp.gatewayUrl}/default/dev`;
    const issuerB = `${cp.gatewayUrl}/tenant-b/dev`;
    assert.match(cp.gatewayUrl, /^http:\/\/127\.0\.0\.1:\d+$/, 'the issuer names the bound port, not a placeholder');
    const snapshot = await admin.get('/workspaces/default/environments/DEV/snapshot');
    assert.equal(snapshot.body.snapshot.tokenExchange.issuer, issuerA, "the scope's snapshot carries its issuer");

    const resA = await call('default', '/billing/invoices', tokenA);
    const resB = await call('tenant-b', '/billing/invoices', tokenB);
    assert.equal(resA.status, 200);
    assert.equal(resB.status, 200);
    const jwtA = jwtSeenBy((await resA.json()) as { headers: Record<string, string> });
    const jwtB = jwtSeenBy((await resB.json()) as { headers: Record<string, string> });

    // Both are signed by the one JWKS and claim the same org and user: only the issuer tells them apart.
    const jwks = createRemoteJWKSet(new URL(`${cp.gatewayUrl}/.well-known/jwks.json`));
    const a = await jwtVerify(jwtA, jwks, { issuer: issuerA, audience: AUDIENCE });
    const b = await jwtVerify(jwtB, jwks, { issuer: issuerB, audience: 'urn:gatehouse:tenant-b:dev' });
    assert.equal(a.payload.iss, issuerA);
    assert.equal(b.payload.iss, issuerB);
    assert.deepEqual([a.payload.org_id, a.payload.user_id], [b.payload.org_id, b.payload.user_id]);
    await assert.rejects(
      jwtVerify(jwtB, jwks, { issuer: issuerA }),
      (error: Error & { code?: string; claim?: string }) => {
        assert.equal(error.code, 'ERR_JWT_CLAIM_VALIDATION_FAILED');
        assert.equal(error.claim, 'iss');
        return true;
      },
    );
    // Each workspace environment has its own audience too: a backend that checks only `aud` against the union
    // JWKS still refuses the other tenant's token.
    assert.equal(a.payload.aud, AUDIENCE);
    await assert.rejects(
      jwtVerify(jwtB, jwks, { audience: AUDIENCE }),
      (error: Error & { code?: string; claim?: string }) => {
        assert.equal(error.code, 'ERR_JWT_CLAIM_VALIDATION_FAILED');
        assert.equal(error.claim, 'aud');
        return true;
      },
    );
  });

  it("lets tenant A's backend (the demo upstream) refuse a token replayed from tenant B", async () => {
    const backend = await startDemoUpstream({
      host: '127.0.0.1',
      port: 0,
      jwksUrl: `${cp.gatewayUrl}/.well-known/jwks.json`,
      issuer: `${cp.gatewayUrl}/default/dev`,
      audience: AUDIENCE,
    });
    try {
      const replay = async (token: string) =>
        (
          await fetch(`http://127.0.0.1:${backend.address.port}/billing/invoices`, {
            headers: { authorization: `Bearer ${token}` },
          })
        ).status;
      const jwtOf = async (tenant: string, token: string) =>
        jwtSeenBy(
          (await (await call(tenant, '/billing/invoices', token)).json()) as { headers: Record<string, string> },
        );
      assert.equal(await replay(await jwtOf('default', tokenA)), 200);
      assert.equal(await replay(await jwtOf('tenant-b', tokenB)), 401);
    } finally {
      await new Promise<void>((r) => backend.server.close(() => r()));
    }
  });

  it("keeps tenant B's requests off tenant A's rate-limit counters", async () => {
    const remaining = (res: Response) => /"org";r=(\d+)/.exec(res.headers.get('ratelimit') ?? '')?.[1];
    const first = await call('default', '/metered/invoices', tokenA);
    assert.equal(first.status, 200);
    const before = Number(remaining(first));

    // Tenant B spends its whole org budget on its collection of the same name, for the same org id.
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await call('tenant-b', '/metered/invoices', tokenB)).status);
    assert.deepEqual(statuses, [200, 200, 200, 429]);

    const next = await call('default', '/metered/invoices', tokenA);
    assert.equal(next.status, 200, "tenant A's org budget was spent by tenant B");
    assert.equal(Number(remaining(next)), before - 1);
  });

  it("refuses an upstream on the admin API's port, by address or by a name resolving to loopback, and logs it with the collection", async () => {
    const adminPort = new URL(cp.adminUrl).port;
    await publish(
      admin,
      'tenant-b',
      collection('probe', '/probe', `http://127.0.0.1:${adminPort}/api/v1`, { authRequired: false }),
    );
    await publish(
      admin,
      'tenant-b',
      collection('probe-name', '/probe-name', `http://localhost:${adminPort}/api/v1`, { authRequired: false }),
    );
    assert.equal(await problem(await call('tenant-b', '/probe/invoices')), '502 GH_ERR_UPSTREAM_EGRESS_DENIED');
    assert.equal(await problem(await call('tenant-b', '/probe-name/invoices')), '502 GH_ERR_UPSTREAM_EGRESS_DENIED');
    // The log is written in batches: wait for the lines.
    const logged = () =>
      cp.output
        .filter((l) => l.includes('"msg":"upstream connection refused by the egress policy"'))
        .map((l) => JSON.parse(l) as Record<string, string>);
    await eventually(
      async () => logged().some((l) => l.collection === 'probe' && l.basePath === '/tenant-b/dev/probe'),
      10_000,
      'the refusal of "probe" logged',
    );
    await eventually(
      async () => logged().some((l) => l.collection === 'probe-name' && /localhost \(127\.0\.0\.1\)/.test(l.reason!)),
      10_000,
      'the refusal of "probe-name" logged',
    );
  });

  it('refuses a link-local upstream (cloud metadata) at once, without trying to connect', async () => {
    await publish(
      admin,
      'tenant-b',
      collection('metadata', '/metadata', 'http://169.254.169.254/latest/meta-data', {
        authRequired: false,
        upstream: { url: 'http://169.254.169.254/latest/meta-data', connectTimeout: '20s' },
      }),
    );
    const started = Date.now();
    assert.equal(await problem(await call('tenant-b', '/metadata/invoices')), '502 GH_ERR_UPSTREAM_EGRESS_DENIED');
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms: a connection was attempted`);
  });

  it("still reaches a loopback upstream on another port by default (the quickstart's 127.0.0.1:9000)", async () => {
    assert.equal((await call('default', '/billing/invoices', tokenA)).status, 200);
  });

  it('forwards a collection that keeps its base path without the workspace prefix, which X-Forwarded-Prefix names', async () => {
    await publish(
      admin,
      'default',
      collection('kept', '/kept/v1', `${upstream.url}/api`, { authRequired: false, stripBasePath: false }),
    );
    assert.equal((await call('default', '/kept/v1/invoices?page=2')).status, 200);
    const seen = upstream.requests.at(-1)!;
    assert.equal(seen.url, '/api/kept/v1/invoices?page=2');
    assert.equal(seen.headers['x-forwarded-prefix'], '/default/dev');
  });
});

describe('cloud gateway with --cloud-egress public', () => {
  let cp: ControlProcess;
  let upstream: Upstream;
  let connections = 0;

  before(async () => {
    upstream = await startUpstream();
    upstream.server.on('connection', () => connections++);
    cp = await startControlPlane({ extraArgs: ['--cloud-egress', 'public'] });
  });
  after(async () => {
    await cp?.stop();
    await upstream?.close();
  });

  it('refuses loopback upstreams, by address at once and by name at connect time, and never reaches them', async () => {
    const admin = cp.api();
    await publish(admin, 'default', collection('by-address', '/by-address', upstream.url, { authRequired: false }));
    await publish(
      admin,
      'default',
      collection('by-name', '/by-name', `http://localhost:${upstream.port}`, { authRequired: false }),
    );
    for (const base of ['/by-address', '/by-name']) {
      assert.equal(
        await problem(await fetch(`${cp.gatewayUrl}/default/dev${base}/invoices`)),
        '502 GH_ERR_UPSTREAM_EGRESS_DENIED',
        base,
      );
    }
    assert.equal(connections, 0);
    assert.equal(upstream.requests.length, 0);
  });
});
