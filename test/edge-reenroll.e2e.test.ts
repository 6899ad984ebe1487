/**
 * Re-enrollment of edge gateways whose certificate expired, end to end: a real `gatehouse control start` issuing
 * gateway certificates valid 3 seconds, gateways bootstrapped with the real `gatehouse gateway bootstrap`, and real
 * `gatehouse gateway run --config DIR` processes. An instance that was stopped until its certificate expired (as a
 * Kubernetes pod started from the certificate in its Helm Secret) re-enrolls at `POST /v1/renew` by proof of
 * possession of its key and syncs again; the refusals (deleted gateway, too old, another key, another CA, malformed)
 * are problem+json with their codes.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EdgeIdentitySchema, type EdgeIdentity } from '../src/config/edge.ts';
import { openCertificateAuthority } from '../src/control/pki/ca.ts';
import { createCsrForKey, createKeyAndCsr, describeCertificate } from '../src/shared/certificates.ts';
import { adminApi, type AdminApi, type ControlProcess, eventually, startControlPlane } from './control-helpers.ts';
import { createAndBootstrap, startEdge, type EdgeProcess } from './edge-helpers.ts';
import { runCli, startUpstream, type Upstream } from './helpers.ts';

const WS = '/workspaces/default';
const PROD = `${WS}/environments/PROD`;
/** Gateway certificates valid 3 s: renewed every 2 s while connected, expired soon after an instance stops. */
const CP_ARGS = ['--gateway-cert-validity', '3s'];

interface GatewayDir {
  identity: EdgeIdentity;
  caPem: string;
  certPem: string;
  keyPem: string;
}

async function readDir(dir: string): Promise<GatewayDir> {
  return {
    identity: EdgeIdentitySchema.parse(JSON.parse(await readFile(join(dir, 'gateway.json'), 'utf8'))),
    caPem: await readFile(join(dir, 'tls', 'ca.pem'), 'utf8'),
    certPem: await readFile(join(dir, 'tls', 'gateway.crt'), 'utf8'),
    keyPem: await readFile(join(dir, 'tls', 'gateway.key'), 'utf8'),
  };
}

/** POST /v1/renew over a connection that trusts only the pinned CA, as the gateway does. */
function postRenew(
  g: GatewayDir,
  body: unknown,
  contentType = 'application/json',
): Promise<{ status: number; json: Record<string, unknown> }> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      new URL('/v1/renew', g.identity.controlPlane.bootstrap),
      {
        method: 'POST',
        ca: g.caPem,
        servername: 'gatehouse-control-plane',
        agent: false,
        headers: { 'content-type': contentType, 'content-length': Buffer.byteLength(text) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

/** Resolves once the certificate in DIR has expired (X.509 times are whole seconds). */
async function untilExpired(dir: string, extraMs = 0): Promise<Date> {
  const { notAfter } = describeCertificate(await readFile(join(dir, 'tls', 'gateway.crt'), 'utf8'));
  await new Promise((r) => setTimeout(r, Math.max(0, notAfter.getTime() - Date.now() + 1100 + extraMs)));
  return notAfter;
}

const spki = (pem: string) => new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });

describe('edge gateways: re-enrollment with an expired certificate', () => {
  let upstream: Upstream;
  let dataDir: string;
  let work: string;
  let cp: ControlProcess;
  let admin: AdminApi;
  let adminToken: string;
  let token: string;
  const edges: EdgeProcess[] = [];

  const start = async (dir: string) => {
    const edge = await startEdge(dir);
    edges.push(edge);
    return edge;
  };
  const statusAt = async (edge: EdgeProcess, key = token) => {
    const res = await fetch(`${edge.url}/orders/items`, { headers: { authorization: `Bearer ${key}` } });
    await res.arrayBuffer();
    return res.status;
  };
  /** A gateway with a collection deployed to it and a client allowed to call it. */
  const deployTo = async (gateway: string, dir: string) => {
    await createAndBootstrap(admin, gateway, dir, 'PROD');
    const collection = await admin.post(`${PROD}/collections`, {
      name: 'orders',
      basePath: '/orders',
      upstream: upstream.url,
      project: 'default',
      target: { type: 'edge', gateway },
      endpoints: [{ method: 'GET', path: '/items', permission: 'orders:read' }],
    });
    assert.equal(collection.status, 201, JSON.stringify(collection.body));
    assert.equal((await admin.post(`${PROD}/collections/orders/publish`)).status, 201);
  };

  before(async () => {
    upstream = await startUpstream();
    dataDir = await mkdtemp(join(tmpdir(), 'gatehouse-cp-reenroll-'));
    work = await mkdtemp(join(tmpdir(), 'gatehouse-edge-reenroll-'));
    cp = await startControlPlane({ dataDir, extraArgs: CP_ARGS });
    adminToken = cp.token;
    admin = cp.api();
    assert.equal((await admin.post(`${WS}/roles`, { name: 'order-reader', permissions: ['orders:read'] })).status, 201);
    const client = await admin.post(`${WS}/clients`, {
      name: 'shop',
      role: 'order-reader',
      environments: ['PROD'],
      projects: ['default'],
    });
    assert.equal(client.status, 201, JSON.stringify(client.body));
    token = client.body.token;
  });
  after(async () => {
    for (const edge of edges) await edge.stop();
    await cp?.stop();
    await upstream?.close();
    await rm(work, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  it('an instance stopped until its certificate expired re-enrolls when started, syncs, and serves what changed meanwhile', async () => {
    const dir = join(work, 'eu-1');
    await deployTo('eu-1', dir);
    let edge = await start(dir);
    await edge.waitFor(/"config applied from the control plane"/);
    assert.equal(await statusAt(edge), 200);
    await edge.stop();

    // While it is down: its certificate expires, and a client is created.
    const temporary = await admin.post(`${WS}/clients`, {
      name: 'temporary',
      role: 'order-reader',
      environments: ['PROD'],
      projects: ['default'],
    });
    assert.equal(temporary.status, 201);
    const before = await readDir(dir);
    const expiredAt = await untilExpired(dir);

    const cpFrom = cp.output.length;
    edge = await start(dir);
    const warned = JSON.parse(await edge.waitFor(/re-enrolling with the control plane/)) as {
      level: number;
      msg: string;
      notAfter: string;
    };
    assert.equal(warned.level, 40);
    assert.equal(
      warned.msg,
      `the gateway certificate expired at ${expiredAt.toISOString()}; re-enrolling with the control plane`,
    );
    const reenrolled = JSON.parse(await edge.waitFor(/"re-enrolled with the control plane/)) as { serial: string };
    await edge.waitFor(/"connected to the control plane"/);
    // The change made meanwhile arrives: the temporary client created while it was down is accepted.
    await eventually(
      async () => (await statusAt(edge, temporary.body.token)) === 200,
      10_000,
      'the client created meanwhile reaches the edge',
    );
    assert.equal(await statusAt(edge), 200);

    // On disk: a certificate valid now (the re-enrolled one, or a renewal of it over the live channel, every 2 s
    // here), mode 0600. That the re-enrolled certificate is for the same key is checked on the wire below.
    const after = await readDir(dir);
    const current = describeCertificate(after.certPem);
    assert.notEqual(current.serial, describeCertificate(before.certPem).serial);
    assert.ok(current.notAfter.getTime() > Date.now() - 1000, 'a current certificate');
    assert.equal((await stat(join(dir, 'tls', 'gateway.crt'))).mode & 0o777, 0o600);
    assert.ok(
      cp.output.slice(cpFrom).some((l) => /"re-enrolled a gateway"/.test(l) && l.includes(reenrolled.serial)),
      'the control plane logged the re-enrollment',
    );

    await eventually(
      async () => ((await admin.get(`${WS}/gateways/eu-1`)).body as { instancesOnline: number }).instancesOnline === 1,
      10_000,
      'the instance is online',
    );
    const view = (await admin.get(`${WS}/gateways/eu-1`)).body as {
      instances: { online: boolean; appliedVersion: number }[];
    };
    assert.ok(view.instances.some((i) => i.online && i.appliedVersion >= 1));
    assert.equal(edge.output.filter((l) => /"gateway listening"/.test(l)).length, 1, 'no restart');
    await edge.stop();
  });

  it('serves from its cache while the control plane is unreachable, and re-enrolls once it is back', async () => {
    const dir = join(work, 'eu-1');
    const g = await readDir(dir);
    await untilExpired(dir);
    const bootstrapPort = new URL(g.identity.controlPlane.bootstrap).port;
    const syncPort = g.identity.controlPlane.sync.split(':').pop()!;
    await cp.stop({ keepData: true });

    const edge = await start(dir);
    await edge.waitFor(/the gateway certificate expired at .*; re-enrolling with the control plane/);
    await edge.waitFor(/serving from the cached snapshot v\d+/);
    const unreachable = JSON.parse(await edge.waitFor(/cannot re-enroll with the control plane yet/)) as {
      level: number;
      retryInMs: number;
      reason: string;
    };
    assert.equal(unreachable.level, 40);
    assert.match(unreachable.reason, /ECONNREFUSED/);
    assert.equal(await statusAt(edge), 200, 'served from the cache');
    assert.equal((await fetch(`${edge.opsUrl}/readyz`)).status, 200);
    assert.ok(!edge.output.some((l) => /"connected to the control plane"/.test(l)));

    cp = await startControlPlane({
      dataDir,
      extraArgs: [...CP_ARGS, '--bootstrap-port', bootstrapPort, '--sync-port', syncPort],
    });
    admin = adminApi(cp.adminUrl, adminToken);
    // Jittered backoff after a few failures: allow for its ceiling.
    await edge.waitFor(/"re-enrolled with the control plane/, 40_000);
    await edge.waitFor(/"connected to the control plane"/, 10_000);
    await eventually(
      async () => ((await admin.get(`${WS}/gateways/eu-1`)).body as { instancesOnline: number }).instancesOnline === 1,
      10_000,
      'the instance is online',
    );
    assert.equal(await statusAt(edge), 200);
    await edge.stop();
  });

  it('refuses the expired certificate of a deleted gateway, whose instance then deactivates its endpoints', async () => {
    const dir = join(work, 'doomed');
    await createAndBootstrap(admin, 'doomed', dir, 'TEST');
    const collection = await admin.post(`${WS}/environments/TEST/collections`, {
      name: 'orders',
      basePath: '/orders',
      upstream: upstream.url,
      project: 'default',
      target: { type: 'edge', gateway: 'doomed' },
      endpoints: [{ method: 'GET', path: '/items', permission: 'orders:read' }],
    });
    assert.equal(collection.status, 201, JSON.stringify(collection.body));
    assert.equal((await admin.post(`${WS}/environments/TEST/collections/orders/publish`)).status, 201);
    const client = await admin.post(`${WS}/clients`, {
      name: 'tester',
      role: 'order-reader',
      environments: ['TEST'],
      projects: ['default'],
    });
    let edge = await start(dir);
    await edge.waitFor(/"config applied from the control plane"/);
    assert.equal(await statusAt(edge, client.body.token), 200);
    await edge.stop();

    assert.equal((await admin.delete(`${WS}/gateways/doomed`)).status, 204);
    await untilExpired(dir);
    const g = await readDir(dir);
    const refused = await postRenew(g, { certificate: g.certPem, csr: await createCsrForKey(g.keyPem, 'doomed') });
    assert.equal(refused.status, 401);
    assert.equal(refused.json.code, 'GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED');
    assert.match(refused.json.detail as string, /was revoked at .* \(gateway deleted\)/);
    assert.equal(refused.json.gatewayStatus, 'deleted');

    edge = await start(dir);
    await edge.waitFor(/serving from the cached snapshot/);
    const deactivated = JSON.parse(await edge.waitFor(/this gateway was deleted in the control plane/)) as {
      reason: string;
    };
    assert.match(deactivated.reason, /revoked/);
    await eventually(async () => (await statusAt(edge, client.body.token)) === 404, 10_000, 'endpoints deactivated');
    await assert.rejects(stat(join(dir, 'cache', 'snapshot.json')), { code: 'ENOENT' });
    assert.ok(!edge.output.some((l) => /"re-enrolled with the control plane/.test(l)));
    await edge.stop();
  });

  it('refuses a CSR for another key than the certificate, a certificate of another CA, and malformed requests', async () => {
    const dir = join(work, 'checks');
    const gatewayId = await createAndBootstrap(admin, 'checks', dir, 'DEV');
    const g = await readDir(dir);

    // Another key: a valid CSR, but not proof of possession of the certificate's key.
    const other = await createKeyAndCsr('someone else');
    const otherKey = await postRenew(g, { certificate: g.certPem, csr: other.csrPem });
    assert.equal(otherKey.status, 401);
    assert.equal(otherKey.json.code, 'GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED');
    assert.match(otherKey.json.detail as string, /is for another key than certificate/);
    assert.equal(otherKey.json.gatewayStatus, undefined);

    // Another CA: a certificate naming this very gateway, with a CSR signed by its key.
    const otherCaDir = await mkdtemp(join(tmpdir(), 'gatehouse-other-ca-'));
    try {
      const foreignCa = await openCertificateAuthority(otherCaDir);
      const forged = await foreignCa.signGatewayCsr(
        other.csrPem,
        { gatewayId, workspaceId: g.identity.workspaceId, environment: 'DEV' },
        3600_000,
      );
      const foreign = await postRenew(g, {
        certificate: forged.certPem,
        csr: await createCsrForKey(other.keyPem, 'forged'),
      });
      assert.equal(foreign.status, 401);
      assert.equal(foreign.json.code, 'GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED');
      assert.match(foreign.json.detail as string, /was not issued by this control plane's CA/);
    } finally {
      await rm(otherCaDir, { recursive: true, force: true });
    }

    // Malformed: not JSON, a missing field, not a certificate, not a CSR.
    const csr = await createCsrForKey(g.keyPem, 'checks');
    for (const [body, detail] of [
      ['{', /not valid JSON/],
      [{ certificate: g.certPem }, /body\.csr/],
      [{ certificate: 'not a certificate', csr }, /body\.certificate: not a PEM X\.509 certificate/],
      [{ certificate: g.certPem, csr: 'not a csr' }, /body\.csr: .*not a valid PEM PKCS#10 request/],
    ] as const) {
      const answer = await postRenew(g, body);
      assert.equal(answer.status, 400, JSON.stringify(answer.json));
      assert.equal(answer.json.code, 'GH_ERR_BOOTSTRAP_INVALID_REQUEST');
      assert.match(answer.json.detail as string, detail);
    }

    // And the genuine pair is accepted — even before the certificate expired — for the same key.
    const accepted = await postRenew(g, { certificate: g.certPem, csr });
    assert.equal(accepted.status, 200, JSON.stringify(accepted.json));
    assert.deepEqual(Object.keys(accepted.json).sort(), ['ca', 'certificate']);
    assert.equal(accepted.json.ca, g.caPem);
    assert.deepEqual(spki(accepted.json.certificate as string), spki(g.certPem));
    assert.notEqual(
      describeCertificate(accepted.json.certificate as string).serial,
      describeCertificate(g.certPem).serial,
    );
  });
});

describe('edge gateways: the re-enrollment window', () => {
  let cp: ControlProcess;
  let work: string;
  let edge: EdgeProcess | undefined;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'gatehouse-edge-window-'));
    cp = await startControlPlane({ extraArgs: [...CP_ARGS, '--gateway-reenroll-window', '1s'] });
  });
  after(async () => {
    await edge?.stop();
    await cp?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('refuses a certificate that expired longer ago than the window; the instance says so and keeps retrying', async () => {
    const dir = join(work, 'late');
    await createAndBootstrap(cp.api(), 'late', dir, 'PROD');
    await untilExpired(dir, 1500);
    const g = await readDir(dir);
    const refused = await postRenew(g, { certificate: g.certPem, csr: await createCsrForKey(g.keyPem, 'late') });
    assert.equal(refused.status, 401);
    assert.equal(refused.json.code, 'GH_ERR_BOOTSTRAP_CERTIFICATE_REFUSED');
    assert.match(
      refused.json.detail as string,
      /expired at .*, longer ago than the re-enrollment window \(1s\); bootstrap the gateway again/,
    );
    assert.equal(refused.json.gatewayStatus, undefined);

    edge = await startEdge(dir);
    const line = JSON.parse(await edge.waitFor(/the control plane refuses to re-enroll this gateway/)) as {
      level: number;
      reason: string;
      retryInMs: number;
    };
    assert.equal(line.level, 50);
    assert.match(line.reason, /longer ago than the re-enrollment window/);
    assert.ok(line.retryInMs >= 15_000, `retries slowly: ${line.retryInMs} ms`);
    assert.equal((await fetch(`${edge.opsUrl}/readyz`)).status, 503, 'nothing to serve: no cache, no control plane');
  });

  it('refuses a --gateway-reenroll-window that is not a duration', async () => {
    const r = await runCli([
      'control',
      'start',
      '--data-dir',
      join(work, 'unused'),
      '--gateway-reenroll-window',
      'forever',
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--gateway-reenroll-window must be a duration such as 30d or 12h/);
  });
});
