/** The telemetry admin API on a real admin server and SQLite store: what each caller sees. */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { CollectionInputSchema } from '../../config/resources.ts';
import { generateKey } from '../../shared/api-key.ts';
import { newId, nowIso } from '../ids.ts';
import { openStore } from '../store/open.ts';
import type { GatewayRecord, Store, WorkspaceRecord } from '../store/store.ts';
import { createTelemetryIngest } from '../telemetry/ingest.ts';
import { createAdminClient, createWorkspace } from '../workspaces.ts';
import { newCollection } from './collection-routes.ts';
import type { ControlContext } from './operation.ts';
import { OPERATIONS } from './operations.ts';
import { createAdminServer } from './server.ts';

const T0 = Date.parse('2026-03-01T10:30:00.000Z');
const M = (minutesAgo: number) => nowIso(T0 - minutesAgo * 60_000 - (T0 % 60_000));

describe('the telemetry admin API', () => {
  let store: Store;
  let server: Server;
  let base = '';
  let ws: WorkspaceRecord;
  let admin = '';
  /** Holds admin:telemetry:read for PROD and the project payments only. */
  let watcher = '';
  /** Holds no telemetry permission. */
  let outsider = '';
  /** The id of the client the last `client(…)` call made. */
  let lastClientId = '';
  let watcherId = '';
  const eu1: GatewayRecord = {
    id: 'gw_eu1',
    workspaceId: '',
    environment: 'PROD',
    name: 'eu-1',
    installMethod: 'docker',
    createdAt: nowIso(T0),
    updatedAt: nowIso(T0),
  };
  const dev1: GatewayRecord = { ...eu1, id: 'gw_dev1', environment: 'DEV', name: 'dev-1' };

  const get = async (path: string, token: string) => {
    const res = await fetch(`${base}/api/v1/workspaces/acme${path}`, { headers: { authorization: `Bearer ${token}` } });
    return {
      status: res.status,
      body: (await res.json()) as {
        items: Record<string, unknown>[];
        gateways?: Record<string, unknown>[];
        code?: string;
        detail?: string;
      },
    };
  };
  const rows = (items: Record<string, unknown>[]) =>
    items.map((r) => `${r.gatewayName} ${r.collection} ${r.endpoint} ${r.status} ×${r.count}`);

  before(async () => {
    store = await openStore({ databaseUrl: ':memory:' });
    ws = await store.transaction((tx) =>
      createWorkspace(
        tx,
        { name: 'acme', environments: ['DEV', 'PROD'], devEnvironment: 'DEV', projects: ['payments', 'hr'] },
        T0,
      ),
    );
    for (const g of [eu1, dev1]) await store.insertGateway({ ...g, workspaceId: ws.id });
    const collection = async (environment: string, name: string, project: string, target: unknown) => {
      const spec = CollectionInputSchema.parse({
        name,
        basePath: `/${name}`,
        upstream: 'http://127.0.0.1:1',
        project,
        target,
        endpoints: [{ method: 'GET', path: '/x', permission: 'x:read' }],
      });
      await store.insertCollection(newCollection(ws, environment, name, project, spec, nowIso(T0)));
    };
    await collection('PROD', 'billing', 'payments', { type: 'edge', gateway: 'eu-1' });
    await collection('PROD', 'people', 'hr', { type: 'edge', gateway: 'eu-1' });
    await collection('DEV', 'billing', 'payments', { type: 'edge', gateway: 'dev-1' });
    await collection('PROD', 'reports', 'payments', { type: 'cloud' });
    await collection('DEV', 'shared', 'payments', { type: 'cloud' });
    await collection('PROD', 'shared', 'payments', { type: 'cloud' });
    await collection('PROD', 'mixed', 'payments', { type: 'cloud' });
    await collection('TEST', 'mixed', 'hr', { type: 'cloud' });

    admin = (await store.transaction((tx) => createAdminClient(tx, ws, { name: 'admin' }, T0))).token;
    const client = async (permissions: string[]) => {
      const roleId = newId('rol');
      await store.insertRole({
        id: roleId,
        workspaceId: ws.id,
        name: `r-${roleId}`,
        permissions,
        endpoints: [],
        createdAt: nowIso(T0),
        updatedAt: nowIso(T0),
      });
      const id = newId('cli');
      await store.insertClient({
        id,
        workspaceId: ws.id,
        kind: 'standard',
        name: id,
        roleId,
        environments: ['PROD'],
        projects: ['payments'],
        status: 'active',
        operator: false,
        createdAt: nowIso(T0),
        updatedAt: nowIso(T0),
      });
      const key = generateKey();
      await store.insertKey({ id: key.id, clientId: id, hash: key.hash, createdAt: nowIso(T0) });
      lastClientId = id;
      return key.key;
    };
    watcher = await client(['admin:telemetry:read']);
    watcherId = lastClientId;
    outsider = await client(['admin:workspaces:read']);

    const row = (
      gatewayId: string,
      minute: string,
      collection: string,
      endpoint: string,
      status: number,
      count: number,
    ) => ({
      workspaceId: ws.id,
      gatewayId,
      minute,
      collection,
      endpoint,
      clientId: '-',
      status,
      count,
      durationMsSum: count,
      durationMsMax: 1,
    });
    await store.addTelemetry([
      row('gw_eu1', M(5), 'billing', 'GET /x', 200, 10),
      row('gw_eu1', M(5), 'people', 'GET /x', 200, 4),
      row('gw_eu1', M(5), '-', '-', 404, 2),
      row('gw_eu1', M(5), 'deleted', 'GET /x', 200, 1),
      row('gw_dev1', M(5), 'billing', 'GET /x', 200, 3),
      row('cloud', M(5), 'reports', 'GET /x', 200, 5),
      row('cloud', M(5), 'shared', 'GET /x', 200, 6),
      row('cloud', M(5), 'mixed', 'GET /x', 200, 7),
      row('gw_eu1', M(90), 'billing', 'GET /x', 200, 100),
    ]);
    const event = (gatewayId: string, collection: string | undefined, at: string) => ({
      id: newId('col'),
      workspaceId: ws.id,
      gatewayId,
      at,
      kind: 'auth_failure',
      reason: 'GH_ERR_AUTH_INVALID_KEY',
      ...(collection ? { collection } : {}),
      keyLabel: 'ghk_AbCd…',
      ip: '203.0.113.7',
    });
    await store.insertSecurityEvents([
      event('gw_eu1', 'billing', M(3)),
      event('gw_eu1', 'people', M(2)),
      event('cloud', 'reports', M(1)),
      event('gw_dev1', 'billing', M(0.5)),
      event('gw_eu1', 'billing', M(60 * 30)),
    ]);
    const alert = (gatewayId: string, kind: string, minutesAgo: number, resolved = false) => ({
      id: newId('col'),
      workspaceId: ws.id,
      gatewayId,
      kind,
      key: `${kind}:${gatewayId}`,
      message: `${kind} on ${gatewayId}`,
      raisedAt: M(minutesAgo),
      ...(resolved ? { resolvedAt: M(0) } : {}),
      deliveryAttempts: 0,
    });
    await store.insertAlert(alert('gw_eu1', 'connectivity_lost', 3));
    await store.insertAlert(alert('gw_dev1', 'version_mismatch', 2));
    await store.insertAlert(alert('cloud', 'auth_failure_spike', 1, true));

    const ingest = createTelemetryIngest({ store, logger: pino({ level: 'silent' }), now: () => T0 });
    const access = (requestId: string, collection: string) => ({
      at: nowIso(T0),
      requestId,
      method: 'GET',
      path: '/x',
      status: 200,
      durationMs: 1,
      clientId: '',
      collection,
    });
    await ingest.ingest({ ...eu1, workspaceId: ws.id }, 'i-1', {
      instanceId: 'i-1',
      sequence: 1,
      requests: [],
      securityEvents: [],
      accessEvents: [access('r-1', 'billing'), access('r-2', 'people'), access('r-3', '')],
      dropped: 12,
      quotaUsage: [
        {
          collection: 'billing',
          scope: 'client',
          subject: watcherId,
          period: 'daily',
          periodId: '2026-03-01',
          units: 7,
        },
        {
          collection: 'people',
          scope: 'client',
          subject: watcherId,
          period: 'daily',
          periodId: '2026-03-01',
          units: 2,
        },
        { collection: 'billing', scope: 'org', subject: 'acme-org', period: 'monthly', periodId: '2026-03', units: 40 },
      ],
    });

    const plane = {
      store,
      logger: pino({ level: 'silent' }),
      now: () => T0,
      cloudUrl: 'http://127.0.0.1:1',
      changed: async () => {},
      entitiesChanged: async () => {},
      telemetry: ingest,
      edge: {
        caPin: `sha256:${'0'.repeat(64)}`,
        endpoints: {
          bootstrap: 'https://127.0.0.1:1',
          sync: '127.0.0.1:2',
          telemetry: '127.0.0.1:2',
          serverName: 'gatehouse-control-plane',
        },
        softwareVersion: '1.0.0',
        disconnectGateway: () => {},
      },
    } satisfies ControlContext;
    server = createAdminServer({ plane, operations: OPERATIONS, checkResponses: true });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await store?.close();
  });

  it('serves the request aggregates of the last hour by default, all of them to a caller holding every scope', async () => {
    const { status, body } = await get('/telemetry', admin);
    assert.equal(status, 200);
    assert.deepEqual(rows(body.items).sort(), [
      'cloud mixed GET /x 200 ×7',
      'cloud reports GET /x 200 ×5',
      'cloud shared GET /x 200 ×6',
      'dev-1 billing GET /x 200 ×3',
      'eu-1 - - 404 ×2',
      'eu-1 billing GET /x 200 ×10',
      'eu-1 deleted GET /x 200 ×1',
      'eu-1 people GET /x 200 ×4',
    ]);
    assert.deepEqual(body.gateways, [
      { gateway: 'gw_eu1', gatewayName: 'eu-1', batches: 1, lastBatchAt: nowIso(T0), dropped: 12 },
    ]);
    assert.equal(rows((await get('/telemetry?since=2h', admin)).body.items).length, 9);
    assert.equal(
      rows((await get(`/telemetry?since=${encodeURIComponent(M(90))}&gateway=eu-1`, admin)).body.items).length,
      5,
    );
    assert.deepEqual(rows((await get('/telemetry?gateway=cloud', admin)).body.items).sort(), [
      'cloud mixed GET /x 200 ×7',
      'cloud reports GET /x 200 ×5',
      'cloud shared GET /x 200 ×6',
    ]);
  });

  it('shows a scoped caller only the collections within its environments and projects', async () => {
    const { body } = await get('/telemetry', watcher);
    // shared: one of its cloud collections (DEV) is outside the caller's environments; mixed: one is in project hr.
    assert.deepEqual(rows(body.items).sort(), ['cloud reports GET /x 200 ×5', 'eu-1 billing GET /x 200 ×10']);
    assert.equal(
      (await get('/telemetry?gateway=dev-1', watcher)).status,
      404,
      "another environment's gateway does not exist for it",
    );
    assert.deepEqual(
      (await get('/security-events', watcher)).body.items.map((e) => `${e.gatewayName} ${e.collection}`),
      ['cloud reports', 'eu-1 billing'],
    );
    assert.deepEqual(
      (await get('/access-events', watcher)).body.items.map((e) => e.requestId),
      ['r-1'],
    );
    assert.deepEqual(
      (await get('/alerts', watcher)).body.items.map((a) => `${a.kind} ${a.gatewayName}`),
      ['auth_failure_spike cloud', 'connectivity_lost eu-1'],
    );
  });

  it('lists security events newest first, from the last 24 hours by default, never with a key', async () => {
    const { body } = await get('/security-events', admin);
    assert.deepEqual(
      body.items.map((e) => `${e.gatewayName} ${e.collection}`),
      ['dev-1 billing', 'cloud reports', 'eu-1 people', 'eu-1 billing'],
    );
    assert.deepEqual(Object.keys(body.items[0]!).sort(), [
      'at',
      'collection',
      'gateway',
      'gatewayName',
      'id',
      'ip',
      'keyLabel',
      'kind',
      'reason',
    ]);
    assert.equal((await get('/security-events?since=30d&limit=2', admin)).body.items.length, 2);
    assert.equal((await get('/security-events?since=30d', admin)).body.items.length, 5);
  });

  it('lists alerts, open ones only when asked', async () => {
    assert.deepEqual(
      (await get('/alerts', admin)).body.items.map((a) => a.kind),
      ['auth_failure_spike', 'version_mismatch', 'connectivity_lost'],
    );
    const open = (await get('/alerts?open=true', admin)).body.items;
    assert.deepEqual(
      open.map((a) => a.kind),
      ['version_mismatch', 'connectivity_lost'],
    );
    assert.deepEqual(Object.keys(open[0]!).sort(), [
      'deliveryAttempts',
      'gateway',
      'gatewayName',
      'id',
      'kind',
      'message',
      'raisedAt',
    ]);
    assert.deepEqual(
      (await get('/alerts?open=false', admin)).body.items.map((a) => a.kind),
      ['auth_failure_spike'],
    );
  });

  it("serves a client's and an org's quota usage per collection and period, within the caller's scope", async () => {
    const usage = (items: Record<string, unknown>[]) =>
      items.map((r) => `${r.collection} ${r.period} ${r.periodId} ${r.units}`);
    const all = await get(`/clients/${watcherId}/usage`, admin);
    assert.equal(all.status, 200, JSON.stringify(all.body));
    assert.deepEqual(usage(all.body.items), ['billing daily 2026-03-01 7', 'people daily 2026-03-01 2']);
    // The watcher holds the project payments only: the hr collection's row stays hidden.
    assert.deepEqual(usage((await get(`/clients/${watcherId}/usage`, watcher)).body.items), [
      'billing daily 2026-03-01 7',
    ]);
    assert.deepEqual((await get(`/clients/${watcherId}/usage?period=monthly`, admin)).body.items, []);
    assert.deepEqual(usage((await get('/orgs/acme-org/usage', admin)).body.items), ['billing monthly 2026-03 40']);
    assert.deepEqual((await get('/orgs/nobody/usage', admin)).body.items, []);
    const bad = await get(`/clients/${watcherId}/usage?period=weekly`, admin);
    assert.deepEqual([bad.status, bad.body.code], [400, 'GH_ERR_ADMIN_INVALID_BODY']);
    assert.equal((await get('/clients/cli_nobody/usage', admin)).status, 404);
    assert.equal((await get('/orgs/acme-org/usage', outsider)).status, 403);
  });

  it('needs admin:telemetry:read and checks its query', async () => {
    for (const path of ['/telemetry', '/security-events', '/access-events', '/alerts'])
      assert.equal((await get(path, outsider)).status, 403, path);
    const bad = async (path: string) => {
      const { status, body } = await get(path, admin);
      return `${status} ${body.detail}`;
    };
    assert.match(
      await bad('/telemetry?since=yesterday'),
      /^400 query\.since: must be an ISO 8601 timestamp or a duration/,
    );
    assert.match(await bad('/security-events?limit=0'), /^400 query\.limit/);
    assert.match(await bad('/alerts?open=maybe'), /^400 query\.open/);
    assert.match(await bad('/telemetry?gateway=nope'), /^404 edge gateway "nope" not found/);
  });
});
