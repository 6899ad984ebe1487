/**
 * Control-plane failover (issue #20). Two real `gatehouse control start` replicas on one PostgreSQL schema.
 *
 * 1. Failover: one edge gateway process (`gatehouse gateway run`), bootstrapped through replica A and so told of
 *    both. Each round kills (SIGKILL) the replica it is connected to and times, from the kill, until the gateway
 *    logs that it is connected to the other one; the killed replica is then started again on the same ports.
 *    Baseline in the same run: the gateway's first connection, from its process start.
 * 2. Reconnect storm: N gateway instances (in this process: the real sync client, one gRPC channel and TLS
 *    connection each, all instances of one gateway) connected to replica A; A is killed and the time until every
 *    instance is connected to B, and until every instance has ACKed a change made through B after that, is taken,
 *    with B's resident memory before and after. Baseline: the same N instances' first connection to A.
 *
 * Usage: scripts/node bench/failover.ts [--rounds 5] [--gateways 1000] [--json]
 * Needs PostgreSQL (GATEHOUSE_TEST_DATABASE_URL, default the local server).
 */
import { randomBytes } from 'node:crypto';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import pino from 'pino';
import { startSyncClient, type SyncClient } from '../src/gateway/sync/sync-client.ts';
import { TEST_DATABASE_URL } from '../src/testing/postgres.ts';
import { adminApi, eventually, startControlPlane, type ControlProcess } from '../test/control-helpers.ts';
import { createAndBootstrap, deployOrders, startEdge } from '../test/edge-helpers.ts';
import { rssBytes } from '../test/helpers.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    gateways: { type: 'string', default: '1000' },
    json: { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds);
const GATEWAYS = Number(values.gateways);
const SCHEMA = `gh_bench_failover_${randomBytes(4).toString('hex')}`;
const url = `${TEST_DATABASE_URL}?options=${encodeURIComponent(`-c search_path=${SCHEMA}`)}`;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

interface Replica {
  name: string;
  bootstrap: number;
  sync: number;
  process?: ControlProcess;
}
let token = '';
async function start(r: Replica): Promise<ControlProcess> {
  r.process = await startControlPlane({
    databaseUrl: url,
    extraArgs: ['--bootstrap-port', `${r.bootstrap}`, '--sync-port', `${r.sync}`, '--public-url', 'http://127.0.0.1'],
  });
  token ||= r.process.token;
  return r.process;
}

const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
await client.connect();
await client.query(`create schema ${SCHEMA}`);
const work = await mkdtemp(join(tmpdir(), 'gatehouse-bench-failover-'));
const replicas: Replica[] = [];
for (const name of ['A', 'B']) replicas.push({ name, bootstrap: await freePort(), sync: await freePort() });
const [a, b] = replicas as [Replica, Replica];
const result: Record<string, unknown> = { date: new Date().toISOString(), loadavg: loadavg()[0] };
const clients: SyncClient[] = [];
try {
  await start(a);
  await start(b);
  const admin = () => adminApi(a.process!.adminUrl, token);
  const dir = join(work, 'edge');
  await createAndBootstrap(admin(), 'bench', dir, 'PROD');
  await deployOrders(admin(), 'http://127.0.0.1:9', 'bench'); // an edge collection, its role and a client

  // ── 1. Failover of one edge gateway process ──────────────────────────────────────────────────────────────
  const startedAt = Date.now();
  const edge = await startEdge(dir);
  const connectedLine = (r: Replica) =>
    new RegExp(`"endpoint":"127\\.0\\.0\\.1:${r.sync}".*"connected to the control plane"`);
  await edge.waitFor(/"connected to the control plane"/);
  const coldMs = Date.now() - startedAt;
  const failovers: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const last = edge.output.filter((l) => l.includes('"connected to the control plane"')).at(-1)!;
    const [dead, alive] = connectedLine(a).test(last) ? [a, b] : [b, a];
    const from = edge.output.length;
    const killedAt = Date.now();
    dead.process!.child.kill('SIGKILL');
    await edge.waitFor(connectedLine(alive), 30_000, from);
    failovers.push(Date.now() - killedAt);
    await dead.process!.stop();
    await start(dead);
  }
  await edge.stop();
  failovers.sort((x, y) => x - y);
  result.failover = {
    rounds: ROUNDS,
    coldConnectMs: coldMs,
    failoverMs: failovers,
    medianMs: failovers[Math.floor(failovers.length / 2)],
    maxMs: failovers.at(-1),
    medianOverCold: failovers[Math.floor(failovers.length / 2)]! / coldMs,
  };

  process.stderr.write(`failover: ${JSON.stringify(result.failover)}\n`);

  // ── 2. Reconnect storm: N instances move from A to B ─────────────────────────────────────────────────────
  const pems = {
    caPem: await readFile(join(dir, 'tls/ca.pem'), 'utf8'),
    certPem: await readFile(join(dir, 'tls/gateway.crt'), 'utf8'),
    keyPem: await readFile(join(dir, 'tls/gateway.key'), 'utf8'),
  };
  const logger = pino({ level: 'silent' });
  const applied: ({ version: number; hash: string } | undefined)[] = [];
  const bRssBefore = await rssBytes(b.process!.child.pid!);
  const stormStart = Date.now();
  for (let i = 0; i < GATEWAYS; i++) {
    clients.push(
      startSyncClient({
        endpoint: `127.0.0.1:${a.sync}`,
        alternates: [{ sync: `127.0.0.1:${b.sync}`, telemetry: `127.0.0.1:${b.sync}` }],
        serverName: 'gatehouse-control-plane',
        credentials: () => pems,
        logger,
        instanceId: `bench-${i}`,
        softwareVersion: '0.1.0',
        hostname: `bench-${i}`,
        heartbeatMs: 5000,
        applied: () => applied[i],
        handle: async (update) => {
          const version = update.kind === 'snapshot' ? update.version : update.toVersion;
          applied[i] = { version, hash: update.hash };
          return { ok: true, version, hash: update.hash };
        },
      }),
    );
  }
  const allConnected = () => clients.every((c) => c.state().connected);
  await eventually(allConnected, 600_000, 'every instance connected to A');
  const firstConnectMs = Date.now() - stormStart;
  process.stderr.write(`storm: ${GATEWAYS} instances connected to A in ${firstConnectMs} ms\n`);
  const connectionsBefore = clients.map((c) => c.state().connections);
  const killedAt = Date.now();
  a.process!.child.kill('SIGKILL');
  await eventually(
    () => clients.every((c, i) => c.state().connected && c.state().connections > connectionsBefore[i]!),
    600_000,
    'every instance connected to B',
  );
  const reconnectMs = Date.now() - killedAt;
  process.stderr.write(`storm: every instance on B ${reconnectMs} ms after A was killed\n`);
  // A new client of the environment: part of every instance's snapshot.
  const storm = adminApi(b.process!.adminUrl, token);
  const before = applied.map((x) => x?.version ?? 0);
  const changeAt = Date.now();
  const change = await storm.post('/workspaces/default/clients', {
    name: 'storm',
    role: 'order-reader',
    environments: ['PROD'],
    projects: ['default'],
  });
  if (change.status !== 201) throw new Error(`the change failed: ${change.status}`);
  await eventually(
    () => applied.every((x, i) => (x?.version ?? 0) > before[i]!),
    600_000,
    'every instance ACKed the change',
  );
  const changeMs = Date.now() - changeAt;
  const bRssAfter = await rssBytes(b.process!.child.pid!);
  result.storm = {
    gateways: GATEWAYS,
    firstConnectMs,
    reconnectToBMs: reconnectMs,
    reconnectOverFirstConnect: reconnectMs / firstConnectMs,
    changeToAllMs: changeMs,
    replicaBRssMiB: { before: Math.round(bRssBefore / 2 ** 20), after: Math.round(bRssAfter / 2 ** 20) },
  };
} finally {
  await Promise.all(clients.map((c) => c.close()));
  for (const r of replicas) await r.process?.stop();
  await client.query(`drop schema if exists ${SCHEMA} cascade`);
  await client.end();
  await rm(work, { recursive: true, force: true });
}
result.loadavgAfter = loadavg()[0];
if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
