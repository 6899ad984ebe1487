import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CollectionRouter, EndpointMatcher, paramValues, relativePath, type RouteEndpoint } from './router.ts';

type C = { name: string; basePath: string; baseDepth: number; host: string | undefined };
const col = (name: string, basePath: string, host?: string): C => ({
  name,
  basePath,
  baseDepth: basePath === '/' ? 0 : basePath.split('/').length - 1,
  host,
});

function endpoint(method: RouteEndpoint<C>['method'], template: string): RouteEndpoint<C> {
  return {
    id: `${method} ${template}`,
    method,
    template,
    permission: 'p',
    collection: col('c', '/'),
    paramNames: [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!),
  };
}

describe('the endpoint matcher', () => {
  const m = new EndpointMatcher<C>();
  m.add(endpoint('GET', '/orgs/{orgId}/invoices'));
  m.add(endpoint('POST', '/orgs/{orgId}/invoices'));
  m.add(endpoint('GET', '/orgs/{orgId}/invoices/{id}'));
  m.add(endpoint('GET', '/orgs/me/invoices'));
  m.add(endpoint('GET', '/files/{name}/raw'));
  m.add(endpoint('GET', '/files/~special/{x}'));
  m.add(endpoint('GET', '/'));

  it('matches parameters and decodes their values', () => {
    const match = m.match('GET', '/orgs/acme%20corp/invoices/42');
    assert.ok(match && 'endpoint' in match);
    assert.equal(match.endpoint.template, '/orgs/{orgId}/invoices/{id}');
    assert.deepEqual(paramValues(match), { orgId: 'acme corp', id: '42' });
  });

  it('prefers a literal segment over a parameter', () => {
    const match = m.match('GET', '/orgs/me/invoices');
    assert.ok(match && 'endpoint' in match);
    assert.equal(match.endpoint.template, '/orgs/me/invoices');
  });

  it('backtracks to a parameter when the literal branch dead-ends', () => {
    const match = m.match('POST', '/orgs/me/invoices');
    assert.ok(match && 'allow' in match === false);
    assert.ok(match && 'endpoint' in match);
    assert.equal(match.endpoint.template, '/orgs/{orgId}/invoices');
    const viaParam = m.match('GET', '/files/~special/raw');
    assert.ok(viaParam && 'endpoint' in viaParam);
    assert.equal(viaParam.endpoint.template, '/files/~special/{x}');
  });

  it('lets HEAD use a GET endpoint and lists allowed methods otherwise', () => {
    const head = m.match('HEAD', '/orgs/a/invoices');
    assert.ok(head && 'endpoint' in head);
    assert.equal(head.endpoint.method, 'GET');
    assert.deepEqual(m.match('DELETE', '/orgs/a/invoices'), { allow: ['GET', 'POST', 'HEAD'] });
  });

  it('does not match a trailing slash, a missing segment or an extra one', () => {
    assert.equal(m.match('GET', '/orgs/a/invoices/'), undefined);
    assert.equal(m.match('GET', '/orgs/a'), undefined);
    assert.equal(m.match('GET', '/orgs/a/invoices/1/2'), undefined);
  });

  it('matches the root template', () => {
    const root = m.match('GET', '/');
    assert.ok(root && 'endpoint' in root);
  });

  it('matches literal templates written with unreserved escapes in canonical form', () => {
    const e = new EndpointMatcher<C>();
    e.add(endpoint('GET', '/caf%C3%A9/%7Euser'));
    const match = e.match('GET', '/caf%C3%A9/~user');
    assert.ok(match && 'endpoint' in match);
  });
});

describe('the collection router', () => {
  const r = new CollectionRouter<C>();
  r.add(col('root', '/'));
  r.add(col('billing', '/billing'));
  r.add(col('billing-v2', '/billing/v2'));
  r.add(col('api-host', '/billing', 'api.example.com'));
  r.add(col('tenant', '/', '*.tenants.example.com'));

  it('picks the longest base path on segment boundaries', () => {
    assert.equal(r.match(undefined, '/billing/v2/x')?.name, 'billing-v2');
    assert.equal(r.match(undefined, '/billing/v22/x')?.name, 'billing');
    assert.equal(r.match(undefined, '/billingx')?.name, 'root');
    assert.equal(r.match(undefined, '/billing')?.name, 'billing');
  });

  it('prefers an exact host, then a wildcard host, then host-less collections', () => {
    assert.equal(r.match('api.example.com', '/billing/x')?.name, 'api-host');
    assert.equal(r.match('api.example.com', '/other')?.name, 'root');
    assert.equal(r.match('acme.tenants.example.com', '/billing/x')?.name, 'tenant');
    assert.equal(r.match('a.b.tenants.example.com', '/x')?.name, 'tenant');
    assert.equal(r.match('tenants.example.com', '/billing/x')?.name, 'billing');
  });

  it('computes the path relative to a base path', () => {
    assert.equal(relativePath('/billing', '/billing'), '/');
    assert.equal(relativePath('/billing', '/billing/x/y'), '/x/y');
    assert.equal(relativePath('/', '/x'), '/x');
  });
});
