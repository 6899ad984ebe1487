/** Query parameters: declared per operation, checked before the handler, listed in the OpenAPI document. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAdminPlane, type AdminPlane } from '../../testing/admin-plane.ts';
import { buildOpenApi } from './openapi.ts';
import { OPERATIONS } from './operations.ts';

interface Problem {
  code: string;
  detail: string;
  errors?: { path: string; message: string }[];
}

describe('admin API query parameters', () => {
  let cp: AdminPlane;
  before(async () => {
    cp = await startAdminPlane();
  });
  after(() => cp?.close());
  const get = async (path: string) => {
    const res = await fetch(`${cp.base}${path}`, { headers: { authorization: `Bearer ${cp.token}` } });
    return { status: res.status, body: (await res.json()) as Problem & { items?: unknown[] } };
  };
  const alerts = (query: string) => get(`/api/v1/workspaces/${cp.workspace.name}/alerts${query}`);

  it('answers declared, well-formed parameters (an empty value counts as absent)', async () => {
    for (const q of ['', '?open=true&limit=5', '?open=false', '?limit=', '?open=&limit=1000']) {
      const r = await alerts(q);
      assert.equal(r.status, 200, `${q}: ${JSON.stringify(r.body)}`);
      assert.ok(Array.isArray(r.body.items));
    }
  });

  it('refuses a malformed value with a 400 naming the parameter and what it takes', async () => {
    const r = await alerts('?open=yes&limit=0');
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'GH_ERR_ADMIN_INVALID_BODY');
    assert.deepEqual(r.body.errors?.map((e) => e.path).sort(), ['query.limit', 'query.open']);
    assert.match(r.body.detail, /query\.limit: must be an integer from 1 to 1000/);
    assert.match(r.body.detail, /query\.open: must be "true" or "false"/);
    const big = await alerts('?limit=1001');
    assert.match(big.body.detail, /query\.limit: must be an integer from 1 to 1000/);
    const time = await get(`/api/v1/workspaces/${cp.workspace.name}/security-events?since=yesterday`);
    assert.equal(time.status, 400);
    assert.match(time.body.detail, /query\.since: must be an ISO 8601 timestamp or a duration/);
  });

  it('refuses an unknown or repeated parameter, saying which ones the operation takes', async () => {
    const typo = await alerts('?limt=5');
    assert.equal(typo.status, 400);
    assert.equal(typo.body.detail, 'query.limt: unknown query parameter; this operation takes open, limit, before');
    const twice = await alerts('?limit=5&limit=6');
    assert.equal(twice.status, 400);
    assert.equal(twice.body.detail, 'query.limit: given 2 times; give it once');
    const none = await get('/api/v1/me?verbose=1');
    assert.equal(none.status, 400);
    assert.equal(none.body.detail, 'query.verbose: unknown query parameter; this operation takes none');
  });

  it('lists every declared parameter in the OpenAPI document, typed for clients', () => {
    const doc = buildOpenApi(OPERATIONS, '0') as {
      paths: Record<string, Record<string, { operationId: string; parameters?: Record<string, unknown>[] }>>;
    };
    const byId = new Map(
      Object.values(doc.paths)
        .flatMap((methods) => Object.values(methods))
        .map((op) => [op.operationId, op.parameters?.filter((p) => p.in === 'query') ?? []]),
    );
    assert.deepEqual(byId.get('listAlerts'), [
      {
        name: 'open',
        in: 'query',
        required: false,
        description: 'Only open alerts (true) or only resolved ones (false); default both',
        schema: { type: 'boolean' },
      },
      {
        name: 'limit',
        in: 'query',
        required: false,
        description: 'At most this many (default 100)',
        schema: { type: 'integer', minimum: 1, maximum: 1000 },
      },
      {
        name: 'before',
        in: 'query',
        required: false,
        description: 'The `next` cursor of the previous page: the older alerts',
        schema: { type: 'string', maxLength: 500 },
      },
    ]);
    const series = byId.get('getAnalyticsSeries')!;
    assert.deepEqual(
      series.map((p) => p.name),
      ['from', 'to', 'gateway', 'collection', 'endpoint', 'client', 'agent', 'session', 'bucket', 'groupBy', 'top'],
    );
    assert.deepEqual((series.find((p) => p.name === 'bucket')!.schema as { enum: string[] }).enum, [
      '1m',
      '5m',
      '15m',
      '1h',
      '6h',
      '1d',
    ]);
    for (const id of ['listAuditLog', 'listCollections', 'listEntities', 'getSnapshot', 'listReleaseNotes'])
      assert.ok(byId.get(id)!.length > 0, `${id} declares its query parameters`);
  });
});
