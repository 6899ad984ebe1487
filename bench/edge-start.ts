/**
 * Cold start of an edge gateway from its cache: the time from spawning `gatehouse gateway run --config DIR` to the
 * first 200 on a proxied route, with the control plane unreachable (the fallback case: the gateway must serve its
 * cache without waiting for it), and the cache holding a realistic configuration of 10,000 clients (see
 * lib/edge-fixture.ts).
 *
 * Each round starts, in turn:
 *   bare node           `node -e` with an http server answering 200: the floor for any Node process;
 *   gatehouse (warm)    this checkout, with Node's compile cache already filled (every start after the first);
 *   gatehouse (cold)    this checkout with an empty compile cache (a new container without a cache volume);
 *   previous            `--baseline REV` (default HEAD~0 of the issue: 3cc472d), from a temporary git worktree.
 * Every process is stopped (SIGTERM) before the next starts. Target (issue #9): ≤ 1 s.
 *
 * Usage: scripts/node bench/edge-start.ts [--clients 10000] [--rounds 7] [--baseline REV|none] [--json]
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startUpstream } from '../test/helpers.ts';
import { prepareEdgeFixture } from './lib/edge-fixture.ts';
import { freePort, get, installCleanup, ROOT } from './lib/processes.ts';
import { checkoutWorktree, currentCommit, type Worktree } from './lib/worktree.ts';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '7' },
    baseline: { type: 'string', default: '3cc472d' },
    json: { type: 'boolean', default: false },
  },
});
const CLIENTS = Number(values.clients);
const ROUNDS = Number(values.rounds);
const TARGET_MS = 1000;
const log = (line: string) => {
  if (!values.json) process.stderr.write(`${line}\n`);
};
installCleanup();

const work = await mkdtemp(join(tmpdir(), 'gatehouse-bench-edge-start-'));
const upstream = await startUpstream();
let baseline: Worktree | undefined;
try {
  log(`preparing an edge gateway whose cache holds ${CLIENTS} clients…`);
  const fixture = await prepareEdgeFixture({
    work,
    dataDir: join(work, 'cp'),
    upstreamUrl: upstream.url,
    clients: CLIENTS,
    log,
  });
  await fixture.cp.stop({ keepData: true }); // unreachable from now on
  if (values.baseline !== 'none') baseline = checkoutWorktree(values.baseline);
  const warmCache = join(work, 'compile-cache');
  const headers = { authorization: `Bearer ${fixture.token}` };

  const gatewayArgs = (root: string, port: number) => [
    join(root, 'src/cli/main.ts'),
    'gateway',
    'run',
    '--config',
    fixture.dir,
    '--port',
    String(port),
    '--ops-port',
    '0',
    '--host',
    '127.0.0.1',
  ];
  const modes: { name: string; args(port: number): Promise<{ argv: string[]; env: NodeJS.ProcessEnv }> }[] = [
    {
      name: 'bare node',
      args: async (port) => ({
        argv: ['-e', `require('node:http').createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1')`],
        env: process.env,
      }),
    },
    {
      name: 'gatehouse (warm compile cache)',
      args: async (port) => ({ argv: gatewayArgs(ROOT, port), env: { ...process.env, NODE_COMPILE_CACHE: warmCache } }),
    },
    {
      name: 'gatehouse (empty compile cache)',
      args: async (port) => ({
        argv: gatewayArgs(ROOT, port),
        env: { ...process.env, NODE_COMPILE_CACHE: await mkdtemp(join(work, 'empty-cache-')) },
      }),
    },
  ];
  if (baseline) {
    const root = baseline.root;
    const env = { ...process.env };
    delete env.NODE_COMPILE_CACHE;
    modes.push({
      name: `previous (${baseline.commit})`,
      args: async (port) => ({ argv: gatewayArgs(root, port), env }),
    });
  }

  log('filling the compile cache (one untimed start)…');
  await firstOk(await modes[1]!.args(await freePort()), headers, 0);
  const samples = new Map<string, number[]>(modes.map((m) => [m.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of modes) {
      const port = await freePort();
      samples.get(mode.name)!.push(await firstOk(await mode.args(port), headers, port));
    }
    log(
      `  round ${round + 1}/${ROUNDS}: ${modes.map((m) => `${m.name} ${Math.round(samples.get(m.name)!.at(-1)!)} ms`).join(', ')}`,
    );
  }

  const report = {
    clients: fixture.clients,
    cacheBytes: fixture.cacheBytes,
    commit: currentCommit(),
    rounds: ROUNDS,
    modes: Object.fromEntries([...samples].map(([name, ms]) => [name, stats(ms)])),
  };
  await mkdir(join(ROOT, 'bench/out'), { recursive: true });
  const file = join('bench/out', `edge-start-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(join(ROOT, file), JSON.stringify({ ...report, samples: Object.fromEntries(samples) }, null, 2));
  if (values.json) console.log(JSON.stringify(report));
  else {
    console.log(
      `\nEdge cold start from cache (${report.clients} clients, cache ${(report.cacheBytes / 1e6).toFixed(1)} MB, control plane unreachable), ${ROUNDS} rounds, code ${report.commit}`,
    );
    console.log('process start → first 200 (ms)\n\n| | median | min | max |\n| --- | ---: | ---: | ---: |');
    for (const [name, s] of Object.entries(report.modes))
      console.log(`| ${name} | ${s.median} | ${s.min} | ${s.max} |`);
    const warm = report.modes['gatehouse (warm compile cache)']!.median;
    console.log(`\ntarget ≤ ${TARGET_MS} ms (warm): ${warm <= TARGET_MS ? 'met' : 'MISSED'}\nraw: ${file}`);
  }
} finally {
  baseline?.remove();
  await upstream.close();
  await rm(work, { recursive: true, force: true });
}

/** Spawns the process and polls `GET /orders/items` until it answers 200; resolves with the ms since the spawn. */
async function firstOk(
  command: { argv: string[]; env: NodeJS.ProcessEnv },
  headers: Record<string, string>,
  port: number,
): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, command.argv, {
    cwd: ROOT,
    env: command.env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    if (port === 0) port = Number(command.argv[command.argv.indexOf('--port') + 1]);
    for (;;) {
      if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before answering:\n${stderr}`);
      const answer = await get(`http://127.0.0.1:${port}/orders/items`, headers, 1000).catch(() => undefined);
      if (answer?.status === 200) return performance.now() - started;
      if (performance.now() - started > 30_000)
        throw new Error(`no 200 within 30 s (last: ${answer?.status ?? 'no answer'}):\n${stderr}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
    clearTimeout(kill);
  }
}

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  return { median: Math.round(s[Math.floor(s.length / 2)]!), min: Math.round(s[0]!), max: Math.round(s.at(-1)!) };
}
