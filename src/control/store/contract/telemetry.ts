/** The store contract: telemetry, security events and alerts. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StoreConflictError, type Store } from '../store.ts';
import {
  T0,
  T1,
  T2,
  WS,
  WS2,
  GW,
  telemetry,
  securityEvent,
  alert,
  rejectsWithConflict,
  withWorkspaces,
} from './fixtures.ts';

export function telemetryContract(store: Store): void {
  describe('telemetry, security events and alerts', () => {
    const M0 = '2025-01-01T00:00:00.000Z';
    const M1 = '2025-01-01T00:01:00.000Z';
    const M2 = '2025-01-01T00:02:00.000Z';

    it('adds up quota usage per scope, subject, period and collection, and lists it newest period first', async () => {
      await withWorkspaces(store);
      const u = (collection: string, periodId: string, units: number, period: 'daily' | 'monthly' = 'daily') => ({
        workspaceId: WS,
        collection,
        scope: 'org' as const,
        subject: 'acme',
        period,
        periodId,
        units,
        updatedAt: M0,
      });
      await store.addQuotaUsage([
        u('search', '2025-01-01', 3),
        u('search', '2025-01-01', 4),
        u('maps', '2025-01-01', 1),
      ]);
      await store.addQuotaUsage([u('search', '2025-01-02', 2 ** 40), u('search', '2025-01', 9, 'monthly')]);
      await store.addQuotaUsage([{ ...u('search', '2025-01-01', 1), updatedAt: M1 }]);
      const list = await store.listQuotaUsage(WS, { scope: 'org', subject: 'acme' });
      assert.deepEqual(
        list.map((r) => `${r.period} ${r.periodId} ${r.collection} ${r.units}`),
        [
          'daily 2025-01-02 search 1099511627776',
          'daily 2025-01-01 maps 1',
          'daily 2025-01-01 search 8',
          'monthly 2025-01 search 9',
        ],
      );
      assert.equal(list.find((r) => r.units === 8)?.updatedAt, M1);
      assert.equal((await store.listQuotaUsage(WS, { scope: 'org', subject: 'acme', period: 'monthly' })).length, 1);
      assert.deepEqual(await store.listQuotaUsage(WS2, { scope: 'org', subject: 'acme' }), []);
    });

    it('records a telemetry batch once: a second claim of the same gateway, instance and sequence is refused', async () => {
      await withWorkspaces(store);
      const b = { gatewayId: GW, instanceId: 'i-1', sequence: 7, at: T0 };
      assert.equal(await store.claimTelemetryBatch(b), true);
      assert.equal(await store.claimTelemetryBatch({ ...b, at: T1 }), false, 'a resend');
      assert.equal(await store.claimTelemetryBatch({ ...b, sequence: 8 }), true);
      assert.equal(await store.claimTelemetryBatch({ ...b, instanceId: 'i-2' }), true, "another instance's sequence");
      assert.equal(await store.claimTelemetryBatch({ ...b, sequence: 2 ** 40 }), true);
      // Inside a transaction that then fails, the claim is rolled back with the rest: the batch can be stored later.
      await assert.rejects(
        store.transaction(async (tx) => {
          assert.equal(await tx.claimTelemetryBatch({ ...b, sequence: 9 }), true);
          throw new Error('the batch could not be stored');
        }),
        /could not be stored/,
      );
      assert.equal(await store.claimTelemetryBatch({ ...b, sequence: 9 }), true);
      assert.equal(await store.pruneTelemetryBatches(T1), 5);
      assert.equal(await store.claimTelemetryBatch(b), true, 'forgotten once pruned');
    });

    it('round-trips telemetry rows, fractional durations included', async () => {
      await withWorkspaces(store);
      await store.addTelemetry([telemetry()]);
      assert.deepEqual(await store.listTelemetry(WS, { since: M0 }), [telemetry()]);
      await store.addTelemetry([]);
    });

    it('adds telemetry counts for the same minute and key', async () => {
      await withWorkspaces(store);
      await store.addTelemetry([telemetry({ count: 3, durationMsSum: 30, durationMsMax: 20 })]);
      await store.addTelemetry([
        telemetry({ count: 2, durationMsSum: 12.5, durationMsMax: 8 }),
        telemetry({ count: 1, durationMsSum: 40, durationMsMax: 40 }),
        telemetry({ status: 401, clientId: '-', count: 1, durationMsSum: 1, durationMsMax: 1 }),
      ]);
      await store.addTelemetry([telemetry({ count: 1, durationMsSum: 5, durationMsMax: 5 })]);
      assert.deepEqual(await store.listTelemetry(WS, { since: M0 }), [
        telemetry({ status: 401, clientId: '-', count: 1, durationMsSum: 1, durationMsMax: 1 }),
        telemetry({ count: 7, durationMsSum: 87.5, durationMsMax: 40 }),
      ]);
    });

    it('adds a large batch of telemetry in one call', async () => {
      await withWorkspaces(store);
      const rows = Array.from({ length: 1200 }, (_, i) =>
        telemetry({
          endpoint: `GET /e${String(i % 600).padStart(3, '0')}`,
          count: 1,
          durationMsSum: 2,
          durationMsMax: i,
        }),
      );
      await store.addTelemetry(rows);
      const listed = await store.listTelemetry(WS, { since: M0 });
      assert.equal(listed.length, 600);
      assert.deepEqual(listed[0], telemetry({ endpoint: 'GET /e000', count: 2, durationMsSum: 4, durationMsMax: 600 }));
    });

    it('lists telemetry from a minute on, by minute then key, optionally of one gateway, and prunes the oldest', async () => {
      await withWorkspaces(store);
      const a = telemetry({ minute: M1, gatewayId: 'cloud' });
      const b = telemetry({ minute: M1, collection: 'aaa' });
      const c = telemetry({ minute: M2 });
      const old = telemetry({ minute: M0 });
      const other = telemetry({ minute: M1, workspaceId: WS2 });
      await store.addTelemetry([c, old, b, a, other]);
      assert.deepEqual(await store.listTelemetry(WS, { since: M1 }), [a, b, c]);
      assert.deepEqual(await store.listTelemetry(WS, { since: M1, gatewayId: GW }), [b, c]);
      assert.deepEqual(await store.listTelemetry(WS2, { since: M0 }), [other]);
      assert.equal(await store.pruneTelemetry(M1), 1);
      assert.deepEqual(await store.listTelemetry(WS, { since: M0 }), [a, b, c]);
    });

    it('round-trips security events with and without optional fields, newest first, filtered and limited', async () => {
      await withWorkspaces(store);
      const bare = securityEvent();
      const full = securityEvent({
        id: 'sev_bbbbbbbbbbbbbbbbbbbb',
        at: T1,
        collection: 'billing',
        clientId: 'cli_aaaaaaaaaaaaaaaaaaaa',
        keyLabel: 'gh_live_abcd',
        ip: '203.0.113.9',
      });
      const cloud = securityEvent({
        id: 'sev_cccccccccccccccccccc',
        gatewayId: 'cloud',
        at: T2,
        kind: 'forbidden',
        reason: 'GH_ERR_AUTH_FORBIDDEN',
      });
      const other = securityEvent({ id: 'sev_dddddddddddddddddddd', workspaceId: WS2 });
      await store.insertSecurityEvents([bare, full, cloud, other]);
      await store.insertSecurityEvents([]);
      assert.deepEqual(await store.listSecurityEvents(WS, { since: T0 }), [cloud, full, bare]);
      assert.equal(Object.hasOwn((await store.listSecurityEvents(WS, { since: T0 }))[2]!, 'keyLabel'), false);
      assert.deepEqual(await store.listSecurityEvents(WS, { since: T1 }), [cloud, full]);
      assert.deepEqual(await store.listSecurityEvents(WS, { since: T0, gatewayId: GW }), [full, bare]);
      assert.deepEqual(await store.listSecurityEvents(WS, { since: T0, limit: 1 }), [cloud]);
      await rejectsWithConflict(store.insertSecurityEvents([bare]), 'securityEvent.id');
    });

    it('counts security events from a time on, by gateway and kind', async () => {
      await withWorkspaces(store);
      await store.insertSecurityEvents([
        securityEvent({ id: 'sev_1', at: T0 }),
        securityEvent({ id: 'sev_2', at: T1 }),
        securityEvent({ id: 'sev_3', at: T1, gatewayId: 'cloud' }),
        securityEvent({ id: 'sev_4', at: T2, kind: 'forbidden' }),
        securityEvent({ id: 'sev_5', at: T2, workspaceId: WS2 }),
      ]);
      assert.equal(await store.countSecurityEvents(WS, { since: T0 }), 4);
      assert.equal(await store.countSecurityEvents(WS, { since: T1 }), 3);
      assert.equal(await store.countSecurityEvents(WS, { since: T1, gatewayId: GW }), 2);
      assert.equal(await store.countSecurityEvents(WS, { since: T0, gatewayId: GW, kind: 'auth_failure' }), 2);
      assert.equal(await store.countSecurityEvents(WS2, { since: T2, kind: 'forbidden' }), 0);
    });

    it('prunes the security events of every workspace that happened before a time, and only those', async () => {
      await withWorkspaces(store);
      const old = securityEvent({ id: 'sev_1', at: T0 });
      const oldElsewhere = securityEvent({ id: 'sev_2', at: T0, workspaceId: WS2, gatewayId: 'cloud' });
      const atCutoff = securityEvent({ id: 'sev_3', at: T1 });
      const recent = securityEvent({ id: 'sev_4', at: T2 });
      await store.insertSecurityEvents([old, oldElsewhere, atCutoff, recent]);
      assert.equal(await store.pruneSecurityEvents(T1), 2);
      assert.deepEqual(await store.listSecurityEvents(WS, { since: T0 }), [recent, atCutoff]);
      assert.deepEqual(await store.listSecurityEvents(WS2, { since: T0 }), []);
      assert.equal(await store.pruneSecurityEvents(T1), 0);
    });

    it('round-trips an alert with and without optional fields, and refuses a duplicate id', async () => {
      await withWorkspaces(store);
      const bare = alert();
      const full = alert({
        id: 'alr_bbbbbbbbbbbbbbbbbbbb',
        gatewayId: GW,
        kind: 'version_mismatch',
        key: `version_mismatch:${GW}`,
        details: { instances: [{ id: 'ins-1', version: 3 }], expected: 4, note: 'ünïcødé' },
        resolvedAt: T1,
        deliveredAt: T1,
        deliveryAttempts: 2,
      });
      await store.insertAlert(bare);
      await store.insertAlert(full);
      const listed = await store.listAlerts(WS);
      assert.deepEqual(listed, [full, bare], 'raised at the same time: by id, descending');
      for (const field of ['gatewayId', 'details', 'resolvedAt', 'deliveredAt'])
        assert.equal(
          Object.hasOwn(
            listed.find((a) => a.id === bare.id)!,
            field,
          ),
          false,
          field,
        );
      await rejectsWithConflict(store.insertAlert(alert({ key: 'other' })), 'alert.id');
    });

    it('keeps one open alert per key', async () => {
      await withWorkspaces(store);
      const first = alert();
      await store.insertAlert(first);
      assert.deepEqual(await store.getOpenAlert(WS, first.key), first);
      assert.equal(await store.getOpenAlert(WS2, first.key), undefined);
      await rejectsWithConflict(
        store.insertAlert(alert({ id: 'alr_bbbbbbbbbbbbbbbbbbbb', raisedAt: T1 })),
        'alert.key',
      );

      const resolved = { ...first, resolvedAt: T1 };
      assert.equal(await store.updateAlert(resolved), true);
      assert.equal(await store.getOpenAlert(WS, first.key), undefined);
      const second = alert({ id: 'alr_bbbbbbbbbbbbbbbbbbbb', raisedAt: T2 });
      await store.insertAlert(second);
      assert.deepEqual(await store.getOpenAlert(WS, first.key), second, 'a resolved alert does not block a new one');
      await store.insertAlert(alert({ id: 'alr_cccccccccccccccccccc', workspaceId: WS2 }));
      assert.equal(await store.updateAlert(alert({ id: 'alr_missingmissingmiss' })), false);
    });

    it('lists alerts newest first, open or resolved, limited', async () => {
      await withWorkspaces(store);
      const a = alert({ id: 'alr_1', key: 'a', raisedAt: T0, resolvedAt: T1 });
      const b = alert({ id: 'alr_2', key: 'b', raisedAt: T1 });
      const c = alert({ id: 'alr_3', key: 'c', raisedAt: T2 });
      await store.insertAlert(b);
      await store.insertAlert(a);
      await store.insertAlert(c);
      await store.insertAlert(alert({ id: 'alr_4', workspaceId: WS2 }));
      assert.deepEqual(await store.listAlerts(WS), [c, b, a]);
      assert.deepEqual(await store.listAlerts(WS, { open: true }), [c, b]);
      assert.deepEqual(await store.listAlerts(WS, { open: false }), [a]);
      assert.deepEqual(await store.listAlerts(WS, { limit: 2 }), [c, b]);
    });

    it('prunes the alerts of every workspace resolved before a time, with their deliveries, and only those', async () => {
      await withWorkspaces(store);
      const old = alert({ id: 'alr_1', key: 'a', raisedAt: T0, resolvedAt: T0 });
      const recent = alert({ id: 'alr_2', key: 'b', raisedAt: T0, resolvedAt: T2 });
      const open = alert({ id: 'alr_3', key: 'c', raisedAt: T0 });
      const otherWorkspace = alert({ id: 'alr_4', workspaceId: WS2, raisedAt: T0, resolvedAt: T0 });
      for (const a of [old, recent, open, otherWorkspace]) await store.insertAlert(a);
      await store.insertAlertDestination({
        id: 'ald_1',
        workspaceId: WS,
        name: 'ops',
        url: 'https://hooks.example/ops',
        secret: 'whsec_test',
        createdAt: T0,
        updatedAt: T0,
      });
      const delivery = (id: string, alertId: string) => ({
        id,
        workspaceId: WS,
        alertId,
        destinationId: 'ald_1',
        state: 'resolved' as const,
        payload: '{}',
        attempts: 1,
        nextAttemptAt: T0,
        deliveredAt: T0,
        createdAt: T0,
      });
      await store.insertAlertDelivery(delivery('dlv_1', old.id));
      await store.insertAlertDelivery(delivery('dlv_2', recent.id));
      assert.equal(await store.pruneResolvedAlerts(T1), 2);
      assert.deepEqual(
        (await store.listAlerts(WS)).map((a) => a.id),
        ['alr_3', 'alr_2'],
      );
      assert.deepEqual(await store.listAlerts(WS2), []);
      assert.deepEqual(
        (await store.listAlertDeliveries(WS, [old.id, recent.id])).map((d) => d.id),
        ['dlv_2'],
      );
      assert.equal(await store.pruneResolvedAlerts(T1), 0);
    });

    it('lists undelivered alerts oldest first', async () => {
      await withWorkspaces(store);
      const newest = alert({ id: 'alr_1', key: 'a', raisedAt: T2 });
      const delivered = alert({ id: 'alr_2', key: 'b', raisedAt: T0, deliveredAt: T0, deliveryAttempts: 1 });
      const oldest = alert({ id: 'alr_3', key: 'c', raisedAt: T0, deliveryAttempts: 3 });
      const otherWorkspace = alert({ id: 'alr_4', workspaceId: WS2, raisedAt: T1 });
      for (const a of [newest, delivered, oldest, otherWorkspace]) await store.insertAlert(a);
      assert.deepEqual(await store.listUndeliveredAlerts(10), [oldest, otherWorkspace, newest]);
      assert.deepEqual(await store.listUndeliveredAlerts(2), [oldest, otherWorkspace]);
      assert.equal(await store.updateAlert({ ...oldest, deliveredAt: T2, deliveryAttempts: 4 }), true);
      assert.deepEqual(await store.listUndeliveredAlerts(10), [otherWorkspace, newest]);
    });

    it('refuses telemetry, security events and alerts of a workspace that does not exist', async () => {
      await assert.rejects(store.addTelemetry([telemetry()]), (error) => !(error instanceof StoreConflictError));
      await assert.rejects(
        store.insertSecurityEvents([securityEvent()]),
        (error) => !(error instanceof StoreConflictError),
      );
      await assert.rejects(store.insertAlert(alert()), (error) => !(error instanceof StoreConflictError));
    });
  });
}
