/**
 * Relationship data at scale (issue #18): N entities of one collection on the entity stream, in one process with
 * the real parts — the store (SQLite in a temporary directory, or PostgreSQL with --database-url), the sync server
 * (gRPC, mutual TLS, loopback), the entity feed, and G edge gateway runtimes dialling it — measuring:
 *   1. seeding the store (batches as the admin API writes them, 10,000 per transaction here to keep it short);
 *   2. a full set: the control plane reading and encoding it, a gateway parsing and indexing it, compute only, and
 *      the gateway's memory for it (heap after GC, with the entity index and the ancestor memo);
 *   3. initial sync: G gateways connect at once; time until each holds the set's latest version;
 *   4. propagation: U single-relationship updates (a document moved to another folder), one at a time; the time
 *      from the admin write (its transaction) until every gateway holds that version — p50, p99, max.
 * The control plane and the gateways share one event loop here, so step 4 is a conservative figure.
 *
 * Usage: scripts/node --expose-gc bench/relationships.ts [--entities 1000000] [--gateways 2] [--updates 100]
 *        [--database-url postgres://…] [--json]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { SnapshotSchema } from '../src/config/schema.ts';
import { canonicalJson, encodeSnapshot, snapshotHash } from '../src/config/snapshot-encoding.ts';
import { EntityFeed, entityMessages } from '../src/control/entity-feed.ts';
import { openCertificateAuthority } from '../src/control/pki/ca.ts';
import { openStore } from '../src/control/store/open.ts';
import type { EntityRecord } from '../src/control/store/store.ts';
import { startSyncServer } from '../src/control/sync/sync-server.ts';
import { EntitySets } from '../src/gateway/policies/resource-policy/entity-sets.ts';
import { type EdgeGateway, startEdgeGateway } from '../src/gateway/sync/edge-runtime.ts';
import { writeGatewayTls } from '../src/testing/gateway-tls.ts';

const { values } = parseArgs({
  options: {
    entities: { type: 'string', default: '100000' },
    gateways: { type: 'string', default: '2' },
    updates: { type: 'string', default: '100' },
    'database-url': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const N = Number(values.entities);
const G = Number(values.gateways);
const U = Number(values.updates);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

const T0 = new Date().toISOString();
const WS = 'wsp_benchrelationships01';
const COLLECTION = 'col_benchrelationships01';
const ORGS = 1000;
const FOLDERS = 10_000;
const log = pino({ level: 'warn' });
const tmp = await mkdtemp(join(tmpdir(), 'gatehouse-bench-relationships-'));
const store = await openStore(
  values['database-url'] ? { databaseUrl: values['database-url'] } : { dataDir: join(tmp, 'data') },
);
const time = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
  const t = performance.now();
  const out = await fn();
  return [out, performance.now() - t];
};
const ms = (v: number) => Math.round(v);
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;

/** Documents in folders in folders in orgs: entity i of N. */
function entity(i: number, folder = i % FOLDERS): EntityRecord {
  const base = { collectionId: COLLECTION, attrs: {}, updatedAt: T0 };
  if (i < ORGS) return { ...base, type: 'Org', id: `o${i}`, parents: [] };
  if (i < ORGS + FOLDERS)
    return { ...base, type: 'Folder', id: `f${i - ORGS}`, parents: [{ type: 'Org', id: `o${i % ORGS}` }] };
  return {
    ...base,
    type: 'Document',
    id: `d${i}`,
    attrs: { owner: { __entity: { type: 'User', id: `u${i % 5000}` } } },
    parents: [{ type: 'Folder', id: `f${folder}` }],
  };
}

try {
  await store.insertWorkspace({
    id: WS,
    name: 'bench',
    environments: Array.from({ length: G }, (_, i) => `E${i}`),
    devEnvironment: 'E0',
    createdAt: T0,
  });
  await store.insertCollection({
    id: COLLECTION,
    workspaceId: WS,
    environment: 'E0',
    name: 'docs',
    project: 'p',
    target: { type: 'cloud' },
    spec: {
      name: 'docs',
      basePath: '/docs',
      upstream: 'http://127.0.0.1:9',
      project: 'p',
      target: { type: 'cloud' },
      endpoints: [{ method: 'GET', path: '/docs/{id}', permission: 'docs:read' }],
    } as never,
    revision: 1,
    createdAt: T0,
    updatedAt: T0,
  });

  // 1. Seed.
  const [, seedMs] = await time(async () => {
    for (let i = 0; i < N; i += 10_000)
      await store.transaction((tx) =>
        tx.upsertEntities(Array.from({ length: Math.min(10_000, N - i) }, (_, k) => entity(i + k))),
      );
  });

  // 2. A full set, compute only, and the gateway's memory for it.
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const sets = new EntitySets();
  let readMs = 0;
  let applyMs = 0;
  let bodyBytes = 0;
  {
    const messages = entityMessages(store, COLLECTION, 0);
    for (;;) {
      const t = performance.now();
      const next = await messages.next();
      readMs += performance.now() - t;
      if (next.done) break;
      bodyBytes += next.value.body.length;
      const a = performance.now();
      const result = sets.apply(next.value);
      applyMs += performance.now() - a;
      if (!result.ok) throw new Error(result.error);
    }
  }
  const held = sets.get(COLLECTION);
  if (held.size !== N) throw new Error(`the set holds ${held.size} entities, not ${N}`);
  // Warm the ancestor memo as traffic would (every folder asked about once).
  for (let f = 0; f < FOLDERS; f++) held.ancestors(`Folder::"f${f}"`);
  gc();
  const heapAfter = process.memoryUsage().heapUsed;
  sets.retain(new Set());
  gc();

  // 3. Initial sync of G gateways over the sync channel.
  const ca = await openCertificateAuthority(join(tmp, 'pki'));
  const feed = new EntityFeed({ store, logger: log });
  const server = await startSyncServer({
    store,
    publisher: { changed: async () => {}, onPublish: () => () => {} },
    entities: feed,
    ca,
    tls: await ca.issueServerCertificate(['gatehouse-control-plane', '127.0.0.1']),
    logger: log,
    host: '127.0.0.1',
    port: 0,
    softwareVersion: '0.0.0-bench',
  });
  const sync = `127.0.0.1:${server.port}`;
  const dirs: string[] = [];
  for (let g = 0; g < G; g++) {
    const environment = `E${g}`;
    const name = `gw${g}`;
    const gateway = {
      id: `gw_bench${g}`,
      workspaceId: WS,
      environment,
      name,
      installMethod: 'docker' as const,
      createdAt: T0,
      updatedAt: T0,
    };
    await store.insertGateway(gateway);
    const snapshot = SnapshotSchema.parse({
      version: 1,
      tokenExchange: { issuer: 'https://bench', audience: 'bench' },
      collections: [
        {
          name: 'docs',
          basePath: '/docs',
          upstream: 'http://127.0.0.1:9',
          project: 'p',
          environment,
          endpoints: [
            { method: 'GET', path: '/docs/{id}', permission: 'docs:read', resource: { type: 'Document', param: 'id' } },
          ],
          policies: {
            cedar: 'permit (principal, action, resource) when { principal has org && resource in principal.org };',
          },
        },
      ],
      entitySets: { docs: COLLECTION },
    });
    await store.insertSnapshot({
      scope: `${WS}/${environment}/edge:${name}`,
      version: 1,
      hash: snapshotHash(snapshot),
      body: canonicalJson(encodeSnapshot(snapshot)),
      createdAt: T0,
    });
    const dir = join(tmp, name);
    dirs.push(dir);
    await writeGatewayTls(dir, ca, store, { gatewayId: gateway.id, workspaceId: WS, environment });
    await writeFile(
      join(dir, 'gateway.json'),
      JSON.stringify({
        gatewayId: gateway.id,
        gatewayName: name,
        workspaceId: WS,
        workspaceName: 'bench',
        environment,
        installMethod: 'docker',
        caPin: ca.pin,
        controlPlane: {
          bootstrap: 'https://127.0.0.1:1',
          sync,
          telemetry: sync,
          serverName: 'gatehouse-control-plane',
        },
        bootstrappedAt: T0,
      }),
    );
  }
  const latest = async () => (await store.entitySetVersion(COLLECTION)).version;
  const every = async (version: number, gateways: readonly EdgeGateway[]) => {
    while (gateways.some((g) => g.instance.entitySets.get(COLLECTION).version < version))
      await new Promise((r) => setTimeout(r, 1));
  };
  const gateways: EdgeGateway[] = [];
  const syncStart = performance.now();
  const syncTimes = await Promise.all(
    dirs.map(async (dir) => {
      const gw = await startEdgeGateway({
        dir,
        logger: log,
        port: 0,
        host: '127.0.0.1',
        opsPort: 0,
        telemetry: false,
        heartbeatMs: 1000,
      });
      gateways.push(gw);
      await every(await latest(), [gw]);
      return performance.now() - syncStart;
    }),
  );

  // 4. Propagation of single relationship updates to every gateway.
  const latencies: number[] = [];
  for (let u = 0; u < U; u++) {
    const i = ORGS + FOLDERS + ((u * 7919) % Math.max(1, N - ORGS - FOLDERS));
    const start = performance.now();
    await store.transaction((tx) => tx.upsertEntities([entity(i, (i + u + 1) % FOLDERS)]));
    const version = await latest();
    void feed.changed(COLLECTION);
    await every(version, gateways);
    latencies.push(performance.now() - start);
  }
  latencies.sort((a, b) => a - b);
  for (const gw of gateways) await gw.close();
  await server.close();

  const result = {
    entities: N,
    gateways: G,
    database: values['database-url'] ? 'postgres' : 'sqlite',
    loadavg: (await import('node:os')).loadavg().map((l) => Math.round(l * 10) / 10),
    seedMs: ms(seedMs),
    fullSet: {
      controlPlaneReadEncodeMs: ms(readMs),
      gatewayParseIndexMs: ms(applyMs),
      bodyMB: Math.round(bodyBytes / 1e5) / 10,
      gatewayHeapMB: Math.round((heapAfter - heapBefore) / 1e5) / 10,
      bytesPerEntity: Math.round((heapAfter - heapBefore) / N),
    },
    initialSyncMs: syncTimes.map(ms),
    update: {
      count: U,
      p50Ms: Math.round(percentile(latencies, 0.5) * 10) / 10,
      p99Ms: Math.round(percentile(latencies, 0.99) * 10) / 10,
      maxMs: Math.round(latencies[latencies.length - 1]! * 10) / 10,
    },
  };
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`${N} entities, ${G} edge gateways, ${result.database}, load average ${result.loadavg.join(' ')}`);
    console.log(`seed the store: ${(seedMs / 1000).toFixed(1)} s`);
    console.log(
      `full set, compute only: control plane read+encode ${(readMs / 1000).toFixed(1)} s (${result.fullSet.bodyMB} MB), gateway parse+index ${(applyMs / 1000).toFixed(1)} s`,
    );
    console.log(
      `gateway memory: ${result.fullSet.gatewayHeapMB} MB (${result.fullSet.bytesPerEntity} B/entity, ${Math.round((result.fullSet.bytesPerEntity * 1e6) / 1e6)} MB per million)`,
    );
    console.log(
      `initial sync over gRPC, per gateway: ${result.initialSyncMs.map((t) => `${(t / 1000).toFixed(1)} s`).join(', ')}`,
    );
    console.log(
      `one relationship update reaching every gateway (${U} updates): p50 ${result.update.p50Ms} ms, p99 ${result.update.p99Ms} ms, max ${result.update.maxMs} ms`,
    );
  }
} finally {
  await store.close();
  await rm(tmp, { recursive: true, force: true });
}
