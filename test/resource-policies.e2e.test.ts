/**
 * Resource-level policies (Cedar) on a real gateway process and a real upstream: decisions by the client's
 * attributes, by relationship data, `forbid` over `permit`, the deny's problem body, relationship data changed while
 * traffic flows, and a policy set the gateway cannot load leaving the last good one in force.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../src/testing/eventually.ts';
import { newKey, startGateway, startUpstream, TOKEN_EXCHANGE, type GatewayProcess, type Upstream } from './helpers.ts';

const acme = newKey();
const globex = newKey();
const intern = newKey();

const POLICIES = `
@id("tenant-read")
permit (principal, action == Action::"invoices:read", resource is Invoice)
  when { principal has org && resource in principal.org };

@id("owner-edit")
permit (principal, action == Action::"invoices:write", resource is Invoice)
  when { resource has owner && principal has user && resource.owner == principal.user };

@id("shared-read")
permit (principal, action == Action::"invoices:read", resource is Invoice)
  when { principal has org && resource has sharedWith && resource.sharedWith.contains(principal.org) };

@id("frozen")
forbid (principal, action in [Action::"invoices:read", Action::"invoices:write"], resource == Invoice::"1");

@id("no-interns-delete")
forbid (principal, action == Action::"invoices:write", resource)
  when { principal.role == "intern" && context.method == "DELETE" };
`;

function config(upstream: string, entities: unknown[], cedarText = POLICIES): Record<string, unknown> {
  return {
    tokenExchange: TOKEN_EXCHANGE,
    collections: [
      {
        name: 'billing',
        basePath: '/billing',
        upstream,
        project: 'shop',
        environment: 'PROD',
        endpoints: [
          {
            method: 'GET',
            path: '/orgs/{orgId}/invoices/{invoiceId}',
            permission: 'invoices:read',
            resource: { type: 'Invoice', param: 'invoiceId', in: [{ type: 'Org', param: 'orgId' }] },
          },
          {
            method: 'PUT',
            path: '/invoices/{invoiceId}',
            permission: 'invoices:write',
            resource: { type: 'Invoice', param: 'invoiceId' },
          },
          {
            method: 'DELETE',
            path: '/invoices/{invoiceId}',
            permission: 'invoices:write',
            resource: { type: 'Invoice', param: 'invoiceId' },
          },
          { method: 'GET', path: '/health', permission: 'health:read' },
        ],
        policies: {
          cedar: cedarText,
          entityTypes: {
            Invoice: {
              memberOf: ['Org'],
              attributes: {
                owner: { type: 'Entity', name: 'User', required: false },
                sharedWith: { type: 'Set', element: { type: 'Entity', name: 'Org' }, required: false },
              },
            },
          },
          exposeDecidingPolicies: true,
        },
      },
    ],
    roles: [
      { name: 'member', permissions: ['invoices:*', 'health:read'] },
      { name: 'intern', permissions: ['invoices:*'] },
    ],
    clients: [
      {
        id: 'acme-app',
        role: 'member',
        environments: ['PROD'],
        projects: ['shop'],
        orgId: 'acme',
        userId: '7',
        keys: [{ hash: acme.hash }],
      },
      {
        id: 'globex-app',
        role: 'member',
        environments: ['PROD'],
        projects: ['shop'],
        orgId: 'globex',
        userId: '8',
        keys: [{ hash: globex.hash }],
      },
      {
        id: 'acme-intern',
        role: 'intern',
        environments: ['PROD'],
        projects: ['shop'],
        orgId: 'acme',
        userId: '7',
        keys: [{ hash: intern.hash }],
      },
    ],
    entities,
  };
}

const invoice9 = {
  collection: 'billing',
  uid: { type: 'Invoice', id: '9' },
  attrs: { owner: { __entity: { type: 'User', id: '7' } } },
  parents: [{ type: 'Org', id: 'acme' }],
};
const shared = (orgs: string[]) => ({
  collection: 'billing',
  uid: { type: 'Invoice', id: '5' },
  attrs: { sharedWith: orgs.map((id) => ({ __entity: { type: 'Org', id } })) },
  parents: [{ type: 'Org', id: 'acme' }],
});

describe('resource policies at the gateway', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway(config(upstream.url, [invoice9, shared([])]));
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  const call = (key: string, method: string, path: string) =>
    fetch(`${gw.url}/billing${path}`, { method, headers: { authorization: `Bearer ${key}` } });

  it('allows by the client’s attributes: a client of acme reads acme’s invoices, not globex’s', async () => {
    assert.equal((await call(acme.key, 'GET', '/orgs/acme/invoices/42')).status, 200);
    const denied = await call(acme.key, 'GET', '/orgs/globex/invoices/42');
    assert.equal(denied.status, 403);
    assert.equal(denied.headers.get('content-type'), 'application/problem+json');
    const body = (await denied.json()) as { code: string; policies: string[] };
    assert.equal(body.code, 'GH_ERR_AUTH_FORBIDDEN_RESOURCE');
    assert.deepEqual(body.policies, []); // nothing permitted: default deny, no deciding policy
    assert.equal((await call(globex.key, 'GET', '/orgs/globex/invoices/42')).status, 200);
  });

  it('allows by relationship: only the owner of an invoice edits it', async () => {
    assert.equal((await call(acme.key, 'PUT', '/invoices/9')).status, 200);
    assert.equal((await call(globex.key, 'PUT', '/invoices/9')).status, 403);
    assert.equal((await call(acme.key, 'PUT', '/invoices/10')).status, 403); // no relationship data: no owner
  });

  it('lets a forbid override a permit, and names the forbidding policy', async () => {
    assert.equal((await call(intern.key, 'PUT', '/invoices/9')).status, 200);
    const res = await call(intern.key, 'DELETE', '/invoices/9');
    assert.equal(res.status, 403);
    assert.deepEqual(((await res.json()) as { policies: string[] }).policies, ['no-interns-delete']);
  });

  it('denies a path parameter that Unicode normalisation would change: it cannot dodge a forbid', async () => {
    assert.equal((await call(acme.key, 'GET', '/orgs/acme/invoices/1')).status, 403); // frozen
    // U+FF11 FULLWIDTH DIGIT ONE: a backend that normalises reads invoice 1.
    const res = await call(acme.key, 'GET', '/orgs/acme/invoices/%EF%BC%91');
    assert.equal(res.status, 403);
    assert.equal(((await res.json()) as { code: string }).code, 'GH_ERR_AUTH_FORBIDDEN_RESOURCE');
  });

  it('leaves operations without policies to the role alone', async () => {
    assert.equal((await call(acme.key, 'GET', '/health')).status, 200);
  });

  it('changes the decision when a relationship is added and removed while traffic flows', async () => {
    let stop = false;
    const seen: number[] = [];
    const traffic = (async () => {
      while (!stop) seen.push((await call(globex.key, 'GET', '/orgs/acme/invoices/5')).status);
    })();
    try {
      await eventually(() => seen.length > 5);
      assert.deepEqual([...new Set(seen)], [403]);
      // A config file reload (its watcher debounces changes); the control plane's sync path and its propagation
      // target are tested in control-resource-policies.e2e.test.ts.
      await gw.writeConfig(config(upstream.url, [invoice9, shared(['globex'])]));
      await eventually(() => seen.at(-1) === 200);
      await gw.writeConfig(config(upstream.url, [invoice9, shared([])]));
      await eventually(() => seen.at(-1) === 403);
    } finally {
      stop = true;
      await traffic;
    }
    assert.ok(seen.includes(200) && seen.at(-1) === 403, 'the flowing traffic saw both decisions');
    assert.ok(
      seen.every((s) => s === 200 || s === 403),
      `only decisions, no errors: ${[...new Set(seen)].join(', ')}`,
    );
  });

  it('keeps the last good policy set when a new one cannot be loaded', async () => {
    await gw.writeConfig(config(upstream.url, [invoice9], 'permit (principal, action, resource) when { principal. };'));
    await gw.waitFor(/config rejected/);
    assert.equal((await call(acme.key, 'GET', '/orgs/acme/invoices/42')).status, 200);
    assert.equal((await call(acme.key, 'GET', '/orgs/globex/invoices/42')).status, 403);
  });

  it('logs the denying policies', async () => {
    await gw.waitFor(/resource policy denied the request.*|"policies":\["no-interns-delete"\]/);
    assert.ok(
      gw.output.some((l) => l.includes('resource policy denied the request') && l.includes('no-interns-delete')),
    );
  });
});
