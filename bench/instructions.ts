/**
 * Instructions per proxied request: the bare proxy and Gatehouse (full chain, access log on) each run under
 * valgrind's callgrind, which counts the user-space instructions the process executes. Unlike req/s on this VM
 * (rounds of the same proxy differ by ±30%), the count repeats within a percent or two whatever else the machine
 * is doing, so it shows what a change to the request path costs. It does not see kernel time (the system calls
 * are the same for both: one read and one writev on the client socket, one write and one read upstream), cache
 * misses or GC pauses on other threads; the saturation benchmark (proxy.ts) remains the measure of the target.
 *
 * Method: each proxy starts under callgrind with instrumentation off; `--warmup` requests let V8 optimise the
 * request path; then instrumentation is switched on (callgrind_control -i on), exactly `--requests` requests are
 * sent (16 at a time, keep-alive), instrumentation is switched off and the counts dumped. Only the main thread is
 * counted (V8's compiler threads still optimise code now and then). The upstream runs natively.
 *
 * Usage: scripts/node bench/instructions.ts [--requests 4000] [--warmup 30000] [--top 30] [--same-headers]
 *   --top N          also print the N functions with the largest difference (JIT code named through --perf-basic-prof)
 *   env BENCH_GH_RATE_LIMIT_STORE=redis: Gatehouse with its rate limits in the shared store (a local Redis)
 *   --against V      measure Gatehouse with BENCH_GH_VARIANT=V in place of the bare proxy (diagnosis: what one part of
 *                    the chain costs, e.g. BENCH_GH_VARIANT=caps-quotas with --against caps: what quotas add)
 *   --same-headers   also measure the bare proxy sending Gatehouse's header bytes (`bare-proxy.ts --same-headers`,
 *                    diagnosis: how much of the gap is the headers themselves and how much the policies)
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { LOAD_PATH, writeGatehouseConfig } from './lib/gatehouse-config.ts';
import {
  freePort,
  hasCommand,
  installCleanup,
  NODE,
  ROOT,
  spawnBounded,
  stopAll,
  waitForHttp,
} from './lib/processes.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '4000' },
    warmup: { type: 'string', default: '30000' },
    top: { type: 'string', default: '0' },
    'same-headers': { type: 'boolean', default: false },
    against: { type: 'string' },
  },
});
const REQUESTS = Number(values.requests);
const WARMUP = Number(values.warmup);
const TOP = Number(values.top);
for (const [name, value] of [
  ['--requests', REQUESTS],
  ['--warmup', WARMUP],
  ['--top', TOP],
] as const) {
  if (!Number.isInteger(value) || value < 0 || (name === '--requests' && value === 0))
    throw new Error(
      `${name} must be a whole number${name === '--requests' ? ' above 0' : ''}, got ${JSON.stringify(values[name.slice(2) as 'requests'])}`,
    );
}
for (const tool of ['valgrind', 'callgrind_control', 'callgrind_annotate']) {
  if (!hasCommand(tool))
    throw new Error(`${tool} not found: install Debian's valgrind package (apt-get install valgrind)`);
}

installCleanup();
const nodeBinary = spawnSync(NODE, ['-p', 'process.execPath'], { encoding: 'utf8' }).stdout.trim();
const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-instr-'));
const outDir = join(ROOT, 'bench', 'out');
mkdirSync(outDir, { recursive: true });

const upstreamPort = await freePort();
const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
const upstream = spawnBounded('upstream', NODE, ['bench/upstream.ts', '--port', String(upstreamPort)], {
  maxSeconds: 3600,
});
await waitForHttp(upstream, `${upstreamUrl}/__bench/last`, {});
const gh = writeGatehouseConfig(tmp, upstreamUrl);
const against = values.against;
let ghAgainst: ReturnType<typeof writeGatehouseConfig> | undefined;
if (against !== undefined) {
  mkdirSync(join(tmp, 'against'));
  ghAgainst = writeGatehouseConfig(join(tmp, 'against'), upstreamUrl, 'info', against);
}

interface Measured {
  name: string;
  instructionsPerRequest: number;
  dir: string;
}

async function measure(name: 'bare' | 'bare-same-headers' | 'gatehouse'): Promise<Measured> {
  const port = await freePort();
  const dir = join(tmp, name);
  mkdirSync(dir);
  const config = name === 'bare' && ghAgainst !== undefined ? ghAgainst : name === 'gatehouse' ? gh : undefined;
  const proxyArgs =
    config === undefined
      ? [
          'bench/bare-proxy.ts',
          '--port',
          String(port),
          '--upstream',
          upstreamUrl,
          ...(name === 'bare-same-headers' ? ['--same-headers'] : []),
        ]
      : [
          'src/cli/main.ts',
          'gateway',
          'run',
          '--config',
          config.file,
          '--port',
          String(port),
          '--ops-port',
          String(await freePort()),
          '--host',
          '127.0.0.1',
        ];
  const child = spawnBounded(
    name,
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      '--separate-threads=yes',
      '--smc-check=all-non-file',
      '-q',
      `--callgrind-out-file=${join(dir, 'callgrind.out')}`,
      nodeBinary,
      '--perf-basic-prof',
      ...proxyArgs,
    ],
    { maxSeconds: 1800, stdout: 'ignore' },
  );
  const url = `http://127.0.0.1:${port}${LOAD_PATH}`;
  const headers = { authorization: `Bearer ${(config ?? gh).key}` };
  await waitForHttp(child, url, headers, 200, 300_000);
  const pid = child.programPid();
  if (pid === undefined) throw new Error(`${name}: no pid`);
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 16 });
  try {
    process.stdout.write(`${name}: warming up (${WARMUP} requests under valgrind)… `);
    await load(pool, WARMUP, headers);
    control(pid, '-i', 'on');
    const started = Date.now();
    await load(pool, REQUESTS, headers);
    control(pid, '-i', 'off');
    control(pid, '-d');
    process.stdout.write(`measured ${REQUESTS} requests in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    copyPerfMap(pid, dir);
  } finally {
    await pool.close();
    await child.stop();
  }
  return { name, instructionsPerRequest: mainThreadInstructions(dir) / REQUESTS, dir };
}

/** Sends `n` GET requests, 16 at a time; every answer must be a 200 with the upstream's body. */
async function load(pool: Pool, n: number, headers: Record<string, string>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const { statusCode, body } = await pool.request({ path: LOAD_PATH, method: 'GET', headers });
      await body.text();
      if (statusCode !== 200) throw new Error(`unexpected status ${statusCode}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

function control(pid: number, ...args: string[]): void {
  const r = spawnSync('callgrind_control', [...args, String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`callgrind_control ${args.join(' ')} failed: ${r.stderr}`);
}

function copyPerfMap(pid: number, dir: string): void {
  const map = `/tmp/perf-${pid}.map`;
  if (existsSync(map)) {
    writeFileSync(join(dir, 'perf.map'), readFileSync(map));
    rmSync(map, { force: true });
  }
}

/** The dump made by `callgrind_control -d` for thread 1 (the main thread): `callgrind.out.1-01`. */
function dumpFile(dir: string): string {
  const files = readdirSync(dir)
    .filter((f) => /^callgrind\.out\.\d+-01$/.test(f))
    .sort();
  if (files.length === 0) throw new Error(`no main-thread dump in ${dir}`);
  return join(dir, files[files.length - 1]!);
}

function mainThreadInstructions(dir: string): number {
  const text = readFileSync(dumpFile(dir), 'utf8');
  // `totals:` at the end of the dump (its `summary:` header line counts from the last reset, 0 here).
  const m = /^totals: (\d+)/m.exec(text);
  if (!m) throw new Error(`no totals in ${dumpFile(dir)}`);
  return Number(m[1]);
}

/** Self instructions per function (JIT code named from the perf map), per request. */
function perFunction(dir: string): Map<string, number> {
  const ranges: { start: number; end: number; name: string; order: number }[] = [];
  const map = join(dir, 'perf.map');
  if (existsSync(map)) {
    readFileSync(map, 'utf8')
      .split('\n')
      .forEach((line, order) => {
        const [start, size, ...name] = line.split(' ');
        if (start && size)
          ranges.push({
            start: parseInt(start, 16),
            end: parseInt(start, 16) + parseInt(size, 16),
            name: name.join(' '),
            order,
          });
      });
  }
  const out = spawnSync('callgrind_annotate', ['--inclusive=no', '--threshold=100', dumpFile(dir)], {
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  }).stdout;
  const totals = new Map<string, number>();
  for (const line of out.split('\n')) {
    const m = /^\s*([\d,]+) \([ \d.]+%\)\s+(.*)$/.exec(line);
    if (!m || m[2]!.includes('PROGRAM TOTALS')) continue;
    let name = m[2]!.replace(/\s*\[.*\]$/, '').replace('???:', '');
    const address = /^0x([0-9a-f]+)$/.exec(name);
    if (address) {
      const at = parseInt(address[1]!, 16);
      // Code addresses are reused after code is collected: the latest entry that covers the address wins.
      let best: (typeof ranges)[number] | undefined;
      for (const r of ranges) if (r.start <= at && at < r.end && (best === undefined || r.order > best.order)) best = r;
      name = best ? best.name.replace(/^JS:[*+^~]?'?/, 'JS ') : 'JIT code';
    } else if (name.includes('compiler::')) name = '(V8 optimising compiler)';
    totals.set(name, (totals.get(name) ?? 0) + Number(m[1]!.replaceAll(',', '')) / REQUESTS);
  }
  return totals;
}

let bare: Measured;
let gatehouse: Measured;
let sameHeaders: Measured | undefined;
try {
  bare = await measure('bare');
  gatehouse = await measure('gatehouse');
  if (values['same-headers']) sameHeaders = await measure('bare-same-headers');
} finally {
  await stopAll();
}
const ratio = bare.instructionsPerRequest / gatehouse.instructionsPerRequest;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
console.log('\nUser-space instructions per proxied request (main thread, callgrind):');
console.log(`  bare proxy   ${fmt(bare.instructionsPerRequest).padStart(9)}`);
console.log(
  `  gatehouse    ${fmt(gatehouse.instructionsPerRequest).padStart(9)}  (+${fmt(gatehouse.instructionsPerRequest - bare.instructionsPerRequest)})`,
);
console.log(
  `  bare ÷ gatehouse = ${ratio.toFixed(3)} (the req/s ratio a CPU-bound proxy would reach if instructions were all it spent)`,
);
if (sameHeaders) {
  const s = sameHeaders.instructionsPerRequest;
  console.log(
    `  bare sending Gatehouse's headers ${fmt(s)}: the headers cost ${fmt(s - bare.instructionsPerRequest)}, the policies ${fmt(gatehouse.instructionsPerRequest - s)}`,
  );
  console.log(
    `  bare ÷ that = ${(bare.instructionsPerRequest / s).toFixed(3)} (the ceiling for any gateway sending those headers); that ÷ gatehouse = ${(s / gatehouse.instructionsPerRequest).toFixed(3)}`,
  );
}

let top: { name: string; bare: number; gatehouse: number }[] = [];
if (TOP > 0) {
  const a = perFunction(bare.dir);
  const b = perFunction(gatehouse.dir);
  top = [...new Set([...a.keys(), ...b.keys()])]
    .map((name) => ({ name, bare: a.get(name) ?? 0, gatehouse: b.get(name) ?? 0 }))
    .sort((x, y) => Math.abs(y.gatehouse - y.bare) - Math.abs(x.gatehouse - x.bare))
    .slice(0, TOP);
  console.log(`\nLargest differences per request (self instructions; + = Gatehouse spends more):`);
  for (const t of top)
    console.log(
      `  ${(t.gatehouse - t.bare >= 0 ? '+' : '') + fmt(t.gatehouse - t.bare)}`.padEnd(12) +
        `${fmt(t.bare).padStart(8)} ${fmt(t.gatehouse).padStart(8)}  ${t.name.slice(0, 110)}`,
    );
}

const file = join(outDir, `instructions-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(
  file,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      requests: REQUESTS,
      warmup: WARMUP,
      node: spawnSync(NODE, ['-v'], { encoding: 'utf8' }).stdout.trim(),
      commit: spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim(),
      instructionsPerRequest: {
        bare: bare.instructionsPerRequest,
        gatehouse: gatehouse.instructionsPerRequest,
        bareSameHeaders: sameHeaders?.instructionsPerRequest,
      },
      ratio,
      top,
    },
    null,
    2,
  ),
);
console.log(`\nwrote ${file}`);
await upstream.stop();
if (process.env.BENCH_KEEP) console.log(`kept ${tmp}`);
else rmSync(tmp, { recursive: true, force: true });
