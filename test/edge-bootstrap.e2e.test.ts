/**
 * Edge gateways end to end: a real `gatehouse control start` process, gateways created and managed through its
 * admin API and the `gatehouse gateway …` commands, and real `gatehouse gateway bootstrap` runs against its
 * bootstrap endpoint (HTTPS, ephemeral port) — the token, the CA pin and the config directory they write.
 */
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { EdgeIdentitySchema, REGISTRATION_TOKEN_TTL_MS } from '../src/config/edge.ts';
import { generateRegistrationToken } from '../src/control/gateways.ts';
import { gatewayUri } from '../src/control/pki/ca.ts';
import { openStore } from '../src/control/store/open.ts';
import type { Store } from '../src/control/store/store.ts';
import { caPin, createKeyAndCsr, describeCertificate } from '../src/shared/certificates.ts';
import { x509 } from '../src/shared/x509.ts';
import { startControlPlane, type AdminApi, type ControlProcess } from './control-helpers.ts';
import { runCli, startUpstream, type Upstream } from './helpers.ts';
import type { InstallCommand } from '../src/control/gateways.ts';

const WS = '/workspaces/default';

/** `-t`, `--ca-pin` and `--url` as the install command carries them. */
function argsOf(command: string): { token: string; pin: string; url: string } {
  const m = / -t (ghr_[A-Za-z0-9]{32}) --ca-pin (sha256:[0-9a-f]{64}) --url (https:\/\/\S+) /.exec(command);
  assert.ok(m, `no bootstrap arguments in: ${command}`);
  return { token: m[1]!, pin: m[2]!, url: m[3]! };
}

function bootstrapArgs(
  install: Pick<InstallCommand, 'token' | 'caPin' | 'bootstrapUrl'>,
  dir: string,
  mode = 'standalone',
  overrides: { token?: string; pin?: string } = {},
): string[] {
  return [
    'gateway',
    'bootstrap',
    '-t',
    overrides.token ?? install.token,
    '--ca-pin',
    overrides.pin ?? install.caPin,
    '--url',
    install.bootstrapUrl,
    '-o',
    dir,
    mode,
  ];
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

describe('edge gateways: management and bootstrap', () => {
  let cp: ControlProcess;
  let admin: AdminApi;
  let work: string;
  let store: Store;
  let upstream: Upstream;
  let gatewayId: string;
  let install: InstallCommand;
  let caPem: string;
  let firstSerial: string;
  const dir = (name: string) => join(work, name);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'gatehouse-edge-'));
    upstream = await startUpstream();
    cp = await startControlPlane();
    admin = cp.api();
    // The control plane's own store, opened beside it (SQLite in WAL mode), to look at what it recorded.
    store = await openStore({ dataDir: cp.dataDir });
    // The CA lives in the store (its certificate in the clear, its key sealed), shared by every replica.
    caPem = (await store.getSetting('ca:certificate'))!;
  });
  after(async () => {
    await store?.close();
    await cp?.stop();
    await upstream?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('creates the gateway of an environment and answers an install command with a one-time token, the CA pin and the bootstrap URL', async () => {
    const before = Date.now();
    const created = await admin.post(`${WS}/gateways`, { name: 'eu-1', environment: 'PROD', installMethod: 'docker' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const { gateway } = created.body;
    install = created.body.install;
    gatewayId = gateway.id;
    assert.match(gateway.id, /^gw_/);
    assert.deepEqual(
      { ...gateway, id: undefined, createdAt: undefined, updatedAt: undefined },
      {
        id: undefined,
        name: 'eu-1',
        environment: 'PROD',
        installMethod: 'docker',
        status: 'offline',
        instancesOnline: 0,
        instancesTotal: 0,
        versions: [],
        configVersion: 0,
        // No instance has reported a configuration yet: neither in sync nor behind.
        configSync: { state: 'unknown', latestVersion: 1, behindBy: 0 },
        instances: [],
        createdAt: undefined,
        updatedAt: undefined,
      },
    );

    assert.match(install.token, /^ghr_[A-Za-z0-9]{32}$/);
    assert.equal(install.caPin, caPin(caPem), 'the pin is that of the CA in the data directory');
    assert.match(install.bootstrapUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(new URL(install.bootstrapUrl).port, '0', 'the advertised port is the bound one');
    const expires = Date.parse(install.expiresAt);
    assert.ok(
      expires >= before + REGISTRATION_TOKEN_TTL_MS - 1000 && expires <= Date.now() + REGISTRATION_TOKEN_TTL_MS + 1000,
      install.expiresAt,
    );

    // Docker: bootstrap into a named volume, then run the gateway from it. The control plane advertises loopback,
    // which a container reaches only on the host's network; the gateway then keeps off the control plane's ports.
    const credentials = `-t ${install.token} --ca-pin ${install.caPin} --url ${install.bootstrapUrl}`;
    assert.equal(
      install.command,
      `docker run --rm --network host -v gatehouse-eu-1:/etc/edge-gateway gatehouse/gatehouse:0.1.0 gateway bootstrap ${credentials} -o /etc/edge-gateway standalone && docker run -d --name gatehouse-eu-1 --restart unless-stopped -v gatehouse-eu-1:/etc/edge-gateway --network host gatehouse/gatehouse:0.1.0 gateway run --config /etc/edge-gateway --host 127.0.0.1 --port 8090 --ops-port 9091`,
    );
    // The plain CLI, from a checkout: the default config directory, then the gateway beside the control plane.
    assert.equal(
      install.localCommand,
      `bin/gatehouse gateway bootstrap ${credentials} standalone && bin/gatehouse gateway run --port 8090 --ops-port 9091`,
    );
    assert.deepEqual(argsOf(install.localCommand), {
      token: install.token,
      pin: install.caPin,
      url: install.bootstrapUrl,
    });

    // Its edge scope exists before it first connects.
    const snapshot = await admin.get(`${WS}/environments/PROD/snapshot?target=edge:eu-1`);
    assert.equal(snapshot.status, 200, JSON.stringify(snapshot.body));

    // Shown once: never in a read, never in the database in clear.
    const read = await admin.get(`${WS}/gateways/eu-1`);
    assert.equal(read.status, 200);
    assert.equal(JSON.stringify(read.body).includes(install.token), false);
    const db = await readFile(join(cp.dataDir, 'gatehouse.db')).catch(() => Buffer.alloc(0));
    const wal = await readFile(join(cp.dataDir, 'gatehouse.db-wal')).catch(() => Buffer.alloc(0));
    assert.equal(
      Buffer.concat([db, wal]).includes(Buffer.from(install.token)),
      false,
      'the registration token is in the database in clear',
    );
  });

  it('prints the bootstrap URL and CA pin in the control start banner', () => {
    const line = cp.output.find((l) => l.includes('bootstrap      https://'));
    assert.ok(line, cp.output.join('\n'));
    assert.ok(line.includes(install.bootstrapUrl) && line.includes(install.caPin), line);
  });

  it('refuses a second gateway in the same environment, a taken name, an unknown environment and extra fields', async () => {
    const again = await admin.post(`${WS}/gateways`, { name: 'eu-2', environment: 'PROD', installMethod: 'docker' });
    assert.equal(again.status, 409);
    assert.match(again.body.detail, /PROD already has an edge gateway, "eu-1"/);
    const taken = await admin.post(`${WS}/gateways`, { name: 'eu-1', environment: 'TEST', installMethod: 'docker' });
    assert.equal(taken.status, 409);
    assert.match(taken.body.detail, /body\.name: an edge gateway with this name already exists/);
    const unknown = await admin.post(`${WS}/gateways`, { name: 'x', environment: 'STAGING', installMethod: 'docker' });
    assert.equal(unknown.status, 400);
    assert.deepEqual(
      unknown.body.errors.map((e: { path: string }) => e.path),
      ['body.environment'],
    );
    const extra = await admin.post(`${WS}/gateways`, {
      name: 'x',
      environment: 'TEST',
      installMethod: 'podman',
      region: 'eu',
    });
    assert.equal(extra.status, 400);
    assert.deepEqual(extra.body.errors.map((e: { path: string }) => e.path).sort(), ['body', 'body.installMethod']);
  });

  it('refuses a wrong CA pin before sending the token, and writes nothing', async () => {
    const out = dir('wrong-pin');
    const wrong = `sha256:${'0'.repeat(64)}`;
    const r = await runCli(bootstrapArgs(install, out, 'standalone', { pin: wrong }));
    assert.equal(r.code, 1, r.stderr);
    assert.equal(
      r.stderr.trim(),
      `gatehouse: gateway bootstrap: the control plane at ${install.bootstrapUrl} presented a CA whose pin is ${install.caPin}, not the expected ${wrong}: refusing to continue`,
    );
    assert.equal(await exists(out), false, 'the directory was created');
    assert.equal(
      (await store.getRegistrationToken(await sha256(install.token)))?.usedAt,
      undefined,
      'the token was spent',
    );
  });

  it('bootstraps with the install command: identity, certificate, key with mode 0600, directories 0700', async () => {
    const out = dir('gatehouse-eu-1');
    const r = await runCli(bootstrapArgs(install, out));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.includes(install.token) || r.stderr.includes(install.token), false, 'the token was printed');
    assert.match(r.stdout, /Bootstrapped edge gateway "eu-1" \(gw_\w+\) of workspace default, environment PROD, into /);
    assert.match(r.stdout, /Next: (gatehouse|\S*bin\/gatehouse) gateway run --config /);
    assert.equal(
      cp.output.some((l) => l.includes(install.token)),
      false,
      'the control plane logged the token',
    );

    assert.deepEqual((await readdir(out)).sort(), ['gateway.json', 'tls']);
    assert.deepEqual((await readdir(join(out, 'tls'))).sort(), ['ca.pem', 'gateway.crt', 'gateway.key']);
    assert.equal(await mode(out), 0o700);
    assert.equal(await mode(join(out, 'tls')), 0o700);
    assert.equal(await mode(join(out, 'tls/gateway.key')), 0o600);

    const identity = EdgeIdentitySchema.parse(JSON.parse(await readFile(join(out, 'gateway.json'), 'utf8')));
    assert.equal(identity.gatewayId, gatewayId);
    assert.equal(identity.gatewayName, 'eu-1');
    assert.equal(identity.workspaceName, 'default');
    assert.equal(identity.environment, 'PROD');
    assert.equal(identity.installMethod, 'docker');
    assert.equal(identity.caPin, install.caPin);
    assert.equal(identity.controlPlane.bootstrap, install.bootstrapUrl);
    assert.equal(identity.controlPlane.serverName, 'gatehouse-control-plane');

    assert.equal(await readFile(join(out, 'tls/ca.pem'), 'utf8'), caPem);
    const certPem = await readFile(join(out, 'tls/gateway.crt'), 'utf8');
    const cert = describeCertificate(certPem);
    assert.deepEqual(cert.uris, [gatewayUri({ gatewayId, workspaceId: identity.workspaceId, environment: 'PROD' })]);
    assert.ok(
      await new x509.X509Certificate(certPem).verify({
        publicKey: new x509.X509Certificate(caPem).publicKey,
        signatureOnly: true,
      }),
      'not signed by the CA',
    );
    const validity = cert.notAfter.getTime() - Date.now();
    assert.ok(validity > 23 * 3_600_000 && validity <= 24 * 3_600_000, `valid for ${validity} ms`);
    // The key in the directory is the certificate's.
    const key = await readFile(join(out, 'tls/gateway.key'), 'utf8');
    const { createPrivateKey, createPublicKey } = await import('node:crypto');
    assert.equal(
      createPublicKey(createPrivateKey(key)).export({ type: 'spki', format: 'pem' }),
      createPublicKey(certPem).export({ type: 'spki', format: 'pem' }),
    );

    const record = await store.getGatewayCertificate(cert.serial);
    assert.equal(record?.gatewayId, gatewayId);
    assert.equal(record?.revokedAt, undefined);
    firstSerial = cert.serial;
  });

  it('refuses the same token a second time', async () => {
    const out = dir('reused');
    const r = await runCli(bootstrapArgs(install, out));
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^gatehouse: gateway bootstrap: the control plane refused the registration: this registration token was already used \(at .+\); regenerate the install command/,
    );
    assert.equal(r.stderr.includes(install.token), false);
    assert.equal(await exists(out), false);
  });

  it('refuses a token that was never issued', async () => {
    const out = dir('unknown');
    const r = await runCli(bootstrapArgs(install, out, 'standalone', { token: `ghr_${'A'.repeat(32)}` }));
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /the control plane refused the registration: unknown registration token: it was never issued, was replaced by a newer install command, or its gateway was deleted; regenerate the install command/,
    );
    assert.equal(await exists(out), false);
  });

  it('refuses an expired token', async () => {
    // A token issued 6 minutes ago, as the control plane records it (only its hash).
    const { token, hash } = generateRegistrationToken();
    const issued = Date.now() - 6 * 60_000;
    const expiresAt = new Date(issued + REGISTRATION_TOKEN_TTL_MS).toISOString();
    await store.insertRegistrationToken({ hash, gatewayId, createdAt: new Date(issued).toISOString(), expiresAt });
    const out = dir('expired');
    const r = await runCli(bootstrapArgs(install, out, 'standalone', { token }));
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `this registration token expired at ${expiresAt.replaceAll('.', '\\.')}; regenerate the install command`,
      ),
    );
    assert.equal(await exists(out), false);
    assert.equal((await store.getRegistrationToken(await sha256(token)))?.usedAt, undefined);
  });

  it('regenerating the install command issues a token that works and retires the unused one', async () => {
    const first = await admin.post(`${WS}/gateways/eu-1/install-command`);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const second = await admin.post(`${WS}/gateways/${gatewayId}/install-command`);
    assert.equal(second.status, 200);
    assert.notEqual(first.body.install.token, second.body.install.token);
    assert.equal(second.body.gateway.name, 'eu-1');

    const stale = await runCli(bootstrapArgs(first.body.install, dir('stale')));
    assert.equal(stale.code, 2);
    assert.match(stale.stderr, /unknown registration token/);
    const fresh = await runCli(bootstrapArgs(second.body.install, dir('second-instance')));
    assert.equal(fresh.code, 0, fresh.stderr);
    const identity = JSON.parse(await readFile(join(dir('second-instance'), 'gateway.json'), 'utf8'));
    assert.equal(identity.gatewayId, gatewayId, 'a second instance shares the gateway identity');
  });

  it('refuses an already bootstrapped directory before spending the token', async () => {
    const next = (await admin.post(`${WS}/gateways/eu-1/install-command`)).body.install as InstallCommand;
    const out = dir('gatehouse-eu-1');
    const r = await runCli(bootstrapArgs(next, out));
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr.trim(),
      `gatehouse: gateway bootstrap: ${out} is already bootstrapped (it holds gateway.json); delete ${out} to bootstrap again with a new token`,
    );
    assert.equal((await store.getRegistrationToken(await sha256(next.token)))?.usedAt, undefined);

    // A directory that exists but is empty (a container volume) is fine.
    await mkdir(dir('volume'), { mode: 0o755 });
    const ok = await runCli(bootstrapArgs(next, dir('volume')));
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(await mode(dir('volume')), 0o700);
  });

  it('refuses bad arguments with exit 2, naming the flag and never echoing the token', async () => {
    const cases: [string[], RegExp][] = [
      [
        [
          'gateway',
          'bootstrap',
          '--ca-pin',
          install.caPin,
          '--url',
          install.bootstrapUrl,
          '-o',
          dir('a'),
          'standalone',
        ],
        /-t\/--token is required/,
      ],
      [
        [
          'gateway',
          'bootstrap',
          '-t',
          'ghr_short-and-secret',
          '--ca-pin',
          install.caPin,
          '--url',
          install.bootstrapUrl,
          '-o',
          dir('a'),
          'standalone',
        ],
        /-t\/--token: not a registration token/,
      ],
      [
        bootstrapArgs(install, dir('a'), 'standalone', { pin: 'sha256:ABC' }),
        /--ca-pin: must be "sha256:" followed by 64 lower-case hex digits/,
      ],
      [
        [
          'gateway',
          'bootstrap',
          '-t',
          install.token,
          '--ca-pin',
          install.caPin,
          '--url',
          'http://127.0.0.1:1',
          '-o',
          dir('a'),
          'standalone',
        ],
        /--url: must be an https:\/\/ URL/,
      ],
      [
        bootstrapArgs(install, dir('a'), 'kubernetes'),
        /give the mode, standalone or helm, as the one argument \(got "kubernetes"\)/,
      ],
      [
        [
          'gateway',
          'bootstrap',
          '-t',
          install.token,
          '--ca-pin',
          install.caPin,
          '--url',
          'https://127.0.0.1:1',
          '-o',
          dir('a'),
          'standalone',
        ],
        /cannot reach the control plane's bootstrap endpoint at https:\/\/127\.0\.0\.1:1: ECONNREFUSED/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}\n${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.includes('short-and-secret') || r.stderr.includes(install.token), false, r.stderr);
    }
    assert.equal(await exists(dir('a')), false);
  });

  it('answers problem+json on the bootstrap endpoint: malformed token 400, bad CSR 400 without spending the token', async () => {
    const malformed = await https(install.bootstrapUrl, '/v1/register', { token: 'nope', csr: 'x' });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.type, 'application/problem+json');
    assert.equal(JSON.parse(malformed.body).code, 'GH_ERR_BOOTSTRAP_INVALID_REQUEST');

    const next = (await admin.post(`${WS}/gateways/eu-1/install-command`)).body.install as InstallCommand;
    const bad = await https(install.bootstrapUrl, '/v1/register', {
      token: next.token,
      csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----',
    });
    assert.equal(bad.status, 400, bad.body);
    assert.match(JSON.parse(bad.body).detail, /^body\.csr: /);
    // The token still works, exactly once, even when two requests race for it.
    const { csrPem } = await createKeyAndCsr('race');
    const answers = await Promise.all(
      [1, 2, 3].map(() => https(install.bootstrapUrl, '/v1/register', { token: next.token, csr: csrPem })),
    );
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 401, 401]);
    assert.equal(JSON.parse(answers.find((a) => a.status === 401)!.body).code, 'GH_ERR_BOOTSTRAP_TOKEN_REFUSED');
  });

  it('writes values.yaml for the Helm chart in helm mode (mode 0600)', async () => {
    const created = await admin.post(`${WS}/gateways`, { name: 'k8s', environment: 'TEST', installMethod: 'helm' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const helm = created.body.install as InstallCommand;
    assert.equal(
      helm.command,
      `bin/gatehouse gateway bootstrap -t ${helm.token} --ca-pin ${helm.caPin} --url ${helm.bootstrapUrl} -o "$HOME/gatehouse-k8s" helm && helm install gatehouse-k8s deploy/helm/gatehouse -f "$HOME/gatehouse-k8s/values.yaml"`,
    );
    const out = dir('gatehouse-k8s');
    const r = await runCli(bootstrapArgs(helm, out, 'helm'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Next: helm install gatehouse-k8s deploy\/helm\/gatehouse -f .*values\.yaml/);
    assert.equal(await mode(join(out, 'values.yaml')), 0o600);
    const values = parseYaml(await readFile(join(out, 'values.yaml'), 'utf8'));
    assert.deepEqual(values.gateway.identity, JSON.parse(await readFile(join(out, 'gateway.json'), 'utf8')));
    assert.equal(values.gateway.identity.installMethod, 'helm');
    assert.equal(values.gateway.tls.ca, caPem);
    assert.equal(values.gateway.tls.certificate, await readFile(join(out, 'tls/gateway.crt'), 'utf8'));
    assert.equal(values.gateway.tls.key, await readFile(join(out, 'tls/gateway.key'), 'utf8'));
  });

  it('lists gateways with instances online, versions, last synced and an update command when an instance is behind', async () => {
    const now = new Date().toISOString();
    // Instances as the sync channel records them: one current and online, one behind and online, one gone.
    await store.upsertGatewayInstance({
      gatewayId,
      instanceId: 'i-new',
      hostname: 'edge-a',
      softwareVersion: '0.1.0',
      appliedVersion: 3,
      connected: true,
      firstSeenAt: now,
      lastSeenAt: now,
      lastSyncedAt: now,
    });
    await store.upsertGatewayInstance({
      gatewayId,
      instanceId: 'i-old',
      softwareVersion: '0.0.9',
      appliedVersion: 2,
      connected: true,
      firstSeenAt: now,
      lastSeenAt: now,
      lastSyncedAt: '2020-01-01T00:00:00.000Z',
    });
    await store.upsertGatewayInstance({
      gatewayId,
      instanceId: 'i-gone',
      softwareVersion: '0.0.1',
      appliedVersion: 1,
      connected: true,
      firstSeenAt: '2020-01-01T00:00:00.000Z',
      lastSeenAt: '2020-01-01T00:00:00.000Z',
    });
    const list = await admin.get(`${WS}/gateways`);
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.items.map((g: { name: string; environment: string }) => `${g.name}/${g.environment}`),
      ['eu-1/PROD', 'k8s/TEST'],
    );
    const eu = list.body.items[0];
    assert.equal(eu.instancesOnline, 2);
    assert.deepEqual(eu.versions, ['0.0.9', '0.1.0']);
    assert.equal(eu.lastSyncedAt, now);
    assert.deepEqual(
      eu.instances.map((i: { instanceId: string; online: boolean }) => [i.instanceId, i.online]),
      [
        ['i-gone', false],
        ['i-new', true],
        ['i-old', true],
      ],
    );
    assert.equal(eu.updateAvailable.version, '0.1.0');
    assert.match(
      eu.updateAvailable.command,
      /^docker pull gatehouse\/gatehouse:0\.1\.0 && docker rm -f gatehouse-eu-1 && docker run -d --name gatehouse-eu-1 /,
    );
    assert.equal(eu.updateAvailable.releaseNotes, 'https://gatehouse.dev/changelog#v0.1.0');
    const k8s = list.body.items[1];
    assert.equal(k8s.updateAvailable, undefined);
    assert.equal(k8s.instancesOnline, 0);
  });

  it('accepts an edge target only for the gateway of the same environment, and a rename carries the collections along', async () => {
    const spec = (gateway: string) => ({
      name: 'orders',
      basePath: '/orders',
      upstream: upstream.url,
      project: 'default',
      target: { type: 'edge', gateway },
      endpoints: [{ method: 'GET', path: '/orders', permission: 'orders:read' }],
    });
    const elsewhere = await admin.post(`${WS}/environments/PROD/collections`, spec('k8s'));
    assert.equal(elsewhere.status, 400);
    assert.match(
      elsewhere.body.detail,
      /no edge gateway "k8s" in PROD: the edge gateway must exist in this environment/,
    );
    const created = await admin.post(`${WS}/environments/PROD/collections`, spec('eu-1'));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal((await admin.post(`${WS}/environments/PROD/collections/orders/publish`)).status, 201);

    const renamed = await admin.patch(`${WS}/gateways/eu-1`, { name: 'eu-west' });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
    assert.equal(renamed.body.name, 'eu-west');
    assert.equal(renamed.body.id, gatewayId);
    const orders = await admin.get(`${WS}/environments/PROD/collections/orders`);
    assert.deepEqual(orders.body.target, { type: 'edge', gateway: 'eu-west' });
    assert.equal(orders.body.publishedVersion, 2);
    assert.equal(orders.body.unpublishedChanges, false);
    const versions = await admin.get(`${WS}/environments/PROD/collections/orders/versions`);
    assert.equal(versions.status, 200);
    assert.deepEqual(
      versions.body.items.map((v: { version: number; spec: { target: { gateway: string } } }) => [
        v.version,
        v.spec.target.gateway,
      ]),
      [
        [2, 'eu-west'],
        [1, 'eu-1'],
      ],
    );
    // Rolling back to version 1 would target a gateway that no longer exists.
    const rollback = await admin.post(`${WS}/environments/PROD/collections/orders/publish`, { version: 1 });
    assert.equal(rollback.status, 400);
    assert.match(rollback.body.detail, /no edge gateway "eu-1" in PROD/);

    assert.equal((await admin.get(`${WS}/gateways/eu-1`)).status, 404);
    const edge = await admin.get(`${WS}/environments/PROD/snapshot?target=edge:eu-west`);
    assert.equal(edge.status, 200, JSON.stringify(edge.body));
    assert.deepEqual(
      edge.body.snapshot.collections.map((c: { name: string }) => c.name),
      ['orders'],
    );
    const taken = await admin.patch(`${WS}/gateways/eu-west`, { name: 'k8s' });
    assert.equal(taken.status, 409);
  });

  it("shows and manages only the gateways of the caller's environments", async () => {
    const role = await admin.post(`${WS}/roles`, { name: 'gateway-admin', permissions: ['admin:gateways:*'] });
    assert.equal(role.status, 201, JSON.stringify(role.body));
    const client = await admin.post(`${WS}/clients`, {
      name: 'test ops',
      role: 'gateway-admin',
      environments: ['TEST'],
      projects: ['*'],
    });
    assert.equal(client.status, 201, JSON.stringify(client.body));
    const testOnly = cp.api(client.body.token);
    const list = await testOnly.get(`${WS}/gateways`);
    assert.deepEqual(
      list.body.items.map((g: { name: string }) => g.name),
      ['k8s'],
    );
    assert.equal((await testOnly.get(`${WS}/gateways/eu-west`)).status, 404);
    assert.equal((await testOnly.delete(`${WS}/gateways/eu-west`)).status, 404);
    assert.equal((await testOnly.post(`${WS}/gateways/eu-west/install-command`)).status, 404);
    const outside = await testOnly.post(`${WS}/gateways`, {
      name: 'dev-gw',
      environment: 'DEV',
      installMethod: 'docker',
    });
    assert.equal(outside.status, 403);
    assert.equal(outside.body.code, 'GH_ERR_ADMIN_OUT_OF_SCOPE');

    const reader = await admin.post(`${WS}/roles`, { name: 'collections-only', permissions: ['admin:collections:*'] });
    assert.equal(reader.status, 201);
    const noGateways = await admin.post(`${WS}/clients`, {
      name: 'no gateways',
      role: 'collections-only',
      environments: ['*'],
      projects: ['*'],
    });
    assert.equal((await cp.api(noGateways.body.token).get(`${WS}/gateways`)).status, 403);
  });

  it('deletes a gateway: its certificates are revoked and its pending tokens stop working', async () => {
    const pending = (await admin.post(`${WS}/gateways/eu-west/install-command`)).body.install as InstallCommand;
    const deleted = await admin.delete(`${WS}/gateways/eu-west`);
    assert.equal(deleted.status, 204);
    assert.equal((await admin.get(`${WS}/gateways/eu-west`)).status, 404);
    const record = await store.getGatewayCertificate(firstSerial);
    assert.ok(record?.revokedAt, 'the certificate was not revoked');
    const r = await runCli(bootstrapArgs(pending, dir('after-delete')));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown registration token/);
    // Its environment may have a gateway again.
    const again = await admin.post(`${WS}/gateways`, { name: 'eu-2', environment: 'PROD', installMethod: 'docker' });
    assert.equal(again.status, 201, JSON.stringify(again.body));
  });

  describe('gatehouse gateway list|create|rename|install-command|delete', () => {
    const env = () => ({ GATEHOUSE_URL: cp.adminUrl, GATEHOUSE_TOKEN: cp.token, GATEHOUSE_WORKSPACE: undefined });
    const cli = (...args: string[]) => runCli(['gateway', ...args], { env: env() });

    it('creates a gateway and prints its install command once, with the local bootstrap form', async () => {
      const r = await cli('create', '--name', 'cli-gw', '--env', 'DEV');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Created edge gateway "cli-gw" \(gw_\w+\) for environment DEV in workspace default/);
      const { token, pin, url } = argsOf(r.stdout);
      assert.match(
        r.stdout,
        new RegExp(
          `docker run --rm --network host -v gatehouse-cli-gw:/etc/edge-gateway gatehouse/gatehouse:0\\.1\\.0 gateway bootstrap -t ${token}`,
        ),
      );
      assert.ok(
        r.stdout.includes(
          `bin/gatehouse gateway bootstrap -t ${token} --ca-pin ${pin} --url ${url} standalone && bin/gatehouse gateway run --port 8090 --ops-port 9091`,
        ),
        r.stdout,
      );
      // The printed command works.
      const boot = await runCli(bootstrapArgs({ token, caPin: pin, bootstrapUrl: url }, dir('cli-gw')));
      assert.equal(boot.code, 0, boot.stderr);
    });

    it('lists gateways as a table, renames, regenerates the install command and deletes', async () => {
      const list = await cli('list');
      assert.equal(list.code, 0, list.stderr);
      const lines = list.stdout.split('\n');
      assert.match(lines[0]!, /^NAME\s+ENVIRONMENT\s+INSTALL\s+ONLINE\s+VERSIONS\s+LAST SYNCED\s+UPDATE$/);
      assert.ok(
        lines.some((l) => /^cli-gw\s+DEV\s+docker\s+0\s+-\s+never\s+-$/.test(l)),
        list.stdout,
      );

      const renamed = await cli('rename', 'cli-gw', 'cli-gw2');
      assert.equal(renamed.code, 0, renamed.stderr);
      assert.match(renamed.stdout, /Renamed edge gateway "cli-gw" \(gw_\w+\) to "cli-gw2"/);

      const regenerated = await cli('install-command', 'cli-gw2');
      assert.equal(regenerated.code, 0, regenerated.stderr);
      assert.match(regenerated.stdout, /-o \/etc\/edge-gateway standalone/);
      const json = await cli('install-command', 'cli-gw2', '--json');
      assert.match(JSON.parse(json.stdout).install.token, /^ghr_/);

      const deleted = await cli('delete', 'cli-gw2');
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.match(deleted.stdout, /Deleted edge gateway "cli-gw2"/);
      const gone = await cli('delete', 'cli-gw2');
      assert.equal(gone.code, 2);
      assert.match(gone.stderr, /edge gateway "cli-gw2" not found/);
    });

    it('refuses bad flags, naming the flag', async () => {
      const r = await cli('create', '--name', 'x', '--env', 'dev');
      assert.equal(r.code, 2);
      assert.match(r.stderr, /gateway create: --env: must be an upper-case environment name/);
      const m = await cli('create', '--name', 'x', '--env', 'DEV', '--install-method', 'podman');
      assert.equal(m.code, 2);
      assert.match(m.stderr, /gateway create: --install-method: /);
      const n = await cli('rename', 'only-one');
      assert.equal(n.code, 2);
      assert.match(n.stderr, /gateway rename: expected NAME NEW-NAME, got 1 argument\(s\): only-one/);
    });
  });
});

async function sha256(text: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(text).digest('hex');
}

/** One POST to the bootstrap endpoint, trusting nothing (the tests look at refusals, not at trust). */
function https(base: string, path: string, body: unknown): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = request(
      new URL(path, base),
      {
        method: 'POST',
        rejectUnauthorized: false,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (data += d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: data }),
        );
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}
