/** The store contract: derived credentials revoked on their own, and telemetry attributed per agent and session. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DerivedRevocationRecord, Store } from '../store.ts';
import { T0, T1, T2, WS, client, role, securityEvent, telemetry, withWorkspaces } from './fixtures.ts';

function revocation(over: Partial<DerivedRevocationRecord> = {}): DerivedRevocationRecord {
  return {
    id: 'drv_aaaaaaaaaaaaaaaaaaaa',
    workspaceId: WS,
    clientId: client().id,
    credential: 'AAAAAAAAAAAAAAAAAAAAAA',
    revokedAt: T0,
    expiresAt: T1,
    ...over,
  };
}

export function revocationsContract(store: Store): void {
  describe('derived credential revocations and agent attribution', () => {
    it('lists the revocations in force, of a client or all, oldest first, and prunes the expired ones', async () => {
      await withWorkspaces(store);
      await store.insertRole(role());
      await store.insertClient(client());
      const byAgent = revocation({
        id: 'drv_bbbbbbbbbbbbbbbbbbbb',
        credential: undefined,
        agent: 'planner',
        session: 's-1',
        issuedBefore: T0,
        reason: 'leaked in a transcript',
        revokedAt: T1,
        expiresAt: T2,
      });
      delete byAgent.credential;
      await store.insertDerivedRevocation(revocation());
      await store.insertDerivedRevocation(byAgent);
      assert.deepEqual(await store.listDerivedRevocations(WS, { now: T0 }), [revocation(), byAgent]);
      assert.deepEqual(await store.listDerivedRevocations(WS, { now: T1 }), [byAgent], 'expired at T1');
      assert.deepEqual(await store.listDerivedRevocations(WS, { now: T0, clientId: 'cli_other' }), []);
      assert.equal(await store.pruneDerivedRevocations(T1), 1);
      assert.deepEqual(await store.listDerivedRevocations(WS, { now: T0 }), [byAgent]);
      // Gone with their client.
      await store.deleteClient(client().id);
      assert.deepEqual(await store.listDerivedRevocations(WS, { now: T0 }), []);
    });

    it('keeps telemetry of different agents and sessions apart, and security events with their agent', async () => {
      await withWorkspaces(store);
      await store.addTelemetry([
        telemetry({ agent: 'planner', session: 's-1', count: 2 }),
        telemetry({ agent: 'planner', session: 's-1', count: 3 }),
        telemetry({ agent: 'planner', count: 4 }),
        telemetry({ count: 5 }),
      ]);
      const rows = await store.listTelemetry(WS, { since: T0 });
      assert.deepEqual(
        rows.map((r) => [r.agent, r.session, r.count]),
        [
          [undefined, undefined, 5],
          ['planner', undefined, 4],
          ['planner', 's-1', 5],
        ],
      );
      const event = securityEvent({ agent: 'planner', session: 's-1', reason: 'GH_ERR_DERIVED_REVOKED' });
      await store.insertSecurityEvents([event]);
      assert.deepEqual(await store.listSecurityEvents(WS, { since: T0 }), [event]);
    });

    it('answers analytics by agent and session: top agents, a filtered series, refusals with their agent', async () => {
      await withWorkspaces(store);
      await store.addTelemetry([
        telemetry({ agent: 'planner', session: 's-1', count: 2 }),
        telemetry({ agent: 'planner', session: 's-2', count: 1 }),
        telemetry({ agent: 'planner', session: 's-2', status: 429, count: 4 }),
        telemetry({ agent: 'summarizer', count: 1 }),
        telemetry({ count: 3 }),
      ]);
      await store.insertSecurityEvents([
        securityEvent({ id: 'sev_1', agent: 'planner', session: 's-1', reason: 'GH_ERR_DERIVED_REVOKED' }),
        securityEvent({ id: 'sev_2' }),
      ]);
      const range = { from: '2025-01-01T00:00:00.000Z', to: '2025-01-01T01:00:00.000Z' };
      const top = await store.analyticsTop(WS, range, 'agent', { limit: 10 });
      assert.deepEqual(
        top.map((t) => [t.key, t.requests, t.rateLimited]),
        [
          ['planner', 7, 4],
          ['-', 3, 0],
          ['summarizer', 1, 0],
        ],
      );
      const series = await store.analyticsByMinute(
        WS,
        { ...range, agent: 'planner' },
        { dimension: 'session', values: ['s-1', 's-2'] },
      );
      assert.deepEqual(
        series.map((r) => [r.group, r.requests]),
        [
          ['s-1', 2],
          ['s-2', 5],
        ],
      );
      const none = await store.analyticsTop(WS, { ...range, agent: '-' }, 'client', { limit: 10 });
      assert.deepEqual(
        none.map((t) => t.requests),
        [3],
      );
      const refused = await store.analyticsRefusedByStatus(WS, range, 10, { byAgent: true });
      assert.deepEqual(
        refused.map((r) => [r.status, r.agent, r.session, r.count]),
        [[429, 'planner', 's-2', 4]],
      );
      const reasons = await store.analyticsRefusedByReason(WS, range, 10);
      assert.deepEqual(reasons.map((r) => [r.reason, r.agent, r.session, r.count]).sort(), [
        ['GH_ERR_AUTH_INVALID_KEY', undefined, undefined, 1],
        ['GH_ERR_DERIVED_REVOKED', 'planner', 's-1', 1],
      ]);
      const planner = await store.analyticsRefusedByReason(WS, { ...range, agent: 'planner' }, 10);
      assert.deepEqual(
        planner.map((r) => r.reason),
        ['GH_ERR_DERIVED_REVOKED'],
      );
    });
  });
}
