/**
 * OpenAPI end to end: a real control plane imports the Swagger Petstore through its admin API (dry run, apply,
 * re-import diff, problems, export round trip, permission catalogue), and its cloud gateway enforces the imported
 * operations exactly like hand-written endpoints.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { startControlPlane, type AdminApi, type ControlProcess } from './control-helpers.ts';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, startUpstream, type Upstream } from './helpers.ts';

const DEV = '/workspaces/default/environments/DEV';
const PETS = `${DEV}/collections/pets`;
const petstore = readFileSync(new URL('fixtures/openapi/petstore.yaml', import.meta.url), 'utf8');

describe('OpenAPI import through the admin API, enforced by the cloud gateway', () => {
  let cp: ControlProcess;
  let upstream: Upstream;
  let admin: AdminApi;

  before(async () => {
    upstream = await startUpstream();
    cp = await startControlPlane();
    admin = cp.api();
  });
  after(async () => {
    await cp?.stop();
    await upstream?.close();
  });

  it('answers a dry run with the diff and creates nothing', async () => {
    const res = await admin.post(`${PETS}/openapi`, {
      spec: petstore,
      dryRun: true,
      create: { project: 'default', upstream: upstream.url },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.applied, false);
    assert.equal(res.body.diff.operations.added.length, 20);
    assert.ok(res.body.diff.permissions.added.includes('write:pets'));
    assert.equal(res.body.overlaps.length, 4);
    assert.equal((await admin.get(PETS)).status, 404);
  });

  it('refuses a bad document with every problem, its pointer and line, and changes nothing', async () => {
    const broken = petstore
      .replace('operationId: getPetById', 'operationId: getPetById\n      x-gatehouse-permission: "pets read"')
      .replace(
        "'/user/{username}':",
        "'/user/{name}':\n    get:\n      responses: {'200': {description: x}}\n  '/user/{username}':",
      );
    const res = await admin.post(`${PETS}/openapi`, {
      spec: broken,
      create: { project: 'default', upstream: upstream.url },
    });
    assert.equal(res.status, 422, JSON.stringify(res.body));
    assert.equal(res.body.code, 'GH_ERR_ADMIN_OPENAPI_INVALID');
    const pointers = res.body.errors.map((e: { pointer: string }) => e.pointer);
    assert.ok(pointers.includes('/paths/~1pet~1{petId}/get/x-gatehouse-permission'), pointers.join('\n'));
    assert.ok(pointers.includes('/paths/~1user~1{username}'), pointers.join('\n'));
    assert.ok(res.body.errors.every((e: { line?: number }) => typeof e.line === 'number'));
    assert.equal((await admin.get(PETS)).status, 404);
  });

  it('applies as a new draft, and once published the gateway enforces the permission sets', async () => {
    const res = await admin.post(`${PETS}/openapi`, {
      spec: petstore,
      create: { project: 'default', upstream: upstream.url },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual([res.body.applied, res.body.created, res.body.revision], [true, true, 1]);
    const draft = await admin.get(PETS);
    assert.equal(draft.body.basePath, '/v2', "the servers' path");
    assert.equal(draft.body.stripBasePath, false);
    assert.equal(draft.body.unpublishedChanges, true, 'an import never publishes by itself');
    assert.equal((await admin.post(`${PETS}/publish`)).status, 201);

    const token = async (role: string, permissions: string[]) => {
      assert.equal((await admin.post('/workspaces/default/roles', { name: role, permissions })).status, 201);
      const client = await admin.post('/workspaces/default/clients', {
        name: role,
        role,
        environments: ['DEV'],
        projects: ['default'],
      });
      assert.equal(client.status, 201, JSON.stringify(client.body));
      return client.body.token as string;
    };
    const reader = await token('pet-reader', ['read:pets']);
    const keeper = await token('pet-keeper', ['read:pets', 'write:pets']);
    const call = async (key: string, path: string) => {
      const res = await fetch(`${cp.gatewayUrl}/default/dev/v2${path}`, {
        headers: { authorization: `Bearer ${key}` },
      });
      const body = await res.text();
      return { status: res.status, body };
    };
    // findPetsByStatus needs read:pets AND write:pets (one security requirement with both scopes).
    const refused = await call(reader, '/pet/findByStatus?status=available');
    assert.equal(refused.status, 403);
    assert.match(refused.body, /GH_ERR_AUTH_FORBIDDEN_ENDPOINT/);
    const allowed = await call(keeper, '/pet/findByStatus?status=available');
    assert.equal(allowed.status, 200, allowed.body);
    // Forwarded under /v2 (the cloud gateway's tenant prefix comes first: its base path is /<workspace>/<env>/v2).
    assert.match(JSON.parse(allowed.body).url, /\/v2\/pet\/findByStatus\?status=available$/);
    // getPetById asks for an API key only: its own permission, which neither role grants.
    assert.equal((await call(keeper, '/pet/1')).status, 403);
    assert.equal((await call(keeper, '/pet/1/nothing')).status, 404);
  });

  it('lists the permission catalogue with each operation’s summary', async () => {
    const res = await admin.get(`${PETS}/permissions`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const byName = new Map(res.body.items.map((i: { permission: string }) => [i.permission, i]));
    const write = byName.get('write:pets') as {
      operations: { operationId: string; summary: string; together: string[] }[];
    };
    const add = write.operations.find((o) => o.operationId === 'addPet')!;
    assert.equal(add.summary, 'Add a new pet to the store');
    assert.deepEqual(add.together, ['read:pets']);
    assert.ok(byName.has('get-pet-by-id'));
  });

  it('shows a re-import’s diff: operations removed and changed, permissions gone, roles affected', async () => {
    const changed = parse(petstore) as { paths: Record<string, Record<string, Record<string, unknown>>> };
    delete changed.paths['/store/inventory'];
    changed.paths['/pet/findByStatus']!.get!['x-gatehouse-permission'] = 'pets:search';
    for (const item of Object.values(changed.paths))
      for (const op of Object.values(item))
        if (Array.isArray(op.security)) op.security = [{ petstore_auth: ['read:pets'] }];
    const res = await admin.post(`${PETS}/openapi`, { spec: stringify(changed), dryRun: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const diff = res.body.diff;
    assert.deepEqual(
      diff.operations.removed.map((o: { operationId: string }) => o.operationId),
      ['getInventory'],
    );
    const search = diff.operations.changed.find((o: { operationId: string }) => o.operationId === 'findPetsByStatus');
    assert.deepEqual(search.fields, ['permission', 'permissionSets']);
    // getPetById's api_key requirement became read:pets too: its own permission goes.
    assert.deepEqual(diff.permissions.removed, ['get-inventory', 'get-pet-by-id', 'write:pets']);
    assert.deepEqual(diff.permissions.added, ['pets:search']);
    assert.deepEqual(diff.roles, [{ role: 'pet-keeper', permissions: ['write:pets'], endpoints: [] }]);
    assert.equal((await admin.get(PETS)).body.revision, 1, 'a dry run writes nothing');
  });

  it('exports OpenAPI 3.1 that imports back without a change (round trip)', async () => {
    const exported = await admin.get(`${PETS}/openapi`);
    assert.equal(exported.status, 200, JSON.stringify(exported.body));
    assert.equal(exported.body.openapi, '3.1.0');
    assert.equal(exported.body.paths['/pet/{petId}'].get['x-gatehouse-permission'], 'get-pet-by-id');
    const before = await admin.get(PETS);
    const again = await admin.post(`${PETS}/openapi`, { spec: exported.body });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.diff.empty, true, JSON.stringify(again.body.diff));
    assert.equal(again.body.applied, false);
    const after = await admin.get(PETS);
    assert.equal(after.body.revision, before.body.revision);
    assert.deepEqual(after.body.endpoints, before.body.endpoints);
  });

  it('applies a changed document as the next draft revision', async () => {
    const changed = parse(petstore) as { paths: Record<string, unknown> };
    delete changed.paths['/store/inventory'];
    const res = await admin.post(`${PETS}/openapi`, { spec: changed });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual([res.body.applied, res.body.revision], [true, 2]);
    const draft = await admin.get(PETS);
    assert.equal(draft.body.endpoints.length, 19);
    assert.equal(draft.body.publishedVersion, 1);
    assert.equal(draft.body.unpublishedChanges, true);
  });

  it('imports a multi-file document with the CLI, and exports it back as a no-op import', async () => {
    const env = { GATEHOUSE_URL: cp.adminUrl, GATEHOUSE_TOKEN: cp.token };
    const spec = new URL('fixtures/openapi/petstore-multi/openapi.yaml', import.meta.url).pathname;
    // A collection that does not exist yet: the refusal names this command's flags, not the API body's fields.
    const base = ['collection', 'import', '--env', 'DEV', '--spec', spec, '--collection', 'multi', '--dry-run'];
    const missing = await runCli(base, { env });
    assert.equal(missing.code, 2, missing.stdout);
    assert.match(
      missing.stderr,
      /collection import: collection "multi" does not exist in DEV: give --project NAME and --upstream URL/,
    );
    assert.doesNotMatch(missing.stderr, /body\.create/);
    const half = await runCli([...base, '--project', 'default'], { env });
    assert.equal(half.code, 2, half.stdout);
    assert.match(half.stderr, /--upstream: /);
    assert.doesNotMatch(half.stderr, /body\.create/);
    const dry = await runCli(
      [
        'collection',
        'import',
        '--env',
        'DEV',
        '--spec',
        spec,
        '--collection',
        'multi',
        '--dry-run',
        '--project',
        'default',
        '--upstream',
        upstream.url,
      ],
      { env },
    );
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /Dry run: importing into "multi" in DEV would change:/);
    assert.match(dry.stdout, /\+ PUT \/pet \(read:pets\)/);
    assert.match(dry.stdout, /overlap: GET \/user\/login wins over \/user\/\{username\}/);
    const applied = await runCli(
      [
        'collection',
        'import',
        '--env',
        'DEV',
        '--spec',
        spec,
        '--collection',
        'multi',
        '--project',
        'default',
        '--upstream',
        upstream.url,
        '--base-path',
        '/multi',
      ],
      { env },
    );
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /Created collection "multi" in DEV: draft revision 1/);
    const draft = await admin.get(`${DEV}/collections/multi`);
    assert.equal(draft.body.endpoints.length, 20);
    assert.ok(Object.keys(draft.body.schemas ?? {}).length === 0, 'no schemas kept without request validation');

    const dir = await mkdtemp(join(tmpdir(), 'gatehouse-openapi-'));
    try {
      const out = join(dir, 'multi.yaml');
      const exported = await runCli(['collection', 'export', '--env', 'DEV', '--collection', 'multi', '--out', out], {
        env,
      });
      assert.equal(exported.code, 0, exported.stderr);
      assert.match(await readFile(out, 'utf8'), /x-gatehouse-permission: get-pet-by-id/);
      const again = await runCli(['collection', 'import', '--env', 'DEV', '--spec', out, '--collection', 'multi'], {
        env,
      });
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /already matches the document: nothing changed/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('prints every problem of a bad document with FILE:LINE:COLUMN and exits 2', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gatehouse-openapi-'));
    try {
      const file = join(dir, 'bad.yaml');
      const { writeFile } = await import('node:fs/promises');
      await writeFile(
        file,
        petstore.replace('operationId: getPetById', 'operationId: getPetById\n      x-gatehouse-cost: -1'),
      );
      const r = await runCli(['collection', 'import', '--env', 'DEV', '--spec', file, '--collection', 'pets'], {
        env: { GATEHOUSE_URL: cp.adminUrl, GATEHOUSE_TOKEN: cp.token },
      });
      assert.equal(r.code, 2, r.stdout);
      assert.match(
        r.stderr,
        new RegExp(
          `${file}:\\d+:\\d+ /paths/~1pet~1\\{petId\\}/get/x-gatehouse-cost: must be an integer from 1 to 1000`,
        ),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
