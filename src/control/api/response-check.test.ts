import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { z } from 'zod';
import { RateLimitSchema } from '../../config/schema.ts';
import { operation, type ControlContext } from './operation.ts';
import { OPERATIONS } from './operations.ts';
import { responseCheckEnabled, responseProblems } from './response-check.ts';
import { createAdminServer } from './server.ts';

const Thing = z.object({
  id: z.string(),
  count: z.int(),
  note: z.string().optional(),
  tags: z.array(z.enum(['a', 'b'])),
});

describe('admin API response checking', () => {
  it('accepts a body its schema describes, after a JSON round trip', () => {
    assert.deepEqual(responseProblems(Thing, { id: 'x', count: 2, tags: ['a'], note: undefined }), []);
  });

  it('names a member the schema does not declare, a wrong type, a missing field and a value outside an enum', () => {
    assert.deepEqual(responseProblems(Thing, { id: 'x', count: 2, tags: ['a'], secret: 'y' }), [
      'secret: is not in the schema',
    ]);
    assert.deepEqual(responseProblems(Thing, { id: 'x', count: 2.5, tags: [] }), [
      'count: is number, the schema says integer',
    ]);
    assert.deepEqual(responseProblems(Thing, { count: 2, tags: ['c'] }), [
      'id: is missing',
      'tags[0]: "c" is not one of "a", "b"',
    ]);
    assert.deepEqual(responseProblems(z.object({ items: z.array(Thing) }), undefined), ['(body): is missing']);
  });

  it('reads the output side: a duration is milliseconds, however large, and is not parsed again as seconds', () => {
    // As input, 86_400_000 would be seconds (1000 days) and fail the 31-day limit.
    assert.deepEqual(responseProblems(RateLimitSchema, { limit: 10, window: 86_400_000 }), []);
    assert.equal(RateLimitSchema.safeParse({ limit: 10, window: 86_400_000 }).success, false);
  });

  it("describes the admin API's resources as it answers them: windows as written, a deleted role by its id", () => {
    const getClient = OPERATIONS.find((o) => o.id === 'getClient')!;
    const client = {
      id: 'cli_0123456789abcdefghij',
      workspace: 'wsp_0123456789abcdefghij',
      kind: 'standard',
      name: 'shop',
      role: '(deleted role rol_0123456789abcdefghij)',
      environments: ['PROD'],
      projects: ['default'],
      rateLimits: { key: { limit: 5, window: '1m' } },
      status: 'active',
      operator: false,
      keys: [],
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    };
    assert.deepEqual(responseProblems(getClient.response!, client, getClient.responseForm), []);
    const getCollection = OPERATIONS.find((o) => o.id === 'getCollection')!;
    const collection = {
      id: 'col_0123456789abcdefghij',
      environment: 'DEV',
      name: 'billing',
      basePath: '/billing',
      upstream: { url: 'http://127.0.0.1:9000', connectTimeout: '2s' },
      project: 'default',
      rateLimits: { key: { limit: 5, window: '1m' } },
      endpoints: [{ method: 'GET', path: '/x', permission: 'x:read' }],
      target: { type: 'cloud' },
      revision: 1,
      unpublishedChanges: true,
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    };
    assert.deepEqual(responseProblems(getCollection.response!, collection, getCollection.responseForm), []);
  });

  it('is on with NODE_ENV=test or GATEHOUSE_CHECK_RESPONSES=1 only', () => {
    assert.equal(responseCheckEnabled({ NODE_ENV: 'test' }), true);
    assert.equal(responseCheckEnabled({ GATEHOUSE_CHECK_RESPONSES: '1' }), true);
    assert.equal(responseCheckEnabled({ NODE_ENV: 'production', GATEHOUSE_CHECK_RESPONSES: '0' }), false);
  });

  describe('in the admin server', () => {
    const servers: ReturnType<typeof createAdminServer>[] = [];
    after(() => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))));

    const start = async (checkResponses: boolean) => {
      const op = operation({
        id: 'getThing',
        method: 'GET',
        path: '/api/v1/thing',
        summary: 'A thing',
        tag: 'Test',
        permission: 'public',
        response: Thing,
        handler: async () => ({ id: 'x', count: 1, tags: [], internal: 'not documented' }),
      });
      const plane = { logger: pino({ level: 'silent' }), now: () => Date.now() } as unknown as ControlContext;
      const server = createAdminServer({ plane, operations: [op], checkResponses });
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/thing`;
    };

    it('answers 500 when a handler returns a body its schema does not describe', async () => {
      const res = await fetch(await start(true));
      assert.equal(res.status, 500);
      assert.equal(((await res.json()) as { code: string }).code, 'GH_ERR_ADMIN_INTERNAL');
    });

    it('sends the body unchecked when checking is off (production)', async () => {
      const res = await fetch(await start(false));
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { internal: string }).internal, 'not documented');
    });
  });
});
