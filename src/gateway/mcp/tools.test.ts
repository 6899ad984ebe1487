import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { CollectionSchema } from '../../config/schema.ts';
import { buildRequest } from './endpoint.ts';
import { TOOL_NAME_MAX, toolName, buildToolSet } from './tools.ts';
import type { CompiledEndpoint } from '../snapshot/compiled.ts';

function toolSet(endpoints: unknown[], extra: Record<string, unknown> = {}) {
  const collection = CollectionSchema.parse({
    name: 'billing',
    basePath: '/billing',
    upstream: 'http://127.0.0.1:1',
    project: 'p',
    environment: 'PROD',
    mcp: {},
    endpoints,
    ...extra,
  });
  // What the tools read of a compiled endpoint: its template and parameter names.
  const compiled = collection.endpoints.map(
    (e) =>
      ({
        id: `billing ${e.method} ${e.path}`,
        method: e.method,
        template: e.path,
        permission: e.permission,
        paramNames: [...e.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!),
      }) as unknown as CompiledEndpoint,
  );
  return buildToolSet(collection, collection.mcp!, compiled, []);
}

describe('MCP tool names', () => {
  it('normalise the operationId, else join the method and the template', () => {
    assert.equal(toolName({ operationId: 'listInvoices', method: 'GET', path: '/x' }), 'listInvoices');
    assert.equal(toolName({ operationId: 'invoices.list v2', method: 'GET', path: '/x' }), 'invoices_list_v2');
    assert.equal(toolName({ method: 'GET', path: '/orgs/{orgId}/invoices' }), 'get_orgs_orgId_invoices');
    assert.equal(toolName({ method: 'DELETE', path: '/' }), 'delete_root');
  });

  it('stay within 64 characters, the longest ones keeping a hash of the whole', () => {
    const long = toolName({ operationId: 'a'.repeat(100), method: 'GET', path: '/' });
    const other = toolName({ operationId: `${'a'.repeat(99)}b`, method: 'GET', path: '/' });
    assert.equal(long.length, TOOL_NAME_MAX);
    assert.notEqual(long, other);
    assert.match(long, /^[A-Za-z0-9_-]+$/);
  });

  it('are unique in a collection: a later duplicate gets a number', () => {
    const set = toolSet([
      { method: 'GET', path: '/a-b', permission: 'x:read' },
      { method: 'GET', path: '/a_b', permission: 'x:read' },
    ]);
    assert.deepEqual(
      set.tools.map((t) => t.name),
      ['get_a-b', 'get_a_b'],
    );
    const dup = toolSet([
      { method: 'GET', path: '/a', permission: 'x:read', operationId: 'same' },
      { method: 'GET', path: '/b', permission: 'x:read', operationId: 'same' },
    ]);
    assert.deepEqual(
      dup.tools.map((t) => t.name),
      ['same', 'same_2'],
    );
  });
});

describe('MCP tool arguments', () => {
  const set = toolSet([
    { method: 'GET', path: '/orgs/{orgId}/invoices', permission: 'x:read' },
    {
      method: 'POST',
      path: '/orgs/{orgId}/invoices',
      permission: 'x:write',
      operationId: 'create',
      request: {
        parameters: [
          { name: 'orgId', in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z]+$' } },
          { name: 'dryRun', in: 'query', schema: { type: 'boolean' } },
          { name: 'x-idempotency-key', in: 'header', required: true },
          { name: 'body', in: 'query' },
        ],
        body: { required: true, schema: { type: 'object' } },
      },
    },
  ]);
  const [get, create] = set.tools as [(typeof set.tools)[0], (typeof set.tools)[0]];

  it('derive a hand-written endpoint schema from its path parameters, with a free query and no body for GET', () => {
    assert.deepEqual(get.definition.inputSchema.required, ['orgId']);
    assert.deepEqual(Object.keys(get.definition.inputSchema.properties as object), ['orgId', 'query']);
    assert.equal(get.body, 'none');
  });

  it('take an imported operation’s parameters and body, renaming a parameter that collides with `body`', () => {
    const properties = create.definition.inputSchema.properties as Record<string, unknown>;
    assert.deepEqual(Object.keys(properties), ['orgId', 'dryRun', 'x-idempotency-key', 'query_body', 'body']);
    assert.deepEqual(properties.orgId, { type: 'string', pattern: '^[a-z]+$' });
    assert.deepEqual(create.definition.inputSchema.required, ['orgId', 'x-idempotency-key', 'body']);
  });

  it('fill the path, the query, the headers and the JSON body', () => {
    const built = buildRequest(create, {
      orgId: 'a c',
      dryRun: true,
      'x-idempotency-key': 'k-1',
      query_body: 'q',
      body: { amount: 3 },
    });
    assert.equal(built.path, '/orgs/a%20c/invoices');
    assert.equal(built.query, 'dryRun=true&body=q');
    assert.deepEqual(built.headers, [['x-idempotency-key', 'k-1']]);
    assert.equal(built.body?.toString(), '{"amount":3}');
    assert.equal(buildRequest(get, { orgId: 'acme', query: { tag: ['a', 'b'] } }).query, 'tag=a&tag=b');
  });

  it('refuse what would change the path or is missing, as InvalidParams', () => {
    for (const args of [{ orgId: '..' }, { orgId: '' }, { orgId: { a: 1 } }, {}, { orgId: 'a', extra: 1 }])
      assert.throws(() => buildRequest(get, args), McpError, JSON.stringify(args));
    assert.throws(() => buildRequest(create, { orgId: 'a', 'x-idempotency-key': 'k' }), /"body" is required/);
  });
});
