/**
 * Edge gateways end to end, on the sync channel: a real `gatehouse control start`, a gateway created through its
 * admin API and bootstrapped with `gatehouse gateway bootstrap`, and real `gatehouse gateway run --config DIR`
 * processes in front of a real upstream — traffic, revocation at the edge, fallback on the cache when the control
 * plane dies, a refused cache, refused certificates, NACKs, deletion, and certificate renewal.
 */
import assert from 'node:assert/strict';
import { copyFile, cp as copyDir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials as grpcCredentials, type ClientDuplexStream, type ServiceError, status } from '@grpc/grpc-js';
import { EdgeIdentitySchema } from '../src/config/edge.ts';
import { SnapshotSchema } from '../src/config/schema.ts';
import { canonicalJson, encodeSnapshot } from '../src/config/snapshot-encoding.ts';
import { loadSyncProto, type ReceivedSyncResponse } from '../src/config/sync-proto.ts';
import { openCertificateAuthority } from '../src/control/pki/ca.ts';
import { openStore } from '../src/control/store/open.ts';
import { createKeyAndCsr, describeCertificate } from '../src/shared/certificates.ts';
import { adminApi, type AdminApi, type ControlProcess, eventually, startControlPlane } from './control-helpers.ts';
import { createAndBootstrap, deployOrders, startEdge, type EdgeProcess } from './edge-helpers.ts';
import { startUpstream, type Upstream } from './helpers.ts';

const WS = '/workspaces/default';
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const CP_ARGS = ['--bootstrap-port', '0', '--sync-port', '0'];

/** Opens a Sync stream with these credentials and sends a Hello: was it accepted, and how did it end? */
async function probeSync(
  endpoint: string,
  caPem: Buffer,
  key?: Buffer,
  cert?: Buffer,
): Promise<{ accepted: boolean; code: status; details: string; received: number }> {
  const { ConfigSync } = loadSyncProto();
  const client = new ConfigSync(endpoint, grpcCredentials.createSsl(caPem, key ?? null, cert ?? null), {
    'grpc.ssl_target_name_override': 'gatehouse-control-plane',
  }) as unknown as {
    Sync(): ClientDuplexStream<unknown, ReceivedSyncResponse>;
    close(): void;
  };
  try {
    return await new Promise((resolve) => {
      const call = client.Sync();
      let accepted = false;
      let received = 0;
      call.on('metadata', () => (accepted = true));
      // Snapshots only: the control plane also tells the replica set (`replicas`) right after the Hello.
      call.on('data', (m: { message?: string }) => {
        if (m.message !== 'snapshot') return;
        received++;
        call.end();
      });
      call.on('error', (e: ServiceError) => resolve({ accepted, code: e.code, details: e.details, received }));
      call.on(
        'status',
        (s: { code: status; details: string }) =>
          s.code === status.OK && resolve({ accepted, code: s.code, details: s.details, received }),
      );
      call.write({ hello: { instanceId: 'e2e-probe', softwareVersion: '0.1.0' } });
    });
  } finally {
    client.close();
  }
}

describe('edge gateways: sync, fallback and certificates', () => {
  let upstream: Upstream;
  let dataDir: string;
  let work: string;
  let cp: ControlProcess;
  let admin: AdminApi;
  let adminToken: string;
  let edge: EdgeProcess;
  let edgeDir: string;
  let gatewayId: string;
  let token: string;
  let clientId: string;
  const stopLater: (() => Promise<unknown>)[] = [];

  const call = async (gw: { url: string }, path: string, key = token) => {
    const res = await fetch(`${gw.url}${path}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
    const body = await res.text();
    return { status: res.status, body };
  };
  const statusAt = async (gw: { url: string }, key = token) => (await call(gw, '/orders/items', key)).status;
  const gatewayView = async () =>
    (await admin.get(`${WS}/gateways/eu-1`)).body as {
      instancesOnline: number;
      instances: {
        instanceId: string;
        online: boolean;
        appliedVersion: number;
        nackedVersion?: number;
        lastError?: string;
      }[];
    };

  before(async () => {
    upstream = await startUpstream();
    dataDir = await mkdtemp(join(tmpdir(), 'gatehouse-cp-edge-'));
    work = await mkdtemp(join(tmpdir(), 'gatehouse-edge-sync-'));
    cp = await startControlPlane({ dataDir, extraArgs: CP_ARGS });
    adminToken = cp.token;
    admin = cp.api();
    edgeDir = join(work, 'eu-1');
    gatewayId = await createAndBootstrap(admin, 'eu-1', edgeDir);

    ({ token, clientId } = await deployOrders(admin, upstream.url, 'eu-1'));

    edge = await startEdge(edgeDir);
    await edge.waitFor(/"config applied from the control plane"/);
  });
  after(async () => {
    await edge?.stop();
    for (const stop of stopLater.reverse()) await stop().catch(() => {});
    await cp?.stop();
    await upstream?.close();
    await rm(work, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  it('serves the collection deployed to it, which the cloud gateway does not serve; the admin API shows the instance', async () => {
    const res = await call(edge, '/orders/items');
    assert.equal(res.status, 200, res.body);
    assert.equal((JSON.parse(res.body) as { url: string }).url, '/items');
    assert.equal(await statusAt(edge, ''), 401, 'no key, no entry');
    const cloud = await fetch(`${cp.gatewayUrl}/default/prod/orders/items`, {
      headers: { authorization: `Bearer ${token}` },
    });
    await cloud.arrayBuffer();
    assert.equal(cloud.status, 404, 'the cloud gateway does not serve an edge collection');

    // The heartbeat that makes the instance online can come before the ACK of the version it applied: wait for both.
    await eventually(
      async () => {
        const view = await gatewayView();
        return view.instancesOnline === 1 && view.instances[0]!.appliedVersion >= 1;
      },
      10_000,
      'instance online, its applied version recorded',
    );
    assert.equal((await fetch(`${edge.opsUrl}/readyz`)).status, 200);
  });

  it('refuses loopback upstreams with --egress public, before any connection', async () => {
    const copy = join(work, 'eu-1-public');
    await copyDir(edgeDir, copy, { recursive: true });
    const strict = await startEdge(copy, ['--egress', 'public']);
    try {
      await eventually(
        async () => (await fetch(`${strict.opsUrl}/readyz`)).status === 200,
        10_000,
        'the second instance synced',
      );
      const before = upstream.requests.length;
      const res = await fetch(`${strict.url}/orders/items`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 502);
      assert.equal(((await res.json()) as { code: string }).code, 'GH_ERR_UPSTREAM_EGRESS_DENIED');
      assert.equal(upstream.requests.length, before, 'the upstream saw nothing');
    } finally {
      await strict.stop();
    }
  });

  it('refuses a deleted client and a replaced key at the edge within a second', async () => {
    const created = await admin.post(`${WS}/clients`, {
      name: 'short-lived',
      role: 'order-reader',
      environments: ['PROD'],
      projects: ['default'],
    });
    const key = created.body.token as string;
    await eventually(async () => (await statusAt(edge, key)) === 200, 1000, 'new client accepted at the edge');

    const regenerated = await admin.post(`${WS}/clients/${created.body.client.id}/regenerate`);
    assert.equal(regenerated.status, 200);
    const t0 = Date.now();
    await eventually(async () => (await statusAt(edge, key)) === 401, 1000, 'old key refused at the edge');
    assert.equal(await statusAt(edge, regenerated.body.token), 200);

    assert.equal((await admin.delete(`${WS}/clients/${created.body.client.id}`)).status, 204);
    await eventually(
      async () => (await statusAt(edge, regenerated.body.token)) === 401,
      1000,
      'deleted client refused at the edge',
    );
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms for both`);
  });

  it('refuses a client certificate that the control plane did not issue, and a client without one', async () => {
    const identity = EdgeIdentitySchema.parse(JSON.parse(await readFile(join(edgeDir, 'gateway.json'), 'utf8')));
    const caPem = await readFile(join(edgeDir, 'tls', 'ca.pem'));
    // Another CA, and a certificate from it naming the very same gateway.
    const otherCaDir = await mkdtemp(join(tmpdir(), 'gatehouse-other-ca-'));
    stopLater.push(() => rm(otherCaDir, { recursive: true, force: true }));
    const other = await openCertificateAuthority(otherCaDir);
    const { keyPem, csrPem } = await createKeyAndCsr(`gateway ${gatewayId}`);
    const forged = await other.signGatewayCsr(
      csrPem,
      { gatewayId, workspaceId: identity.workspaceId, environment: 'PROD' },
      3600_000,
    );

    const foreign = await probeSync(
      identity.controlPlane.sync,
      caPem,
      Buffer.from(keyPem),
      Buffer.from(forged.certPem),
    );
    assert.equal(foreign.accepted, false);
    assert.equal(foreign.received, 0);
    assert.equal(foreign.code, status.UNAVAILABLE, foreign.details); // the TLS handshake fails

    const anonymous = await probeSync(identity.controlPlane.sync, caPem);
    assert.equal(anonymous.accepted, false);
    assert.equal(anonymous.received, 0);

    const genuine = await probeSync(
      identity.controlPlane.sync,
      caPem,
      await readFile(join(edgeDir, 'tls', 'gateway.key')),
      await readFile(join(edgeDir, 'tls', 'gateway.crt')),
    );
    assert.equal(genuine.accepted, true, genuine.details);
    assert.equal(genuine.received, 1, 'the genuine certificate gets a snapshot');
  });

  it('NACKs a snapshot it cannot apply, keeps the last good one, the admin API shows the error, and the next version arrives', async () => {
    // A corrupt snapshot record (its body does not hash to the hash it claims), written into the control plane's own
    // store: what a storage fault or a control-plane bug would produce. The gateway must not apply it.
    const workspaceId = (await admin.get(WS)).body.id as string;
    const scope = `${workspaceId}/PROD/edge:eu-1`;
    const store = await openStore({ dataDir });
    let bad: number;
    try {
      const latest = (await store.getLatestSnapshot(scope))!;
      const good = SnapshotSchema.parse(JSON.parse(latest.body));
      bad = latest.version + 1;
      const emptied = { ...good, version: bad, clients: [] };
      await store.insertSnapshot({
        scope,
        version: bad,
        hash: 'f'.repeat(64),
        body: canonicalJson(encodeSnapshot(emptied)),
        createdAt: new Date().toISOString(),
      });
    } finally {
      await store.close();
    }
    // A restarted instance says which version it serves in its Hello and is brought up to the newest stored one.
    await edge.stop();
    edge = await startEdge(edgeDir);
    await edge.waitFor(new RegExp(`refusing snapshot v${bad} from the control plane \\(NACK\\)`));
    await eventually(
      async () => (await gatewayView()).instances.some((i) => i.online && i.nackedVersion === bad),
      10_000,
      'NACK shown by the admin API',
    );
    const instance = (await gatewayView()).instances.find((i) => i.online && i.nackedVersion === bad)!;
    assert.match(instance.lastError!, /content hash mismatch/);
    assert.equal(instance.appliedVersion, bad - 1);
    assert.equal(await statusAt(edge), 200, 'the last good snapshot (with the client) stays in force');

    // The next published change reaches the instance as usual.
    const created = await admin.post(`${WS}/clients`, {
      name: 'after-nack',
      role: 'order-reader',
      environments: ['PROD'],
      projects: ['default'],
    });
    await eventually(
      async () => (await statusAt(edge, created.body.token)) === 200,
      10_000,
      'the next version is applied',
    );
    await eventually(
      async () =>
        (await gatewayView()).instances.some(
          (i) => i.online && i.appliedVersion > bad && i.nackedVersion === undefined,
        ),
      10_000,
      'ACK recorded',
    );
  });

  it('keeps serving when the control plane dies, starts from its cache, refuses a tampered cache, and gets a change made meanwhile', async () => {
    const identity = EdgeIdentitySchema.parse(JSON.parse(await readFile(join(edgeDir, 'gateway.json'), 'utf8')));
    const syncPort = identity.controlPlane.sync.split(':').pop()!;
    const cacheFile = join(edgeDir, 'cache', 'snapshot.json');
    await edge.waitFor(/"config applied from the control plane"/);

    const from = edge.output.length;
    const exited = new Promise((r) => cp.child.once('exit', r));
    cp.child.kill('SIGKILL');
    await exited;
    await edge.waitFor(/disconnected from the control plane/, 10_000, from);
    for (let i = 0; i < 5; i++) assert.equal(await statusAt(edge), 200, 'traffic keeps flowing');

    // A restart while the control plane is down: first without a cache, then with a tampered one, which is refused.
    // Neither serves: every request gets 503 with Retry-After, and the 503 and /readyz say why.
    await edge.stop();
    const saved = join(work, 'snapshot.json.good');
    await copyFile(cacheFile, saved);
    await rm(cacheFile);
    edge = await startEdge(edgeDir);
    const connecting = String.raw`; connecting to the control plane at 127\.0\.0\.1:${syncPort}`;
    await expectNotReady(
      edge,
      new RegExp(`^no cached configuration yet \\(${escape(cacheFile)} does not exist\\)${connecting}`),
    );
    await expectNotReady(edge, new RegExp(`${connecting} \\(attempt \\d+, last error: UNAVAILABLE: .*ECONNREFUSED`));
    await edge.stop();

    await copyFile(saved, cacheFile);
    const cached = JSON.parse(await readFile(cacheFile, 'utf8')) as { body: string };
    await writeFile(
      cacheFile,
      JSON.stringify({ ...cached, body: cached.body.replace(upstream.url, 'http://attacker.example') }),
    );
    edge = await startEdge(edgeDir);
    const refusal = JSON.parse(await edge.waitFor(/refusing the cached snapshot/)) as {
      level: number;
      msg: string;
      file: string;
    };
    assert.equal(refusal.level, 50);
    assert.equal(refusal.file, cacheFile);
    assert.match(refusal.msg, /failed its integrity check/);
    await expectNotReady(
      edge,
      new RegExp(
        `^the cached configuration ${escape(cacheFile)} was refused: it failed its integrity check \\(the file was modified, or written with another gateway key\\)${connecting}`,
      ),
    );
    assert.equal(
      upstream.requests.some((r) => r.headers.host === 'attacker.example'),
      false,
    );
    await edge.stop();

    // …then with the good one, which is served at once.
    await copyFile(saved, cacheFile);
    edge = await startEdge(edgeDir, ['--log-level', 'debug']);
    await edge.waitFor(/serving from the cached snapshot v\d+ \(control plane not reached yet\)/);
    assert.equal((await fetch(`${edge.opsUrl}/readyz`)).status, 200);
    assert.equal(await statusAt(edge), 200, 'served from the cache');

    // While the outage is young, the gateway redials at least every second (jittered), however often it failed.
    const retries = async () =>
      edge.output
        .filter((l) => /cannot reach the control plane; retrying/.test(l))
        .map((l) => JSON.parse(l) as { attempt: number; retryInMs: number });
    await eventually(async () => (await retries()).length >= 8, 20_000, 'eight failed attempts');
    const delays = (await retries()).map((r) => r.retryInMs);
    assert.ok(
      delays.every((ms) => ms >= 0 && ms <= 1000),
      `redial delays ${delays.join(', ')} ms: none above 1 s`,
    );
    assert.ok(
      delays.some((ms) => ms > 0),
      'jittered',
    );

    // The control plane comes back on the same data directory and sync port; a change is made at once.
    cp = await startControlPlane({ dataDir, extraArgs: ['--bootstrap-port', '0', '--sync-port', syncPort] });
    admin = adminApi(cp.adminUrl, adminToken);
    assert.equal((await admin.delete(`${WS}/clients/${clientId}`)).status, 204);
    // The gateway redials within a second (plus the time to sync): well within 5 s even on a busy machine.
    await eventually(async () => (await statusAt(edge)) === 401, 10_000, 'the change made meanwhile reached the edge');
    await edge.waitFor(/"connected to the control plane"/);
    assert.equal(edge.output.filter((l) => /"gateway listening"/.test(l)).length, 1, 'no restart');
  });

  /** Every request is 503 GH_ERR_GATEWAY_NOT_READY with Retry-After, and it and /readyz give a reason matching `why`. */
  async function expectNotReady(gw: EdgeProcess, why: RegExp): Promise<void> {
    let last = '';
    await eventually(
      async () => {
        const readyz = await fetch(`${gw.opsUrl}/readyz`);
        const body = (await readyz.json()) as {
          status: string;
          checks: { config?: { status: string; detail?: string } };
        };
        last = JSON.stringify(body);
        return (
          readyz.status === 503 &&
          body.status === 'not ready' &&
          body.checks.config?.status === 'failing' &&
          why.test(body.checks.config.detail ?? '')
        );
      },
      10_000,
      `/readyz says why the gateway is not ready (${why})`,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; last /readyz: ${last}`);
    });
    const res = await fetch(`${gw.url}/orders/items`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '2');
    assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const problem = (await res.json()) as { code: string; detail: string };
    assert.equal(problem.code, 'GH_ERR_GATEWAY_NOT_READY');
    assert.match(
      problem.detail,
      /^The gateway has no configuration yet \((no cached configuration yet|the cached configuration) /,
    );
    assert.equal(
      upstream.requests.some((r) => r.headers.host === 'attacker.example'),
      false,
    );
  }

  it('a renamed gateway keeps its instances, which follow the snapshots of its new name', async () => {
    assert.equal((await admin.patch(`${WS}/gateways/eu-1`, { name: 'eu-2' })).status, 200);
    const created = await admin.post(`${WS}/clients`, {
      name: 'after-rename',
      role: 'order-reader',
      environments: ['PROD'],
      projects: ['default'],
    });
    await eventually(
      async () => (await statusAt(edge, created.body.token)) === 200,
      10_000,
      'a change after the rename reaches the edge',
    );
    assert.equal(
      (await call(edge, '/orders/items')).status,
      401,
      'the client deleted while the control plane was down stays refused',
    );
  });

  it('cuts a deleted gateway off at once, refuses its reconnects, and it deactivates its endpoints', async () => {
    const created = await admin.post(`${WS}/clients`, {
      name: 'before-delete',
      role: 'order-reader',
      environments: ['PROD'],
      projects: ['default'],
    });
    const key = created.body.token as string;
    await eventually(async () => (await statusAt(edge, key)) === 200, 40_000, 'connected and current');

    const from = edge.output.length;
    const cpFrom = cp.output.length;
    const t0 = Date.now();
    assert.equal((await admin.delete(`${WS}/gateways/${gatewayId}`)).status, 204);
    const deactivated = JSON.parse(
      await edge.waitFor(/this gateway was deleted in the control plane/, 10_000, from),
    ) as { reason: string };
    assert.match(deactivated.reason, /gateway deleted/);
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
    await eventually(async () => (await statusAt(edge, key)) === 404, 10_000, 'endpoints deactivated');
    await assert.rejects(stat(join(edgeDir, 'cache', 'snapshot.json')), { code: 'ENOENT' });

    // Its reconnect is refused: the certificate was revoked with the gateway.
    await eventually(
      async () => cp.output.slice(cpFrom).some((l) => /refused a gateway sync stream/.test(l) && /revoked/.test(l)),
      10_000,
      'reconnect refused',
    );
    await edge.waitFor(/the control plane refuses this gateway/, 10_000, from);
  });
});

describe('edge gateways: certificate renewal', () => {
  let cp: ControlProcess;
  let work: string;
  let edge: EdgeProcess | undefined;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'gatehouse-edge-renew-'));
    // Gateway certificates valid 6 s: renewed every 4 s over the live channel.
    cp = await startControlPlane({ extraArgs: [...CP_ARGS, '--gateway-cert-validity', '6s'] });
  });
  after(async () => {
    await edge?.stop();
    await cp?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('renews the certificate before it expires and reconnects with it, without a restart; after a restart the renewed one is used', async () => {
    const admin = cp.api();
    const dir = join(work, 'renewing');
    await createAndBootstrap(admin, 'renewing', dir);
    const first = describeCertificate(await readFile(join(dir, 'tls', 'gateway.crt'), 'utf8'));
    assert.ok(first.notAfter.getTime() - Date.now() < 7000, 'a short-lived certificate');
    edge = await startEdge(dir);
    await edge.waitFor(/"config applied from the control plane"/);

    const renewed = JSON.parse(await edge.waitFor(/renewed the gateway certificate/, 10_000)) as { serial: string };
    assert.notEqual(renewed.serial, first.serial);
    await edge.waitFor(
      /"connected to the control plane"/,
      10_000,
      edge.output.findIndex((l) => l.includes(renewed.serial)),
    );
    const onDisk = describeCertificate(await readFile(join(dir, 'tls', 'gateway.crt'), 'utf8'));
    assert.notEqual(onDisk.serial, first.serial);
    assert.equal((await stat(join(dir, 'tls', 'gateway.key'))).mode & 0o777, 0o600);
    assert.equal(edge.output.filter((l) => /"gateway listening"/.test(l)).length, 1, 'no restart');

    // Once the first certificate has expired, a restarted gateway connects with the renewed one from its directory.
    await new Promise((r) => setTimeout(r, Math.max(0, first.notAfter.getTime() - Date.now() + 200)));
    await edge.stop();
    edge = await startEdge(dir);
    await edge.waitFor(/"connected to the control plane"/, 10_000);
    await eventually(
      async () => (await admin.get(`${WS}/gateways/renewing`)).body.instancesOnline >= 1,
      10_000,
      'online',
    );
  });
});
