/**
 * What the console's gateways page reads, through the admin API on a real socket: status, instances with their
 * fallback flag, configuration version, certificate expiry, and an update badge whose release notes the control
 * plane serves itself.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAdminPlane, type AdminPlane } from '../../testing/admin-plane.ts';
import { nowIso } from '../ids.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON of many shapes; tests assert on it
type Json = any;

for (const database of ['sqlite', 'postgres'] as const)
  describe(`the gateways page (${database})`, () => {
    let cp: AdminPlane;
    before(async () => {
      cp = await startAdminPlane({ softwareVersion: '0.1.0', database });
      const at = (ms: number) => nowIso(cp.now() + ms);
      await cp.store.insertGateway({
        id: 'gw_eu1',
        workspaceId: cp.workspace.id,
        environment: 'PROD',
        name: 'eu-1',
        installMethod: 'helm',
        createdAt: at(-86_400_000),
        updatedAt: at(-86_400_000),
      });
      await cp.store.insertGatewayCertificate({
        serial: '01',
        gatewayId: 'gw_eu1',
        notBefore: at(-86_400_000),
        notAfter: at(-1),
      });
      await cp.store.insertGatewayCertificate({
        serial: '02',
        gatewayId: 'gw_eu1',
        notBefore: at(-3600_000),
        notAfter: at(20 * 3600_000),
      });
      await cp.store.upsertGatewayInstance({
        gatewayId: 'gw_eu1',
        instanceId: 'i-1',
        hostname: 'node-a',
        softwareVersion: '0.0.9',
        appliedVersion: 4,
        connected: false,
        firstSeenAt: at(-7200_000),
        lastSeenAt: at(-600_000),
        lastSyncedAt: at(-700_000),
      });
    });
    after(() => cp?.close());

    it('shows a gateway cut off for ten minutes in fallback, with its certificate expiry and the update it needs', async () => {
      const headers = { authorization: `Bearer ${cp.token}` };
      const res = await fetch(`${cp.base}/api/v1/workspaces/acme/gateways`, { headers });
      const body = (await res.json()) as Json;
      assert.equal(res.status, 200, JSON.stringify(body));
      const [g] = body.items;
      assert.equal(g.status, 'fallback');
      assert.equal(g.certificateExpiresAt, nowIso(cp.now() + 20 * 3600_000));
      assert.deepEqual(
        g.instances.map((i: Json) => [
          i.hostname,
          i.softwareVersion,
          i.appliedVersion,
          i.online,
          i.fallback,
          i.lastSeenAt,
        ]),
        [['node-a', '0.0.9', 4, false, true, nowIso(cp.now() - 600_000)]],
      );
      // No online instance runs an older version: the badge is for online instances only (as before).
      assert.equal(g.updateAvailable, undefined);
      await cp.store.upsertGatewayInstance({
        ...(await cp.store.listGatewayInstances('gw_eu1'))[0]!,
        connected: true,
        lastSeenAt: nowIso(cp.now()),
      });
      const online = (await (
        await fetch(`${cp.base}/api/v1/workspaces/acme/gateways/eu-1`, { headers })
      ).json()) as Json;
      assert.equal(online.status, 'online');
      assert.equal(online.configVersion, 4);
      assert.match(online.updateAvailable.command, /^helm upgrade /);
      assert.match(online.updateAvailable.commands.docker, /^docker pull /);
      const notes = await fetch(`${cp.base}${online.updateAvailable.releaseNotesPath}`, { headers });
      const page = (await notes.json()) as Json;
      assert.equal(notes.status, 200);
      assert.deepEqual(
        page.items.map((i: Json) => i.version),
        ['0.1.0'],
      );
    });

    it('says whether each gateway and instance serves the newest configuration published to it, or how far behind', async () => {
      const headers = { authorization: `Bearer ${cp.token}` };
      const list = async () =>
        ((await (await fetch(`${cp.base}/api/v1/workspaces/acme/gateways`, { headers })).json()) as Json).items;
      const scope = `${cp.workspace.id}/PROD/edge:eu-1`;
      const publish = (version: number) =>
        cp.store.insertSnapshot({ scope, version, hash: `h${version}`, body: '{}', createdAt: nowIso(cp.now()) });
      // A second gateway in DEV with one instance, so the list covers several gateways in one read.
      await cp.store.insertGateway({
        id: 'gw_dev1',
        workspaceId: cp.workspace.id,
        environment: 'DEV',
        name: 'dev-1',
        installMethod: 'docker',
        createdAt: nowIso(cp.now()),
        updatedAt: nowIso(cp.now()),
      });
      await cp.store.upsertGatewayInstance({
        gatewayId: 'gw_dev1',
        instanceId: 'd-1',
        softwareVersion: '0.1.0',
        appliedVersion: 2,
        connected: true,
        firstSeenAt: nowIso(cp.now()),
        lastSeenAt: nowIso(cp.now()),
      });
      await cp.store.insertSnapshot({
        scope: `${cp.workspace.id}/DEV/edge:dev-1`,
        version: 2,
        hash: 'd2',
        body: '{}',
        createdAt: nowIso(cp.now()),
      });
      await publish(4);
      let [dev, eu] = await list();
      assert.equal(eu.name, 'eu-1');
      assert.deepEqual(eu.configSync, { state: 'in_sync', latestVersion: 4, behindBy: 0 });
      assert.deepEqual(dev.configSync, { state: 'in_sync', latestVersion: 2, behindBy: 0 });
      await publish(5);
      await publish(6);
      [dev, eu] = await list();
      assert.deepEqual(eu.configSync, { state: 'behind', latestVersion: 6, behindBy: 2 });
      assert.equal(eu.instances[0].configBehindBy, 2);
      assert.deepEqual(dev.configSync, { state: 'in_sync', latestVersion: 2, behindBy: 0 });
      // Offline: the gateway's state is unknown, its instance still says how far behind it was.
      await cp.store.upsertGatewayInstance({
        ...(await cp.store.listGatewayInstances('gw_eu1'))[0]!,
        connected: false,
      });
      [, eu] = await list();
      assert.equal(eu.configSync.state, 'unknown');
      assert.equal(eu.instances[0].configBehindBy, 2);
      // The summary the console's list reads: counts without the instance rows.
      const summary = (await (
        await fetch(`${cp.base}/api/v1/workspaces/acme/gateways?instances=none`, { headers })
      ).json()) as Json;
      assert.deepEqual(
        summary.items.map((g: Json) => [g.name, g.instancesTotal, g.instances.length, g.configSync.state]),
        [
          ['dev-1', 1, 0, 'in_sync'],
          ['eu-1', 1, 0, 'unknown'],
        ],
      );
      const bad = await fetch(`${cp.base}/api/v1/workspaces/acme/gateways?instances=some`, { headers });
      assert.equal(bad.status, 400);
      assert.match(((await bad.json()) as Json).detail, /query\.instances/);
    });
  });
