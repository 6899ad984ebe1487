/** The store contract: edge gateways: registration tokens, certificates and instances. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Store } from '../store.ts';
import {
  T0,
  T1,
  T2,
  WS,
  WS2,
  GW,
  gateway,
  registrationToken,
  certificate,
  instance,
  rejectsWithConflict,
  withWorkspaces,
} from './fixtures.ts';

export function gatewaysContract(store: Store): void {
  describe('edge gateways', () => {
    it('round-trips a gateway and finds it by id, by name and by environment', async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      assert.deepEqual(await store.getGateway({ id: GW }), gateway());
      assert.deepEqual(await store.getGateway({ workspaceId: WS, name: 'eu-1' }), gateway());
      assert.deepEqual(await store.getGateway({ workspaceId: WS, environment: 'PROD' }), gateway());
      assert.equal(await store.getGateway({ workspaceId: WS2, name: 'eu-1' }), undefined);
      assert.equal(await store.getGateway({ workspaceId: WS, environment: 'DEV' }), undefined);
      assert.equal(await store.getGateway({ id: 'gtw_missingmissingmiss' }), undefined);
    });

    it('refuses a second gateway with the same name in one workspace but not in another', async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      await rejectsWithConflict(
        store.insertGateway(gateway({ id: 'gtw_bbbbbbbbbbbbbbbbbbbb', environment: 'TEST' })),
        'gateway.name',
      );
      await store.insertGateway(gateway({ id: 'gtw_cccccccccccccccccccc', workspaceId: WS2 }));
    });

    it('refuses a second gateway in the same environment', async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      await rejectsWithConflict(
        store.insertGateway(gateway({ id: 'gtw_bbbbbbbbbbbbbbbbbbbb', name: 'eu-2' })),
        'gateway.environment',
      );
      await rejectsWithConflict(store.insertGateway(gateway({ name: 'eu-3', environment: 'TEST' })), 'gateway.id');
    });

    it('updates a gateway and lists gateways by environment, then name', async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      await store.insertGateway(gateway({ id: 'gtw_bbbbbbbbbbbbbbbbbbbb', environment: 'DEV', name: 'zz-dev' }));
      await store.insertGateway(gateway({ id: 'gtw_cccccccccccccccccccc', environment: 'TEST', name: 'aa-test' }));
      await store.insertGateway(gateway({ id: 'gtw_dddddddddddddddddddd', workspaceId: WS2 }));
      const renamed = gateway({ name: 'eu-central', installMethod: 'helm', updatedAt: T1 });
      assert.equal(await store.updateGateway(renamed), true);
      assert.equal(await store.updateGateway(gateway({ id: 'gtw_missingmissingmiss' })), false);
      const list = await store.listGateways(WS);
      assert.deepEqual(
        list.map((g) => `${g.environment}/${g.name}`),
        ['DEV/zz-dev', 'PROD/eu-central', 'TEST/aa-test'],
      );
      assert.deepEqual(list[1], renamed);
      await rejectsWithConflict(store.updateGateway({ ...renamed, name: 'zz-dev' }), 'gateway.name');
    });

    it('round-trips registration tokens with and without usedAt, and refuses a duplicate hash', async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      const unused = registrationToken();
      const used = registrationToken({ hash: 'e'.repeat(64), usedAt: T0 });
      await store.insertRegistrationToken(unused);
      await store.insertRegistrationToken(used);
      const got = await store.getRegistrationToken(unused.hash);
      assert.deepEqual(got, unused);
      assert.equal(Object.hasOwn(got!, 'usedAt'), false);
      assert.deepEqual(await store.getRegistrationToken(used.hash), used);
      assert.equal(await store.getRegistrationToken('f'.repeat(64)), undefined);
      await rejectsWithConflict(store.insertRegistrationToken(unused), 'registrationToken.hash');
    });

    it('consumes a registration token once', async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      await store.insertRegistrationToken(registrationToken());
      assert.equal(await store.consumeRegistrationToken(registrationToken().hash, T0), true);
      assert.deepEqual(await store.getRegistrationToken(registrationToken().hash), registrationToken({ usedAt: T0 }));
      assert.equal(
        await store.consumeRegistrationToken(registrationToken().hash, T0),
        false,
        'a used token is refused',
      );
      assert.equal(await store.consumeRegistrationToken('f'.repeat(64), T0), false, 'an unknown token is refused');
    });

    it('refuses an expired registration token', async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      await store.insertRegistrationToken(registrationToken({ expiresAt: T1 }));
      assert.equal(
        await store.consumeRegistrationToken(registrationToken().hash, T1),
        false,
        'expired at its expiry time',
      );
      assert.equal(await store.consumeRegistrationToken(registrationToken().hash, T2), false);
      assert.equal(Object.hasOwn((await store.getRegistrationToken(registrationToken().hash))!, 'usedAt'), false);
    });

    it('lets exactly one of two concurrent callers consume a registration token', async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      for (const n of [1, 2, 3, 4, 5]) {
        const hash = String(n).repeat(64);
        await store.insertRegistrationToken(registrationToken({ hash }));
        const results = await Promise.all([
          store.consumeRegistrationToken(hash, T0),
          store.consumeRegistrationToken(hash, T0),
        ]);
        assert.deepEqual(results.toSorted(), [false, true], `token ${n}: ${results.join(', ')}`);
      }
    });

    it("deletes a gateway's unused registration tokens and keeps the used ones", async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      await store.insertGateway(gateway({ id: 'gtw_bbbbbbbbbbbbbbbbbbbb', environment: 'TEST', name: 'eu-2' }));
      await store.insertRegistrationToken(registrationToken({ hash: '1'.repeat(64) }));
      await store.insertRegistrationToken(registrationToken({ hash: '2'.repeat(64) }));
      await store.insertRegistrationToken(registrationToken({ hash: '3'.repeat(64), usedAt: T0 }));
      await store.insertRegistrationToken(
        registrationToken({ hash: '4'.repeat(64), gatewayId: 'gtw_bbbbbbbbbbbbbbbbbbbb' }),
      );
      assert.equal(await store.deleteRegistrationTokens(GW), 2);
      assert.equal(await store.getRegistrationToken('1'.repeat(64)), undefined);
      assert.ok(await store.getRegistrationToken('3'.repeat(64)));
      assert.ok(await store.getRegistrationToken('4'.repeat(64)), "another gateway's token is left alone");
      assert.equal(await store.deleteRegistrationTokens(GW), 0);
    });

    it('round-trips certificates with and without revokedAt, and refuses a duplicate serial', async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      const valid = certificate();
      const revoked = certificate({ serial: '02cd', revokedAt: T1 });
      await store.insertGatewayCertificate(valid);
      await store.insertGatewayCertificate(revoked);
      const got = await store.getGatewayCertificate(valid.serial);
      assert.deepEqual(got, valid);
      assert.equal(Object.hasOwn(got!, 'revokedAt'), false);
      assert.deepEqual(await store.getGatewayCertificate(revoked.serial), revoked);
      assert.equal(await store.getGatewayCertificate('ffff'), undefined);
      await rejectsWithConflict(store.insertGatewayCertificate(valid), 'certificate.serial');
    });

    it("lists a gateway's certificates, latest expiry first", async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      const older = certificate({ serial: '01ab', notAfter: T1 });
      const newer = certificate({ serial: '02cd', notAfter: T2, revokedAt: T1 });
      await store.insertGatewayCertificate(older);
      await store.insertGatewayCertificate(newer);
      await store.insertGatewayCertificate(certificate({ serial: '03ef', gatewayId: 'gtw_other' }));
      assert.deepEqual(await store.listGatewayCertificates(GW), [newer, older]);
      assert.deepEqual(await store.listGatewayCertificates('gtw_none'), []);
    });

    it("marks a deleted gateway's certificates revoked", async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      await store.insertGateway(gateway({ id: 'gtw_bbbbbbbbbbbbbbbbbbbb', environment: 'TEST', name: 'eu-2' }));
      await store.insertGatewayCertificate(certificate());
      await store.insertGatewayCertificate(certificate({ serial: '02cd', revokedAt: T0 }));
      await store.insertGatewayCertificate(certificate({ serial: '03ef', gatewayId: 'gtw_bbbbbbbbbbbbbbbbbbbb' }));
      assert.equal(await store.deleteGateway(GW, T2), true);
      assert.deepEqual(await store.getGatewayCertificate('01ab'), certificate({ revokedAt: T2 }));
      assert.deepEqual(
        await store.getGatewayCertificate('02cd'),
        certificate({ serial: '02cd', revokedAt: T0 }),
        'an earlier revocation stands',
      );
      assert.deepEqual(
        await store.getGatewayCertificate('03ef'),
        certificate({ serial: '03ef', gatewayId: 'gtw_bbbbbbbbbbbbbbbbbbbb' }),
        "another gateway's certificate stays valid",
      );
      assert.equal(await store.deleteGateway(GW, T2), false);
    });

    it('deletes a gateway with its registration tokens and instances, freeing its name and environment', async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      await store.insertRegistrationToken(registrationToken());
      await store.upsertGatewayInstance(instance());
      assert.equal(await store.deleteGateway(GW, T1), true);
      assert.equal(await store.getGateway({ id: GW }), undefined);
      assert.equal(await store.getRegistrationToken(registrationToken().hash), undefined);
      assert.deepEqual(await store.listGatewayInstances(GW), []);
      await store.insertGateway(gateway({ id: 'gtw_bbbbbbbbbbbbbbbbbbbb' }));
      await store.insertRegistrationToken(registrationToken({ gatewayId: 'gtw_bbbbbbbbbbbbbbbbbbbb' }));
    });

    it('round-trips an instance with every optional field and with none, listed by instance id', async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      const bare = instance({ instanceId: 'ins-b', connected: false });
      const full = instance({
        instanceId: 'ins-a',
        hostname: 'gw-0.example.internal',
        appliedVersion: 7,
        appliedHash: 'a'.repeat(64),
        nackedVersion: 8,
        lastError: 'upstream url not allowed',
        lastSeenAt: T1,
        lastSyncedAt: T1,
      });
      await store.upsertGatewayInstance(bare);
      await store.upsertGatewayInstance(full);
      const list = await store.listGatewayInstances(GW);
      assert.deepEqual(list, [full, bare]);
      for (const field of ['hostname', 'appliedHash', 'nackedVersion', 'lastError', 'lastSyncedAt']) {
        assert.equal(Object.hasOwn(list[1]!, field), false, field);
      }
    });

    it('replaces an instance on upsert, clearing fields no longer set', async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      await store.upsertGatewayInstance(
        instance({ hostname: 'gw-0', appliedVersion: 3, nackedVersion: 4, lastError: 'bad snapshot' }),
      );
      const replaced = instance({
        softwareVersion: '0.2.0',
        appliedVersion: 4,
        appliedHash: 'b'.repeat(64),
        connected: false,
        lastSeenAt: T1,
        lastSyncedAt: T1,
      });
      await store.upsertGatewayInstance(replaced);
      assert.deepEqual(await store.listGatewayInstances(GW), [replaced]);
    });

    it('prunes the instances that are disconnected and not seen since a given time, and only those', async () => {
      await withWorkspaces(store);
      await store.insertGateway(gateway());
      await store.upsertGatewayInstance(instance({ instanceId: 'old-gone', connected: false, lastSeenAt: T0 }));
      await store.upsertGatewayInstance(instance({ instanceId: 'old-connected', connected: true, lastSeenAt: T0 }));
      await store.upsertGatewayInstance(instance({ instanceId: 'recent-gone', connected: false, lastSeenAt: T1 }));
      assert.equal(await store.pruneGatewayInstances(T1), 1);
      assert.deepEqual(
        (await store.listGatewayInstances(GW)).map((i) => i.instanceId),
        ['old-connected', 'recent-gone'],
      );
      assert.equal(await store.pruneGatewayInstances(T1), 0);
    });
  });
}
