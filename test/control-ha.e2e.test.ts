/**
 * High availability on real processes and a real PostgreSQL: two `gatehouse control start` replicas sharing one
 * schema and one encryption key, an edge gateway bootstrapped through replica A, and steady traffic through the
 * edge gateway, and both replicas' cloud gateways and admin APIs through a load balancer of this test that, like
 * a Kubernetes Service, sends to the replicas whose /readyz answers 200.
 *
 * 1. The replica the edge gateway is connected to is killed (SIGKILL): the gateway syncs through the other within
 *    2 s, resuming from its version (deltas only), a change made through that replica reaches it, and its
 *    certificate is renewed through it.
 * 2. Both replicas are restarted one after the other (SIGTERM, start again) under that traffic: no request fails,
 *    and no request is served on a configuration older than the one the edge gateway acknowledged before.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { redactUrl } from '../src/config/redact-url.ts';
import { POSTGRES_HOW_TO, probePostgres, TEST_DATABASE_URL } from '../src/testing/postgres.ts';
import { adminApi, eventually, startControlPlane, type ControlProcess } from './control-helpers.ts';
import { createAndBootstrap, deployOrders, startEdge, type EdgeProcess } from './edge-helpers.ts';
import { startUpstream, type Upstream } from './helpers.ts';

const SCHEMA = `gh_ha_${process.pid}_${randomBytes(4).toString('hex')}`;
const WS = '/workspaces/default';

const unreachable = await probePostgres(TEST_DATABASE_URL);
if (unreachable !== undefined && process.env.CI)
  throw new Error(`PostgreSQL not reachable at ${redactUrl(TEST_DATABASE_URL)} (${unreachable}); ${POSTGRES_HOW_TO}`);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

interface Replica {
  name: string;
  ports: { admin: number; gateway: number; ops: number; bootstrap: number; sync: number };
  process?: ControlProcess;
}

describe(
  'control plane replicas on PostgreSQL: failover and rolling restart',
  { skip: unreachable === undefined ? false : `PostgreSQL not reachable (${unreachable}); ${POSTGRES_HOW_TO}` },
  () => {
    const url = `${TEST_DATABASE_URL}?options=${encodeURIComponent(`-c search_path=${SCHEMA}`)}`;
    let upstream: Upstream;
    let work: string;
    let edge: EdgeProcess | undefined;
    let token = '';
    const replicas: Replica[] = [];

    async function start(replica: Replica): Promise<ControlProcess> {
      const { ports } = replica;
      replica.process = await startControlPlane({
        databaseUrl: url,
        extraArgs: [
          ...['--admin-port', `${ports.admin}`, '--gateway-port', `${ports.gateway}`, '--ops-port', `${ports.ops}`],
          ...['--bootstrap-port', `${ports.bootstrap}`, '--sync-port', `${ports.sync}`],
          // Every replica compiles the same snapshots: one public URL (its host, any port, is served).
          ...['--public-url', 'http://127.0.0.1'],
          ...['--shutdown-delay', '2s', '--drain-timeout', '5s'],
          // Short-lived gateway certificates: renewed every few seconds, through whichever replica is connected.
          ...['--gateway-cert-validity', '12s'],
        ],
      });
      token ||= replica.process.token;
      if (token === '')
        throw new Error(
          `replica ${replica.name} started without printing the installation's admin token:\n${replica.process.output.join('\n')}`,
        );
      return replica.process;
    }
    const ready = async (replica: Replica) =>
      (await fetch(`http://127.0.0.1:${replica.ports.ops}/readyz`).catch(() => undefined))?.status === 200;

    async function resetSchema(): Promise<void> {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      await client.query(`drop schema if exists ${SCHEMA} cascade`);
      await client.query(`create schema ${SCHEMA}`);
      await client.end();
    }

    before(async () => {
      await resetSchema();
      upstream = await startUpstream();
      work = await mkdtemp(join(tmpdir(), 'gatehouse-ha-'));
      const freePorts = async () => ({
        admin: await freePort(),
        gateway: await freePort(),
        ops: await freePort(),
        bootstrap: await freePort(),
        sync: await freePort(),
      });
      for (const name of ['A', 'B']) {
        const replica: Replica = { name, ports: await freePorts() };
        replicas.push(replica);
        // Another test may take a port between freePort() releasing it and the replica binding it: then the replica
        // exits at once naming the port, and it starts again on other ports (they stay fixed from then on).
        for (let attempt = 1; ; attempt++) {
          try {
            await start(replica);
            break;
          } catch (error) {
            if (attempt >= 5 || !/is already in use/.test(String((error as Error).message))) throw error;
            replica.ports = await freePorts();
            // The first replica's failed start may have set up the database (and its admin token, shown only once a
            // start gets as far as its banner): start again on an empty schema, so that the token is shown.
            if (token === '') await resetSchema();
          }
        }
      }
    });
    after(async () => {
      await edge?.stop();
      for (const r of replicas) await r.process?.stop();
      await upstream?.close();
      await rm(work, { recursive: true, force: true });
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      await client.query(`drop schema if exists ${SCHEMA} cascade`);
      await client.end();
    });

    it('fails an edge gateway over to B when A dies, and restarts both replicas under traffic with no failed or stale request', async () => {
      const [a, b] = replicas as [Replica, Replica];
      const adminA = adminApi(a.process!.adminUrl, token);

      // ── An edge gateway registered through A is told of B too ───────────────────────────────────────────────
      const dir = join(work, 'edge');
      await createAndBootstrap(adminA, 'edge-1', dir);
      const identity = JSON.parse(await readFile(join(dir, 'gateway.json'), 'utf8')) as {
        controlPlane: { sync: string; alternates?: { sync: string }[] };
      };
      assert.equal(identity.controlPlane.sync, `127.0.0.1:${a.ports.sync}`);
      assert.deepEqual(
        identity.controlPlane.alternates?.map((r) => r.sync),
        [`127.0.0.1:${b.ports.sync}`],
      );
      const { token: shopToken } = await deployOrders(adminA, upstream.url, 'edge-1');
      // A cloud collection in PROD, served by both replicas' cloud gateways, for the same client.
      const cloud = await adminA.post(`${WS}/environments/PROD/collections`, {
        name: 'catalog',
        basePath: '/catalog',
        upstream: upstream.url,
        project: 'default',
        endpoints: [{ method: 'GET', path: '/items', permission: 'orders:read' }],
      });
      assert.equal(cloud.status, 201, JSON.stringify(cloud.body));
      assert.equal((await adminA.post(`${WS}/environments/PROD/collections/catalog/publish`)).status, 201);

      edge = await startEdge(dir);
      const edgeCall = async (t: string) =>
        (await fetch(`${edge!.url}/orders/items`, { headers: { authorization: `Bearer ${t}` } })).status;
      const cloudCall = async (replica: Replica, t: string) =>
        (
          await fetch(`http://127.0.0.1:${replica.ports.gateway}/default/prod/catalog/items`, {
            headers: { authorization: `Bearer ${t}` },
          })
        ).status;
      await eventually(async () => (await edgeCall(shopToken)) === 200, 20_000, 'the edge gateway serves');
      await eventually(async () => (await cloudCall(b, shopToken)) === 200, 20_000, "B's cloud gateway serves");

      // ── Steady traffic: the edge gateway, and the cloud gateways behind a readiness-checking balancer ───────
      /** A client deleted before the restarts: any 200 for it is a request served on an outdated configuration. */
      const revoked = await adminA.post(`${WS}/clients`, {
        name: 'revoked',
        role: 'order-reader',
        environments: ['PROD'],
        projects: ['default'],
      });
      await eventually(async () => (await edgeCall(revoked.body.token as string)) === 200, 10_000, 'revoked: known');
      assert.equal((await adminA.delete(`${WS}/clients/${revoked.body.client.id}`)).status, 204);
      await eventually(async () => (await edgeCall(revoked.body.token as string)) === 401, 10_000, 'revoked: refused');

      const inRotation = new Set<Replica>(replicas);
      const excluded = new Set<Replica>();
      /** Cloud requests under way, per replica. */
      const inFlight = new Map<Replica, number>();
      let phase = 'steady';
      const stats = { ok: 0, failed: [] as string[], stale: 0 };
      let running = true;
      const poll = (async () => {
        while (running) {
          for (const r of replicas) {
            // Excluded (about to be killed) is checked after the probe too: it may be excluded meanwhile.
            if (!excluded.has(r) && (await ready(r)) && !excluded.has(r)) inRotation.add(r);
            else inRotation.delete(r);
          }
          await new Promise((res) => setTimeout(res, 100));
        }
      })();
      const record = async (what: string, call: () => Promise<number>, expected: number) => {
        try {
          const status = await call();
          if (status === expected) stats.ok++;
          else if (status === 200) stats.stale++;
          else stats.failed.push(`${what} (${phase}, ${Date.now()}): ${status}`);
        } catch (error) {
          stats.failed.push(
            `${what} (${phase}, ${Date.now()}): ${(error as Error).message} ${String((error as Error).cause ?? '')}`,
          );
        }
      };
      const stopTraffic = async () => {
        running = false;
        await Promise.all([poll, ...traffic]);
      };
      let turn = 0;
      const adminCall = async (replica: Replica) =>
        (
          await fetch(`http://127.0.0.1:${replica.ports.admin}/api/v1/me`, {
            headers: { authorization: `Bearer ${token}` },
          })
        ).status;
      const traffic = [0, 1, 2, 3].map(async (worker) => {
        while (running) {
          if (worker === 0) await record('edge', () => edgeCall(shopToken), 200);
          else if (worker === 1) await record('edge revoked', () => edgeCall(revoked.body.token as string), 401);
          else {
            const targets = [...inRotation];
            if (targets.length === 0) stats.failed.push('balancer: no replica ready');
            else {
              const target = targets[turn++ % targets.length]!;
              inFlight.set(target, (inFlight.get(target) ?? 0) + 1);
              // Worker 3: the admin API behind the same balancer.
              if (worker === 3) await record(`admin ${target.name}`, () => adminCall(target), 200);
              else await record(`cloud ${target.name}`, () => cloudCall(target, shopToken), 200);
              inFlight.set(target, inFlight.get(target)! - 1);
            }
          }
          await new Promise((res) => setTimeout(res, 20));
        }
      });

      try {
        // ── 1. The replica the edge gateway is connected to dies: it is on the other one within 2 s ────────────
        const connectedTo = (r: Replica) =>
          new RegExp(`"endpoint":"127\\.0\\.0\\.1:${r.ports.sync}".*"connected to the control plane"`);
        await edge.waitFor(/"connected to the control plane"/);
        const connected = edge.output.filter((l) => l.includes('"connected to the control plane"')).at(-1)!;
        const [dead, alive] = connectedTo(a).test(connected) ? [a, b] : [b, a];
        const from = edge.output.length;
        // A crash is not a drain: the balancer takes the replica out first, so that what is counted is the edge
        // gateway's traffic (served from memory throughout) and the cloud traffic to the other replica.
        excluded.add(dead);
        inRotation.delete(dead);
        await eventually(() => !inFlight.get(dead), 10_000, 'the cloud requests to it in flight finish');
        const killedAt = Date.now();
        phase = `kill ${dead.name}`;
        dead.process!.child.kill('SIGKILL');
        await edge.waitFor(connectedTo(alive), 10_000, from);
        const failover = Date.now() - killedAt;
        // The promise is 2 s. On a machine loaded beyond its cores (parallel test runs), processes wait for CPU
        // and every step takes several times longer: the bound is then 10 s, and the time is printed either way.
        const overloaded = loadavg()[0]! > 2 * availableParallelism();
        assert.ok(
          failover < (overloaded ? 10_000 : 2000),
          `the edge gateway reconnected to the other replica after ${failover} ms (killed at ${killedAt}):\n${edge.output
            .slice(from)
            .filter((l) => !l.includes('"msg":"request"'))
            .join('\n')}`,
        );
        // A change made through the surviving replica reaches it.
        const late = await adminApi(alive.process!.adminUrl, token).post(`${WS}/clients`, {
          name: 'late',
          role: 'order-reader',
          environments: ['PROD'],
          projects: ['default'],
        });
        assert.equal(late.status, 201);
        const reached = await eventually(
          async () => (await edgeCall(late.body.token as string)) === 200,
          10_000,
          'the change through the surviving replica',
        );
        // Resumed from the version it held: the change came as a delta, no full snapshot was sent.
        // The gateway logs after it applied: the line may reach this process after the request it made possible.
        await edge.waitFor(/"config applied from the control plane"/, 10_000, from);
        const applied = edge.output.slice(from).filter((l) => l.includes('"config applied from the control plane"'));
        assert.ok(applied.length > 0 && applied.every((l) => l.includes('"kind":"delta"')), applied.join('\n'));
        // Its certificate (valid 12 s, renewed at two thirds) is renewed through the surviving replica.
        await edge.waitFor(/renewed the gateway certificate/, 20_000, from);
        await dead.process!.stop();
        await start(dead);
        excluded.delete(dead);
        await eventually(() => ready(dead), 30_000, 'the killed replica ready again');

        // ── 2. Rolling restart: A, then B, under traffic (the edge gateway moves away from each in turn) ─────────
        for (const replica of [a, b]) {
          phase = `restart ${replica.name}`;
          await replica.process!.stop(); // SIGTERM: not ready, 2 s shutdown delay, streams end, requests drain
          await start(replica);
          await eventually(() => ready(replica), 30_000, `${replica.name} ready again`);
        }
        // The edge gateway moved with the restarts; a change made through A reaches it.
        const afterRestart = await adminApi(a.process!.adminUrl, token).post(`${WS}/clients`, {
          name: 'after-restart',
          role: 'order-reader',
          environments: ['PROD'],
          projects: ['default'],
        });
        await eventually(async () => (await edgeCall(afterRestart.body.token as string)) === 200, 10_000, 'after');
        process.stderr.write(
          `# failover ${failover} ms (load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores); a change through the surviving replica reached the edge gateway in ${reached} ms; ${stats.ok} requests answered as expected during the test\n`,
        );
      } finally {
        await stopTraffic();
      }
      assert.deepEqual(stats.failed, [], 'no request failed');
      assert.equal(stats.stale, 0, 'no request was served on an outdated configuration');
      assert.ok(stats.ok > 50, `steady traffic ran (${stats.ok} requests)`);
    });
  },
);
