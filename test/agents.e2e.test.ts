/**
 * Derived credentials for agents end to end, on real sockets: a `gatehouse gateway run` process, its token
 * endpoint (RFC 8693), a real upstream whose received JWT is verified with `jose` against the gateway's JWKS.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import {
  expectProblem,
  newKey,
  startGateway,
  startUpstream,
  TOKEN_EXCHANGE,
  waitForLine,
  type GatewayProcess,
  type Upstream,
} from './helpers.ts';

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS = 'urn:ietf:params:oauth:token-type:access_token';

const billing = newKey();
const regenerated = newKey();
const doomed = newKey();
const fenced = newKey();

function config(keys: {
  billing: { hash: string };
  doomed?: { hash: string };
  fencedDisabled?: boolean;
  revokedCredentials?: unknown[];
}) {
  const client = (id: string, key: { hash: string }, extra: Record<string, unknown> = {}) => ({
    id,
    role: 'billing',
    environments: ['PROD'],
    projects: ['payments'],
    keys: [{ hash: key.hash }],
    ...extra,
  });
  return {
    tokenExchange: { ...TOKEN_EXCHANGE, derived: { maxTtl: '1h', maxDepth: 2 } },
    collections: [
      {
        name: 'billing',
        basePath: '/billing',
        upstream: upstream.url,
        project: 'payments',
        environment: 'PROD',
        endpoints: [
          { method: 'GET', path: '/orgs/{orgId}/invoices', permission: 'invoices:read' },
          { method: 'POST', path: '/orgs/{orgId}/invoices', permission: 'invoices:write' },
          { method: 'GET', path: '/customers', permission: 'customers:read' },
        ],
      },
      {
        name: 'status',
        basePath: '/status',
        upstream: upstream.url,
        project: 'payments',
        environment: 'PROD',
        authRequired: false,
        endpoints: [{ method: 'GET', path: '/', permission: 'status:read' }],
      },
    ],
    roles: [{ name: 'billing', permissions: ['invoices:*', 'customers:read'] }],
    clients: [
      client('billing-client', keys.billing, { userId: 'u-7', orgId: 'acme' }),
      ...(keys.doomed ? [client('doomed-client', keys.doomed)] : []),
      client('fenced-client', fenced, {
        allowedIps: ['127.0.0.0/8'],
        ...(keys.fencedDisabled && { status: 'disabled' }),
      }),
    ],
    ...(keys.revokedCredentials && { revokedCredentials: keys.revokedCredentials }),
  };
}

let upstream: Upstream;

describe('derived credentials for agents', () => {
  let gw: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway(config({ billing, doomed }));
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  async function mint(
    params: Record<string, string | string[]>,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const form = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const one of [v].flat()) form.append(k, one);
    const res = await fetch(`${gw.url}/oauth2/token`, { method: 'POST', body: form });
    assert.equal(res.headers.get('cache-control'), 'no-store');
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }
  const exchange = (subject: string, extra: Record<string, string | string[]> = {}) =>
    mint({ grant_type: GRANT, subject_token: subject, subject_token_type: ACCESS, agent_id: 'agent-42', ...extra });
  const call = (credential: string, path = '/billing/orgs/acme/invoices', method = 'GET') =>
    fetch(`${gw.url}${path}`, { method, headers: { authorization: `Bearer ${credential}` } });

  it('mints a narrowed credential whose calls reach the backend with an act claim and only the narrowed permissions', async () => {
    const minted = await exchange(billing.key, { scope: 'invoices:read', expires_in: '600', agent_session: 's-1' });
    assert.equal(minted.status, 200, JSON.stringify(minted.body));
    assert.deepEqual(Object.keys(minted.body).sort(), [
      'access_token',
      'credential_id',
      'expires_in',
      'issued_token_type',
      'scope',
      'token_type',
    ]);
    assert.equal(minted.body.issued_token_type, ACCESS);
    assert.equal(minted.body.token_type, 'Bearer');
    assert.equal(minted.body.expires_in, 600);
    assert.equal(minted.body.scope, 'invoices:read');
    const credential = String(minted.body.access_token);
    assert.match(credential, /^ghd_/);

    const res = await call(credential);
    assert.equal(res.status, 200);
    const seen = (await res.json()) as { headers: Record<string, string> };
    assert.equal(seen.headers.authorization?.includes(credential), false, 'the credential itself never goes upstream');
    const jwt = seen.headers.authorization!.replace(/^Bearer /, '');
    const jwks = createRemoteJWKSet(new URL(`${gw.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(jwt, jwks, {
      issuer: TOKEN_EXCHANGE.issuer,
      audience: TOKEN_EXCHANGE.audience,
    });
    assert.equal(payload.sub, 'billing-client');
    assert.equal(payload.user_id, 'u-7');
    assert.equal(payload.org_id, 'acme');
    assert.deepEqual(payload.permissions, ['invoices:read']);
    assert.deepEqual(payload.act, { sub: 'agent-42', session: 's-1' });

    // Sent to a collection that needs no key, the credential is removed before forwarding, like a key.
    const open = (await (await call(credential, '/status/')).json()) as { headers: Record<string, string> };
    assert.equal(open.headers.authorization, undefined);

    // The access log attributes the request to the agent and its session.
    const logged = JSON.parse(await gw.waitFor(/"agent":"agent-42","session":"s-1"/)) as Record<string, unknown>;
    assert.equal(logged.clientId, 'billing-client');
    assert.equal(logged.credential, minted.body.credential_id, 'the id the admin API revokes it by');
    assert.equal(logged.status, 200);

    // The API key's own token is a different one: full permissions, no act.
    const direct = (await (await call(billing.key)).json()) as { headers: Record<string, string> };
    const own = await jwtVerify(direct.headers.authorization!.slice(7), jwks);
    assert.deepEqual(own.payload.permissions, ['invoices:*', 'customers:read']);
    assert.equal(own.payload.act, undefined);

    // Authorize runs against the narrowed permissions.
    const refused = await expectProblem(
      await call(credential, '/billing/orgs/acme/invoices', 'POST'),
      403,
      'GH_ERR_DERIVED_FORBIDDEN',
    );
    assert.match(String(refused.detail), /invoices:write/);
    await expectProblem(await call(credential, '/billing/customers'), 403, 'GH_ERR_DERIVED_FORBIDDEN');
  });

  it('refuses a wider scope, lifetime or IP range with RFC 6749 error JSON', async () => {
    const scope = await exchange(billing.key, { scope: 'invoices:read payments:refund' });
    assert.equal(scope.status, 400);
    assert.equal(scope.body.error, 'invalid_scope');
    assert.equal(scope.body.code, 'GH_ERR_DERIVED_WIDENING');
    assert.match(String(scope.body.error_description), /"payments:refund" not granted/);

    const lifetime = await exchange(billing.key, { expires_in: '7200' });
    assert.equal(lifetime.status, 400);
    assert.equal(lifetime.body.error, 'invalid_request');
    assert.match(String(lifetime.body.error_description), /exceeds the longest lifetime allowed, 3600s/);

    const ip = await exchange(fenced.key, { ip_ranges: '10.0.0.0/8' });
    assert.equal(ip.status, 400);
    assert.match(String(ip.body.error_description), /not within the parent credential's ranges \(127\.0\.0\.0\/8\)/);
    const ipWide = await exchange(fenced.key, { ip_ranges: '127.0.0.0/7' });
    assert.equal(ipWide.status, 400);
    const ipNarrow = await exchange(fenced.key, { ip_ranges: '127.0.0.1/32' });
    assert.equal(ipNarrow.status, 200, JSON.stringify(ipNarrow.body));
    assert.equal((await call(String(ipNarrow.body.access_token), '/billing/customers')).status, 200);
    // A credential pinned to another address is refused from here.
    const elsewhere = await exchange(billing.key, { ip_ranges: '192.0.2.0/24' });
    assert.equal(elsewhere.status, 200);
    await expectProblem(await call(String(elsewhere.body.access_token)), 403, 'GH_ERR_AUTH_IP_NOT_ALLOWED');

    const grant = await mint({ grant_type: 'client_credentials', subject_token: billing.key });
    assert.equal(grant.body.error, 'unsupported_grant_type');
    const noAgent = await mint({ grant_type: GRANT, subject_token: billing.key, subject_token_type: ACCESS });
    assert.equal(noAgent.body.error, 'invalid_request');
    assert.match(String(noAgent.body.error_description), /agent_id is required/);
  });

  it('pins resources, narrows again by delegation, and stops at the depth limit', async () => {
    const first = await exchange(billing.key, { scope: 'invoices:*', resource_pin: 'orgId=acme' });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const pinned = String(first.body.access_token);
    assert.equal((await call(pinned)).status, 200);
    await expectProblem(await call(pinned, '/billing/orgs/globex/invoices'), 403, 'GH_ERR_DERIVED_FORBIDDEN');

    // Delegation: narrower again; the pin stays and cannot be changed; wider is refused.
    const wider = await mint({
      grant_type: GRANT,
      subject_token: pinned,
      subject_token_type: ACCESS,
      agent_id: 'sub-agent',
      scope: 'customers:read',
    });
    assert.equal(wider.body.error, 'invalid_scope');
    const moved = await mint({
      grant_type: GRANT,
      subject_token: pinned,
      subject_token_type: ACCESS,
      agent_id: 'sub-agent',
      resource_pin: 'orgId=globex',
    });
    assert.equal(moved.body.error, 'invalid_target');
    const second = await mint({
      grant_type: GRANT,
      subject_token: pinned,
      subject_token_type: ACCESS,
      agent_id: 'sub-agent',
      agent_session: 'inner',
      scope: 'invoices:read',
    });
    assert.equal(second.status, 200, JSON.stringify(second.body));
    const delegated = String(second.body.access_token);
    const res = await call(delegated);
    assert.equal(res.status, 200);
    const seen = (await res.json()) as { headers: Record<string, string> };
    const { payload } = await jwtVerify(
      seen.headers.authorization!.slice(7),
      createRemoteJWKSet(new URL(`${gw.url}/.well-known/jwks.json`)),
    );
    assert.deepEqual(payload.permissions, ['invoices:read']);
    assert.deepEqual(payload.act, { sub: 'sub-agent', session: 'inner', act: { sub: 'agent-42' } });
    await expectProblem(await call(delegated, '/billing/orgs/globex/invoices'), 403, 'GH_ERR_DERIVED_FORBIDDEN');
    await expectProblem(await call(delegated, '/billing/orgs/acme/invoices', 'POST'), 403, 'GH_ERR_DERIVED_FORBIDDEN');

    const third = await mint({
      grant_type: GRANT,
      subject_token: delegated,
      subject_token_type: ACCESS,
      agent_id: 'x',
    });
    assert.equal(third.status, 400);
    assert.equal(third.body.code, 'GH_ERR_DERIVED_DEPTH');

    // A forged credential (payload changed, MAC kept) is refused.
    const [payloadPart, mac] = delegated.slice(4).split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(payloadPart, 'base64url').toString()) as { s: string[] };
    claims.s = ['*'];
    const forged = `ghd_${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${mac}`;
    await expectProblem(await call(forged), 401, 'GH_ERR_DERIVED_INVALID');
  });

  it('ends every derived credential when its parent key is regenerated or deleted, during traffic', async () => {
    const fromBilling = String((await exchange(billing.key)).body.access_token);
    const fromDoomed = String((await exchange(doomed.key, { scope: 'customers:read' })).body.access_token);
    const delegated = String(
      (
        await mint({
          grant_type: GRANT,
          subject_token: fromDoomed,
          subject_token_type: ACCESS,
          agent_id: 'sub-agent',
        })
      ).body.access_token,
    );
    const fromFenced = String((await exchange(fenced.key, { scope: 'customers:read' })).body.access_token);
    assert.equal((await call(fromBilling)).status, 200);
    assert.equal((await call(delegated, '/billing/customers')).status, 200);
    assert.equal((await call(fromFenced, '/billing/customers')).status, 200);

    // Traffic with the derived credentials while the config changes: billing's key regenerated, doomed deleted.
    const statuses: { before: boolean; status: number; code?: string }[] = [];
    let applied = false;
    let stop = false;
    const traffic = (async () => {
      while (!stop) {
        for (const [credential, path] of [
          [fromBilling, '/billing/orgs/acme/invoices'],
          [delegated, '/billing/customers'],
        ] as const) {
          const wasApplied = applied;
          const res = await call(credential, path);
          const body = (await res.json()) as { code?: string };
          statuses.push({ before: !wasApplied, status: res.status, code: body.code });
        }
      }
    })();
    const from = gw.output.length;
    await gw.writeConfig(config({ billing: regenerated, fencedDisabled: true }));
    gw.child.kill('SIGHUP');
    await waitForLine(gw, /"config applied/, from);
    applied = true;
    // Wait until the traffic has seen the change (an event, not a sleep): a few requests after "applied".
    while (statuses.filter((s) => !s.before).length < 6) await new Promise((r) => setImmediate(r));
    stop = true;
    await traffic;
    const afterward = statuses.filter((s) => !s.before);
    assert.ok(
      statuses.some((s) => s.before && s.status === 200),
      'traffic passed before the change',
    );
    for (const s of afterward) assert.deepEqual([s.status, s.code], [401, 'GH_ERR_DERIVED_PARENT_REVOKED']);
    // Disabling the parent client ends its credentials too.
    await expectProblem(await call(fromFenced, '/billing/customers'), 403, 'GH_ERR_AUTH_CLIENT_DISABLED');
    // The regenerated key mints and calls again.
    const fresh = await exchange(regenerated.key);
    assert.equal((await call(String(fresh.body.access_token))).status, 200);
  });

  it("revokes one credential listed in a standalone gateway's revokedCredentials; its sibling keeps working", async () => {
    const one = await exchange(regenerated.key, { agent_session: 'tab-1' });
    const other = await exchange(regenerated.key, { agent_session: 'tab-2' });
    for (const c of [one, other]) assert.equal((await call(String(c.body.access_token))).status, 200);
    const from = gw.output.length;
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    await gw.writeConfig(
      config({
        billing: regenerated,
        fencedDisabled: true,
        revokedCredentials: [
          { id: 'leaked-1', client: 'billing-client', credential: one.body.credential_id, expiresAt },
        ],
      }),
    );
    gw.child.kill('SIGHUP');
    await waitForLine(gw, /"config applied/, from);
    await expectProblem(await call(String(one.body.access_token)), 401, 'GH_ERR_DERIVED_REVOKED');
    assert.equal((await call(String(other.body.access_token))).status, 200);
  });
});
