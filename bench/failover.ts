/**
 * Control-plane failover (issue #20). Two real `gatehouse control start` replicas on one PostgreSQL schema.
 *
 * 1. Failover: one edge gateway process (`gatehouse gateway run`), bootstrapped through replica A and so told of
 *    both. Each round kills (SIGKILL) the replica it is connected to and times, from the kill, until the gateway
 *    logs that it is connected to the other one; the killed replica is then started again on the same ports.
 *    p50/p90/p99 over the rounds. Baseline in the same run: the gateway's first connection, from its process start.
 * 2. Reconnect storm: N gateway instances of N / PER_GATEWAY distinct gateways (one per workspace environment, as
 *    the data model has it; registered in bulk: environments through the admin API, gateway rows and certificates
 *    signed by the stored CA for one shared key through the store, not N runs of the bootstrap command), each
 *    instance running the gateway's real sync client (own gRPC channel, TLS connection, its gateway's client
 *    certificate), spread over W worker processes (bench/lib/storm-worker.ts). From a cold start every instance
 *    connects to A, ACKs its snapshot and is told of B by A (`Replicas`; nothing else tells it of B): the baseline.
 *    A is SIGKILLed; the time until every instance is connected to B (in sync: each resumes from the version it
 *    holds), then until every instance has ACKed a change made through B, are taken, with A's and B's resident
 *    memory (B sampled every 250 ms for its peak).
 *
 * Usage: scripts/node bench/failover.ts [--rounds 20] [--gateways 1000] [--per-gateway 20] [--workers N] [--only failover|storm] [--json]
 * Needs PostgreSQL (GATEHOUSE_TEST_DATABASE_URL, default the local server).
 */
import { randomBytes } from 'node:crypto';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { snapshotScope } from '../src/control/compile/compile.ts';
import { newId, nowIso } from '../src/control/ids.ts';
import { openStoredCertificateAuthority } from '../src/control/pki/stored-ca.ts';
import { createKeyRing } from '../src/control/secrets/key-ring.ts';
import { openStore } from '../src/control/store/open.ts';
import { createKeyAndCsr } from '../src/shared/certificates.ts';
import { TEST_DATABASE_URL } from '../src/testing/postgres.ts';
import {
  adminApi,
  eventually,
  startControlPlane,
  TEST_ENCRYPTION_KEY,
  type ControlProcess,
} from '../test/control-helpers.ts';
import { createAndBootstrap, deployOrders, startEdge } from '../test/edge-helpers.ts';
import { rssBytes } from '../test/helpers.ts';
import type { StormCommand, StormStatus } from './lib/storm-worker.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '20' },
    gateways: { type: 'string', default: '1000' },
    'per-gateway': { type: 'string', default: '20' },
    workers: { type: 'string', default: `${Math.max(2, availableParallelism())}` },
    only: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds);
const GATEWAYS = Number(values.gateways);
const PER_GATEWAY = Math.max(1, Number(values['per-gateway']));
const WORKERS = Math.max(1, Math.min(Number(values.workers), GATEWAYS));
if (values.only !== undefined && values.only !== 'failover' && values.only !== 'storm')
  throw new Error(`--only ${values.only}: must be failover or storm`);
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
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
const result: Record<string, unknown> = { date: new Date().toISOString(), loadavg: loadavg() };
const workers: ChildProcess[] = [];
try {
  await start(a);
  await start(b);
  const admin = () => adminApi(a.process!.adminUrl, token);
  const dir = join(work, 'edge');
  await createAndBootstrap(admin(), 'bench', dir, 'PROD');
  await deployOrders(admin(), 'http://127.0.0.1:9', 'bench'); // an edge collection, its role and a client

  // ── 1. Failover of one edge gateway process ──────────────────────────────────────────────────────────────
  if (values.only !== 'storm') {
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
      p50Ms: percentile(failovers, 50),
      p90Ms: percentile(failovers, 90),
      p99Ms: percentile(failovers, 99),
      maxMs: failovers.at(-1),
      p50OverCold: percentile(failovers, 50) / coldMs,
    };
    process.stderr.write(`failover: ${JSON.stringify(result.failover)}\n`);
  }

  // ── 2. Reconnect storm: N gateways move from A to B ──────────────────────────────────────────────────────
  if (values.only !== 'failover') {
    // Both replicas up; every storm gateway dials A first.
    for (const r of replicas) if (r.process!.child.exitCode !== null || r.process!.child.signalCode) await start(r);
    const store = await openStore({
      databaseUrl: url,
      keyRing: createKeyRing([Buffer.from(TEST_ENCRYPTION_KEY, 'base64')]),
    });
    const registerAt = Date.now();
    // One gateway per workspace environment (the data model: an environment has at most one gateway, which scales
    // by running more instances), PER_GATEWAY instances each.
    const environments = Array.from({ length: Math.ceil(GATEWAYS / PER_GATEWAY) }, (_, i) => `STORM_${i + 1}`);
    const stormAdmin = adminApi(a.process!.adminUrl, token);
    for (const name of environments) {
      const added = await stormAdmin.post('/workspaces/default/environments', { name });
      if (added.status !== 201) throw new Error(`adding environment ${name} failed: ${added.status}`);
    }
    const workspace = (await store.getWorkspace({ name: 'default' }))!;
    const ca = await openStoredCertificateAuthority(store);
    const shared = await createKeyAndCsr('gatehouse bench storm');
    const registered = await Promise.all(
      environments.map(async (environment, i) => {
        const id = newId('gw');
        const subject = { gatewayId: id, workspaceId: workspace.id, environment };
        const issued = await ca.signGatewayCsr(shared.csrPem, subject, 24 * 3600_000);
        return { id, name: `storm-${i + 1}`, environment, issued };
      }),
    );
    await store.transaction(async (tx) => {
      for (const g of registered) {
        const at = nowIso();
        await tx.insertGateway({
          id: g.id,
          workspaceId: workspace.id,
          environment: g.environment,
          name: g.name,
          installMethod: 'docker',
          createdAt: at,
          updatedAt: at,
        });
        await tx.insertGatewayCertificate({
          serial: g.issued.serial,
          gatewayId: g.id,
          notBefore: g.issued.notBefore.toISOString(),
          notAfter: g.issued.notAfter.toISOString(),
        });
      }
    });
    /** Instance i belongs to gateway i mod the number of gateways. */
    const instances = Array.from({ length: GATEWAYS }, (_, i) => {
      const g = registered[i % registered.length]!;
      return { id: `${g.id}-${i}`, certPem: g.issued.certPem };
    });
    const registeredMs = Date.now() - registerAt;
    // Both replicas compile the new scopes (one per gateway) when told; the bench waits for the last one.
    const compileAt = Date.now();
    await store.notifyChange(workspace.id);
    const last = registered.at(-1)!;
    const lastScope = snapshotScope(workspace.id, last.environment, { type: 'edge', gateway: last.name });
    await eventually(async () => (await store.getLatestSnapshot(lastScope)) !== undefined, 600_000, 'compiled');
    const compiledMs = Date.now() - compileAt;
    await store.close();
    process.stderr.write(
      `storm: ${registered.length} gateways registered in ${registeredMs} ms, compiled in ${compiledMs} ms\n`,
    );

    // The workers, each with its share of the gateways.
    const statuses = new Map<ChildProcess, StormStatus>();
    const readyWorkers: Promise<void>[] = [];
    for (let w = 0; w < WORKERS; w++) {
      const child = fork(join(import.meta.dirname, 'lib/storm-worker.ts'), [], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      workers.push(child);
      readyWorkers.push(
        new Promise((resolve, reject) => {
          child.once('exit', (code) => reject(new Error(`a storm worker exited with ${code}`)));
          child.on('message', (m: StormStatus | { type: 'ready' }) => {
            if (m.type === 'ready') resolve();
            else statuses.set(child, m);
          });
        }),
      );
    }
    await Promise.all(readyWorkers);
    const send = (command: StormCommand) => {
      for (const w of workers) w.send(command);
    };
    const sum = (key: 'connected' | 'applied' | 'reconnected' | 'updated' | 'onB' | 'learned', mark = 0) => {
      let n = 0;
      for (const s of statuses.values()) if (s.mark === mark) n += s[key];
      return statuses.size === WORKERS ? n : -1;
    };
    const progress = setInterval(() => {
      const totals = { connected: 0, applied: 0, learned: 0, reconnected: 0, updated: 0, onB: 0 };
      const waiting: Record<string, number> = {};
      for (const st of statuses.values()) {
        for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += st[k];
        for (const [why, n] of Object.entries(st.waiting)) waiting[why] = (waiting[why] ?? 0) + n;
      }
      process.stderr.write(`storm: ${JSON.stringify({ ...totals, waiting })}\n`);
    }, 5000);
    progress.unref();
    const coldAt = Date.now();
    workers.forEach((w, i) =>
      w.send({
        type: 'start',
        instances: instances.filter((_, k) => k % WORKERS === i),
        keyPem: shared.keyPem,
        caPem: ca.certPem,
        endpoint: `127.0.0.1:${a.sync}`,
        b: `127.0.0.1:${b.sync}`,
        // None written at bootstrap: each instance learns B from A's advertisement once connected.
        alternates: [],
      } satisfies StormCommand),
    );
    await eventually(
      () => sum('connected') === GATEWAYS && sum('applied') === GATEWAYS && sum('learned') === GATEWAYS,
      600_000,
      'every instance connected to A and in sync',
    );
    const coldMs = Date.now() - coldAt;
    const aRss = await rssBytes(a.process!.child.pid!);
    const bRssBefore = await rssBytes(b.process!.child.pid!);
    const workerRss = [...statuses.values()].reduce((n, s) => n + s.rssBytes, 0);
    process.stderr.write(`storm: ${GATEWAYS} gateways connected to A and in sync in ${coldMs} ms\n`);

    send({ type: 'mark', id: 1 });
    await eventually(() => sum('connected', 1) === GATEWAYS, 60_000, 'mark 1');
    // Under load some instances give up on A during the cold start (not accepted within the accept timeout) and
    // connect to B instead: the storm is the instances on A when it dies.
    const onA = GATEWAYS - sum('onB', 1);
    let bPeak = bRssBefore;
    const sampler = setInterval(
      () =>
        void rssBytes(b.process!.child.pid!).then(
          (n) => (bPeak = Math.max(bPeak, n)),
          () => {},
        ),
      250,
    );
    const killedAt = Date.now();
    a.process!.child.kill('SIGKILL');
    await eventually(
      () => sum('connected', 1) === GATEWAYS && sum('onB', 1) === GATEWAYS,
      600_000,
      'every instance connected to B',
    );
    const reconnectMs = Date.now() - killedAt;
    process.stderr.write(`storm: every gateway on B ${reconnectMs} ms after A was killed\n`);

    // A change through B (a new client of the environment, in every gateway's snapshot) reaches all of them.
    send({ type: 'mark', id: 2 });
    await eventually(() => sum('connected', 2) === GATEWAYS, 60_000, 'mark 2');
    const changeAt = Date.now();
    const change = await adminApi(b.process!.adminUrl, token).post('/workspaces/default/clients', {
      name: 'storm',
      role: 'order-reader',
      environments,
      projects: ['default'],
    });
    if (change.status !== 201) throw new Error(`the change failed: ${change.status}`);
    await eventually(() => sum('updated', 2) === GATEWAYS, 600_000, 'every gateway ACKed the change');
    const changeMs = Date.now() - changeAt;
    clearInterval(sampler);
    const bRssAfter = await rssBytes(b.process!.child.pid!);
    const mib = (n: number) => Math.round(n / 2 ** 20);
    result.storm = {
      instances: GATEWAYS,
      gateways: registered.length,
      onAWhenKilled: onA,
      workers: WORKERS,
      registeredMs,
      compiledMs,
      coldToAllInSyncMs: coldMs,
      reconnectToAllInSyncOnBMs: reconnectMs,
      reconnectOverCold: reconnectMs / coldMs,
      changeToAllAckedMs: changeMs,
      replicaRssMiB: {
        aWithAllGateways: mib(aRss),
        bBefore: mib(bRssBefore),
        bPeak: mib(bPeak),
        bAfter: mib(bRssAfter),
      },
      workersRssMiB: mib(workerRss),
    };
  }
} finally {
  await Promise.all(
    workers.map((w) =>
      w.exitCode === null
        ? new Promise((r) => (w.once('exit', r), w.send({ type: 'close' } satisfies StormCommand)))
        : 0,
    ),
  );
  for (const r of replicas) await r.process?.stop();
  await client.query(`drop schema if exists ${SCHEMA} cascade`);
  await client.end();
  await rm(work, { recursive: true, force: true });
}
result.loadavgAfter = loadavg();
if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
