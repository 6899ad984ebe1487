/** Telemetry ingest against a real SQLite store; the cloud gateway's telemetry from a real gateway on loopback. */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import { ServerSchema, SnapshotSchema } from '../../config/schema.ts';
import type { TelemetryBatch } from '../../config/telemetry.ts';
import type { GatewayInstance } from '../../gateway/instance.ts';
import { generateKey } from '../../shared/api-key.ts';
import { channels, type RequestEndEvent } from '../../gateway/observability/channels.ts';
import { startAlerting, type Alerting } from '../alerts/alerting.ts';
import { CloudGateway } from '../cloud-gateway.ts';
import { nowIso } from '../ids.ts';
import { openStore } from '../store/open.ts';
import type { GatewayRecord, Store, WorkspaceRecord } from '../store/store.ts';
import { createWorkspace } from '../workspaces.ts';
import { startCloudTelemetry } from './cloud.ts';
import { eventually } from '../../testing/eventually.ts';
import { createTelemetryIngest, TelemetryBatchError, type TelemetryIngest } from './ingest.ts';

const T0 = Date.parse('2026-03-01T10:00:30.000Z');
const MINUTE = '2026-03-01T10:00:00.000Z';

const batch = (sequence: number, fields: Partial<TelemetryBatch> = {}): TelemetryBatch => ({
  instanceId: 'i-1',
  sequence,
  requests: [
    {
      minute: MINUTE,
      collection: 'billing',
      endpoint: 'GET /invoices/{id}',
      clientId: 'cli_alice',
      status: 200,
      count: 3,
      durationMsSum: 6,
      durationMsMax: 4,
    },
  ],
  securityEvents: [],
  accessEvents: [],
  dropped: 0,
  quotaUsage: [],
  ...fields,
});
const badKey = (i: number) => ({
  at: nowIso(T0 - 1000),
  kind: 'auth_failure',
  reason: 'GH_ERR_AUTH_INVALID_KEY',
  collection: 'billing',
  clientId: '',
  keyLabel: `ghk_Ab${i}…`,
  ip: '203.0.113.7',
});

describe('telemetry ingest', () => {
  let store: Store;
  let workspace: WorkspaceRecord;
  let gateway: GatewayRecord;
  let ingest: TelemetryIngest;
  let alerting: Alerting;
  const logs: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    }),
  );
  const rows = async () =>
    (await store.listTelemetry(workspace.id, { since: MINUTE })).map(
      (r) =>
        `${r.gatewayId} ${r.collection} ${r.endpoint} ${r.clientId} ${r.status} ×${r.count} sum=${r.durationMsSum} max=${r.durationMsMax}`,
    );

  beforeEach(async () => {
    await alerting?.close();
    await store?.close();
    store = await openStore({ databaseUrl: ':memory:' });
    workspace = await store.transaction((tx) =>
      createWorkspace(
        tx,
        { name: 'acme', environments: ['DEV', 'PROD'], devEnvironment: 'DEV', projects: ['default'] },
        T0,
      ),
    );
    gateway = {
      id: 'gw_eu1',
      workspaceId: workspace.id,
      environment: 'PROD',
      name: 'eu-1',
      installMethod: 'docker',
      createdAt: nowIso(T0),
      updatedAt: nowIso(T0),
    };
    await store.insertGateway(gateway);
    alerting = startAlerting({
      store,
      logger,
      now: () => T0,
      softwareVersion: '1.0.0',
      authFailureThreshold: 20,
      intervalMs: 0,
    });
    ingest = createTelemetryIngest({ store, logger, now: () => T0, alerts: alerting, accessEventsKept: 3 });
    logs.length = 0;
  });

  after(async () => {
    await alerting?.close();
    await store?.close();
  });

  it('stores request aggregates under the gateway and its workspace, adding up batches and skipping resent ones', async () => {
    await ingest.ingest(gateway, 'i-1', batch(1));
    await ingest.ingest(gateway, 'i-1', batch(1)); // resent: its acknowledgement was lost
    await ingest.ingest(
      gateway,
      'i-1',
      batch(2, { requests: [{ ...batch(2).requests[0]!, count: 1, durationMsSum: 5, durationMsMax: 5 }] }),
    );
    await ingest.ingest(gateway, 'i-2', { ...batch(1), instanceId: 'i-2' }); // another instance of the gateway: its own sequence
    assert.deepEqual(await rows(), [`gw_eu1 billing GET /invoices/{id} cli_alice 200 ×7 sum=17 max=5`]);
  });

  it('adds up the quota usage gateways report, per client or org and calendar period, skipping resent batches', async () => {
    const usage = (units: number, periodId = '2026-03-01') => ({
      collection: 'billing',
      scope: 'client' as const,
      subject: 'cli_alice',
      period: 'daily' as const,
      periodId,
      units,
    });
    await ingest.ingest(gateway, 'i-1', batch(1, { quotaUsage: [usage(5)] }));
    await ingest.ingest(gateway, 'i-1', batch(1, { quotaUsage: [usage(5)] })); // resent
    await ingest.ingest(gateway, 'i-2', {
      ...batch(1, { quotaUsage: [usage(3), usage(4, '2026-03-02')] }),
      instanceId: 'i-2',
    });
    const stored = await store.listQuotaUsage(workspace.id, { scope: 'client', subject: 'cli_alice' });
    assert.deepEqual(
      stored.map((u) => `${u.collection} ${u.period} ${u.periodId} ${u.units}`),
      ['billing daily 2026-03-02 4', 'billing daily 2026-03-01 8'],
    );
    assert.deepEqual(await store.listQuotaUsage(workspace.id, { scope: 'org', subject: 'cli_alice' }), []);
  });

  it('skips a batch resent to another control-plane replica: its requests and quota units count once', async () => {
    // Two replicas: two ingests (each with its own memory of sequences) on one store.
    const other = createTelemetryIngest({ store, logger, now: () => T0, accessEventsKept: 3 });
    const usage = { collection: 'billing', scope: 'org' as const, subject: 'acme', period: 'monthly' as const };
    const sent = { ...batch(41, { quotaUsage: [{ ...usage, periodId: '2026-03', units: 6 }] }), instanceId: 'i-9' };
    await ingest.ingest(gateway, 'i-9', sent);
    await other.ingest(gateway, 'i-9', sent); // the acknowledgement was lost; the instance reconnected elsewhere
    const stored = await store.listQuotaUsage(workspace.id, { scope: 'org', subject: 'acme' });
    assert.deepEqual(
      stored.map((u) => u.units),
      [6],
    );
    assert.ok(
      logs.some((l) => /already stored by another replica/.test(String(l.msg))),
      'the resend is logged as one',
    );
    await other.ingest(gateway, 'i-9', { ...sent, sequence: 42 });
    assert.deepEqual(
      (await store.listQuotaUsage(workspace.id, { scope: 'org', subject: 'acme' })).map((u) => u.units),
      [12],
    );
  });

  it('accepts the batch as proto-loader decodes it: proto3 defaults, 64-bit integers as strings', async () => {
    await ingest.ingest(gateway, 'i-1', {
      instanceId: 'i-1',
      sequence: '1',
      dropped: '0',
      accessEvents: [],
      requests: [
        {
          minute: MINUTE,
          collection: '',
          endpoint: '',
          clientId: '',
          status: 404,
          count: '2',
          durationMsSum: 1,
          durationMsMax: 0.5,
        },
      ],
      securityEvents: [{ ...badKey(1), collection: '', clientId: '', keyLabel: '', ip: '' }],
    });
    assert.deepEqual(await rows(), ['gw_eu1 - - - 404 ×2 sum=1 max=0.5']);
    const [event] = await store.listSecurityEvents(workspace.id, { since: MINUTE });
    assert.deepEqual(
      Object.keys(event!).sort(),
      ['at', 'gatewayId', 'id', 'kind', 'reason', 'workspaceId'],
      'empty strings are absent fields',
    );
  });

  it('refuses a batch that breaks the contract with a TelemetryBatchError, storing nothing', async () => {
    await assert.rejects(
      ingest.ingest(gateway, 'i-1', { ...batch(1), requests: [{ ...batch(1).requests[0], minute: 'yesterday' }] }),
      (e: Error) => e instanceof TelemetryBatchError && /requests\[0\]\.minute/.test(e.message),
    );
    await assert.rejects(
      ingest.ingest(gateway, 'i-1', { ...batch(1), securityEvents: [{ ...badKey(1), keyLabel: generateKey().key }] }),
      TelemetryBatchError,
    );
    await assert.rejects(ingest.ingest(gateway, 'i-9', batch(1)), /instance i-1 on the stream of instance i-9/);
    await assert.rejects(ingest.ingest(gateway, 'i-1', null), TelemetryBatchError);
    assert.deepEqual(await rows(), []);
    await ingest.ingest(gateway, 'i-1', batch(1));
    assert.equal((await rows()).length, 1, 'a refused sequence is not remembered');
  });

  it('stores security events, and a burst of bad keys raises an alert', async () => {
    await ingest.ingest(gateway, 'i-1', batch(1, { securityEvents: Array.from({ length: 12 }, (_, i) => badKey(i)) }));
    assert.deepEqual(await store.listAlerts(workspace.id), []);
    await ingest.ingest(
      gateway,
      'i-2',
      batch(1, { instanceId: 'i-2', securityEvents: Array.from({ length: 8 }, (_, i) => badKey(i)) }),
    );
    const events = await store.listSecurityEvents(workspace.id, { since: MINUTE });
    assert.equal(events.length, 20);
    assert.deepEqual(
      { ...events[0], id: '-' },
      {
        id: '-',
        workspaceId: workspace.id,
        gatewayId: gateway.id,
        at: nowIso(T0 - 1000),
        kind: 'auth_failure',
        reason: 'GH_ERR_AUTH_INVALID_KEY',
        collection: 'billing',
        keyLabel: events[0]!.keyLabel,
        ip: '203.0.113.7',
      },
    );
    const [alert] = await store.listAlerts(workspace.id, { open: true });
    assert.equal(alert?.kind, 'auth_failure_spike');
  });

  it('deletes request aggregates and security events past the retention, at most once an hour', async () => {
    const DAY = 86_400_000;
    let t = T0;
    const pruning = createTelemetryIngest({ store, logger, now: () => t, retentionMs: 7 * DAY });
    await store.addTelemetry([
      { ...batch(0).requests[0]!, minute: nowIso(T0 - 8 * DAY), workspaceId: workspace.id, gatewayId: gateway.id },
    ]);
    const event = (id: string, at: number) => ({
      id,
      workspaceId: workspace.id,
      gatewayId: gateway.id,
      at: nowIso(at),
      kind: 'auth_failure',
      reason: 'GH_ERR_AUTH_INVALID_KEY',
    });
    await store.insertSecurityEvents([
      event('sev_old', T0 - 8 * DAY),
      event('sev_aging', T0 - 7 * DAY + 600_000),
      event('sev_kept', T0 - 6 * DAY),
    ]);
    const events = async () =>
      (await store.listSecurityEvents(workspace.id, { since: nowIso(T0 - 30 * DAY) })).map((e) => e.id);
    await pruning.ingest(gateway, 'i-1', batch(1));
    await waitFor(async () => (await events()).length === 2);
    assert.deepEqual(await events(), ['sev_kept', 'sev_aging']);
    assert.deepEqual(
      (await store.listTelemetry(workspace.id, { since: nowIso(T0 - 30 * DAY) })).map((r) => r.minute),
      [MINUTE],
    );
    await waitFor(async () =>
      logs.some((l) => l.msg === 'deleted security events past their retention' && l.events === 1),
    );

    // Within the hour nothing is deleted again, although sev_aging is past the retention by then; after it, it is.
    t = T0 + 30 * 60_000;
    await pruning.ingest(gateway, 'i-1', batch(2));
    // A pause, not a wait: nothing is to happen, so there is no event to wait for. It cannot fail a correct
    // implementation however slow the machine; it only gives a wrong one (a second deletion) time to show.
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await events(), ['sev_kept', 'sev_aging']);
    t = T0 + 61 * 60_000;
    await pruning.ingest(gateway, 'i-1', batch(3));
    await waitFor(async () => (await events()).length === 1);
    assert.deepEqual(await events(), ['sev_kept']);
  });

  it('counts what instances dropped, warns, and keeps the newest access events in memory', async () => {
    const access = (i: number) => ({
      at: nowIso(T0),
      requestId: `r-${i}`,
      method: 'GET',
      path: '/invoices/{id}',
      status: 200,
      durationMs: 1,
      clientId: 'cli_alice',
      collection: 'billing',
    });
    await ingest.ingest(gateway, 'i-1', batch(1, { dropped: 40, accessEvents: [access(1), access(2)] }));
    await ingest.ingest(gateway, 'i-1', batch(2, { dropped: 2, accessEvents: [access(3), access(4)] }));
    assert.deepEqual(
      { ...ingest.stats(gateway.id), lastBatchAt: '-' },
      { gatewayId: gateway.id, batches: 2, lastBatchAt: '-', dropped: 42 },
    );
    assert.equal(ingest.stats('gw_other'), undefined);
    const warnings = logs.filter((l) => l.level === 40);
    assert.deepEqual(
      warnings.map((w) => w.dropped),
      [40, 2],
    );
    assert.deepEqual(
      ingest.accessEvents(workspace.id).map((e) => e.requestId),
      ['r-4', 'r-3', 'r-2'],
      'newest first, at most accessEventsKept',
    );
    assert.deepEqual(
      ingest.accessEvents(workspace.id, { limit: 1 }).map((e) => [e.requestId, e.gatewayId, e.instanceId]),
      [['r-4', gateway.id, 'i-1']],
    );
    assert.deepEqual(ingest.accessEvents(workspace.id, { gatewayId: 'cloud' }), []);
    assert.equal(logs.filter((l) => l.msg === 'access event').length, 4, 'each logged at debug');
  });
});

describe('the cloud gateway telemetry', () => {
  const alice = generateKey();
  let upstream: Server;
  let cloud: CloudGateway;
  let gateway: GatewayInstance;
  let store: Store;
  let acme: WorkspaceRecord;
  let api = '';

  before(async () => {
    upstream = createServer((req, res) => {
      req.resume();
      res.end('{}');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    store = await openStore({ databaseUrl: ':memory:' });
    acme = await store.transaction((tx) =>
      createWorkspace(
        tx,
        { name: 'acme', environments: ['DEV', 'PROD'], devEnvironment: 'DEV', projects: ['default'] },
        T0,
      ),
    );
    // Snapshot input, not TokenExchangeSchema's output: its ttl is in ms, the snapshot's input ttl in seconds.
    const tokenExchange = { issuer: 'https://gatehouse.test', audience: 'cloud-test' };
    cloud = await CloudGateway.create({ logger: pino({ level: 'silent' }), server: ServerSchema.parse({}) });
    gateway = cloud.instance;
    // Tenants as the cloud gateway serves them: each compiled on its own, under /<workspace>/<environment>, with
    // the collections' own names (equal across tenants).
    const tenant = (ws: string, env: string) =>
      SnapshotSchema.parse({
        version: 1,
        tokenExchange,
        collections: [
          {
            name: 'billing',
            basePath: `/${ws}/${env.toLowerCase()}/billing`,
            upstream: upstreamUrl,
            project: 'default',
            environment: env,
            endpoints: [{ method: 'GET', path: '/invoices', permission: 'invoices:read' }],
          },
        ],
        roles: [{ name: 'reader', permissions: ['invoices:read'] }],
        clients: [
          { id: 'cli_alice', role: 'reader', environments: ['*'], projects: ['*'], keys: [{ hash: alice.hash }] },
        ],
      });
    assert.equal(
      (
        await cloud.update(
          new Map([
            ['acme/PROD', tenant('acme', 'PROD')],
            ['acme/DEV', tenant('acme', 'DEV')],
            ['ghost/PROD', tenant('ghost', 'PROD')],
          ]),
        )
      ).applied,
      true,
    );
    api = `http://127.0.0.1:${(await gateway.listen({ port: 0, host: '127.0.0.1', ops: false })).api.port}`;
  });

  after(async () => {
    await gateway?.close({ drainMs: 0 });
    await store?.close();
    await new Promise<void>((r) => {
      upstream.close(() => r());
      upstream.closeAllConnections();
    });
  });

  it("records the cloud gateway's traffic under gateway `cloud` in the workspace of each collection", async () => {
    const ingest = createTelemetryIngest({ store, logger: pino({ level: 'silent' }), now: () => T0 });
    const telemetry = startCloudTelemetry({
      gateway,
      ingest,
      store,
      logger: pino({ level: 'silent' }),
      intervalMs: 0,
      now: () => T0,
    });
    try {
      const ended = new Set<string>();
      const onEnd = (m: unknown) => void ended.add((m as RequestEndEvent).requestId);
      channels.requestEnd.subscribe(onEnd);
      after(() => channels.requestEnd.unsubscribe(onEnd));
      const call = async (path: string, key?: string) => {
        const res = await fetch(`${api}${path}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
        await res.arrayBuffer();
        // The response reaches the client a moment before the gateway records the request.
        const id = res.headers.get('x-request-id')!;
        await waitFor(async () => ended.has(id));
        return res.status;
      };
      assert.equal(await call('/acme/prod/billing/invoices', alice.key), 200);
      assert.equal(await call('/acme/dev/billing/invoices', alice.key), 200);
      assert.equal(await call('/acme/prod/billing/invoices', generateKey().key), 401);
      assert.equal(await call('/ghost/prod/billing/invoices', alice.key), 200, 'a workspace that no longer exists');
      assert.equal(await call('/acme/nowhere'), 404);
      await telemetry.flush();
      const rows = await store.listTelemetry(acme.id, { since: MINUTE });
      assert.deepEqual(
        rows.map((r) => `${r.gatewayId} ${r.collection} ${r.endpoint} ${r.clientId} ${r.status} ×${r.count}`),
        ['cloud billing GET /invoices - 401 ×1', 'cloud billing GET /invoices cli_alice 200 ×2'],
      );
      const [event] = await store.listSecurityEvents(acme.id, { since: MINUTE });
      assert.deepEqual(
        [event?.gatewayId, event?.collection, event?.reason],
        ['cloud', 'billing', 'GH_ERR_AUTH_INVALID_KEY'],
      );
      assert.deepEqual(
        ingest
          .accessEvents(acme.id)
          .map((e) => `${e.gatewayId} ${e.collection} ${e.status}`)
          .sort(),
        ['cloud billing 200', 'cloud billing 200', 'cloud billing 401'],
      );
      assert.equal(telemetry.collector.buffered(), 0, 'acknowledged');
    } finally {
      await telemetry.close();
    }
  });
});

async function waitFor(probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  await eventually(probe, timeoutMs, 'condition', 5);
}
