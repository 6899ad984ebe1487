import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { bundleSpecFile } from './bundle.ts';
import { importOpenApi, type ImportOptions, routedTemplate } from './import.ts';
import { methodTemplatePermission, normaliseOperationId } from './permission-rules.ts';

const FIXTURES = new URL('../../../test/fixtures/openapi/', import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, FIXTURES), 'utf8');

/** A minimal 3.1 document around `paths` (and optional root fields). */
function doc(paths: Record<string, Record<string, unknown>>, extra: Record<string, unknown> = {}) {
  // Each path declares its template's parameters, as OpenAPI requires.
  const declared = Object.fromEntries(
    Object.entries(paths).map(([path, item]) => {
      const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
      if (names.length === 0) return [path, item];
      const parameters = names.map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } }));
      return [path, { parameters, ...item }];
    }),
  );
  return { openapi: '3.1.0', info: { title: 'test', version: '1' }, paths: declared, ...extra };
}
const op = (fields: Record<string, unknown> = {}) => ({ responses: { '200': { description: 'ok' } }, ...fields });

async function endpoints(document: object | string, options: ImportOptions = {}) {
  const result = await importOpenApi(document, options);
  if (!result.ok) assert.fail(`import failed: ${JSON.stringify(result.problems, null, 2)}`);
  return result.spec;
}

async function problems(document: object | string, options: ImportOptions = {}) {
  const result = await importOpenApi(document, options);
  assert.equal(result.ok, false, 'the import should have failed');
  return (result as { problems: { pointer: string; message: string; line?: number; column?: number }[] }).problems;
}

describe('the permission of an operation', () => {
  const oauth = {
    components: {
      securitySchemes: {
        oauth: { type: 'oauth2', flows: { clientCredentials: { tokenUrl: 'https://x/t', scopes: {} } } },
        key: { type: 'apiKey', in: 'header', name: 'x-key' },
      },
    },
  };

  it('is x-gatehouse-permission on the operation, before its security scopes and operationId', async () => {
    const spec = await endpoints(
      doc(
        {
          '/a': {
            get: op({ operationId: 'listA', security: [{ oauth: ['a:read'] }], 'x-gatehouse-permission': 'a:list' }),
          },
        },
        oauth,
      ),
    );
    assert.equal(spec.endpoints[0]!.permission, 'a:list');
    assert.equal(spec.endpoints[0]!.permissionSets, undefined);
  });

  it('is x-gatehouse-permission on the path item for its operations that have none of their own', async () => {
    const spec = await endpoints(
      doc({
        '/a': {
          'x-gatehouse-permission': 'a:any',
          get: op(),
          post: op({ 'x-gatehouse-permission': 'a:write' }),
        },
      }),
    );
    assert.deepEqual(
      spec.endpoints.map((e) => [e.method, e.permission]),
      [
        ['GET', 'a:any'],
        ['POST', 'a:write'],
      ],
    );
  });

  it('is the one scope of a single security requirement', async () => {
    const spec = await endpoints(
      doc({ '/a': { get: op({ operationId: 'x', security: [{ oauth: ['a:read'] }] }) } }, oauth),
    );
    assert.equal(spec.endpoints[0]!.permission, 'a:read');
    assert.equal(spec.endpoints[0]!.permissionSets, undefined);
  });

  it('reads the requirement list as OR and each requirement object as AND (permission sets)', async () => {
    const spec = await endpoints(
      doc(
        {
          '/or': { get: op({ security: [{ oauth: ['a:read'] }, { oauth: ['a:admin'] }] }) },
          '/and': { get: op({ security: [{ oauth: ['b:write', 'a:read'] }] }) },
          '/and-across-schemes': { get: op({ security: [{ oauth: ['a:read'], key: [] }] }) },
        },
        oauth,
      ),
    );
    const [or, and, across] = spec.endpoints;
    assert.deepEqual(or!.permissionSets, [['a:read'], ['a:admin']]);
    assert.equal(or!.permission, 'a:read');
    assert.deepEqual(and!.permissionSets, [['a:read', 'b:write']], 'an AND set is sorted');
    assert.equal(across!.permission, 'a:read', 'a scheme without scopes adds no permission to an AND');
    assert.equal(across!.permissionSets, undefined);
  });

  it('makes a requirement without scopes an alternative that needs the operation’s own permission', async () => {
    const spec = await endpoints(
      doc({ '/a': { get: op({ operationId: 'getA', security: [{ oauth: ['a:read'] }, { key: [] }] }) } }, oauth),
    );
    assert.deepEqual(spec.endpoints[0]!.permissionSets, [['a:read'], ['get-a']]);
  });

  it('inherits the document’s security, and an operation’s own security replaces it', async () => {
    const spec = await endpoints(
      doc(
        { '/a': { get: op(), post: op({ security: [{ oauth: ['a:write'] }] }) } },
        { ...oauth, security: [{ oauth: ['a:read'] }] },
      ),
    );
    assert.deepEqual(
      spec.endpoints.map((e) => e.permission),
      ['a:read', 'a:write'],
    );
  });

  it('is the normalised operationId when no scope applies', async () => {
    const spec = await endpoints(
      doc({ '/a': { get: op({ operationId: 'invoices.list', security: [{ key: [] }] }) } }, oauth),
    );
    assert.equal(spec.endpoints[0]!.permission, 'invoices:list');
  });

  it('is METHOD and template without an operationId', async () => {
    const spec = await endpoints(doc({ '/users/{id}/orders': { delete: op() } }));
    assert.equal(spec.endpoints[0]!.permission, 'delete:users:id:orders');
  });

  it('refuses a scope that is not a permission name, with its pointer', async () => {
    const found = await problems(
      doc({ '/a': { get: op({ security: [{ oauth: ['https://x.example/read'] }] }) } }, oauth),
    );
    assert.equal(found.length, 1);
    assert.equal(found[0]!.pointer, '/paths/~1a/get/security/0/oauth/0');
    assert.match(found[0]!.message, /x-gatehouse-permission/);
  });

  it('refuses an x-gatehouse-permission that is not a permission name (wildcards included)', async () => {
    const found = await problems(doc({ '/a': { get: op({ 'x-gatehouse-permission': 'a:*' }) } }));
    assert.equal(found[0]!.pointer, '/paths/~1a/get/x-gatehouse-permission');
  });
});

describe('operationId and template normalisation', () => {
  it('follows the stated rule', () => {
    assert.equal(normaliseOperationId('invoices.list'), 'invoices:list');
    assert.equal(normaliseOperationId('listInvoices'), 'list-invoices');
    assert.equal(normaliseOperationId('repos/list-for-org'), 'repos:list-for-org');
    assert.equal(normaliseOperationId('Pets_GetByID'), 'pets-get-by-id');
    assert.equal(normaliseOperationId('get HTTPResponse'), 'get-http-response');
    assert.equal(normaliseOperationId('///'), undefined);
    assert.equal(normaliseOperationId('x'.repeat(200)), undefined);
    assert.equal(methodTemplatePermission('GET', '/'), 'get');
    assert.equal(methodTemplatePermission('PATCH', '/a/{b}/c~d'), 'patch:a:b:c-d');
  });
});

describe('public operations', () => {
  const document = doc({ '/health': { get: op({ security: [] }) }, '/me': { get: op({ security: [{}, { k: [] }] }) } });

  it('are public where the collection allows public endpoints', async () => {
    const spec = await endpoints(document, { publicEndpoints: true });
    assert.deepEqual(
      spec.endpoints.map((e) => e.public),
      [true, true],
    );
    assert.deepEqual(spec.warnings, []);
  });

  it('otherwise require their permission, and the import says so for each', async () => {
    const spec = await endpoints(document);
    assert.deepEqual(
      spec.endpoints.map((e) => e.public),
      [undefined, undefined],
    );
    assert.equal(spec.warnings.length, 2);
    assert.match(spec.warnings[0]!.message, /requires the permission "get:health"/);
    assert.equal(spec.warnings[0]!.pointer, '/paths/~1health/get/security');
  });

  it('follow x-gatehouse-public over the security requirements', async () => {
    const spec = await endpoints(
      doc({
        '/a': { get: op({ security: [], 'x-gatehouse-public': false }), post: op({ 'x-gatehouse-public': true }) },
      }),
      { publicEndpoints: true },
    );
    assert.deepEqual(
      spec.endpoints.map((e) => e.public),
      [undefined, true],
    );
  });
});

describe('path templates', () => {
  it('that collide are errors naming both operations and both locations', async () => {
    const text = stringify(
      doc({
        '/users/{id}': { get: op({ operationId: 'getUser' }) },
        '/users/{userId}': { get: op({ operationId: 'getUserAgain' }) },
      }),
    );
    const found = await problems(text);
    assert.equal(found.length, 1);
    assert.equal(found[0]!.pointer, '/paths/~1users~1{userId}');
    assert.match(
      found[0]!.message,
      /getUserAgain.*collides with "\/users\/\{id\}" \(getUser, at \/paths\/~1users~1\{id\}\)/,
    );
    const keyLine = text.split('\n').findIndex((l) => l.startsWith('  /users/{userId}:')) + 1;
    assert.equal(found[0]!.line, keyLine + 1, 'the line of the path item under its key');
  });

  it('of the same shape but other methods are allowed, with a warning', async () => {
    const spec = await endpoints(doc({ '/a/{x}': { get: op() }, '/a/{y}': { delete: op() } }));
    assert.equal(spec.endpoints.length, 2);
    assert.match(spec.warnings[0]!.message, /differ only in parameter names/);
  });

  it('that overlap are listed with the one that wins (the literal segment)', async () => {
    const spec = await endpoints(
      doc({ '/users/{id}': { get: op(), delete: op() }, '/users/me': { get: op() }, '/orders/me': { get: op() } }),
    );
    assert.deepEqual(spec.overlaps, [{ method: 'GET', wins: '/users/me', other: '/users/{id}' }]);
  });

  it('mixing parameters and text in a segment are routed as one parameter', async () => {
    assert.equal(routedTemplate('/compare/{base}...{head}'), '/compare/{base_head}');
    assert.equal(routedTemplate('/files/{name}.json'), '/files/{name}');
    const spec = await endpoints(doc({ '/files/{name}.json': { get: op() } }));
    assert.equal(spec.endpoints[0]!.path, '/files/{name}');
    assert.match(spec.warnings[0]!.message, /routed as "\/files\/\{name\}"/);
  });

  it('keep parameter names with "-" and "." (GitHub’s {enterprise-team})', async () => {
    const spec = await endpoints(doc({ '/teams/{enterprise-team}': { get: op() } }));
    assert.equal(spec.endpoints[0]!.path, '/teams/{enterprise-team}');
  });
});

describe('bad documents', () => {
  it('get every problem at once, each with its JSON pointer and YAML line:column', async () => {
    const text = [
      'openapi: 3.1.0',
      'info: {title: t, version: "1"}',
      'paths:',
      '  /a:',
      '    get:',
      '      x-gatehouse-cost: 0',
      '      responses: {"200": {description: ok}}',
      '  /b/:',
      '    get:',
      '      responses: {"200": {description: ok}}',
      '  /c:',
      '    post:',
      '      operationId: 12',
      '      responses: {"200": {description: ok}}',
    ].join('\n');
    const found = await problems(text);
    const at = found.map((p) => `${p.pointer} ${p.line}:${p.column}`);
    assert.ok(at.includes('/paths/~1a/get/x-gatehouse-cost 6:25'), at.join('\n'));
    assert.ok(at.includes('/paths/~1b~1 9:5'), at.join('\n'));
    assert.ok(at.includes('/paths/~1c/post/operationId 13:20'), at.join('\n'));
  });

  it('get the position of a JSON syntax error', async () => {
    const found = await problems('{\n  "openapi": "3.1.0",\n  "info": }');
    assert.equal(found.length, 1);
    assert.equal(found[0]!.line, 3);
    assert.match(found[0]!.message, /not valid JSON/);
  });

  it('name a reference that points at nothing', async () => {
    const found = await problems(
      doc({ '/a': { get: op({ parameters: [{ $ref: '#/components/parameters/Nope' }] }) } }),
      { validateRequests: true },
    );
    assert.ok(
      found.some((p) => p.pointer === '/paths/~1a/get/parameters/0/$ref' && /points at nothing/.test(p.message)),
    );
  });

  it('refuse what is not OpenAPI 2.0, 3.0 or 3.1', async () => {
    const found = await problems({ openapi: '4.0.0', paths: {} });
    assert.match(found[0]!.message, /found "4\.0\.0"/);
  });
});

describe('an import into a collection served as an MCP server', () => {
  it('keeps every operation’s request schemas, without turning validation on', async () => {
    const document = doc({
      '/a/{id}': { get: op({ parameters: [{ name: 'q', in: 'query', schema: { type: 'integer' } }] }) },
    });
    const plain = await endpoints(document);
    assert.equal(plain.endpoints[0]!.request, undefined);
    const mcp = await endpoints(document, { mcp: true });
    const e = mcp.endpoints[0]!;
    assert.deepEqual(
      e.request?.parameters?.map((p) => `${p.in} ${p.name}`),
      ['path id', 'query q'],
    );
    assert.equal(e.validate, undefined);
  });
});

describe('real public documents', () => {
  it('imports the Swagger Petstore (OpenAPI 3.0, YAML): scopes as AND sets, operationIds, the server path', async () => {
    const spec = await endpoints(fixture('petstore.yaml'));
    assert.equal(spec.version, '3.0');
    assert.equal(spec.endpoints.length, 20);
    assert.equal(spec.serverBasePath, '/v2');
    const byId = new Map(spec.endpoints.map((e) => [e.operationId, e]));
    assert.deepEqual(byId.get('addPet')!.permissionSets, [['read:pets', 'write:pets']]);
    assert.equal(byId.get('getPetById')!.permission, 'get-pet-by-id'); // api_key: authentication only
    assert.equal(byId.get('getPetById')!.summary, 'Find pet by ID');
    assert.equal(spec.overlaps.length, 4);
  });

  it('imports the same Petstore as Swagger 2.0 with the same endpoints', async () => {
    const three = await endpoints(fixture('petstore.yaml'));
    const two = await endpoints(fixture('petstore-swagger2.yaml'));
    assert.equal(two.version, '2.0');
    assert.equal(two.serverBasePath, '/v2');
    const key = (e: { method: string; path: string; permission: string }) => `${e.method} ${e.path} ${e.permission}`;
    assert.deepEqual(two.endpoints.map(key), three.endpoints.map(key));
  });

  it('imports the Petstore split across files (relative $refs) after bundling, with its schemas', async () => {
    const bundled = await bundleSpecFile(new URL('petstore-multi/openapi.yaml', FIXTURES).pathname);
    assert.ok(bundled.ok);
    const spec = await endpoints(bundled.document, { validateRequests: true });
    const single = await endpoints(fixture('petstore.yaml'));
    assert.deepEqual(
      spec.endpoints.map((e) => e.permission),
      single.endpoints.map((e) => e.permission),
    );
    assert.ok(Object.keys(spec.schemas!).some((k) => k.endsWith('.Pet')));
  });

  it('reports a missing file of a multi-file document', async () => {
    const bundled = await bundleSpecFile(new URL('petstore-multi/missing.yaml', FIXTURES).pathname);
    assert.equal(bundled.ok, false);
  });

  it('imports Train Travel (OpenAPI 3.1, JSON) and Scalar Galaxy (3.1, YAML)', async () => {
    const train = await endpoints(fixture('train-travel.json'));
    assert.equal(train.version, '3.1');
    assert.deepEqual(train.endpoints.map((e) => `${e.method} ${e.path} ${e.permission}`).slice(0, 4), [
      'GET /stations read',
      'GET /trips read',
      'GET /bookings read',
      'POST /bookings write',
    ]);
    const galaxy = await endpoints(fixture('galaxy.yaml'), { publicEndpoints: true });
    assert.equal(galaxy.endpoints.filter((e) => e.public).length, 4);
  });

  it('imports circular schemas, keeping the cycle as a reference', async () => {
    const spec = await endpoints(fixture('schema-circular.yaml'), { validateRequests: true });
    assert.equal(spec.endpoints.length, 3);
    assert.match(JSON.stringify(spec.schemas), /urn:gatehouse:schemas#\/\$defs\/ZoneOffset"/);
  });

  it('imports the AND/OR security examples', async () => {
    const spec = await endpoints(fixture('security-multiple.yaml'));
    const byPath = new Map(spec.endpoints.map((e) => [e.path, e]));
    assert.equal(byPath.get('/anything/and')!.permission, 'write:things');
    assert.deepEqual(byPath.get('/anything/or')!.permissionSets, [['write:things'], ['post:anything:or']]);
    assert.equal(byPath.get('/anything/many-and-or')!.permission, 'post:anything:many-and-or');
  });
});
