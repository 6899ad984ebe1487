/**
 * An edge gateway's config directory holding the cache of a realistic configuration, for the start-up and
 * recovery benches: a real control plane (SQLite), a gateway created through its admin API and bootstrapped with
 * the real `gatehouse gateway bootstrap`, the collection `orders` deployed to it with one client made through the
 * admin API, and `clients − 1` more clients like it, each with its own key. Creating 10,000 clients one admin call
 * at a time takes many minutes (every call is published to the gateways before it returns), so the others are
 * inserted through the control plane's store interface, in one transaction, while it is stopped; the control
 * plane is then started again on the same data and sync port, a last client is created through the admin API so
 * that it publishes a snapshot holding them all, and one `gatehouse gateway run` syncs it, which writes the cache
 * the way it always does.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { newId } from '../../src/control/ids.ts';
import { openStore } from '../../src/control/store/open.ts';
import { generateKey } from '../../src/shared/api-key.ts';
import { adminApi, type AdminApi, type ControlProcess, startControlPlane } from '../../test/control-helpers.ts';
import { createAndBootstrap, deployOrders, startEdge } from '../../test/edge-helpers.ts';

const WS = '/workspaces/default';

export interface EdgeFixture {
  cp: ControlProcess;
  admin: AdminApi;
  adminToken: string;
  /** The control plane's sync port (restart it on this one: the gateway's identity names it). */
  syncPort: string;
  /** The bootstrapped config directory, with `cache/snapshot.json` holding every client. */
  dir: string;
  /** A key the cached configuration admits on `GET /orders/items`, and its client's id. */
  token: string;
  clientId: string;
  /** Clients in the cached snapshot. */
  clients: number;
  /** Bytes of `cache/snapshot.json`. */
  cacheBytes: number;
}

export function controlArgs(syncPort: string): string[] {
  return ['--bootstrap-port', '0', '--sync-port', syncPort];
}

export async function prepareEdgeFixture(options: {
  work: string;
  dataDir: string;
  upstreamUrl: string;
  clients: number;
  log?: (line: string) => void;
}): Promise<EdgeFixture> {
  const log = options.log ?? (() => {});
  let cp = await startControlPlane({ dataDir: options.dataDir });
  const adminToken = cp.token;
  let admin = cp.api();
  const dir = join(options.work, 'edge');
  await createAndBootstrap(admin, 'bench', dir);
  const identity = JSON.parse(await readFile(join(dir, 'gateway.json'), 'utf8')) as { controlPlane: { sync: string } };
  const syncPort = identity.controlPlane.sync.split(':').pop()!;
  const { token, clientId } = await deployOrders(admin, options.upstreamUrl, 'bench');
  await cp.stop({ keepData: true });

  const started = Date.now();
  const store = await openStore({ dataDir: options.dataDir });
  try {
    const model = await store.getClient(clientId);
    if (!model) throw new Error(`client ${clientId} not found in the store`);
    await store.transaction(async (tx) => {
      for (let n = 1; n < options.clients - 1; n++) {
        const id = newId('cli');
        const key = generateKey();
        await tx.insertClient({ ...model, id, name: `client-${n}` });
        await tx.insertKey({ id: key.id, clientId: id, hash: key.hash, createdAt: model.createdAt });
      }
    });
  } finally {
    await store.close();
  }
  log(`  ${options.clients - 2} clients inserted in ${Date.now() - started} ms`);

  cp = await startControlPlane({ dataDir: options.dataDir, extraArgs: controlArgs(syncPort) });
  admin = adminApi(cp.adminUrl, adminToken);
  const last = await admin.post(`${WS}/clients`, {
    name: 'client-last',
    role: 'order-reader',
    environments: ['PROD'],
    projects: ['default'],
  });
  if (last.status !== 201)
    throw new Error(`creating the last client: HTTP ${last.status} ${JSON.stringify(last.body)}`);

  const edge = await startEdge(dir);
  const cacheFile = join(dir, 'cache', 'snapshot.json');
  let cached: { clients: number; bytes: number } | undefined;
  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      cached = await readCache(cacheFile);
      if (cached && cached.clients >= options.clients) break;
      if (Date.now() > deadline)
        throw new Error(
          `the edge cache did not reach ${options.clients} clients in 120 s (has ${cached?.clients ?? 0})`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await edge.stop();
  }
  return { cp, admin, adminToken, syncPort, dir, token, clientId, clients: cached.clients, cacheBytes: cached.bytes };
}

async function readCache(file: string): Promise<{ clients: number; bytes: number } | undefined> {
  try {
    const text = await readFile(file, 'utf8');
    const entry = JSON.parse(text) as { body: string };
    const body = JSON.parse(entry.body) as { clients?: unknown[] };
    return { clients: body.clients?.length ?? 0, bytes: Buffer.byteLength(text) };
  } catch {
    return undefined;
  }
}
