import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { ERRORS } from '../../shared/errors.ts';
import { buildOpenApi } from './openapi.ts';
import { OPERATIONS } from './operations.ts';
import { renderAdminApiReference } from './reference.ts';

describe('admin API reference', () => {
  it('docs/admin-api.md is generated from the operations (run `gatehouse docs admin-api` after changing them)', async () => {
    const onDisk = await readFile(new URL('../../../docs/admin-api.md', import.meta.url), 'utf8');
    assert.equal(onDisk, renderAdminApiReference(OPERATIONS));
  });

  it('has one operation per method and path, with unique ids', () => {
    const keys = OPERATIONS.map((o) => `${o.method} ${o.path}`);
    assert.equal(new Set(keys).size, keys.length);
    assert.equal(new Set(OPERATIONS.map((o) => o.id)).size, OPERATIONS.length);
  });

  it('names every permission admin:<area>[:<verb>]', () => {
    for (const o of OPERATIONS)
      if (typeof o.permission === 'string' && o.permission !== 'public')
        assert.match(o.permission, /^admin:[a-z]+(?::[a-z]+)?$/, o.id);
  });

  it('builds an OpenAPI 3.1 document whose bodies are JSON Schemas', () => {
    const doc = buildOpenApi(OPERATIONS, '1.2.3') as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          { requestBody?: { content: Record<string, { schema: { type?: string; properties?: object } }> } }
        >
      >;
    };
    assert.equal(doc.openapi, '3.1.0');
    const body =
      doc.paths['/api/v1/workspaces/{workspace}/clients']!.post!.requestBody!.content['application/json']!.schema;
    assert.equal(body.type, 'object');
    assert.ok(body.properties && 'role' in body.properties);
    assert.ok(Object.keys(ERRORS).some((c) => c.startsWith('GH_ERR_ADMIN_')));
  });
});
