/** Alerting against a real SQLite store, delivering to a real local webhook receiver. */
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import { nowIso } from '../ids.ts';
import { openStore } from '../store/open.ts';
import type {
  GatewayInstanceRecord,
  GatewayRecord,
  SecurityEventRecord,
  Store,
  WorkspaceRecord,
} from '../store/store.ts';
import { createWorkspace } from '../workspaces.ts';
import { startAlerting, type Alerting, type AlertingOptions } from './alerting.ts';
import { isSupportedVersion } from './version-skew.ts';
import type { AlertPayload } from './webhook.ts';

const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const logger = pino({ level: 'silent' });

describe('alerting', () => {
  let store: Store;
  let workspace: WorkspaceRecord;
  let gateway: GatewayRecord;
  let receiver: Server;
  let webhookUrl = '';
  /** What the receiver got; `answer` decides each response (default 204). */
  let received: AlertPayload[] = [];
  let answer: (res: ServerResponse) => void;
  let clock = T0;
  let alerting: Alerting | undefined;
  let events = 0;

  const start = (options: Partial<AlertingOptions> = {}) =>
    (alerting = startAlerting({
      store,
      logger,
      now: () => clock,
      softwareVersion: '1.4.2',
      webhookUrl,
      intervalMs: 0,
      ...options,
    }));
  const failures = async (n: number, kind = 'auth_failure', gatewayId = gateway.id) => {
    const at = nowIso(clock - 1000);
    const rows: SecurityEventRecord[] = Array.from({ length: n }, () => ({
      id: `sev-${++events}`,
      workspaceId: workspace.id,
      gatewayId,
      at,
      kind,
      reason: 'GH_ERR_AUTH_INVALID_KEY',
      keyLabel: 'ghk_AbCd…',
    }));
    await store.insertSecurityEvents(rows);
  };
  const instance = async (instanceId: string, fields: Partial<GatewayInstanceRecord>) => {
    await store.upsertGatewayInstance({
      gatewayId: gateway.id,
      instanceId,
      softwareVersion: '1.4.0',
      appliedVersion: 1,
      connected: true,
      firstSeenAt: nowIso(T0),
      lastSeenAt: nowIso(clock),
      ...fields,
    });
  };
  const open = async () => (await store.listAlerts(workspace.id, { open: true })).map((a) => a.kind).sort();

  before(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        assert.equal(req.headers['content-type'], 'application/json');
        received.push(JSON.parse(body) as AlertPayload);
        answer(res);
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    webhookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/alerts`;
  });

  beforeEach(async () => {
    await alerting?.close();
    alerting = undefined;
    await store?.close();
    store = await openStore({ databaseUrl: ':memory:' });
    clock = T0;
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
    received = [];
    answer = (res) => res.writeHead(204).end();
  });

  after(async () => {
    await alerting?.close();
    await store?.close();
    receiver.closeAllConnections();
    await new Promise<void>((r) => receiver.close(() => r()));
  });

  it('raises one authentication-failure spike per gateway at the threshold, and resolves it once the rate falls below half', async () => {
    const alerts = start({ authFailureThreshold: 20 });
    await failures(19);
    await failures(30, 'ip_not_allowed'); // other kinds do not count
    await alerts.evaluate(workspace.id);
    assert.deepEqual(await open(), []);

    await failures(1);
    await Promise.all([alerts.evaluate(workspace.id), alerts.evaluate(workspace.id), alerts.evaluate(workspace.id)]);
    await alerts.evaluate(workspace.id);
    const [spike, ...others] = await store.listAlerts(workspace.id);
    assert.equal(others.length, 0, 'one alert, however often it is evaluated');
    assert.equal(spike!.kind, 'auth_failure_spike');
    assert.equal(spike!.gatewayId, gateway.id);
    assert.match(spike!.message, /20 authentication failures in the last minute on gateway "eu-1"/);
    await alerts.deliver(); // (raising started a delivery already; this waits for it)
    assert.equal(received.length, 1);

    await failures(20, 'auth_failure', 'cloud');
    await alerts.evaluate(workspace.id);
    assert.deepEqual(
      (await store.listAlerts(workspace.id, { open: true })).map((a) => a.gatewayId).sort(),
      ['cloud', gateway.id],
      'the cloud gateway has its own',
    );

    clock += 61_000; // the burst leaves the window
    await failures(9); // fewer than half the threshold
    await alerts.evaluate(workspace.id);
    assert.deepEqual(await open(), []);
    const resolved = (await store.listAlerts(workspace.id)).find((a) => a.id === spike!.id)!;
    assert.equal(resolved.resolvedAt, nowIso(clock));

    await alerts.deliver();
    const hooks = received.filter((p) => p.id === spike!.id);
    const payload = {
      id: spike!.id,
      kind: 'auth_failure_spike',
      message: spike!.message,
      workspace: workspace.id,
      gateway: gateway.id,
      raisedAt: spike!.raisedAt,
      details: spike!.details,
    };
    assert.deepEqual(
      hooks,
      [payload, { ...payload, resolvedAt: resolved.resolvedAt }],
      'POSTed when raised and when resolved',
    );
  });

  it('keeps a spike open while the rate stays between half the threshold and the threshold', async () => {
    const alerts = start({ authFailureThreshold: 10 });
    await failures(10);
    await alerts.evaluate(workspace.id);
    clock += 61_000;
    await failures(6);
    await alerts.evaluate(workspace.id);
    assert.deepEqual(await open(), ['auth_failure_spike']);
  });

  it('raises a version mismatch for online instances outside the supported skew', async () => {
    const alerts = start();
    await instance('a', { softwareVersion: '1.3.9' }); // one minor behind: supported
    await instance('old-but-offline', { softwareVersion: '0.9.0', connected: false });
    await alerts.evaluate(workspace.id);
    assert.deepEqual(await open(), []);

    await instance('b', { softwareVersion: '1.2.0' });
    await instance('c', { softwareVersion: '1.5.0' }); // ahead of the control plane
    await alerts.evaluate(workspace.id);
    const [mismatch] = await store.listAlerts(workspace.id, { open: true });
    assert.equal(mismatch!.kind, 'version_mismatch');
    assert.match(mismatch!.message, /gateway "eu-1": 2 online instance\(s\) run 1\.2\.0, 1\.5\.0/);
    assert.deepEqual(mismatch!.details!.instances, [
      { instanceId: 'b', softwareVersion: '1.2.0' },
      { instanceId: 'c', softwareVersion: '1.5.0' },
    ]);

    await instance('b', { softwareVersion: '1.4.2' });
    await instance('c', { softwareVersion: '1.4.0', connected: false });
    await alerts.evaluate(workspace.id);
    assert.deepEqual(await open(), []);
  });

  it('raises connectivity loss when a gateway that had instances has heard from none for offlineAfterMs, and resolves it on reconnect', async () => {
    const alerts = start({ offlineAfterMs: 60_000 });
    await alerts.checkConnectivity();
    assert.deepEqual(await open(), [], 'a gateway that never had an instance lost nothing');

    await instance('a', {});
    await instance('b', { connected: false, lastSeenAt: nowIso(clock - 5_000) });
    clock += 30_000;
    await instance('a', { connected: false, lastSeenAt: nowIso(clock) }); // disconnected just now
    await alerts.checkConnectivity();
    assert.deepEqual(await open(), [], 'not silent for long enough yet');

    clock += 60_000;
    await alerts.checkConnectivity();
    const [lost] = await store.listAlerts(workspace.id, { open: true });
    assert.equal(lost!.kind, 'connectivity_lost');
    assert.match(lost!.message, /gateway "eu-1" has no instance online/);

    // A stale "connected" flag (say, a control-plane replica died without marking it) does not count as online.
    await instance('a', { connected: true, lastSeenAt: nowIso(clock - 120_000) });
    await alerts.checkConnectivity();
    assert.deepEqual(await open(), ['connectivity_lost']);

    await instance('a', { connected: true, lastSeenAt: nowIso(clock) });
    await alerts.checkConnectivity();
    assert.deepEqual(await open(), []);
  });

  it('resolves the open alerts of a gateway that was deleted', async () => {
    const alerts = start();
    await instance('a', { connected: false, lastSeenAt: nowIso(clock - 120_000) });
    await alerts.evaluate(workspace.id);
    assert.deepEqual(await open(), ['connectivity_lost']);
    await store.deleteGateway(gateway.id, nowIso(clock));
    await alerts.evaluate(workspace.id);
    assert.deepEqual(await open(), []);
  });

  it('delivers raised and resolved alerts to the webhook, retrying with backoff until it accepts', async () => {
    let refusals = 2;
    answer = (res) => res.writeHead(refusals-- > 0 ? 503 : 200).end('ok');
    const alerts = start({ authFailureThreshold: 5, webhookRetryBaseMs: 1_000 });
    await failures(5);
    await alerts.evaluate(workspace.id);
    await alerts.deliver();
    const id = (await store.listAlerts(workspace.id))[0]!.id;
    const state = async () => {
      const a = (await store.listAlerts(workspace.id))[0]!;
      return { attempts: a.deliveryAttempts, delivered: a.deliveredAt !== undefined };
    };
    assert.deepEqual(await state(), { attempts: 1, delivered: false });
    await alerts.deliver();
    assert.deepEqual(await state(), { attempts: 1, delivered: false }, 'not before the backoff');
    clock += 1_500;
    await alerts.deliver();
    assert.deepEqual(await state(), { attempts: 2, delivered: false });
    clock += 2_500;
    await alerts.deliver();
    assert.deepEqual(await state(), { attempts: 3, delivered: true });
    assert.equal(received.length, 3);
    assert.ok(received.every((p) => p.id === id && p.resolvedAt === undefined));

    clock += 61_000;
    await alerts.evaluate(workspace.id);
    await alerts.deliver();
    assert.equal(received.length, 4);
    assert.equal(received[3]!.id, id);
    assert.equal(received[3]!.resolvedAt, nowIso(clock));
    await alerts.deliver();
    assert.equal(received.length, 4, 'once delivered, never again');
  });

  it('gives a webhook that does not answer 5 seconds (here: 200 ms) and counts the attempt', async () => {
    answer = () => {}; // never answers
    const alerts = start({ authFailureThreshold: 1, webhookTimeoutMs: 200, webhookMaxAttempts: 1 });
    await failures(1);
    const started = Date.now();
    await alerts.evaluate(workspace.id);
    await alerts.deliver();
    assert.ok(Date.now() - started < 3_000);
    const [alert] = await store.listAlerts(workspace.id);
    assert.equal(alert!.deliveryAttempts, 1);
    assert.equal(alert!.deliveredAt, undefined);
    clock += 3600_000;
    await alerts.deliver();
    assert.equal((await store.listAlerts(workspace.id))[0]!.deliveryAttempts, 1, 'no attempts beyond the maximum');
  });

  it('evaluation does not wait for the webhook', async () => {
    answer = () => {}; // never answers
    const alerts = start({ authFailureThreshold: 1, webhookTimeoutMs: 5_000 });
    await failures(1);
    const started = Date.now();
    await alerts.evaluate(workspace.id);
    assert.ok(Date.now() - started < 1_000);
    assert.deepEqual(await open(), ['auth_failure_spike']);
    await alerts.close(); // aborts the attempt in flight
    alerting = undefined;
  });

  it('raises a rate-limit store alert while a gateway reports its store degraded, and resolves it once the reports stop', async () => {
    const alerts = start();
    const report = async () => {
      await store.insertSecurityEvents([
        {
          id: `sev-${++events}`,
          workspaceId: workspace.id,
          gatewayId: gateway.id,
          at: nowIso(clock - 1000),
          kind: 'rate_limit_store_degraded',
          reason: 'GH_ERR_RATE_LIMIT_STORE_UNAVAILABLE',
        },
      ]);
    };
    await alerts.evaluate(workspace.id);
    assert.deepEqual(await open(), []);
    await report();
    await alerts.evaluate(workspace.id);
    assert.deepEqual(await open(), ['rate_limit_store_degraded']);
    const [alert] = await store.listAlerts(workspace.id, { open: true });
    assert.equal(alert!.key, `rate_limit_store_degraded:${gateway.id}`);
    assert.match(alert!.message, new RegExp(`rate-limit store degraded on gateway "${gateway.name}"`));
    // Instances repeat the report every 15 s while it lasts: the alert stays open, once.
    clock += 30_000;
    await report();
    await alerts.evaluate(workspace.id);
    assert.equal((await store.listAlerts(workspace.id)).length, 1);
    // Recovered: no report for the window (60 s).
    clock += 61_000;
    await alerts.evaluate(workspace.id);
    assert.deepEqual(await open(), []);
    assert.ok((await store.listAlerts(workspace.id))[0]!.resolvedAt);
  });

  it('supports gateway versions of the same major, at most one minor behind, never ahead', () => {
    assert.equal(isSupportedVersion('1.4.0', '1.4.2'), true);
    assert.equal(isSupportedVersion('1.4.9', '1.4.2'), true, 'patch versions do not matter');
    assert.equal(isSupportedVersion('1.3.0-rc.1', '1.4.2'), true);
    assert.equal(isSupportedVersion('v1.3.0', '1.4.2'), true);
    assert.equal(isSupportedVersion('1.2.9', '1.4.2'), false);
    assert.equal(isSupportedVersion('1.5.0', '1.4.2'), false);
    assert.equal(isSupportedVersion('2.4.0', '1.4.2'), false);
    assert.equal(isSupportedVersion('dev', '1.4.2'), false);
    assert.equal(isSupportedVersion('1.2.0', '1.4.2', 2), true);
  });
});
