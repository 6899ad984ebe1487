/**
 * Relationship data on the entity stream, in one process on real loopback sockets: the control plane's sync server
 * over a real store (SQLite in memory) with the real entity feed, a real edge gateway runtime dialling it, a real
 * upstream, and requests through the edge. Entities are written the way the admin API writes them (one
 * transaction, then `EntityFeed.changed`); snapshots are recorded the way the publisher records them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { type Snapshot, SnapshotSchema } from '../../config/schema.ts';
import { canonicalJson, encodeSnapshot, snapshotHash } from '../../config/snapshot-encoding.ts';
import { generateKey } from '../../shared/api-key.ts';
import { startEdgeGateway } from '../../gateway/sync/edge-runtime.ts';
import { eventually } from '../../testing/eventually.ts';
import { writeGatewayTls } from '../../testing/gateway-tls.ts';
import { EntityFeed } from '../entity-feed.ts';
import { type CertificateAuthority, openCertificateAuthority } from '../pki/ca.ts';
import type { PublishedScope } from '../publisher.ts';
import { collection, withWorkspaces, WS } from '../store/contract/fixtures.ts';
import { openStore } from '../store/open.ts';
import type { EntityRecord, GatewayRecord, Store } from '../store/store.ts';
import { KEEP_VERSIONS } from '../store/sql/entities.ts';
import { startSyncServer, type SyncServer } from './sync-server.ts';

const T0 = '2026-01-01T00:00:00.000Z';
const DOCS = collection({ name: 'docs' });
const KEY = generateKey();
const POLICY =
  '@id("tenant") permit (principal, action, resource) when { principal has org && resource in principal.org };';

function snapshot(version: number, upstream: string): Snapshot {
  return SnapshotSchema.parse({
    version,
    tokenExchange: { issuer: 'https://gatehouse.test', audience: 'api' },
    collections: [
      {
        name: 'docs',
        basePath: '/docs',
        upstream,
        project: 'shop',
        environment: 'DEV',
        endpoints: [
          { method: 'GET', path: '/docs/{id}', permission: 'docs:read', resource: { type: 'Document', param: 'id' } },
        ],
        policies: { cedar: POLICY },
      },
    ],
    roles: [{ name: 'reader', permissions: ['docs:read'] }],
    clients: [
      {
        id: 'acme-app',
        role: 'reader',
        environments: ['DEV'],
        projects: ['shop'],
        orgId: 'acme',
        keys: [{ hash: KEY.hash }],
      },
    ],
    entitySets: { docs: DOCS.id },
  });
}

const entity = (type: string, id: string, parents: [string, string][] = []): EntityRecord => ({
  collectionId: DOCS.id,
  type,
  id,
  attrs: {},
  parents: parents.map(([t, i]) => ({ type: t, id: i })),
  updatedAt: T0,
});

function memoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

describe('relationship data on the entity stream (control plane → edge gateway)', () => {
  let store: Store;
  let ca: CertificateAuthority;
  let server: SyncServer;
  let feed: EntityFeed;
  let upstream: Server;
  let upstreamUrl: string;
  let pkiDir: string;
  let n = 0;
  const listeners = new Set<(scopes: readonly PublishedScope[]) => void>();
  const serverLog = memoryLogger();
  const cleanup: (() => Promise<unknown>)[] = [];

  /** Writes as the admin API does: one transaction, then the feed (which resolves once it has told the streams). */
  async function write(fn: (tx: Pick<Store, 'upsertEntities' | 'deleteEntities'>) => Promise<unknown>) {
    await store.transaction(fn);
    await feed.changed(DOCS.id);
  }

  async function newGateway(): Promise<{ dir: string; gateway: GatewayRecord }> {
    const name = `gw-${++n}`;
    // One gateway per environment of the workspace.
    const environment = ['DEV', 'TEST', 'PROD'][n - 1]!;
    const gateway: GatewayRecord = {
      id: `gw_ent${n}`,
      workspaceId: WS,
      environment,
      name,
      installMethod: 'docker',
      createdAt: T0,
      updatedAt: T0,
    };
    await store.insertGateway(gateway);
    const scope = `${WS}/${environment}/edge:${name}`;
    const s = snapshot(1, upstreamUrl);
    await store.insertSnapshot({
      scope,
      version: 1,
      hash: snapshotHash(s),
      body: canonicalJson(encodeSnapshot(s)),
      createdAt: T0,
    });
    const dir = await mkdtemp(join(tmpdir(), 'gatehouse-edge-entities-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await writeGatewayTls(dir, ca, store, { gatewayId: gateway.id, workspaceId: WS, environment });
    const sync = `127.0.0.1:${server.port}`;
    await writeFile(
      join(dir, 'gateway.json'),
      JSON.stringify({
        gatewayId: gateway.id,
        gatewayName: name,
        workspaceId: WS,
        workspaceName: 'acme',
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
    return { dir, gateway };
  }

  async function edge(dir: string) {
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
    });
    cleanup.push(() => gw.close());
    const status = async (id: string) => {
      const res = await fetch(`http://127.0.0.1:${gw.api.port}/docs/docs/${encodeURIComponent(id)}`, {
        headers: { authorization: `Bearer ${KEY.key}` },
      });
      await res.arrayBuffer();
      return res.status;
    };
    return { gw, log, status };
  }

  /** Requests `id` until it answers `want`; resolves with the milliseconds that took. */
  async function until(status: (id: string) => Promise<number>, id: string, want: number): Promise<number> {
    const start = performance.now();
    await eventually(async () => (await status(id)) === want, 10_000, `${id} answers ${want}`);
    return performance.now() - start;
  }

  before(async () => {
    store = await openStore({ databaseUrl: ':memory:' });
    await withWorkspaces(store);
    await store.insertCollection(DOCS);
    pkiDir = await mkdtemp(join(tmpdir(), 'gatehouse-pki-'));
    ca = await openCertificateAuthority(pkiDir);
    upstream = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    feed = new EntityFeed({ store, logger: serverLog.logger });
    server = await startSyncServer({
      store,
      publisher: {
        changed: async () => {},
        onPublish: (l) => {
          listeners.add(l);
          return () => listeners.delete(l);
        },
      },
      entities: feed,
      ca,
      tls: await ca.issueServerCertificate(['gatehouse-control-plane', 'localhost', '127.0.0.1']),
      logger: serverLog.logger,
      host: '127.0.0.1',
      port: 0,
      softwareVersion: '0.1.0',
    });
  });
  after(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => {});
    await server?.close();
    await store?.close();
    await new Promise((r) => upstream?.close(r));
    await rm(pkiDir, { recursive: true, force: true });
  });

  it('changes decisions at the edge within a second when a relationship deep in a hierarchy is added and removed while traffic flows', async () => {
    // Document 9 in Folder a in Folder b; b is not (yet) in Org acme.
    await write((tx) =>
      tx.upsertEntities([
        entity('Document', '9', [['Folder', 'a']]),
        entity('Folder', 'a', [['Folder', 'b']]),
        entity('Folder', 'b'),
      ]),
    );
    const { dir } = await newGateway();
    const { gw, log, status } = await edge(dir);
    await eventually(() => gw.state().appliedVersion === 1, 10_000, 'v1 applied');
    assert.equal(await status('9'), 403);
    assert.ok(log.lines.some((l) => l.msg === 'received an entity set whole' && l.entities === 3));

    // Traffic flows while the relationship changes: a request every few milliseconds.
    let stop = false;
    const traffic = (async () => {
      let count = 0;
      while (!stop) {
        await status('9');
        count++;
      }
      return count;
    })();
    await write((tx) => tx.upsertEntities([entity('Folder', 'b', [['Org', 'acme']])]));
    const added = await until(status, '9', 200);
    await write((tx) => tx.deleteEntities(DOCS.id, [{ type: 'Folder', id: 'b' }]));
    const removed = await until(status, '9', 403);
    stop = true;
    assert.ok((await traffic) > 0);
    assert.ok(added < 1000, `the added relationship took ${added.toFixed(0)} ms to reach the edge`);
    assert.ok(removed < 1000, `the removed relationship took ${removed.toFixed(0)} ms to reach the edge`);
    // Changes, not the set again: the only full set was the first.
    assert.equal(log.lines.filter((l) => l.msg === 'received an entity set whole').length, 1);

    // A batch, written twice (idempotent), and a batch delete.
    const batch = Array.from({ length: 1000 }, (_, i) => entity('Document', `b${i}`, [['Org', 'acme']]));
    await write((tx) => tx.upsertEntities(batch));
    await write((tx) => tx.upsertEntities(batch));
    await until(status, 'b999', 200);
    await write((tx) =>
      tx.deleteEntities(
        DOCS.id,
        batch.slice(0, 500).map((e) => ({ type: e.type, id: e.id })),
      ),
    );
    await until(status, 'b0', 403);
    assert.equal(await status('b999'), 200);
    const held = gw.instance.entitySets.get(DOCS.id);
    assert.equal(held.size, 3 - 1 + 500);
    assert.equal(held.version, (await store.entitySetVersion(DOCS.id)).version);
  });

  it('a restarted gateway restores its entity set from the cache and gets only the changes made meanwhile', async () => {
    const { dir } = await newGateway();
    const first = await edge(dir);
    await eventually(() => first.gw.state().appliedVersion === 1, 10_000, 'v1 applied');
    await eventually(() => first.gw.instance.entitySets.get(DOCS.id).version > 0, 10_000, 'the set arrived');
    const version = first.gw.instance.entitySets.get(DOCS.id).version;
    await first.gw.close();
    await write((tx) => tx.upsertEntities([entity('Document', 'later', [['Org', 'acme']])]));

    const second = await edge(dir);
    const restored = second.log.lines.find((l) => l.msg === 'relationship data restored from the cache');
    assert.deepEqual(restored?.sets, [{ set: DOCS.id, version }], 'the cache held the version it had');
    await until(second.status, 'later', 200);
    assert.ok(
      !second.log.lines.some((l) => l.msg === 'received an entity set whole'),
      'the Hello named its version: only the change was sent',
    );
  });

  it('a gateway further behind than the kept deletions reach gets the full set again', async () => {
    const { dir } = await newGateway();
    const first = await edge(dir);
    await eventually(() => first.gw.instance.entitySets.get(DOCS.id).version > 0, 10_000, 'the set arrived');
    await first.gw.close();
    // Enough versions that the deletions the gateway would need are pruned (the floor passes its version).
    const { version } = await store.entitySetVersion(DOCS.id);
    await store.transaction(async (tx) => {
      for (let v = version; v < KEEP_VERSIONS + 1000; v++) await tx.upsertEntities([entity('Document', 'churn')]);
    });
    await write((tx) => tx.deleteEntities(DOCS.id, [{ type: 'Document', id: 'later' }]));
    const { floor } = await store.entitySetVersion(DOCS.id);
    assert.ok(floor > version, `the floor ${floor} passed the version the gateway holds (${version})`);

    const second = await edge(dir);
    await eventually(
      () => second.log.lines.some((l) => l.msg === 'received an entity set whole'),
      20_000,
      'the full set was sent again',
    );
    await until(second.status, 'later', 403);
    assert.equal(await second.status('9'), 403);
    assert.equal(second.gw.instance.entitySets.get(DOCS.id).version, (await store.entitySetVersion(DOCS.id)).version);
  });
});
