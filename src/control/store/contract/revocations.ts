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
  });
}
