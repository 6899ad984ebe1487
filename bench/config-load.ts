/**
 * Loading a config of 1,000,000 API clients (one key hash each, plus one collection and a role), as the gateway
 * does. Targets (issue #2): ≤ 5 s and ≤ 600 MB peak RSS.
 *
 * Generates the config in a temp dir, in one of two formats:
 *   ndjson (default)  a small gateway.json with `clientsFile: clients.ndjson`, one client per line;
 *   json              one gateway JSON file with all clients inline (for comparison: the whole file is one parse);
 * then, each in a fresh child process:
 *   1. startGateway() on ports 0 — time from process start until listening, peak RSS (the honest number);
 *   2. the same steps one at a time, to see which dominates.
 *
 * Usage: scripts/node bench/config-load.ts [--format ndjson|json] [--clients N] [--runs N] [--keep] [--json]
 */
import { once } from 'node:events';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { installCleanup, NODE, ROOT, runToCompletion } from './lib/processes.ts';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    format: { type: 'string', default: 'ndjson' },
  },
});
const FORMAT = values.format;
if (FORMAT !== 'ndjson' && FORMAT !== 'json') throw new Error('--format must be ndjson or json');
const CLIENTS = Number(values.clients);
const RUNS = Number(values.runs);
const TARGET_S = 5;
const TARGET_MB = 600;

/** Writes the config; returns the files written. */
async function generate(dir: string): Promise<string[]> {
  const head = {
    server: {
      listen: { host: '127.0.0.1', port: 8080 },
      ops: { host: '127.0.0.1', port: 9090 },
      log: { level: 'info' },
      watch: false,
    },
    tokenExchange: { issuer: 'https://gatehouse.bench.local', audience: 'bench-api', ttl: '5m', algorithm: 'EdDSA' },
    rateLimits: { key: { limit: 1000, window: '1m' } },
    collections: [
      {
        name: 'bench',
        basePath: '/api',
        upstream: 'http://127.0.0.1:9',
        project: 'bench',
        environment: 'PROD',
        endpoints: [{ method: 'GET', path: '/v1/items/{id}', permission: 'items:read' }],
      },
    ],
    roles: [{ name: 'bench-reader', permissions: ['items:read'] }],
  };
  const config = join(dir, 'gateway.json');
  if (FORMAT === 'ndjson') {
    const clients = join(dir, 'clients.ndjson');
    writeFileSync(config, `${JSON.stringify({ ...head, clientsFile: 'clients.ndjson' }, null, 2)}\n`);
    await writeClients(clients, '', '\n', '\n');
    return [config, clients];
  }
  const json = JSON.stringify(head);
  await writeClients(config, `${json.slice(0, -1)},"clients":[\n`, ',\n', '\n]}\n');
  return [config];
}

async function writeClients(file: string, prefix: string, separator: string, suffix: string): Promise<void> {
  const out = createWriteStream(file);
  const write = async (s: string) => {
    if (!out.write(s)) await once(out, 'drain');
  };
  await write(prefix);
  let chunk = '';
  for (let i = 0; i < CLIENTS; i++) {
    const client = {
      id: `client-${i}`,
      role: 'bench-reader',
      environments: ['PROD'],
      projects: ['bench'],
      keys: [{ hash: `sha256:${randomBytes(32).toString('hex')}` }],
    };
    chunk += `${i === 0 ? '' : separator}${JSON.stringify(client)}`;
    if (chunk.length > 1 << 20) {
      await write(chunk);
      chunk = '';
    }
  }
  await write(`${chunk}${suffix}`);
  out.end();
  await once(out, 'finish');
}

interface GatewayRun {
  modulesLoadedMs: number;
  listeningSinceProcessStartMs: number;
  startGatewayMs: number;
  gcMs: number;
  atListening: { rssMb: number; peakRssMb: number; heapUsedMb: number };
  afterGc?: { rssMb: number; heapUsedMb: number };
}
interface PhasesRun {
  keys: number;
  textMb: number;
  steps: { step: string; ms: number; gcMs: number; peakRssMb: number; rssMb: number; heapUsedMb: number }[];
  /** With a clients file: the passes' differences, i.e. where the real path's time goes. */
  breakdown?: { step: string; ms: number }[];
}

async function child<T>(mode: 'gateway' | 'phases', file: string): Promise<T & { wallMs: number }> {
  const t0 = performance.now();
  const out = await runToCompletion(
    `config-load ${mode}`,
    NODE,
    ['--expose-gc', 'bench/lib/config-load-child.ts', mode, file],
    { maxSeconds: 300 },
  );
  return { ...(JSON.parse(out.trim().split('\n').pop()!) as T), wallMs: performance.now() - t0 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  installCleanup();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-config-load-'));
  try {
    let t = performance.now();
    const files = await generate(dir);
    const file = files[0]!;
    const genMs = performance.now() - t;
    const sizeMb = files.reduce((a, f) => a + statSync(f).size, 0) / 1024 / 1024;
    console.log(
      `generated ${CLIENTS.toLocaleString('en')} clients → ${sizeMb.toFixed(0)} MB ${FORMAT === 'ndjson' ? 'NDJSON clients file' : 'JSON'} in ${(genMs / 1000).toFixed(1)} s (${files.join(', ')})`,
    );

    const gateways: (GatewayRun & { wallMs: number })[] = [];
    for (let i = 0; i < RUNS; i++) {
      const g = await child<GatewayRun>('gateway', file);
      gateways.push(g);
      console.log(
        `startGateway run ${i + 1}: listening ${(g.listeningSinceProcessStartMs / 1000).toFixed(2)} s after process start (modules ${(g.modulesLoadedMs / 1000).toFixed(2)} s + startGateway ${(g.startGatewayMs / 1000).toFixed(2)} s, of which GC ${(g.gcMs / 1000).toFixed(2)} s) · peak RSS ${g.atListening.peakRssMb.toFixed(0)} MB · after GC: RSS ${g.afterGc?.rssMb.toFixed(0) ?? '—'} MB, heap ${g.afterGc?.heapUsedMb.toFixed(0) ?? '—'} MB`,
      );
    }
    t = performance.now();
    const phases = await child<PhasesRun>('phases', file);
    console.log(`\nstep by step (one fresh process; peak RSS is cumulative):`);
    for (const s of phases.steps)
      console.log(
        `  ${s.step.padEnd(46)} ${(s.ms / 1000).toFixed(2).padStart(6)} s (GC ${(s.gcMs / 1000).toFixed(2).padStart(5)} s)   peak RSS ${s.peakRssMb.toFixed(0).padStart(5)} MB   heap ${s.heapUsedMb.toFixed(0).padStart(5)} MB`,
      );

    if (phases.breakdown) {
      console.log(
        `\nthe clients file's real path, split by the passes' difference (a CPU profile tells more: --cpu-prof on the child):`,
      );
      for (const b of phases.breakdown) console.log(`  ${b.step.padEnd(36)} ${(b.ms / 1000).toFixed(2).padStart(6)} s`);
    }

    const seconds = median(gateways.map((g) => g.listeningSinceProcessStartMs)) / 1000;
    const peak = median(gateways.map((g) => g.atListening.peakRssMb));
    const load = phases.breakdown ?? phases.steps.filter((s) => !s.step.startsWith('node start'));
    const dominant = [...load].sort((a, b) => b.ms - a.ms)[0]!;
    const verdict = (ok: boolean, over: string) => (ok ? 'MET' : `MISSED by ${over}`);
    console.log(
      `\nmedian of ${RUNS}: ${seconds.toFixed(2)} s to listening — target ≤ ${TARGET_S} s: ${verdict(seconds <= TARGET_S, `${(seconds - TARGET_S).toFixed(2)} s (${((seconds / TARGET_S - 1) * 100).toFixed(0)}%)`)}`,
    );
    console.log(
      `median of ${RUNS}: ${peak.toFixed(0)} MB peak RSS — target ≤ ${TARGET_MB} MB: ${verdict(peak <= TARGET_MB, `${(peak - TARGET_MB).toFixed(0)} MB (${((peak / TARGET_MB - 1) * 100).toFixed(0)}%)`)}`,
    );
    console.log(
      `slowest step: ${dominant.step} (${(dominant.ms / 1000).toFixed(2)} s of ${(load.reduce((a, s) => a + s.ms, 0) / 1000).toFixed(2)} s)`,
    );

    const report = {
      date: new Date().toISOString(),
      machine: {
        nproc: cpus().length,
        cpu: /model name\s*:\s*(.*)/.exec(spawnSync('cat', ['/proc/cpuinfo'], { encoding: 'utf8' }).stdout)?.[1],
        node: spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim(),
      },
      clients: CLIENTS,
      format: FORMAT,
      fileMb: sizeMb,
      generateMs: genMs,
      targets: { seconds: TARGET_S, peakRssMb: TARGET_MB },
      result: {
        secondsToListening: seconds,
        peakRssMb: peak,
        metTime: seconds <= TARGET_S,
        metRss: peak <= TARGET_MB,
        slowestStep: dominant.step,
      },
      gatewayRuns: gateways,
      phases,
    };
    mkdirSync(join(ROOT, 'bench/out'), { recursive: true });
    const out = join(ROOT, 'bench/out', `config-load-${FORMAT}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    if (values.json) console.log(JSON.stringify(report, null, 2));
    console.log(`\nwrote ${out}`);
  } finally {
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`config-load failed: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  },
);
