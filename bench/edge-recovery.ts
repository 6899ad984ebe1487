/**
 * Recovery after a control-plane restart: a real control plane (SQLite) and an edge gateway whose configuration
 * holds 10,000 clients (lib/edge-fixture.ts), synced. Each round kills the control plane (SIGKILL), leaves it down
 * for `--outage` ms, starts it again on the same data and sync port, and creates a client through the admin API
 * as soon as it listens. Measured from the moment the control plane logs that it listens ("answers again"):
 *   reconnected   until the edge gateway logs that it is connected again;
 *   change served until the edge gateway admits the new client's key: back in sync with a change made after the
 *                 restart.
 * Baselines in the same run: the same change while connected (no restart: plain propagation), and the previous
 * code's edge gateway (`--baseline REV`, from a temporary git worktree) through the same rounds.
 * Target (issue #9): back in sync ≤ 2 s after the control plane answers again.
 *
 * Usage: scripts/node bench/edge-recovery.ts [--clients 10000] [--rounds 5] [--outage 5000] [--baseline REV|none] [--json]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { adminApi, type AdminApi } from '../test/control-helpers.ts';
import { onLines, startUpstream } from '../test/helpers.ts';
import { controlArgs, prepareEdgeFixture } from './lib/edge-fixture.ts';
import { get, installCleanup, ROOT } from './lib/processes.ts';
import { checkoutWorktree, currentCommit, type Worktree } from './lib/worktree.ts';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '5' },
    outage: { type: 'string', default: '5000' },
    baseline: { type: 'string', default: '3cc472d' },
    json: { type: 'boolean', default: false },
  },
});
const CLIENTS = Number(values.clients);
const ROUNDS = Number(values.rounds);
const OUTAGE_MS = Number(values.outage);
const TARGET_MS = 2000;
const WS = '/workspaces/default';
const log = (line: string) => {
  if (!values.json) process.stderr.write(`${line}\n`);
};
installCleanup();

interface Proc {
  child: ChildProcess;
  output: string[];
  /** The first line from `from` on that matches, parsed (pino JSON). */
  waitFor(pattern: RegExp, timeoutMs?: number, from?: number): Promise<{ time: number; [k: string]: unknown }>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function start(argv: string[], cwd: string): Proc {
  const child = spawn(process.execPath, argv, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = setTimeout(() => child.kill('SIGKILL'), 30 * 60_000);
  kill.unref();
  const output: string[] = [];
  onLines(child, (line) => output.push(line));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    output,
    async waitFor(pattern, timeoutMs = 60_000, from = 0) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = output.slice(from).find((l) => pattern.test(l));
        if (line) return JSON.parse(line) as { time: number };
        if (child.exitCode !== null)
          throw new Error(`${argv[1]} exited before ${pattern}:\n${output.slice(-20).join('\n')}`);
        if (Date.now() > deadline)
          throw new Error(`timed out waiting for ${pattern}:\n${output.slice(-20).join('\n')}`);
        await new Promise((r) => setTimeout(r, 2));
      }
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
      clearTimeout(kill);
    },
  };
}

const work = await mkdtemp(join(tmpdir(), 'gatehouse-bench-edge-recovery-'));
const upstream = await startUpstream();
let baseline: Worktree | undefined;
const running: Proc[] = [];
try {
  log(`preparing an edge gateway with ${CLIENTS} clients…`);
  const dataDir = join(work, 'cp');
  const fixture = await prepareEdgeFixture({ work, dataDir, upstreamUrl: upstream.url, clients: CLIENTS, log });
  await fixture.cp.stop({ keepData: true });
  if (values.baseline !== 'none') baseline = checkoutWorktree(values.baseline);

  const startControl = async () => {
    const cp = start(
      [
        join(ROOT, 'src/cli/main.ts'),
        'control',
        'start',
        '--data-dir',
        dataDir,
        '--admin-port',
        '0',
        '--gateway-port',
        '0',
        '--ops-port',
        '0',
        '--host',
        '127.0.0.1',
        ...controlArgs(fixture.syncPort),
      ],
      ROOT,
    );
    running.push(cp);
    const listening = (await cp.waitFor(/"control plane listening"/)) as { time: number; admin: string };
    return { cp, listening: listening.time, admin: adminApi(`http://${listening.admin}`, fixture.adminToken) };
  };
  const startGateway = async (root: string) => {
    const edge = start(
      [
        join(root, 'src/cli/main.ts'),
        'gateway',
        'run',
        '--config',
        fixture.dir,
        '--port',
        '0',
        '--ops-port',
        '0',
        '--host',
        '127.0.0.1',
      ],
      root,
    );
    running.push(edge);
    const listening = (await edge.waitFor(/"gateway listening"/)) as { time: number; api: string };
    return { edge, url: `http://${listening.api}` };
  };
  const createClient = async (admin: AdminApi, name: string) => {
    const r = await admin.post(`${WS}/clients`, {
      name,
      role: 'order-reader',
      environments: ['PROD'],
      projects: ['default'],
    });
    if (r.status !== 201) throw new Error(`creating client ${name}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.token as string;
  };
  /** Polls the edge until it admits `token`; resolves with Date.now() then. */
  const servedAt = async (url: string, token: string) => {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const answer = await get(`${url}/orders/items`, { authorization: `Bearer ${token}` }, 1000).catch(
        () => undefined,
      );
      if (answer?.status === 200) return Date.now();
      if (Date.now() > deadline)
        throw new Error(`the edge did not admit the new client within 120 s (last: ${answer?.status ?? 'no answer'})`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };

  const modes: { name: string; root: string }[] = [{ name: 'gatehouse', root: ROOT }];
  if (baseline) modes.push({ name: `previous (${baseline.commit})`, root: baseline.root });
  const results: Record<string, { connectedMs: number[]; servedMs: number[]; propagationMs: number[] }> = {};
  let cpNow = await startControl();
  let n = 0;
  for (const mode of modes) {
    const r = (results[mode.name] = {
      connectedMs: [] as number[],
      servedMs: [] as number[],
      propagationMs: [] as number[],
    });
    const { edge, url } = await startGateway(mode.root);
    await edge.waitFor(/"connected to the control plane"/);
    for (let round = 0; round < ROUNDS; round++) {
      // Baseline: the same change while connected.
      const before = Date.now();
      const token = await createClient(cpNow.admin, `recovery-${n++}`);
      r.propagationMs.push((await servedAt(url, token)) - before);

      const from = edge.output.length;
      await cpNow.cp.stop('SIGKILL');
      await edge.waitFor(/disconnected from the control plane/, 30_000, from);
      await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
      const reconnectFrom = edge.output.length;
      cpNow = await startControl();
      const changed = await createClient(cpNow.admin, `recovery-${n++}`);
      const served = await servedAt(url, changed);
      const connected = await edge.waitFor(/"connected to the control plane"/, 60_000, reconnectFrom);
      r.connectedMs.push(connected.time - cpNow.listening);
      r.servedMs.push(served - cpNow.listening);
      log(
        `  ${mode.name} round ${round + 1}/${ROUNDS}: reconnected ${r.connectedMs.at(-1)} ms, change served ${r.servedMs.at(-1)} ms after the control plane listened (connected: ${r.propagationMs.at(-1)} ms)`,
      );
    }
    await edge.stop();
  }
  await cpNow.cp.stop();

  const report = {
    clients: fixture.clients,
    outageMs: OUTAGE_MS,
    rounds: ROUNDS,
    commit: currentCommit(),
    modes: Object.fromEntries(
      Object.entries(results).map(([name, r]) => [
        name,
        { reconnected: stats(r.connectedMs), changeServed: stats(r.servedMs), whileConnected: stats(r.propagationMs) },
      ]),
    ),
  };
  await mkdir(join(ROOT, 'bench/out'), { recursive: true });
  const file = join('bench/out', `edge-recovery-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(join(ROOT, file), JSON.stringify({ ...report, samples: results }, null, 2));
  if (values.json) console.log(JSON.stringify(report));
  else {
    console.log(
      `\nRecovery after a control-plane restart (${report.clients} clients, outage ${OUTAGE_MS} ms + restart), ${ROUNDS} rounds, code ${report.commit}`,
    );
    console.log(
      'ms after the restarted control plane listens\n\n| edge gateway | reconnected: median (max) | change served: median (max) | same change while connected: median |\n| --- | ---: | ---: | ---: |',
    );
    for (const [name, m] of Object.entries(report.modes))
      console.log(
        `| ${name} | ${m.reconnected.median} (${m.reconnected.max}) | ${m.changeServed.median} (${m.changeServed.max}) | ${m.whileConnected.median} |`,
      );
    const ours = report.modes.gatehouse!.changeServed.max;
    console.log(
      `\ntarget ≤ ${TARGET_MS} ms (change served, every round): ${ours <= TARGET_MS ? 'met' : 'MISSED'}\nraw: ${file}`,
    );
  }
} finally {
  for (const p of running) await p.stop('SIGKILL').catch(() => {});
  baseline?.remove();
  await upstream.close();
  await rm(work, { recursive: true, force: true });
}

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  return { median: Math.round(s[Math.floor(s.length / 2)]!), min: Math.round(s[0]!), max: Math.round(s.at(-1)!) };
}
