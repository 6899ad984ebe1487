import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateCollectionPolicies } from './cedar-schema.ts';
import { CollectionSchema } from './schema.ts';

function collection(cedarText: string) {
  return CollectionSchema.parse({
    name: 'billing',
    basePath: '/billing',
    upstream: 'http://127.0.0.1:1',
    project: 'default',
    environment: 'DEV',
    endpoints: [
      {
        method: 'GET',
        path: '/orgs/{orgId}/invoices/{invoiceId}',
        permission: 'invoices:read',
        resource: { type: 'Invoice', param: 'invoiceId', in: [{ type: 'Org', param: 'orgId' }] },
      },
      { method: 'GET', path: '/health', permission: 'health:read' },
    ],
    policies: {
      cedar: cedarText,
      entityTypes: { Invoice: { attributes: { owner: { type: 'Entity', name: 'User', required: false } } } },
      context: { query: ['status'] },
      metadata: { tier: { type: 'String' } },
    },
  });
}

describe('the Cedar schema derived from a collection', () => {
  it('accepts policies over the client, the declared resource, its parents, context and metadata', () => {
    const errors = validateCollectionPolicies(
      collection(`@id("tenant") permit (principal, action == Action::"invoices:read", resource in Org::"acme")
  when { principal has org && resource in principal.org && context.method == "GET" };
@id("owner") permit (principal, action == Action::"invoices:read", resource is Invoice)
  when { resource has owner && principal has user && resource.owner == principal.user && context.query has status };
@id("gold") forbid (principal, action, resource) unless { principal.metadata has tier && principal.metadata.tier == "gold" };`),
    );
    assert.deepEqual(errors, []);
  });

  it("refuses a policy that does not validate, with Cedar's message, the policy id and its line and column", () => {
    const errors = validateCollectionPolicies(
      collection(`@id("ok") permit (principal, action == Action::"invoices:read", resource);
@id("typo") permit (principal, action == Action::"invoices:read", resource)
  when { principal has user && resource.ownr == principal.user };`),
    );
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0]!, /^policy "typo": .*ownr.* at line 3, column \d+/);
  });

  it('refuses an action the collection does not have, and text that does not parse', () => {
    assert.match(
      validateCollectionPolicies(collection(`permit (principal, action == Action::"invoices:delete", resource);`))[0]!,
      /policy "policy0": .*invoices:delete/,
    );
    assert.match(validateCollectionPolicies(collection(`permit (principal, action, resource) when {`))[0]!, /line 1/);
  });

  it('refuses a resource whose parameter is not in the path', () => {
    const result = CollectionSchema.safeParse({
      name: 'b',
      basePath: '/b',
      upstream: 'http://127.0.0.1:1',
      project: 'default',
      environment: 'DEV',
      endpoints: [{ method: 'GET', path: '/docs/{id}', permission: 'd', resource: { type: 'Doc', param: 'docId' } }],
    });
    assert.equal(result.success, false);
    assert.match(JSON.stringify(result.error?.issues), /has no parameter \{docId\}/);
  });
});
