/**
 * The sync channel in one process, on real loopback sockets: the control plane's sync server over a real store
 * (SQLite in memory) and CA, and a real edge gateway runtime dialling it. The publisher is a stand-in that
 * records snapshots the way the real one does, so that each test decides exactly which versions exist.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type ClientDuplexStream,
  credentials as grpcCredentials,
  Metadata,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import pino from 'pino';
import { type Snapshot, SnapshotSchema } from '../../config/schema.ts';
import { diffSnapshots, encodeDelta } from '../../config/snapshot-delta.ts';
import { canonicalJson, encodeSnapshot, snapshotHash } from '../../config/snapshot-encoding.ts';
import {
  GATEWAY_STATUS_TRAILER,
  loadSyncProto,
  type ReceivedSyncResponse,
  syncServices,
  type TelemetryAckMessage,
  type TelemetryBatchMessage,
} from '../../config/sync-proto.ts';
import { createKeyAndCsr } from '../../shared/certificates.ts';
import { startEdgeGateway } from '../../gateway/sync/edge-runtime.ts';
import { type CertificateAuthority, openCertificateAuthority } from '../pki/ca.ts';
import type { PublishedScope } from '../publisher.ts';
import { openStore } from '../store/open.ts';
import type { GatewayRecord, Store } from '../store/store.ts';
import { createTelemetryIngest } from '../telemetry/ingest.ts';
import { eventually } from '../../testing/eventually.ts';
import { startSyncServer, type SyncServer } from './sync-server.ts';

const WS = 'wsp_edge0000000000000001';
const T0 = '2026-01-01T00:00:00.000Z';
const ENVIRONMENTS = [
  'PROD',
  'E2',
  'E3',
  'E4',
  'E5',
  'E6',
  'E7',
  'E8',
  'E9',
  'E10',
  'E11',
  'E12',
  'E13',
  'E14',
  'E15',
  'E16',
  'E17',
  'E18',
  'E19',
];
/** The minute telemetry batches count requests in: a current one (the ingest prunes counts older than 7 days). */
const MINUTE = new Date(Math.floor(Date.now() / 60_000) * 60_000).toISOString();
const SERVER_NAMES = ['gatehouse-control-plane', 'localhost', '127.0.0.1', '::1'];

function snapshot(version: number, basePaths: string[]): Snapshot {
  return SnapshotSchema.parse({
    version,
    collections: basePaths.map((p) => ({
      name: p.slice(1),
      basePath: p,
      upstream: 'http://127.0.0.1:9',
      project: 'shop',
      environment: 'PROD',
      endpoints: [{ method: 'GET', path: '/items', permission: 'items:read' }],
    })),
    tokenExchange: { issuer: 'https://gatehouse.test', audience: 'api' },
  });
}

/** Records snapshots in the store as the publisher does, and tells the listeners. */
class FakePublisher {
  readonly listeners = new Set<(scopes: readonly PublishedScope[]) => void>();
  compiles = 0;
  readonly store: Store;
  constructor(store: Store) {
    this.store = store;
  }
  onPublish(listener: (scopes: readonly PublishedScope[]) => void) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  async changed() {
    this.compiles++;
  }
  /** Stores `s` as its version; `hash` overrides the content hash (a corrupt record). */
  async publish(scope: string, s: Snapshot, hash = snapshotHash(s)) {
    const version = s.version as number;
    await this.store.insertSnapshot({
      scope,
      version,
      hash,
      body: canonicalJson(encodeSnapshot(s)),
      createdAt: new Date().toISOString(),
    });
    for (const l of this.listeners) l([{ scope, version, hash, snapshot: s }]);
  }
}

/** A config directory as `gatehouse gateway bootstrap` writes it, with a certificate recorded in the store. */
async function gatewayDir(
  store: Store,
  ca: CertificateAuthority,
  gateway: GatewayRecord,
  sync: string,
  validityMs = 3600_000,
  signer = ca,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-edge-'));
  const { keyPem, csrPem } = await createKeyAndCsr(`gateway ${gateway.id}`);
  const issued = await signer.signGatewayCsr(
    csrPem,
    { gatewayId: gateway.id, workspaceId: gateway.workspaceId, environment: gateway.environment },
    validityMs,
  );
  if (signer === ca)
    await store.insertGatewayCertificate({
      serial: issued.serial,
      gatewayId: gateway.id,
      notBefore: issued.notBefore.toISOString(),
      notAfter: issued.notAfter.toISOString(),
    });
  await mkdir(join(dir, 'tls'), { recursive: true });
  await writeFile(join(dir, 'tls', 'ca.pem'), ca.certPem);
  await writeFile(join(dir, 'tls', 'gateway.crt'), issued.certPem);
  await writeFile(join(dir, 'tls', 'gateway.key'), keyPem, { mode: 0o600 });
  await writeFile(
    join(dir, 'gateway.json'),
    JSON.stringify({
      gatewayId: gateway.id,
      gatewayName: gateway.name,
      workspaceId: gateway.workspaceId,
      workspaceName: 'acme',
      environment: gateway.environment,
      installMethod: 'docker',
      caPin: ca.pin,
      controlPlane: { bootstrap: 'https://127.0.0.1:1', sync, telemetry: sync, serverName: 'gatehouse-control-plane' },
      bootstrappedAt: T0,
    }),
  );
  return dir;
}

/** A logger whose lines the test can read. */
function memoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

describe('gateway sync: control-plane server and edge runtime', () => {
  let store: Store;
  let ca: CertificateAuthority;
  let publisher: FakePublisher;
  let server: SyncServer;
  let sync: string;
  let pkiDir: string;
  const serverLog = memoryLogger();
  const cleanup: (() => Promise<unknown>)[] = [];
  let n = 0;

  /** A new gateway (its own scope) with a first snapshot. */
  async function newGateway(): Promise<{ gateway: GatewayRecord; scope: string }> {
    // One gateway per environment: every test gets its own.
    const name = `gw-${++n}`;
    const environment = ENVIRONMENTS[n - 1]!;
    const gateway: GatewayRecord = {
      id: `gw_test${n}`,
      workspaceId: WS,
      environment,
      name,
      installMethod: 'docker',
      createdAt: T0,
      updatedAt: T0,
    };
    await store.insertGateway(gateway);
    const scope = `${WS}/${environment}/edge:${name}`;
    await publisher.publish(scope, snapshot(1, ['/a']));
    return { gateway, scope };
  }

  async function edge(dir: string, extra: Partial<Parameters<typeof startEdgeGateway>[0]> = {}) {
    const log = memoryLogger();
    const gw = await startEdgeGateway({
      dir,
      logger: log.logger,
      port: 0,
      host: '127.0.0.1',
      opsPort: 0,
      reconnect: { initialMs: 20, maxMs: 200 },
      heartbeatMs: 200,
      telemetry: false,
      ...extra,
    });
    cleanup.push(() => gw.close());
    return { gw, log };
  }

  const instances = (gatewayId: string) => store.listGatewayInstances(gatewayId);

  before(async () => {
    store = await openStore({ databaseUrl: ':memory:' });
    pkiDir = await mkdtemp(join(tmpdir(), 'gatehouse-pki-'));
    ca = await openCertificateAuthority(pkiDir);
    await store.insertWorkspace({
      id: WS,
      name: 'acme',
      environments: ENVIRONMENTS,
      devEnvironment: 'PROD',
      createdAt: T0,
    });
    publisher = new FakePublisher(store);
    const telemetry = createTelemetryIngest({ store, logger: serverLog.logger });
    server = await startSyncServer({
      store,
      publisher,
      ca,
      tls: await ca.issueServerCertificate(SERVER_NAMES),
      logger: serverLog.logger,
      host: '127.0.0.1',
      port: 0,
      softwareVersion: '0.1.0',
      telemetry,
    });
    sync = `127.0.0.1:${server.port}`;
  });
  after(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => {});
    await server?.close();
    await store?.close();
    await rm(pkiDir, { recursive: true, force: true });
  });

  it('sends the full snapshot on connect, a delta after a publish, and records the ACKed versions', async () => {
    const { gateway, scope } = await newGateway();
    const dir = await gatewayDir(store, ca, gateway, sync);
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const { gw } = await edge(dir);
    await eventually(() => gw.state().appliedVersion === 1, 10_000, 'v1 applied');
    assert.equal(gw.instance.version, '1');
    await eventually(async () => (await instances(gateway.id))[0]?.appliedVersion === 1, 10_000, 'v1 ACK recorded');
    const [record] = await instances(gateway.id);
    assert.equal(record!.connected, true);
    assert.equal(record!.instanceId, gw.state().instanceId);
    assert.equal(record!.softwareVersion, '0.1.0');
    assert.ok(record!.lastSyncedAt);

    await publisher.publish(scope, snapshot(2, ['/a', '/b']));
    await eventually(() => gw.state().appliedVersion === 2, 10_000, 'v2 applied');
    assert.ok(
      serverLog.lines.some(
        (l) => l.msg === 'sent a snapshot version' && l.gateway === gateway.id && l.version === 2 && l.kind === 'delta',
      ),
      'v2 travelled as a delta',
    );
    await eventually(
      () => server.registry.appliedVersions(gateway.id).get(gw.state().instanceId) === 2,
      10_000,
      'the registry knows v2',
    );
    const cached = JSON.parse(await readFile(join(dir, 'cache', 'snapshot.json'), 'utf8')) as { version: number };
    assert.equal(cached.version, 2, 'the applied snapshot is cached');
  });

  it('a NACKed version is not recorded as applied; the instance keeps the last good one and gets the next as a delta from it', async () => {
    const { gateway, scope } = await newGateway();
    const dir = await gatewayDir(store, ca, gateway, sync);
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const { gw, log } = await edge(dir);
    await eventually(() => gw.state().appliedVersion === 1, 10_000, 'v1 applied');

    // A record whose content does not hash to what it claims: the edge must refuse it.
    await publisher.publish(scope, snapshot(2, ['/a', '/evil']), 'f'.repeat(64));
    await eventually(async () => (await instances(gateway.id))[0]?.nackedVersion === 2, 10_000, 'NACK recorded');
    const [record] = await instances(gateway.id);
    assert.equal(record!.appliedVersion, 1);
    assert.match(record!.lastError!, /content hash mismatch/);
    assert.equal(gw.instance.version, '1', 'the previous snapshot stays in force');
    assert.ok(log.lines.some((l) => /refusing snapshot v2/.test(String(l.msg))));
    assert.ok(serverLog.lines.some((l) => /NACK/.test(String(l.msg)) && l.gateway === gateway.id));

    await publisher.publish(scope, snapshot(3, ['/a', '/c']));
    await eventually(() => gw.state().appliedVersion === 3, 10_000, 'v3 applied');
    assert.ok(
      serverLog.lines.some(
        (l) => l.msg === 'sent a snapshot version' && l.gateway === gateway.id && l.version === 3 && l.kind === 'delta',
      ),
      'v3 came as a delta from v1',
    );
    await eventually(async () => (await instances(gateway.id))[0]?.appliedVersion === 3, 10_000, 'v3 ACK recorded');
    const [later] = await instances(gateway.id);
    assert.equal(later!.nackedVersion, undefined, 'an ACK of a newer version clears the error');
  });

  it('a restarted instance sends its cached version in the Hello and gets a delta; with the control plane gone it serves the cache', async () => {
    const { gateway, scope } = await newGateway();
    const dir = await gatewayDir(store, ca, gateway, sync);
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const first = await edge(dir);
    await eventually(() => first.gw.state().appliedVersion === 1, 10_000, 'v1 applied');
    await first.gw.close();
    await publisher.publish(scope, snapshot(2, ['/a', '/b']));

    const second = await edge(dir);
    assert.equal(second.gw.state().appliedVersion, 1, 'serves the cache at once');
    assert.equal(second.gw.state().source, 'cache');
    assert.ok(
      second.log.lines.some((l) => l.msg === 'serving from the cached snapshot v1 (control plane not reached yet)'),
    );
    await eventually(() => second.gw.state().appliedVersion === 2, 10_000, 'v2 applied');
    assert.ok(
      serverLog.lines.some(
        (l) => l.msg === 'sent a snapshot version' && l.gateway === gateway.id && l.version === 2 && l.kind === 'delta',
      ),
    );
  });

  it('refuses a tampered cache with a log line naming the file, even when the attacker recomputes the content hash', async () => {
    const { gateway } = await newGateway();
    const dir = await gatewayDir(store, ca, gateway, sync.replace(/:\d+$/, ':1')); // a control plane that is not there
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'cache', 'snapshot.json');
    // A valid cache first: written by a gateway that did reach the control plane.
    const good = await gatewayDir(store, ca, gateway, sync);
    cleanup.push(() => rm(good, { recursive: true, force: true }));
    const { gw } = await edge(good);
    await eventually(() => gw.state().appliedVersion === 1, 10_000, 'v1 applied');
    await gw.close();
    await mkdir(join(dir, 'cache'));
    const original = JSON.parse(await readFile(join(good, 'cache', 'snapshot.json'), 'utf8')) as {
      body: string;
      hash: string;
    };

    // Cached under another gateway key: its MAC does not verify here.
    await writeFile(file, JSON.stringify(original));
    let started = await edge(dir);
    assert.equal(started.gw.state().appliedVersion, 0);
    assert.equal(started.gw.instance.ready(), false);
    assert.ok(
      started.log.lines.some(
        (l) =>
          l.level === 50 &&
          String(l.msg).includes(`refusing the cached snapshot ${file}`) &&
          /integrity check/.test(String(l.msg)),
      ),
    );
    await started.gw.close();

    // The attacker's edit with a recomputed content hash: the MAC still fails.
    const tampered = SnapshotSchema.parse(JSON.parse(original.body));
    tampered.collections[0]!.upstream.url = 'http://attacker.example';
    await writeFile(
      file,
      JSON.stringify({ ...original, body: canonicalJson(encodeSnapshot(tampered)), hash: snapshotHash(tampered) }),
    );
    started = await edge(dir);
    assert.equal(started.gw.state().appliedVersion, 0);
    assert.ok(started.log.lines.some((l) => String(l.msg).includes(`refusing the cached snapshot ${file}`)));
    await started.gw.close();

    await writeFile(file, '{"format":"gatehouse-snapshot-cache/1", "trunc');
    started = await edge(dir);
    assert.ok(
      started.log.lines.some((l) =>
        String(l.msg).includes(`refusing the cached snapshot ${file}: it is not valid JSON`),
      ),
    );
  });

  it('refuses a client certificate issued by another CA, and accepts one this CA issued and recorded', async () => {
    const { gateway } = await newGateway();
    const otherDir = await mkdtemp(join(tmpdir(), 'gatehouse-pki-other-'));
    const other = await openCertificateAuthority(otherDir);
    const foreign = await gatewayDir(store, ca, gateway, sync, 3600_000, other);
    const good = await gatewayDir(store, ca, gateway, sync);
    cleanup.push(...[otherDir, foreign, good].map((d) => () => rm(d, { recursive: true, force: true })));

    const refused = await callSync(foreign);
    assert.notEqual(refused.code, status.OK);
    assert.equal(refused.accepted, false);
    assert.deepEqual(refused.received, []);

    const accepted = await callSync(good, undefined, true);
    assert.equal(accepted.accepted, true);
    assert.equal(accepted.received[0]?.message, 'snapshot');
  });

  it('ends the streams of a deleted gateway at once, refuses its reconnects, and the gateway deactivates its endpoints', async () => {
    const { gateway } = await newGateway();
    const dir = await gatewayDir(store, ca, gateway, sync);
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const { gw } = await edge(dir);
    await eventually(() => gw.state().appliedVersion === 1 && gw.state().connected, 10_000, 'connected');

    assert.equal(await store.deleteGateway(gateway.id, new Date().toISOString()), true);
    const t0 = Date.now();
    assert.equal(server.disconnectGateway(gateway.id), 1);
    await eventually(() => !gw.state().connected, 10_000, 'stream cut');
    assert.ok(Date.now() - t0 < 1000);
    await eventually(
      () => /revoked|deleted/.test(gw.state().lastError ?? '') && gw.state().attempts >= 2,
      10_000,
      'reconnects refused',
    );
    assert.equal(gw.state().connected, false);
    await eventually(() => gw.instance.version === 'deleted', 10_000, 'endpoints deactivated');
    assert.equal(gw.instance.server.table?.collections.length, 0);
    await assert.rejects(
      readFile(join(dir, 'cache', 'snapshot.json')),
      { code: 'ENOENT' },
      'the cache is gone: a restart serves nothing',
    );
  });

  it('renews the certificate over the live channel before it expires and reconnects with it, without a restart', async () => {
    const { gateway, scope } = await newGateway();
    const dir = await gatewayDir(store, ca, gateway, sync, 3000);
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const before = await readFile(join(dir, 'tls', 'gateway.crt'), 'utf8');
    const { gw, log } = await edge(dir);
    await eventually(() => gw.state().appliedVersion === 1, 10_000, 'v1 applied');
    const serial = gw.state().certificate.serial;
    // Renewed 2 s after issuance (2/3 of 3 s); the control plane's certificates last 24 h.
    await eventually(() => gw.state().certificate.serial !== serial, 10_000, 'renewed');
    assert.ok(log.lines.some((l) => /renewed the gateway certificate/.test(String(l.msg))));
    const after = await readFile(join(dir, 'tls', 'gateway.crt'), 'utf8');
    assert.notEqual(after, before);
    assert.ok(await store.getGatewayCertificate(gw.state().certificate.serial), 'the renewed certificate is recorded');
    await eventually(
      () => gw.state().connected && gw.state().connections >= 2,
      10_000,
      'reconnected with the new certificate',
    );
    await publisher.publish(scope, snapshot(2, ['/a', '/renewed']));
    await eventually(() => gw.state().appliedVersion === 2, 10_000, 'v2 over the new channel');

    // The cache was re-keyed with the new private key: a restart reads it.
    await gw.close();
    const again = await edge(dir, { reconnect: { initialMs: 10_000, maxMs: 10_000 } });
    assert.equal(again.gw.state().source, 'cache');
    assert.equal(again.gw.state().appliedVersion, 2);
  });

  /** Opens a Sync stream with the directory's credentials (or `certPem`), sends a Hello, and reports how it went. */
  async function callSync(
    dir: string,
    certPem?: string,
    hangUpWhenAccepted = false,
    endpoint = sync,
  ): Promise<{ code: status; details: string; accepted: boolean; received: ReceivedSyncResponse[] }> {
    const proto = loadSyncProto();
    const read = (f: string) => readFile(join(dir, 'tls', f));
    const creds = grpcCredentials.createSsl(
      await read('ca.pem'),
      await read('gateway.key'),
      certPem ? Buffer.from(certPem) : await read('gateway.crt'),
    );
    const client = new proto.ConfigSync(endpoint, creds, {
      'grpc.ssl_target_name_override': 'gatehouse-control-plane',
    }) as unknown as {
      Sync(): import('@grpc/grpc-js').ClientDuplexStream<unknown, ReceivedSyncResponse>;
      close(): void;
    };
    try {
      return await new Promise((resolve) => {
        const call = client.Sync();
        const received: ReceivedSyncResponse[] = [];
        let accepted = false;
        call.on('metadata', () => (accepted = true));
        call.on('data', (m: ReceivedSyncResponse) => {
          received.push(m);
          if (hangUpWhenAccepted) call.end();
        });
        call.on('error', (e: ServiceError) => resolve({ code: e.code, details: e.details, accepted, received }));
        call.on(
          'status',
          (s: { code: status; details: string }) =>
            s.code === status.OK && resolve({ code: s.code, details: s.details, accepted, received }),
        );
        call.write({ hello: { instanceId: 'probe', softwareVersion: '0.1.0' } });
      });
    } finally {
      client.close();
    }
  }

  /** A new gateway with a Telemetry.Report stream open whose first batch was acknowledged. */
  async function reportingGateway() {
    const { gateway } = await newGateway();
    const dir = await gatewayDir(store, ca, gateway, sync);
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const report = await openReport(dir, sync);
    cleanup.push(async () => report.close());
    report.send(1);
    await eventually(() => report.acks.includes(1), 10_000, 'batch 1 acknowledged');
    return { gateway, dir, report };
  }

  /** Request counts stored for the gateway (what its telemetry batches added up to). */
  const storedCount = async (gatewayId: string) =>
    (await store.listTelemetry(WS, { since: MINUTE, gatewayId })).reduce((n, r) => n + r.count, 0);

  it('ends the Telemetry.Report stream of a deleted gateway at once with PERMISSION_DENIED, and stores no further batch', async () => {
    const { gateway, dir, report } = await reportingGateway();
    assert.equal(await storedCount(gateway.id), 1);

    assert.equal(await store.deleteGateway(gateway.id, new Date().toISOString()), true);
    assert.equal(server.disconnectGateway(gateway.id), 1, 'the telemetry stream is one of the streams ended');
    const ended = await report.ended;
    assert.equal(ended.code, status.PERMISSION_DENIED);
    assert.equal(ended.details, 'gateway deleted');
    assert.equal(ended.deleted, true, 'the trailer says deleted');

    // Whatever the instance still sends goes nowhere: the stream is over, and a new one is refused.
    report.send(2);
    const again = await openReport(dir, sync);
    cleanup.push(async () => again.close());
    again.send(3);
    assert.equal((await again.ended).code, status.PERMISSION_DENIED);
    assert.deepEqual(again.acks, []);
    assert.deepEqual(report.acks, [1]);
    assert.equal(await storedCount(gateway.id), 1, 'a batch was stored after the deletion');
  });

  it('refuses a telemetry batch once the gateway is deleted, even on a stream nothing ended (another replica deleted it)', async () => {
    const { gateway, report } = await reportingGateway();

    // Deleted in the store only: no disconnectGateway on this control plane.
    assert.equal(await store.deleteGateway(gateway.id, new Date().toISOString()), true);
    report.send(2);
    const ended = await report.ended;
    assert.equal(ended.code, status.PERMISSION_DENIED);
    assert.match(
      ended.details,
      new RegExp(`^the certificate of gateway ${gateway.id} was revoked at .* \\(gateway deleted\\)$`),
    );
    assert.equal(ended.deleted, true);
    assert.deepEqual(report.acks, [1]);
    assert.equal(await storedCount(gateway.id), 1, 'the batch after the deletion was stored');
  });

  it('an instance whose telemetry batch is refused as deleted deactivates its endpoints, as when the sync stream says so', async () => {
    const { gateway } = await newGateway();
    const dir = await gatewayDir(store, ca, gateway, sync);
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    let sequence = 0;
    const acked: number[] = [];
    const source = {
      takeBatch: () => ({
        sequence: ++sequence,
        requests: [
          {
            minute: MINUTE,
            collection: 'a',
            endpoint: 'GET /items',
            clientId: 'cli_1',
            status: 200,
            count: 1,
            durationMsSum: 1,
            durationMsMax: 1,
          },
        ],
        securityEvents: [],
        accessEvents: [],
        dropped: 0,
      }),
      ack: (n: number) => void acked.push(n),
      requeue: () => {},
    };
    // No heartbeat within the test: its store write would fail for a deleted gateway and end the sync stream.
    const { gw, log } = await edge(dir, { telemetry: source, heartbeatMs: 60_000 });
    await eventually(
      () => gw.state().appliedVersion === 1 && acked.length > 0,
      10_000,
      'connected, a batch acknowledged',
    );

    // Deleted in the store only: nothing ends the sync stream here, the next telemetry batch is refused.
    assert.equal(await store.deleteGateway(gateway.id, new Date().toISOString()), true);
    await eventually(() => gw.instance.version === 'deleted', 10_000, 'endpoints deactivated');
    const line = log.lines.find((l) => /this gateway was deleted in the control plane/.test(String(l.msg)));
    assert.match(
      String(line?.reason),
      /^PERMISSION_DENIED: the certificate of gateway .* was revoked at .* \(gateway deleted\)$/,
    );
    await assert.rejects(readFile(join(dir, 'cache', 'snapshot.json')), { code: 'ENOENT' });
  });

  it('ends a Sync or Telemetry stream whose gateway was deleted between its authentication and its registration', async () => {
    // The deletion lands right after authentication looked the gateway up: disconnectGateway then finds nothing to
    // end (the stream is not registered yet). A store that deletes the gateway at that very moment stages it.
    let armed: string | undefined;
    const racing = new Proxy(store, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (prop !== 'getGateway' || typeof value !== 'function')
          return typeof value === 'function' ? value.bind(target) : value;
        return async (by: { id: string }) => {
          const found = await target.getGateway(by);
          if (found && by.id === armed) {
            armed = undefined;
            await target.deleteGateway(found.id, new Date().toISOString());
            assert.equal(late.disconnectGateway(found.id), 0, 'the stream is not registered yet');
          }
          return found;
        };
      },
    });
    const late = await startSyncServer({
      store: racing,
      publisher,
      ca,
      tls: await ca.issueServerCertificate(SERVER_NAMES),
      logger: serverLog.logger,
      host: '127.0.0.1',
      port: 0,
      softwareVersion: '0.1.0',
      telemetry: createTelemetryIngest({ store, logger: serverLog.logger }),
    });
    cleanup.push(() => late.close());
    const endpoint = `127.0.0.1:${late.port}`;

    const first = await newGateway();
    const syncDir = await gatewayDir(store, ca, first.gateway, endpoint);
    cleanup.push(() => rm(syncDir, { recursive: true, force: true }));
    armed = first.gateway.id;
    const result = await callSync(syncDir, undefined, false, endpoint);
    assert.equal(result.code, status.PERMISSION_DENIED, result.details);
    assert.match(result.details, /was revoked at .* \(gateway deleted\)/);
    assert.equal(result.accepted, false);
    assert.deepEqual(result.received, []);
    assert.equal(late.registry.size, 0);

    const second = await newGateway();
    const reportDir = await gatewayDir(store, ca, second.gateway, endpoint);
    cleanup.push(() => rm(reportDir, { recursive: true, force: true }));
    armed = second.gateway.id;
    const report = await openReport(reportDir, endpoint);
    cleanup.push(async () => report.close());
    report.send(1);
    const ended = await report.ended;
    assert.equal(ended.code, status.PERMISSION_DENIED, ended.details);
    assert.equal(ended.deleted, true);
    assert.deepEqual(report.acks, []);
    assert.equal(await storedCount(second.gateway.id), 0);
  });

  it('refuses a stream whose certificate serial the store does not know, with a clear status', async () => {
    const { gateway } = await newGateway();
    const dir = await gatewayDir(store, ca, gateway, sync);
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    // Same CA, same gateway, but a certificate the control plane never recorded.
    const { keyPem, csrPem } = await createKeyAndCsr('gateway forged');
    const issued = await ca.signGatewayCsr(
      csrPem,
      { gatewayId: gateway.id, workspaceId: WS, environment: gateway.environment },
      3600_000,
    );
    await writeFile(join(dir, 'tls', 'gateway.key'), keyPem);
    const result = await callSync(dir, issued.certPem);
    assert.equal(result.code, status.UNAUTHENTICATED);
    assert.match(result.details, /not issued by this control plane/);
    assert.equal(result.accepted, false);
  });

  it('tells connected instances the replicas that are up; the gateway keeps them in replicas.json and dials them', async () => {
    const { gateway } = await newGateway();
    const dir = await gatewayDir(store, ca, gateway, sync);
    const other = { bootstrap: 'https://127.0.0.1:2', sync: '127.0.0.1:3', telemetry: '127.0.0.1:3' };
    const self = { bootstrap: 'https://127.0.0.1:1', sync, telemetry: sync };
    server.advertiseReplicas([self, other]);
    const { gw } = await edge(dir);
    const file = join(dir, 'replicas.json');
    const saved = async () =>
      (JSON.parse(await readFile(file, 'utf8').catch(() => '{}')) as { replicas?: unknown[] }).replicas;
    await eventually(async () => (await saved())?.length === 2, 10_000, 'replicas.json written');
    assert.deepEqual(await saved(), [self, other]);
    assert.equal((await stat(file)).mode & 0o777, 0o644);
    assert.deepEqual(gw.identity.controlPlane.alternates, [other], 'failover (and re-enrollment) use them now');
    // The set changes while connected: told at once, and the file follows.
    const third = { bootstrap: 'https://127.0.0.1:4', sync: '127.0.0.1:5', telemetry: '127.0.0.1:5' };
    server.advertiseReplicas([self, third]);
    await eventually(async () => JSON.stringify(await saved()) === JSON.stringify([self, third]), 10_000, 'updated');
    assert.deepEqual(gw.identity.controlPlane.alternates, [third]);
    server.advertiseReplicas([]);
  });

  it('notices a replica that stops answering (no reset: keepalive pings go unanswered) and moves to the next one', async () => {
    const { gateway } = await newGateway();
    // A TCP relay to the sync server that can freeze: from then on nothing passes either way and nothing is closed,
    // as when a replica's host loses power or the network partitions.
    const sockets: Socket[] = [];
    let frozen = false;
    const relay = createNetServer((inbound) => {
      const outbound = connect(server.port, '127.0.0.1');
      sockets.push(inbound, outbound);
      inbound.on('data', (d) => void (frozen || outbound.write(d)));
      outbound.on('data', (d) => void (frozen || inbound.write(d)));
      inbound.on('error', () => outbound.destroy());
      outbound.on('error', () => inbound.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    cleanup.push(async () => {
      for (const x of sockets) x.destroy();
      await new Promise((resolve) => relay.close(resolve));
    });
    const relayed = `127.0.0.1:${(relay.address() as AddressInfo).port}`;
    const dir = await gatewayDir(store, ca, gateway, relayed);
    const identity = JSON.parse(await readFile(join(dir, 'gateway.json'), 'utf8')) as {
      controlPlane: Record<string, unknown>;
    };
    identity.controlPlane.alternates = [{ bootstrap: 'https://127.0.0.1:1', sync, telemetry: sync }];
    await writeFile(join(dir, 'gateway.json'), JSON.stringify(identity));
    const { gw } = await edge(dir);
    await eventually(() => gw.state().connected && gw.state().endpoint === relayed, 10_000, 'connected via the relay');
    const frozenAt = Date.now();
    frozen = true;
    await eventually(() => gw.state().connected && gw.state().endpoint === sync, 20_000, 'moved to the next replica');
    const took = Date.now() - frozenAt;
    // A ping every 1 s, 3 s to answer: noticed after 3 to 4 s (more on a loaded machine), never at once.
    assert.ok(took >= 3000, `moved on after the keepalive timeout, not before (${took} ms)`);
  });

  it('gives up a replica whose address accepts TCP but never completes TLS, and connects to the next one', async () => {
    const { gateway } = await newGateway();
    // A black hole: connections are accepted and then nothing happens (as behind a firewall that drops packets,
    // but without waiting for the kernel's connect timeout).
    const held: Socket[] = [];
    const hole = createNetServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
    cleanup.push(async () => {
      for (const s of held) s.destroy();
      await new Promise((resolve) => hole.close(resolve));
    });
    const blackhole = `127.0.0.1:${(hole.address() as AddressInfo).port}`;
    const dir = await gatewayDir(store, ca, gateway, blackhole);
    const identity = JSON.parse(await readFile(join(dir, 'gateway.json'), 'utf8')) as {
      controlPlane: Record<string, unknown>;
    };
    identity.controlPlane.alternates = [{ bootstrap: 'https://127.0.0.1:1', sync, telemetry: sync }];
    await writeFile(join(dir, 'gateway.json'), JSON.stringify(identity));
    const startedAt = Date.now();
    const { gw, log } = await edge(dir);
    // gRPC alone would wait 20 s for the handshake; the accept timeout (3 s) moves on well before.
    await eventually(() => gw.state().connected, 15_000, 'connected to the next replica');
    const took = Date.now() - startedAt;
    assert.equal(gw.state().endpoint, sync);
    assert.ok(held.length >= 1, 'the black hole was dialled first');
    assert.ok(
      log.lines.some((l) => String(l.reason).startsWith('not accepted within 3000 ms')),
      JSON.stringify(log.lines.filter((l) => l.reason)),
    );
    assert.ok(took >= 3000, `moved on after the accept timeout, not before (${took} ms)`);
  });
});

/**
 * A Telemetry.Report stream with the directory's credentials: `send(n)` writes batch n (one request counted),
 * `acks` are the acknowledged sequences, `ended` how the stream ended (`deleted`: the gateway-status trailer).
 */
async function openReport(dir: string, endpoint: string) {
  const read = (f: string) => readFile(join(dir, 'tls', f));
  const creds = grpcCredentials.createSsl(await read('ca.pem'), await read('gateway.key'), await read('gateway.crt'));
  const client = new (loadSyncProto().Telemetry)(endpoint, creds, {
    'grpc.ssl_target_name_override': 'gatehouse-control-plane',
  }) as unknown as {
    Report(): ClientDuplexStream<Partial<TelemetryBatchMessage>, TelemetryAckMessage>;
    close(): void;
  };
  const call = client.Report();
  const acks: number[] = [];
  call.on('data', (ack: TelemetryAckMessage) => acks.push(ack.sequence));
  const ended = new Promise<{ code: status; details: string; deleted: boolean }>((resolve) => {
    call.on('error', (e: ServiceError) =>
      resolve({ code: e.code, details: e.details, deleted: e.metadata?.get(GATEWAY_STATUS_TRAILER)[0] === 'deleted' }),
    );
    call.on(
      'status',
      (s: { code: status; details: string }) =>
        s.code === status.OK && resolve({ code: s.code, details: s.details, deleted: false }),
    );
  });
  return {
    acks,
    ended,
    send(sequence: number) {
      call.write({
        instanceId: 'i-1',
        sequence,
        requests: [
          {
            minute: MINUTE,
            collection: 'a',
            endpoint: 'GET /items',
            clientId: 'cli_1',
            status: 200,
            count: 1,
            durationMsSum: 1,
            durationMsMax: 1,
          },
        ],
        securityEvents: [],
        accessEvents: [],
        dropped: 0,
      });
    },
    close() {
      call.cancel();
      client.close();
    },
  };
}

describe('edge runtime against a scripted control plane', () => {
  it('NACKs a delta from another version and reconnects for a full resync; NACKs a body that is not a snapshot', async () => {
    const pki = await mkdtemp(join(tmpdir(), 'gatehouse-pki-script-'));
    const ca = await openCertificateAuthority(pki);
    const store = await openStore({ databaseUrl: ':memory:' }); // only to record the gateway's certificate
    const gateway: GatewayRecord = {
      id: 'gw_script',
      workspaceId: WS,
      environment: 'PROD',
      name: 'scripted',
      installMethod: 'docker',
      createdAt: T0,
      updatedAt: T0,
    };
    const received: ReceivedSyncRequestLike[] = [];
    const hellos: number[] = [];
    const v1 = snapshot(1, ['/a']);
    const v2 = snapshot(2, ['/a', '/b']);
    const full = (s: Snapshot) => ({
      snapshot: {
        version: s.version as number,
        hash: snapshotHash(s),
        body: Buffer.from(canonicalJson(encodeSnapshot(s))),
      },
    });
    const delta = (from: Snapshot, to: Snapshot, fromVersion = from.version as number) => ({
      delta: {
        fromVersion,
        toVersion: to.version as number,
        hash: snapshotHash(to),
        body: Buffer.from(canonicalJson(encodeDelta({ ...diffSnapshots(from, to), fromVersion }))),
      },
    });

    const server = new Server();
    server.addService(syncServices().configSync, {
      Sync(call: ServerDuplexStream<ReceivedSyncRequestLike, unknown>) {
        call.sendMetadata(new Metadata());
        call.on('data', (m: ReceivedSyncRequestLike) => {
          received.push(m);
          if (m.message === 'hello') {
            hellos.push(m.hello!.appliedVersion);
            // First stream: v1, then a delta that claims to start from v5. Second stream: the proper delta.
            if (hellos.length === 1) call.write(full(v1));
            else call.write(delta(v1, v2));
          } else if (m.message === 'ack' && m.ack!.version === 1 && hellos.length === 1) {
            call.write(delta(v1, v2, 5));
          } else if (m.message === 'ack' && m.ack!.version === 2) {
            call.write({ snapshot: { version: 3, hash: 'x', body: Buffer.from('{"collections": "nope"}') } });
          }
        });
        call.on('end', () => call.end());
      },
      RenewCertificate(_call: unknown, callback: (e: { code: status; details: string }) => void) {
        callback({ code: status.UNIMPLEMENTED, details: 'not here' });
      },
    });
    const tls = await ca.issueServerCertificate(SERVER_NAMES);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        '127.0.0.1:0',
        ServerCredentials.createSsl(
          Buffer.from(ca.certPem),
          [{ cert_chain: Buffer.from(tls.certPem), private_key: Buffer.from(tls.keyPem) }],
          true,
        ),
        (e, p) => (e ? reject(e) : resolve(p)),
      ),
    );
    const dir = await gatewayDir(store, ca, gateway, `127.0.0.1:${port}`);
    const log = memoryLogger();
    const gw = await startEdgeGateway({
      dir,
      logger: log.logger,
      port: 0,
      host: '127.0.0.1',
      opsPort: 0,
      reconnect: { initialMs: 20, maxMs: 200 },
      heartbeatMs: 60_000,
      telemetry: false,
    });
    try {
      await eventually(
        () => received.some((m) => m.message === 'nack' && m.nack!.version === 3),
        10_000,
        'the third NACK',
      );
      const answers = received
        .filter((m) => m.message !== 'heartbeat')
        .map((m) =>
          m.message === 'hello'
            ? `hello@${m.hello!.appliedVersion}`
            : m.message === 'ack'
              ? `ack ${m.ack!.version}`
              : `nack ${m.nack!.version}`,
        );
      assert.deepEqual(answers, ['hello@0', 'ack 1', 'nack 2', 'hello@1', 'ack 2', 'nack 3']);
      const mismatch = received.find((m) => m.message === 'nack' && m.nack!.version === 2)!;
      assert.match(mismatch.nack!.error, /cannot apply the delta from version 5/);
      const invalid = received.find((m) => m.message === 'nack' && m.nack!.version === 3)!;
      assert.match(invalid.nack!.error, /the snapshot is invalid/);
      assert.equal(gw.instance.version, '2', 'the last good snapshot stays in force');
      assert.equal(gw.state().connected, true, 'an invalid snapshot does not end the stream');
    } finally {
      await gw.close();
      server.forceShutdown();
      await store.close();
      await rm(dir, { recursive: true, force: true });
      await rm(pki, { recursive: true, force: true });
    }
  });
});

describe('edge runtime: certificate renewal against a scripted control plane', () => {
  it('refuses a renewal answered with another CA or an extra one: tls/ca.pem, the key and the certificate stay as they are', async () => {
    const pki = await mkdtemp(join(tmpdir(), 'gatehouse-pki-renew-'));
    const ca = await openCertificateAuthority(join(pki, 'real'));
    const attacker = await openCertificateAuthority(join(pki, 'attacker'));
    const store = await openStore({ databaseUrl: ':memory:' }); // only to record the gateway's certificate
    const gateway: GatewayRecord = {
      id: 'gw_renew',
      workspaceId: WS,
      environment: 'PROD',
      name: 'renewing',
      installMethod: 'docker',
      createdAt: T0,
      updatedAt: T0,
    };
    // Signed by the real CA, for the CSR sent: only the CA that comes with it is wrong.
    const answers = [`${ca.certPem}\n${attacker.certPem}\n`, attacker.certPem];
    const renewals: number[] = [];
    const server = new Server();
    server.addService(syncServices().configSync, {
      Sync(call: ServerDuplexStream<unknown, unknown>) {
        call.sendMetadata(new Metadata());
        call.on('end', () => call.end());
      },
      RenewCertificate(
        call: { request: { csrPem: string } },
        callback: (e: null, r: { certificatePem: string; caPem: string }) => void,
      ) {
        void ca
          .signGatewayCsr(
            call.request.csrPem,
            { gatewayId: gateway.id, workspaceId: WS, environment: 'PROD' },
            3600_000,
          )
          .then((issued) => {
            callback(null, {
              certificatePem: issued.certPem,
              caPem: answers[Math.min(renewals.length, answers.length - 1)]!,
            });
            renewals.push(Date.now());
          });
      },
    });
    const tls = await ca.issueServerCertificate(SERVER_NAMES);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        '127.0.0.1:0',
        ServerCredentials.createSsl(
          Buffer.from(ca.certPem),
          [{ cert_chain: Buffer.from(tls.certPem), private_key: Buffer.from(tls.keyPem) }],
          true,
        ),
        (e, p) => (e ? reject(e) : resolve(p)),
      ),
    );
    // Valid 10 s, renewed after a tenth of it (1 s), retried a second after a failure.
    const dir = await gatewayDir(store, ca, gateway, `127.0.0.1:${port}`, 10_000);
    const read = (f: string) => readFile(join(dir, 'tls', f), 'utf8');
    const before = await Promise.all(['ca.pem', 'gateway.crt', 'gateway.key'].map(read));
    const log = memoryLogger();
    const gw = await startEdgeGateway({
      dir,
      logger: log.logger,
      port: 0,
      host: '127.0.0.1',
      opsPort: 0,
      reconnect: { initialMs: 20, maxMs: 200 },
      heartbeatMs: 60_000,
      renewAfter: 0.1,
      telemetry: false,
    });
    try {
      await eventually(
        () => log.lines.filter((l) => l.msg === 'certificate renewal failed; retrying').length >= 2,
        10_000,
        'two refused renewals',
      );
      const reasons = log.lines
        .filter((l) => l.msg === 'certificate renewal failed; retrying')
        .map((l) => (l.err as { message: string }).message);
      assert.equal(
        reasons[0],
        "the CA of the control plane's renewal answer holds 2 certificates, not one; the certificate is not renewed",
      );
      assert.equal(
        reasons[1],
        'the control plane answered the renewal with another CA than the pinned one (tls/ca.pem); the certificate is not renewed',
      );
      assert.deepEqual(await Promise.all(['ca.pem', 'gateway.crt', 'gateway.key'].map(read)), before, 'a file changed');
      assert.equal(
        log.lines.some((l) => /renewed the gateway certificate/.test(String(l.msg))),
        false,
      );
    } finally {
      await gw.close();
      server.forceShutdown();
      await store.close();
      await rm(dir, { recursive: true, force: true });
      await rm(pki, { recursive: true, force: true });
    }
  });
});

type ReceivedSyncRequestLike = {
  message: 'hello' | 'ack' | 'nack' | 'heartbeat';
  hello?: { appliedVersion: number };
  ack?: { version: number };
  nack?: { version: number; error: string };
};
