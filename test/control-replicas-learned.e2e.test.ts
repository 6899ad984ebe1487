/**
 * Edge gateways learn the control-plane replicas over the sync stream (issue #20), on real processes and a real
 * PostgreSQL: a gateway bootstrapped through replica A while A was alone knows no other replica; replica B is
 * started afterwards; A tells the gateway (within one replica refresh, 10 s), the gateway keeps B in its config
 * directory (replicas.json), and when A is killed (SIGKILL) it syncs through B — also after a restart of the
 * gateway while A is still down, from replicas.json alone. On the way: neither replica has a signing-keys file, and
 * both publish the same keys (those in the store).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { redactUrl } from '../src/config/redact-url.ts';
import { POSTGRES_HOW_TO, probePostgres, TEST_DATABASE_URL } from '../src/testing/postgres.ts';
import { adminApi, eventually, startControlPlane, type ControlProcess } from './control-helpers.ts';
import { createAndBootstrap, deployOrders, startEdge, type EdgeProcess } from './edge-helpers.ts';
import { startUpstream, type Upstream } from './helpers.ts';

const SCHEMA = `gh_learn_${process.pid}_${randomBytes(4).toString('hex')}`;
const WS = '/workspaces/default';

const unreachable = await probePostgres(TEST_DATABASE_URL);
if (unreachable !== undefined && process.env.CI)
  throw new Error(`PostgreSQL not reachable at ${redactUrl(TEST_DATABASE_URL)} (${unreachable}); ${POSTGRES_HOW_TO}`);

describe(
  'edge gateways learn the control-plane replicas',
  { skip: unreachable === undefined ? false : `PostgreSQL not reachable (${unreachable}); ${POSTGRES_HOW_TO}` },
  () => {
    const url = `${TEST_DATABASE_URL}?options=${encodeURIComponent(`-c search_path=${SCHEMA}`)}`;
    let upstream: Upstream;
    let work: string;
    const edges: EdgeProcess[] = [];
    const replicas: ControlProcess[] = [];
    const start = async () => {
      const replica = await startControlPlane({ databaseUrl: url, extraArgs: ['--public-url', 'http://127.0.0.1'] });
      replicas.push(replica);
      return replica;
    };

    before(async () => {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      await client.query(`create schema ${SCHEMA}`);
      await client.end();
      upstream = await startUpstream();
      work = await mkdtemp(join(tmpdir(), 'gatehouse-learn-'));
    });
    after(async () => {
      for (const e of edges) await e.stop();
      for (const r of replicas) await r.stop();
      await upstream?.close();
      await rm(work, { recursive: true, force: true });
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      await client.query(`drop schema if exists ${SCHEMA} cascade`);
      await client.end();
    });

    it('fails over to a replica started after the gateway bootstrapped, also after a restart of the gateway', async () => {
      const a = await start();
      const token = a.token;
      const adminA = adminApi(a.adminUrl, token);
      const dir = join(work, 'edge');
      await createAndBootstrap(adminA, 'edge-1', dir);
      const identity = JSON.parse(await readFile(join(dir, 'gateway.json'), 'utf8')) as {
        controlPlane: { sync: string; alternates?: { sync: string }[] };
      };
      assert.deepEqual(identity.controlPlane.alternates ?? [], [], 'bootstrapped while A was alone');
      const { token: shopToken } = await deployOrders(adminA, upstream.url, 'edge-1');

      let edge = await startEdge(dir);
      edges.push(edge);
      const connectedTo = (sync: string) =>
        new RegExp(`"endpoint":"${sync.replace(/\./g, '\\.')}".*"connected to the control plane"`);
      const syncOf = (r: ControlProcess) =>
        r.output.map((l) => /"sync":"([^"]+)".*"gateway sync listening"/.exec(l)?.[1]).find(Boolean)!;
      const syncA = syncOf(a);
      await edge.waitFor(connectedTo(syncA));

      // ── B starts; A's next refresh tells the gateway, which keeps it in replicas.json ────────────────────────
      const b = await start();
      const syncB = syncOf(b);
      const file = join(dir, 'replicas.json');
      const learned = async () =>
        (
          (JSON.parse(await readFile(file, 'utf8').catch(() => '{}')) as { replicas?: { sync: string }[] }).replicas ??
          []
        ).map((r) => r.sync);
      await eventually(async () => (await learned()).includes(syncB), 30_000, 'the gateway learns of B');
      assert.deepEqual(new Set(await learned()), new Set([syncA, syncB]));
      assert.equal((await stat(file)).mode & 0o777, 0o644, 'replicas.json has gateway.json mode');

      // Nothing per replica on disk: no signing-keys file, and both replicas publish the same keys.
      for (const r of [a, b]) assert.equal(existsSync(join(r.dataDir, 'signing-keys.json')), false, r.dataDir);
      const kids = async (r: ControlProcess) =>
        ((await (await fetch(`${r.gatewayUrl}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys
          .map((k) => k.kid)
          .sort();
      const kidsA = await kids(a);
      assert.ok(kidsA.length > 0);
      assert.deepEqual(await kids(b), kidsA, 'both replicas sign with the keys in the store');

      // ── A dies: the gateway syncs through B, which it was never given at bootstrap ───────────────────────────
      const from = edge.output.length;
      const killedAt = Date.now();
      a.child.kill('SIGKILL');
      await edge.waitFor(connectedTo(syncB), 15_000, from);
      const failover = Date.now() - killedAt;
      const overloaded = loadavg()[0]! > 2 * availableParallelism();
      assert.ok(failover < (overloaded ? 10_000 : 2000), `failover to the learned replica took ${failover} ms`);
      const adminB = adminApi(b.adminUrl, token);
      const late = await adminB.post(`${WS}/clients`, {
        name: 'late',
        role: 'order-reader',
        environments: ['PROD'],
        projects: ['default'],
      });
      assert.equal(late.status, 201);
      const edgeCall = async (e: EdgeProcess, t: string) =>
        (await fetch(`${e.url}/orders/items`, { headers: { authorization: `Bearer ${t}` } })).status;
      await eventually(async () => (await edgeCall(edge, late.body.token as string)) === 200, 10_000, 'change via B');

      // ── Restarted while A is still down: replicas.json alone leads it to B ───────────────────────────────────
      await edge.stop();
      edge = await startEdge(dir);
      edges.push(edge);
      await edge.waitFor(connectedTo(syncB), 30_000);
      assert.equal(await edgeCall(edge, shopToken), 200);
      process.stderr.write(
        `# failover to a learned replica: ${failover} ms (load average ${loadavg()[0]!.toFixed(1)})\n`,
      );
    });
  },
);
