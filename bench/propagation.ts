/**
 * Propagation: how long a change made through the admin API takes until every connected edge instance enforces
 * it. A real control plane (SQLite), one edge gateway bootstrapped with the real command and run as N separate
 * `gatehouse gateway run` processes (each with its own copy of the config directory, as replicas of one
 * deployment), and a real upstream. For each change — a client deleted, a token regenerated, a role's permission
 * removed — the clock starts just before the admin API call, and stops when the last instance answers the way
 * the change requires (401 for the old token, 403 for the lost permission); every instance is polled in a tight
 * loop. The same change is timed on the control plane's own cloud gateway, in the same run, as the baseline.
 *
 * Usage: scripts/node bench/propagation.ts [--instances 3] [--changes 90] [--json]
 * Target (issue #4): p99 under 1 second at the edge.
 */
import { cp as copyDir, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { eventually, startControlPlane } from '../test/control-helpers.ts';
import { createAndBootstrap, startEdge, type EdgeProcess } from '../test/edge-helpers.ts';
import { startUpstream } from '../test/helpers.ts';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '3' },
    changes: { type: 'string', default: '90' },
    json: { type: 'boolean', default: false },
  },
});
const INSTANCES = Number(values.instances);
const CHANGES = Number(values.changes);
const WS = '/workspaces/default';
const DEV = `${WS}/environments/DEV`;

type Kind = 'client deleted' | 'token regenerated' | 'role changed';
interface Sample {
  kind: Kind;
  /** Until every edge instance enforced the change. */
  edgeMs: number;
  /** Each instance's own time. */
  perInstanceMs: number[];
  /** Until the cloud gateway enforced it (the baseline). */
  cloudMs: number;
}

const work = await mkdtemp(join(tmpdir(), 'gatehouse-bench-propagation-'));
const upstream = await startUpstream();
const cp = await startControlPlane();
const admin = cp.api();
const edges: EdgeProcess[] = [];
try {
  await createAndBootstrap(admin, 'bench', join(work, 'gw'), 'DEV');
  for (let i = 0; i < INSTANCES; i++) await copyDir(join(work, 'gw'), join(work, `gw-${i}`), { recursive: true });
  const endpoint = { method: 'GET', path: '/list', permission: 'items:read' };
  await must(
    admin.post(`${DEV}/collections`, {
      name: 'edge-items',
      basePath: '/items',
      upstream: upstream.url,
      project: 'default',
      target: { type: 'edge', gateway: 'bench' },
      endpoints: [endpoint],
    }),
    201,
  );
  await must(
    admin.post(`${DEV}/collections`, {
      name: 'cloud-items',
      basePath: '/items',
      upstream: upstream.url,
      project: 'default',
      endpoints: [endpoint],
    }),
    201,
  );
  await must(admin.post(`${DEV}/collections/edge-items/publish`), 201);
  await must(admin.post(`${DEV}/collections/cloud-items/publish`), 201);
  for (let i = 0; i < INSTANCES; i++) edges.push(await startEdge(join(work, `gw-${i}`)));
  const targets = [...edges.map((e) => `${e.url}/items/list`), `${cp.gatewayUrl}/default/dev/items/list`];
  const cloudIndex = targets.length - 1;

  const samples: Sample[] = [];
  for (let n = 0; n < CHANGES; n++) {
    const kind: Kind = (['client deleted', 'token regenerated', 'role changed'] as const)[n % 3]!;
    const role = `role-${n}`;
    await must(admin.post(`${WS}/roles`, { name: role, permissions: ['items:read'] }), 201);
    const created = await must(
      admin.post(`${WS}/clients`, { name: `client-${n}`, role, environments: ['DEV'], projects: ['default'] }),
      201,
    );
    const token = created.body.token as string;
    const id = created.body.client.id as string;
    // Not timed: wait until every instance serves the new client.
    await eventually(
      async () => (await Promise.all(targets.map((t) => status(t, token)))).every((s) => s === 200),
      10_000,
      `client ${n} served everywhere`,
    );

    let change: () => Promise<unknown>;
    let enforced: (s: number) => boolean;
    if (kind === 'client deleted') {
      change = () => must(admin.delete(`${WS}/clients/${id}`), 204);
      enforced = (s) => s === 401;
    } else if (kind === 'token regenerated') {
      change = () => must(admin.post(`${WS}/clients/${id}/regenerate`), 200);
      enforced = (s) => s === 401;
    } else {
      change = () => must(admin.patch(`${WS}/roles/${role}`, { permissions: ['other:read'] }), 200);
      enforced = (s) => s === 403;
    }
    const started = performance.now();
    const done = targets.map((t) => until(t, token, enforced, started));
    await change();
    const times = await Promise.all(done);
    const edgeTimes = times.filter((_, i) => i !== cloudIndex);
    samples.push({ kind, edgeMs: Math.max(...edgeTimes), perInstanceMs: edgeTimes, cloudMs: times[cloudIndex]! });
    await admin.delete(`${WS}/clients/${id}`);
    if (!values.json && (n + 1) % 15 === 0) process.stderr.write(`  ${n + 1}/${CHANGES} changes\n`);
  }

  const report = summarize(samples);
  await mkdir('bench/out', { recursive: true });
  const file = `bench/out/propagation-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  await writeFile(file, JSON.stringify({ instances: INSTANCES, changes: CHANGES, report, samples }, null, 2));
  if (values.json) console.log(JSON.stringify(report));
  else print(report, file);
} finally {
  await Promise.all(edges.map((e) => e.stop()));
  await cp.stop();
  await upstream.close();
  await rm(work, { recursive: true, force: true });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- admin API JSON
async function must(res: Promise<{ status: number; body: any }> | { status: number; body: any }, expected: number) {
  const r = await res;
  if (r.status !== expected) throw new Error(`expected ${expected}, got ${r.status}: ${JSON.stringify(r.body)}`);
  return r;
}

async function status(url: string, token: string): Promise<number> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

/** Polls `url` until `enforced(status)`; resolves with the milliseconds since `started`. */
async function until(url: string, token: string, enforced: (s: number) => boolean, started: number): Promise<number> {
  for (;;) {
    const s = await status(url, token);
    if (enforced(s)) return performance.now() - started;
    if (performance.now() - started > 30_000)
      throw new Error(`${url} did not enforce the change within 30 s (last status ${s})`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function stats(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: round(percentile(s, 50)), p99: round(percentile(s, 99)), max: round(s[s.length - 1]!) };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function summarize(samples: Sample[]) {
  const kinds = [...new Set(samples.map((s) => s.kind))];
  const edge = stats(samples.map((s) => s.edgeMs));
  const cloud = stats(samples.map((s) => s.cloudMs));
  return {
    edge,
    cloud,
    edgeOverCloudP50: round(edge.p50 / cloud.p50),
    byKind: Object.fromEntries(
      kinds.map((k) => [
        k,
        {
          edge: stats(samples.filter((s) => s.kind === k).map((s) => s.edgeMs)),
          cloud: stats(samples.filter((s) => s.kind === k).map((s) => s.cloudMs)),
        },
      ]),
    ),
    targetMet: edge.p99 < 1000,
  };
}

function print(report: ReturnType<typeof summarize>, file: string): void {
  const row = (
    name: string,
    e: { n: number; p50: number; p99: number; max: number },
    c: { p50: number; p99: number; max: number },
  ) => `| ${name} | ${e.n} | ${e.p50} | ${e.p99} | ${e.max} | ${c.p50} | ${c.p99} |`;
  console.log(
    `Propagation with ${INSTANCES} edge instances, ${CHANGES} changes (ms from the admin API call until every instance enforces it)\n`,
  );
  console.log('| change | n | edge p50 | edge p99 | edge max | cloud p50 | cloud p99 |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const [kind, r] of Object.entries(report.byKind)) console.log(row(kind, r.edge, r.cloud));
  console.log(row('all', report.edge, report.cloud));
  console.log(
    `\nedge ÷ cloud (p50): ${report.edgeOverCloudP50}; target p99 < 1000 ms: ${report.targetMet ? 'met' : 'MISSED'}\nraw: ${file}`,
  );
}
