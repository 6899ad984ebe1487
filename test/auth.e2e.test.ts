/**
 * Policies end to end on real sockets: authenticate, IP allow-list, authorize, token exchange, with a real
 * `gatehouse gateway run` process in front of a real upstream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import {
  newKey,
  startGateway,
  startUpstream,
  TOKEN_EXCHANGE,
  type GatewayProcess,
  type Upstream,
  expectProblem,
} from './helpers.ts';

const reader = newKey();
const admin = newKey();
const devOnly = newKey();
const otherProject = newKey();
const expired = newKey();
const graceOld = newKey();
const disabled = newKey();
const officeOnly = newKey();
const loopbackOnly = newKey();
const endpointGrant = newKey();
const expiredClient = newKey();
const invoicing = newKey();
const installationAdmin = newKey();

describe('policies on a running gateway', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    const client = (id: string, key: { hash: string }, extra: Record<string, unknown> = {}) => ({
      id,
      role: 'reader',
      environments: ['PROD'],
      projects: ['payments'],
      keys: [{ hash: key.hash }],
      ...extra,
    });
    gw = await startGateway({
      tokenExchange: {
        ...TOKEN_EXCHANGE,
        claims: ['client_id', 'user_id', 'org_id', 'permissions', 'environment', 'project', 'metadata'],
      },
      collections: [
        {
          name: 'billing',
          basePath: '/billing',
          upstream: `${upstream.url}/api`,
          project: 'payments',
          environment: 'PROD',
          endpoints: [
            { method: 'GET', path: '/orgs/{orgId}/invoices', permission: 'invoices:read' },
            { method: 'POST', path: '/orgs/{orgId}/invoices', permission: 'invoices:write' },
            { method: 'DELETE', path: '/orgs/{orgId}/invoices/{id}', permission: 'invoices:delete' },
          ],
        },
        {
          name: 'public-status',
          basePath: '/status',
          upstream: upstream.url,
          project: 'payments',
          environment: 'PROD',
          authRequired: false,
          endpoints: [{ method: 'GET', path: '/', permission: 'status:read' }],
        },
        {
          name: 'crm',
          basePath: '/crm',
          upstream: upstream.url,
          project: 'crm',
          environment: 'DEV',
          endpoints: [{ method: 'GET', path: '/contacts', permission: 'contacts:read' }],
        },
      ],
      roles: [
        { name: 'reader', permissions: ['invoices:read'] },
        { name: 'admin', permissions: ['*'] },
        {
          name: 'deleter',
          endpoints: [{ collection: 'billing', method: 'DELETE', path: '/orgs/{orgId}/invoices/{id}' }],
        },
        { name: 'invoicing', permissions: ['invoices:*'] },
      ],
      clients: [
        client('reader-client', reader, { userId: 'u-1', orgId: 'acme', metadata: { plan: 'gold' } }),
        client('admin-client', admin, { role: 'admin' }),
        client('dev-client', devOnly, { environments: ['DEV'] }),
        client('other-project', otherProject, { projects: ['crm'] }),
        client('expiring-keys', expired, {
          keys: [
            { hash: expired.hash, expiresAt: '2020-01-01T00:00:00Z' },
            { hash: graceOld.hash, expiresAt: '2999-01-01T00:00:00Z' },
          ],
        }),
        client('disabled-client', disabled, { status: 'disabled' }),
        client('office-client', officeOnly, { allowedIps: ['10.0.0.0/8', '2001:db8::/32'] }),
        client('loopback-client', loopbackOnly, { allowedIps: ['127.0.0.0/8', '::1/128'] }),
        client('grant-client', endpointGrant, { role: 'deleter' }),
        client('expired-client', expiredClient, { expiresAt: '2021-06-01T00:00:00Z' }),
        client('invoicing-client', invoicing, { role: 'invoicing' }),
        client('installation-admin', installationAdmin, { role: 'admin', environments: ['*'], projects: ['*'] }),
      ],
      legacyClients: [
        {
          id: 'legacy-client',
          role: 'reader',
          environments: ['PROD'],
          projects: ['payments'],
          email: 'Ops@Example.com',
          keyHash: 'sha256:d1b9c625f90890d90f477e74f440df38862a171e84e1c927065ff53fed7f2bc9',
        },
      ],
    });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  const call = (path: string, init: RequestInit = {}) => fetch(`${gw.url}${path}`, init);
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

  const problem = expectProblem;

  it('forwards an authorized request with a JWT that a backend verifies with jose against the served JWKS', async () => {
    const res = await call('/billing/orgs/acme/invoices?page=2', { headers: bearer(reader.key) });
    assert.equal(res.status, 200);
    const seen = (await res.json()) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/api/orgs/acme/invoices?page=2');
    const token = seen.headers.authorization!.replace(/^Bearer /, '');
    assert.notEqual(token, reader.key);
    const jwks = createRemoteJWKSet(new URL(`${gw.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: TOKEN_EXCHANGE.issuer,
      audience: TOKEN_EXCHANGE.audience,
    });
    assert.equal(protectedHeader.alg, 'EdDSA');
    assert.equal(payload.sub, 'reader-client');
    assert.equal(payload.client_id, 'reader-client');
    assert.equal(payload.user_id, 'u-1');
    assert.equal(payload.org_id, 'acme');
    assert.deepEqual(payload.permissions, ['invoices:read']);
    assert.equal(payload.environment, 'PROD');
    assert.equal(payload.project, 'payments');
    assert.deepEqual(payload.metadata, { plan: 'gold' });
    assert.ok(payload.exp! - payload.iat! === 300);
  });

  it('reuses the cached token for the same key instead of minting one per request', async () => {
    const tokens = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const seen = (await (await call('/billing/orgs/acme/invoices', { headers: bearer(reader.key) })).json()) as {
        headers: Record<string, string>;
      };
      tokens.add(seen.headers.authorization!);
    }
    assert.equal(tokens.size, 1);
    const kid = decodeProtectedHeader([...tokens][0]!.slice(7)).kid;
    const jwks = (await (await call('/.well-known/jwks.json')).json()) as { keys: { kid: string }[] };
    assert.ok(jwks.keys.some((k) => k.kid === kid));
  });

  it('removes the API key and client-sent identity headers before forwarding, and adds forwarding headers', async () => {
    const res = await call('/billing/orgs/acme/invoices', {
      headers: {
        'x-api-key': reader.key,
        'x-forwarded-for': '6.6.6.6',
        forwarded: 'for=6.6.6.6',
        'x-request-id': 'spoofed',
        'x-gatehouse-client-id': 'admin-client',
        'x-real-ip': '6.6.6.6',
        'x-custom': 'kept',
      },
    });
    const seen = (await res.json()) as { headers: Record<string, string> };
    assert.equal(seen.headers['x-api-key'], undefined);
    assert.equal(seen.headers['x-gatehouse-client-id'], undefined);
    assert.equal(seen.headers['x-real-ip'], undefined);
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    // No server.publicHosts and no collection host: the gateway vouches for no client Host, so none is forwarded.
    assert.equal(seen.headers.forwarded, 'for=127.0.0.1;proto=http');
    assert.equal(seen.headers['x-forwarded-host'], undefined);
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-prefix'], '/billing');
    assert.equal(seen.headers['x-request-id'], res.headers.get('x-request-id'));
    assert.notEqual(seen.headers['x-request-id'], 'spoofed');
    assert.equal(seen.headers['x-custom'], 'kept');
    assert.match(seen.headers.authorization!, /^Bearer ey/);
  });

  it('answers 401 GH_ERR_AUTH_MISSING_KEY without a key, with a WWW-Authenticate challenge', async () => {
    const res = await call('/billing/orgs/acme/invoices');
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
    await problem(res, 401, 'GH_ERR_AUTH_MISSING_KEY');
  });

  it('refuses a key with a broken checksum as malformed, before any lookup', async () => {
    const broken = reader.key.slice(0, -1) + (reader.key.endsWith('A') ? 'B' : 'A');
    await problem(
      await call('/billing/orgs/acme/invoices', { headers: bearer(broken) }),
      401,
      'GH_ERR_AUTH_MALFORMED_KEY',
    );
  });

  it('refuses a well-formed key that no client has', async () => {
    await problem(
      await call('/billing/orgs/acme/invoices', { headers: bearer(newKey().key) }),
      401,
      'GH_ERR_AUTH_INVALID_KEY',
    );
  });

  it("refuses an expired key but accepts the client's other key during its grace period", async () => {
    await problem(
      await call('/billing/orgs/acme/invoices', { headers: bearer(expired.key) }),
      401,
      'GH_ERR_AUTH_EXPIRED_KEY',
    );
    assert.equal((await call('/billing/orgs/acme/invoices', { headers: bearer(graceOld.key) })).status, 200);
  });

  it('refuses every key of an expired client', async () => {
    await problem(
      await call('/billing/orgs/acme/invoices', { headers: bearer(expiredClient.key) }),
      401,
      'GH_ERR_AUTH_EXPIRED_KEY',
    );
  });

  it('refuses a disabled client with 403', async () => {
    await problem(
      await call('/billing/orgs/acme/invoices', { headers: bearer(disabled.key) }),
      403,
      'GH_ERR_AUTH_CLIENT_DISABLED',
    );
  });

  it('refuses an endpoint the role does not grant, and allows it for a role that does', async () => {
    await problem(
      await call('/billing/orgs/acme/invoices', { method: 'POST', headers: bearer(reader.key), body: '{}' }),
      403,
      'GH_ERR_AUTH_FORBIDDEN_ENDPOINT',
    );
    assert.equal(
      (await call('/billing/orgs/acme/invoices', { method: 'POST', headers: bearer(admin.key), body: '{}' })).status,
      200,
    );
  });

  it('grants individual endpoints listed in a role', async () => {
    assert.equal(
      (await call('/billing/orgs/acme/invoices/9', { method: 'DELETE', headers: bearer(endpointGrant.key) })).status,
      200,
    );
    await problem(
      await call('/billing/orgs/acme/invoices', { headers: bearer(endpointGrant.key) }),
      403,
      'GH_ERR_AUTH_FORBIDDEN_ENDPOINT',
    );
  });

  it('grants every endpoint whose permission starts with "invoices:" to a role with "invoices:*"', async () => {
    assert.equal((await call('/billing/orgs/acme/invoices', { headers: bearer(invoicing.key) })).status, 200);
    assert.equal(
      (await call('/billing/orgs/acme/invoices', { method: 'POST', headers: bearer(invoicing.key), body: '{}' }))
        .status,
      200,
    );
    assert.equal(
      (await call('/billing/orgs/acme/invoices/9', { method: 'DELETE', headers: bearer(invoicing.key) })).status,
      200,
    );
  });

  it('lets a client with "*" environments and projects call collections of every environment and project', async () => {
    assert.equal((await call('/billing/orgs/acme/invoices', { headers: bearer(installationAdmin.key) })).status, 200);
    assert.equal((await call('/crm/contacts', { headers: bearer(installationAdmin.key) })).status, 200);
    await problem(await call('/crm/contacts', { headers: bearer(admin.key) }), 403, 'GH_ERR_AUTH_FORBIDDEN_SCOPE');
  });

  it("refuses a client outside the collection's environment", async () => {
    await problem(
      await call('/billing/orgs/acme/invoices', { headers: bearer(devOnly.key) }),
      403,
      'GH_ERR_AUTH_FORBIDDEN_SCOPE',
    );
  });

  it("refuses a client outside the collection's project", async () => {
    await problem(
      await call('/billing/orgs/acme/invoices', { headers: bearer(otherProject.key) }),
      403,
      'GH_ERR_AUTH_FORBIDDEN_SCOPE',
    );
  });

  it('refuses a client whose allowed IP ranges do not contain the caller', async () => {
    await problem(
      await call('/billing/orgs/acme/invoices', { headers: bearer(officeOnly.key) }),
      403,
      'GH_ERR_AUTH_IP_NOT_ALLOWED',
    );
  });

  it('allows a client calling from inside its allowed IP ranges', async () => {
    assert.equal((await call('/billing/orgs/acme/invoices', { headers: bearer(loopbackOnly.key) })).status, 200);
  });

  it('authenticates a legacy client by key and email (email case-insensitive)', async () => {
    const res = await call('/billing/orgs/acme/invoices', {
      headers: { 'x-api-key': 'legacy-secret-123', 'x-api-email': 'ops@example.COM' },
    });
    assert.equal(res.status, 200);
    const seen = (await res.json()) as { headers: Record<string, string> };
    assert.equal(seen.headers['x-api-key'], undefined);
    assert.equal(seen.headers['x-api-email'], undefined);
    const jwks = createRemoteJWKSet(new URL(`${gw.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(seen.headers.authorization!.slice(7), jwks, {
      issuer: TOKEN_EXCHANGE.issuer,
      audience: TOKEN_EXCHANGE.audience,
    });
    assert.equal(payload.client_id, 'legacy-client');
  });

  it('refuses a legacy key with the wrong email, and a legacy key without its email', async () => {
    await problem(
      await call('/billing/orgs/acme/invoices', {
        headers: { 'x-api-key': 'legacy-secret-123', 'x-api-email': 'someone@example.com' },
      }),
      401,
      'GH_ERR_AUTH_INVALID_KEY',
    );
    await problem(
      await call('/billing/orgs/acme/invoices', { headers: { 'x-api-key': 'legacy-secret-123' } }),
      401,
      'GH_ERR_AUTH_MALFORMED_KEY',
    );
  });

  it('serves a public collection without a key and without a token', async () => {
    const res = await call('/status', { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    assert.equal(res.status, 200);
    const seen = (await res.json()) as { headers: Record<string, string> };
    assert.equal(seen.headers.authorization, 'Basic dXNlcjpwYXNz');
  });

  it('answers 404 for an unknown path and 405 with Allow for a known path with another method', async () => {
    await problem(await call('/nothing/here', { headers: bearer(reader.key) }), 404, 'GH_ERR_ROUTE_NOT_FOUND');
    await problem(
      await call('/billing/orgs/acme/unknown', { headers: bearer(reader.key) }),
      404,
      'GH_ERR_ROUTE_NOT_FOUND',
    );
    const res = await call('/billing/orgs/acme/invoices', { method: 'PUT', headers: bearer(reader.key), body: '{}' });
    assert.equal(res.headers.get('allow'), 'GET, POST, HEAD');
    await problem(res, 405, 'GH_ERR_ROUTE_METHOD_NOT_ALLOWED');
  });

  it('counts auth failures by reason in /metrics and logs requests without ever logging a key', async () => {
    const metrics = await (await fetch(`${gw.opsUrl}/metrics`)).text();
    assert.match(metrics, /gatehouse_auth_failures_total\{reason="GH_ERR_AUTH_MISSING_KEY",collection="billing"\} \d+/);
    assert.match(
      metrics,
      /gatehouse_requests_total\{collection="billing",route="\/orgs\/\{orgId\}\/invoices",method="GET",status="200"\} \d+/,
    );
    assert.match(metrics, /gatehouse_request_duration_seconds_bucket/);
    const logs = gw.output.join('\n');
    assert.match(logs, /"clientId":"reader-client"/);
    assert.match(logs, /"route":"\/orgs\/\{orgId\}\/invoices"/);
    for (const k of [reader, admin, graceOld, loopbackOnly])
      assert.ok(!logs.includes(k.key), 'a key appeared in the logs');
    assert.ok(!logs.includes('legacy-secret-123'));
    assert.ok(!/Bearer ey/.test(logs), 'a token appeared in the logs');
  });

  it('reports liveness and readiness on the ops port', async () => {
    assert.equal((await fetch(`${gw.opsUrl}/healthz`)).status, 200);
    assert.equal((await fetch(`${gw.opsUrl}/readyz`)).status, 200);
  });
});
