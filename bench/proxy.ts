/**
 * Proxy benchmark (issue #2, "Performance"): the bare Node http + undici proxy (the runtime's ceiling),
 * @fastify/http-proxy, and Gatehouse with the full chain (key auth, role check, rate limits that never refuse,
 * EdDSA token exchange, access log at level info written to a file) in front of the same upstream, one proxy
 * process at a time, interleaved over rounds.
 *
 *   - the proxy is pinned to core 0; the load generator and the upstream to core 1 (taskset);
 *   - saturation: wrk (closed loop, -t1) or autocannon when wrk is not installed → req/s, p50, p99;
 *   - fixed rate: one fifth of the bare proxy's median saturation req/s, open loop (bench/lib/paced-load.ts,
 *     or autocannon's overallRate with --rate-tool autocannon|both) → p50, p99;
 *   - rounds alternate the order of the proxies (bare, fastify, gatehouse; then the reverse) so drift within a
 *     round cancels out over pairs of rounds;
 *   - reports medians per proxy, the median of per-round ratios gatehouse/bare and fastify/bare, and the median
 *     of per-round fixed-rate p99 deltas (gatehouse − bare); writes JSON to bench/out/.
 *
 * Usage: npm run bench [-- options]   (scripts/node bench/proxy.ts [options])
 *   --quick                 smoke test: 2 rounds, 1 s warm-up, 3 s runs
 *   --rounds N              rounds of interleaved runs (env BENCH_ROUNDS, default 3)
 *   --duration S            seconds per measured saturation run (BENCH_DURATION, default 10)
 *   --warmup S              seconds of discarded load after each proxy starts (BENCH_WARMUP, default 3)
 *   --rate-duration S       seconds per fixed-rate run (BENCH_RATE_DURATION, default = --duration)
 *   --connections N         load-generator connections at saturation (BENCH_CONNECTIONS, default 64)
 *   --rate N                fixed rate in req/s instead of bare/5
 *   --rate-tool T           paced (default) | autocannon | both
 *   --loadgen T             wrk | autocannon (default: wrk when installed)
 *   --only a,b              subset of bare,fastify,gatehouse; bare-headers (diagnosis) is the bare proxy sending
 *                           Gatehouse's header bytes (`bare-proxy.ts --same-headers`), only when named here
 *   --skip-saturation / --skip-fixed-rate
 *   --profile               afterwards, run the bare proxy and Gatehouse once each under saturation with
 *                           --cpu-prof into bench/out/, summarise Gatehouse's profile and the per-request difference
 *   --wait-quiet S          before each run, wait up to S s for the machine to be idle (BENCH_WAIT_QUIET,
 *                           default 60, quick 5); a run during which other processes took > 10% of the proxy's
 *                           core is discarded and repeated once
 *   --gatehouse-log-level L diagnosis only: e.g. "warn" to see what the access log costs (default info)
 *   env BENCH_GH_RATE_LIMIT_STORE=redis  diagnosis: the same limits in the shared store on BENCH_REDIS_URL
 *                           (default redis://127.0.0.1:6379)
 *   env BENCH_GH_VARIANT    diagnosis only: "no-ratelimit" (no rate limits) or "public" (authRequired: false, so no
 *                           key, role, rate limit or token): what the chain's parts cost
 */
import {
  closeSync,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatComparison, formatSummary, type ProfileSummary, summarize } from './cpuprofile-summary.ts';
import { LOAD_PATH, writeGatehouseConfig } from './lib/gatehouse-config.ts';
import {
  fixedRate,
  saturate,
  wrkVersion,
  type LoadResult,
  type LoadTarget,
  type RateTool,
  type SaturationTool,
} from './lib/load.ts';
import {
  type Bounded,
  coreBusy,
  coreTimes,
  cpuSeconds,
  freePort,
  get,
  HAS_TASKSET,
  installCleanup,
  liveChildren,
  NODE,
  ROOT,
  sleep,
  spawnBounded,
  stopAll,
  waitForHttp,
} from './lib/processes.ts';

type ProxyName = 'bare' | 'fastify' | 'gatehouse' | 'bare-headers';
const ALL: ProxyName[] = ['bare', 'fastify', 'gatehouse'];
/** `bare-headers` (diagnosis, only with --only): the bare proxy sending Gatehouse's header bytes (`bare-proxy.ts --same-headers`). */
const KNOWN: ProxyName[] = [...ALL, 'bare-headers'];

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'rate-duration': { type: 'string' },
    connections: { type: 'string' },
    rate: { type: 'string' },
    'rate-tool': { type: 'string', default: 'paced' },
    loadgen: { type: 'string' },
    only: { type: 'string' },
    'skip-saturation': { type: 'boolean', default: false },
    'skip-fixed-rate': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'gatehouse-log-level': { type: 'string', default: 'info' },
    'wait-quiet': { type: 'string' },
  },
});

const num = (flag: string | undefined, env: string | undefined, quick: number, full: number): number => {
  const raw = flag ?? env;
  const n = raw === undefined ? (values.quick ? quick : full) : Number(raw);
  if (!(n > 0)) throw new Error(`invalid number ${raw}`);
  return n;
};
const rounds = num(values.rounds, process.env.BENCH_ROUNDS, 2, 3);
const duration = num(values.duration, process.env.BENCH_DURATION, 3, 10);
const warmup = num(values.warmup, process.env.BENCH_WARMUP, 1, 3);
const rateDuration = num(values['rate-duration'], process.env.BENCH_RATE_DURATION, duration, duration);
const connections = num(values.connections, process.env.BENCH_CONNECTIONS, 64, 64);
const waitQuietS = num(values['wait-quiet'], process.env.BENCH_WAIT_QUIET, 5, 60);
const rateTools: RateTool[] =
  values['rate-tool'] === 'both' ? ['paced', 'autocannon'] : [values['rate-tool'] as RateTool];
if (!rateTools.every((t) => t === 'paced' || t === 'autocannon'))
  throw new Error('--rate-tool must be paced, autocannon or both');
const wrk = wrkVersion();
const loadgen: SaturationTool = (values.loadgen as SaturationTool | undefined) ?? (wrk ? 'wrk' : 'autocannon');
if (loadgen === 'wrk' && !wrk) throw new Error('--loadgen wrk: wrk is not installed (apt-get install -y wrk)');
const proxies = values.only ? (values.only.split(',') as ProxyName[]) : ALL;
if (!proxies.every((p) => KNOWN.includes(p))) throw new Error(`--only takes a subset of ${KNOWN.join(',')}`);

const pin = HAS_TASKSET && availableParallelism() >= 2;
const PROXY_CORE = pin ? 0 : undefined;
const LOAD_CORE = pin ? 1 : undefined;
const OUT = join(ROOT, 'bench/out');

interface Run {
  /** `direct`: the load generator straight to the upstream, no proxy (the fixed-rate noise floor). */
  proxy: ProxyName | 'direct';
  round: number;
  kind: 'saturation' | 'fixed-rate';
  result: LoadResult;
  /** Share of one core the proxy process used during the measured run. */
  proxyCpu: number | undefined;
  /** Busy share of the proxy's core not used by the proxy: other processes on the machine (noise). */
  foreignOnProxyCore: number | undefined;
  /** Busy share of the load core not used by the upstream and the load generator (noise). */
  foreignOnLoadCore: number | undefined;
  /** Saturation: 2xx answers per second of proxy CPU time (less sensitive to other processes than req/s). */
  rpsPerProxyCpu: number | undefined;
  /** Busy share per core during the measured run (all processes on the machine). */
  cores: Record<string, number>;
  /** Gatehouse: access-log lines written during the run. */
  accessLogLines?: number;
  /** Other processes were busy on the proxy's core: this run was repeated and is left out of the summary. */
  discarded?: boolean;
}

const NOISY = 0.1;
const RETRIES = 3;
let upstream: Bounded;

/** Waits (up to `maxS`) until no core is more than 10% busy over a 1 s sample; our idle upstream is ~0%. */
async function waitQuiet(maxS: number): Promise<number> {
  const start = performance.now();
  for (;;) {
    const before = coreTimes();
    await sleep(1000);
    const busy = Math.max(0, ...Object.values(coreBusy(before, coreTimes())));
    const waited = (performance.now() - start) / 1000;
    if (busy < 0.1 || waited >= maxS) {
      if (waited > 1.5)
        console.log(
          `  (waited ${waited.toFixed(0)} s for other processes to go idle${busy >= 0.1 ? `; still ${(busy * 100).toFixed(0)}% busy, going ahead` : ''})`,
        );
      return busy;
    }
  }
}

async function main(): Promise<void> {
  installCleanup();
  mkdirSync(OUT, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
  // The orchestrator itself mostly waits; keep it off the proxy's core anyway.
  if (pin) spawnSync('taskset', ['-a', '-p', '-c', String(LOAD_CORE), String(process.pid)], { stdio: 'ignore' });
  const watchdog = setTimeout(
    () => {
      console.error('bench: watchdog expired, stopping');
      void stopAll().finally(() => process.exit(1));
    },
    estimateSeconds() * 2000 + 300_000,
  );

  const started = new Date();
  const host = machine();
  console.log(
    `bench: ${proxies.join(', ')} · ${rounds} round(s) · warm-up ${warmup}s · saturation ${duration}s · fixed rate ${rateDuration}s · ${connections} connections`,
  );
  console.log(
    `bench: saturation load generator ${loadgen === 'wrk' ? wrk : wrk ? 'autocannon (--loadgen autocannon)' : 'autocannon (wrk not installed)'}; fixed rate: ${rateTools.join(' + ')}; pinning ${pin ? `proxy → core ${PROXY_CORE}, load generator + upstream → core ${LOAD_CORE}` : 'OFF (taskset missing or < 2 cores)'}`,
  );
  console.log(
    `bench: estimated ${Math.round(estimateSeconds())} s (plus waits for an idle machine) · source ${host.source.commit}${host.source.uncommittedSrc.length ? ` + ${host.source.uncommittedSrc.length} uncommitted file(s) in src/` : ''}`,
  );

  const upstreamPort = await freePort();
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
  upstream = spawnBounded('upstream', NODE, ['bench/upstream.ts', '--port', String(upstreamPort)], {
    core: LOAD_CORE,
    maxSeconds: estimateSeconds() * 2 + 600,
  });
  await waitForHttp(upstream, `${upstreamUrl}/__bench/last`, {});
  const expectedBody = (await get(`${upstreamUrl}${LOAD_PATH}`)).body;
  const gh = writeGatehouseConfig(tmp, upstreamUrl, values['gatehouse-log-level']);
  if (values['gatehouse-log-level'] !== 'info')
    console.log(
      `bench: gatehouse log level ${values['gatehouse-log-level']} (NOT the configuration the targets are defined for: no access log)`,
    );
  const headers = { Authorization: `Bearer ${gh.key}` };

  const runs: Run[] = [];
  const startProxy = async (name: ProxyName, tag: string, extraNodeArgs: string[] = []) => {
    const port = await freePort();
    const maxSeconds = warmup + Math.max(duration, rateDuration) * 2 + 120;
    let child: Bounded;
    let logFile: string | undefined;
    if (name === 'gatehouse') {
      const opsPort = await freePort();
      logFile = join(tmp, `gatehouse-${tag}.log`);
      const fd = openSync(logFile, 'w');
      child = spawnBounded(
        'gatehouse',
        NODE,
        [
          ...extraNodeArgs,
          'src/cli/main.ts',
          'gateway',
          'run',
          '--config',
          gh.file,
          '--port',
          String(port),
          '--ops-port',
          String(opsPort),
          '--host',
          '127.0.0.1',
        ],
        { core: PROXY_CORE, maxSeconds, stdout: fd },
      );
      closeSync(fd);
    } else {
      const script = name === 'bare-headers' ? ['bench/bare-proxy.ts', '--same-headers'] : [`bench/${name}-proxy.ts`];
      child = spawnBounded(
        name,
        NODE,
        [...extraNodeArgs, ...script, '--port', String(port), '--upstream', upstreamUrl],
        { core: PROXY_CORE, maxSeconds },
      );
    }
    const url = `http://127.0.0.1:${port}${LOAD_PATH}`;
    const answer = await waitForHttp(child, url, headers);
    if (answer.body !== expectedBody) throw new Error(`${name}: unexpected body ${JSON.stringify(answer.body)}`);
    if (name === 'gatehouse' && (process.env.BENCH_GH_VARIANT ?? 'full') === 'full')
      await checkGatehouseChain(answer.headers, upstreamUrl, gh.key);
    const target: LoadTarget = { url, headers, connections, core: LOAD_CORE };
    return { child, target, logFile };
  };

  const measure = async (
    name: Run['proxy'],
    round: number,
    kind: Run['kind'],
    child: Bounded | undefined,
    logFile: string | undefined,
    load: () => Promise<LoadResult>,
  ) => {
    const noisy = (r: Run) => (r.foreignOnProxyCore ?? 0) > NOISY || (r.foreignOnLoadCore ?? 0) > NOISY;
    let run = await measureOnce(name, round, kind, child, logFile, load);
    for (let attempt = 1; attempt <= RETRIES && noisy(run); attempt++) {
      run.discarded = true;
      console.log(`  (other processes were busy: discarded, repeating ${attempt}/${RETRIES})`);
      run = await measureOnce(name, round, kind, child, logFile, load);
    }
    return run;
  };
  const measureOnce = async (
    name: Run['proxy'],
    round: number,
    kind: Run['kind'],
    child: Bounded | undefined,
    logFile: string | undefined,
    load: () => Promise<LoadResult>,
  ) => {
    await waitQuiet(waitQuietS);
    const pid = child?.programPid();
    const lines0 = logFile ? await countLines(logFile) : 0;
    const cpu0 = cpuSeconds(pid);
    const upstreamPid = upstream.programPid();
    const upstreamCpu0 = cpuSeconds(upstreamPid);
    const cores0 = coreTimes();
    const t0 = performance.now();
    // The load generator is a fresh child: sample its CPU while it runs (the last sample is ≤ 250 ms short).
    const loadgenCpu = new Map<Bounded, number>();
    const sampler = setInterval(() => {
      for (const c of liveChildren())
        if (c !== upstream && c !== child) loadgenCpu.set(c, cpuSeconds(c.programPid()) ?? loadgenCpu.get(c) ?? 0);
    }, 250);
    let result: LoadResult;
    try {
      result = await load();
    } finally {
      clearInterval(sampler);
    }
    const wall = (performance.now() - t0) / 1000;
    const cpu1 = cpuSeconds(pid);
    const upstreamCpu = (cpuSeconds(upstreamPid) ?? 0) - (upstreamCpu0 ?? 0);
    const cores = coreBusy(cores0, coreTimes());
    const proxyCpu = cpu0 !== undefined && cpu1 !== undefined ? (cpu1 - cpu0) / wall : undefined;
    const proxyCore = PROXY_CORE === undefined ? undefined : cores[`cpu${PROXY_CORE}`];
    const foreign = proxyCore === undefined || proxyCpu === undefined ? undefined : Math.max(0, proxyCore - proxyCpu);
    const loadCore = LOAD_CORE === undefined ? undefined : cores[`cpu${LOAD_CORE}`];
    const ours = (upstreamCpu + [...loadgenCpu.values()].reduce((a, b) => a + b, 0)) / wall;
    const foreignLoad = loadCore === undefined ? undefined : Math.max(0, loadCore - ours);
    const rpsPerProxyCpu = kind === 'saturation' && proxyCpu ? result.rps / proxyCpu : undefined;
    const run: Run = {
      proxy: name,
      round,
      kind,
      result,
      proxyCpu,
      foreignOnProxyCore: foreign,
      foreignOnLoadCore: foreignLoad,
      rpsPerProxyCpu,
      cores,
    };
    if (logFile) run.accessLogLines = (await countLines(logFile)) - lines0;
    if (result.non2xx > 0 || result.errors > 0)
      console.warn(`  ! ${name}: ${result.non2xx} non-2xx answers, ${result.errors} socket errors`);
    const worst = Math.max(foreign ?? 0, foreignLoad ?? 0);
    if (worst > 0.05 && worst <= NOISY)
      console.warn(
        `  ! ${name}: other processes used up to ${(worst * 100).toFixed(0)}% of a core during this run (noise)`,
      );
    runs.push(run);
    console.log(`  ${formatRun(run)}`);
    return run;
  };

  const stopProxy = async (child: Bounded, logFile: string | undefined) => {
    await child.stop(10_000);
    if (logFile) rmSync(logFile, { force: true });
    await sleep(500);
  };

  // Phase 1: saturation, interleaved; odd rounds run the proxies in order, even rounds in reverse (ABBA), so a
  // machine that drifts slower or faster within a round does not always favour the proxy that runs first.
  if (!values['skip-saturation']) {
    for (let round = 1; round <= rounds; round++) {
      console.log(`saturation, round ${round}/${rounds}`);
      for (const name of roundOrder(proxies, round)) {
        const { child, target, logFile } = await startProxy(name, `sat-${round}`);
        await saturate(loadgen, target, warmup, tmp);
        await measure(name, round, 'saturation', child, logFile, () => saturate(loadgen, target, duration, tmp));
        await stopProxy(child, logFile);
      }
    }
  }

  // Phase 2: fixed rate at a fifth of the bare proxy's median maximum.
  const bareMax = median(
    runs.filter((r) => r.proxy === 'bare' && r.kind === 'saturation' && !r.discarded).map((r) => r.result.rps),
  );
  const rate = values.rate ? Number(values.rate) : Number.isFinite(bareMax) ? Math.round(bareMax / 5) : undefined;
  if (!values['skip-fixed-rate']) {
    if (rate === undefined) throw new Error('fixed rate: no bare saturation result to derive it from; pass --rate N');
    for (const tool of rateTools) {
      for (let round = 1; round <= rounds; round++) {
        console.log(`fixed rate ${rate} req/s (${tool}), round ${round}/${rounds}`);
        // The floor: the same generator straight to the upstream (which shares the load core with it).
        const direct: LoadTarget = { url: `${upstreamUrl}${LOAD_PATH}`, headers, connections, core: LOAD_CORE };
        await measure('direct', round, 'fixed-rate', undefined, undefined, () =>
          fixedRate(tool, direct, rate, rateDuration),
        );
        for (const name of roundOrder(proxies, round)) {
          const { child, target, logFile } = await startProxy(name, `rate-${round}`);
          await saturate(loadgen, target, warmup, tmp);
          await sleep(1000);
          await measure(name, round, 'fixed-rate', child, logFile, () => fixedRate(tool, target, rate, rateDuration));
          await stopProxy(child, logFile);
        }
      }
    }
  }

  // Optional CPU profiles at saturation: Gatehouse, and the bare proxy to compare per request.
  let profile: { file: string; summary: string; comparison: string | undefined; rps: number } | undefined;
  if (values.profile) {
    const dir = join(OUT, `profile-${stamp(started)}`);
    const profiled: Partial<
      Record<ProxyName, { file: string; summary: ProfileSummary; requests: number; rps: number }>
    > = {};
    for (const name of ['bare', 'gatehouse'] as const) {
      const into = join(dir, name);
      mkdirSync(into, { recursive: true });
      console.log(`profiling ${name} (--cpu-prof) at saturation for ${duration} s → ${into}`);
      const spawned = performance.now();
      const { child, target, logFile } = await startProxy(name, 'profile', ['--cpu-prof', '--cpu-prof-dir', into]);
      await saturate(loadgen, target, warmup, tmp);
      // Start-up and warm-up are left out of the summary (the profile starts a little after the spawn).
      const skipMs = performance.now() - spawned;
      const result = await saturate(loadgen, target, duration, tmp);
      await child.stop(20_000);
      if (logFile) rmSync(logFile, { force: true });
      const files = readdirSync(into).filter((f) => f.endsWith('.cpuprofile'));
      if (files.length === 0) {
        console.warn(
          `  ! no .cpuprofile written (${name} exit: ${JSON.stringify(await child.exited)})\n${child.tail()}`,
        );
        continue;
      }
      const file = join(into, files[0]!);
      profiled[name] = {
        file,
        summary: summarize(JSON.parse(readFileSync(file, 'utf8')), 25, skipMs),
        requests: result.requests,
        rps: result.rps,
      };
      console.log(`  req/s under the profiler: ${result.rps.toFixed(0)} (not comparable with the runs above)`);
    }
    const g = profiled.gatehouse;
    const b = profiled.bare;
    if (g) {
      const comparison = b
        ? formatComparison('bare', b.summary, b.requests, 'gatehouse', g.summary, g.requests)
        : undefined;
      profile = { file: g.file, summary: formatSummary(g.summary), comparison, rps: g.rps };
      console.log(`\nGatehouse profile:\n${profile.summary}`);
      if (comparison) console.log(`\nGatehouse vs bare proxy, per request:\n${comparison}`);
    }
  }

  await upstream.stop();
  rmSync(tmp, { recursive: true, force: true });
  clearTimeout(watchdog);

  const summary = summarise(runs, rate);
  console.log(`\n${formatTable(summary)}`);
  const report = {
    date: started.toISOString(),
    machine: host,
    loadGenerator: {
      saturation:
        loadgen === 'wrk' ? wrk : wrk ? 'autocannon 9 (--loadgen autocannon)' : 'autocannon 9 (wrk not installed)',
      fixedRate: rateTools,
      connections,
      threads: loadgen === 'wrk' ? 1 : undefined,
    },
    pinning: pin ? { proxy: PROXY_CORE, loadGeneratorAndUpstream: LOAD_CORE } : null,
    options: { rounds, warmupS: warmup, durationS: duration, rateDurationS: rateDuration, quick: values.quick },
    gatehouse: {
      chain:
        'canonical path → route → ip-allow → authenticate (Bearer key) → authorize → rate limit (key+client+org) → token exchange (EdDSA) → proxy',
      logLevel: values['gatehouse-log-level'],
      accessLog:
        values['gatehouse-log-level'] === 'info'
          ? 'on (level info), one line per request to a file: cost included'
          : 'off',
    },
    summary,
    runs,
    profile: profile ? { file: profile.file, rpsUnderProfiler: profile.rps } : undefined,
  };
  const out = join(OUT, `proxy-${stamp(started)}.json`);
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  if (profile)
    writeFileSync(
      join(OUT, `profile-${stamp(started)}.txt`),
      `${profile.summary}\n\nGatehouse vs bare proxy, per request:\n${profile.comparison ?? '(no bare profile)'}\n`,
    );
  console.log(`\nwrote ${out}`);
}

async function checkGatehouseChain(
  responseHeaders: Record<string, string | string[] | undefined>,
  upstreamUrl: string,
  key: string,
): Promise<void> {
  if (responseHeaders['ratelimit'] === undefined)
    throw new Error('gatehouse: no RateLimit header: the rate-limit policy is not in the chain');
  const seen = JSON.parse((await get(`${upstreamUrl}/__bench/last`)).body) as { headers: Record<string, string> };
  const auth = seen.headers.authorization ?? '';
  if (!/^Bearer eyJ[\w-]+\.[\w-]+\.[\w-]+$/.test(auth) || JSON.stringify(seen).includes(key)) {
    throw new Error(
      `gatehouse: the upstream did not receive a minted JWT in place of the key (authorization: ${auth.slice(0, 20)}…)`,
    );
  }
  const claims = JSON.parse(Buffer.from(auth.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
  if (claims.client_id !== 'bench-client')
    throw new Error(`gatehouse: unexpected JWT claims ${JSON.stringify(claims)}`);
}

async function countLines(file: string): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) n++;
  }
  return n;
}

function estimateSeconds(): number {
  const startStop = 3;
  const sat = values['skip-saturation'] ? 0 : rounds * proxies.length * (warmup + duration + startStop);
  const fixed = values['skip-fixed-rate']
    ? 0
    : rateTools.length *
      rounds *
      ((proxies.length + 1) * (rateDuration + 1) + proxies.length * (warmup + 1 + startStop));
  return sat + fixed + (values.profile ? 2 * (warmup + duration + 10) : 0);
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface ProxySummary {
  saturation?: {
    rps: number;
    rpsMin: number;
    rpsMax: number;
    p50: number;
    p99: number;
    proxyCpu: number | undefined;
    rpsPerProxyCpu: number | undefined;
    loadCoreBusy: number | undefined;
  };
  fixedRate?: Record<
    string,
    { rate: number; achieved: number; p50: number; p99: number; intendedP99: number | undefined }
  >;
}

function summarise(all: Run[], rate: number | undefined) {
  const runs = all.filter((r) => !r.discarded);
  const perProxy: Partial<Record<Run['proxy'], ProxySummary>> = {};
  const med = (rs: Run[], f: (r: Run) => number | undefined) => {
    const xs = rs.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x));
    return xs.length ? median(xs) : undefined;
  };
  for (const p of ['direct' as const, ...proxies]) {
    const s: ProxySummary = {};
    const sat = runs.filter((r) => r.proxy === p && r.kind === 'saturation');
    if (sat.length) {
      const rps = sat.map((r) => r.result.rps);
      s.saturation = {
        rps: median(rps),
        rpsMin: Math.min(...rps),
        rpsMax: Math.max(...rps),
        p50: median(sat.map((r) => r.result.latencyMs.p50)),
        p99: median(sat.map((r) => r.result.latencyMs.p99)),
        proxyCpu: med(sat, (r) => r.proxyCpu),
        rpsPerProxyCpu: med(sat, (r) => r.rpsPerProxyCpu),
        loadCoreBusy: LOAD_CORE === undefined ? undefined : med(sat, (r) => r.cores[`cpu${LOAD_CORE}`]),
      };
    }
    const fixed = runs.filter((r) => r.proxy === p && r.kind === 'fixed-rate');
    if (fixed.length) {
      s.fixedRate = {};
      for (const tool of new Set(fixed.map((r) => r.result.tool))) {
        const fr = fixed.filter((r) => r.result.tool === tool);
        s.fixedRate[tool] = {
          rate: fr[0]!.result.targetRate!,
          achieved: median(fr.map((r) => r.result.rps)),
          p50: median(fr.map((r) => r.result.latencyMs.p50)),
          p99: median(fr.map((r) => r.result.latencyMs.p99)),
          intendedP99: med(fr, (r) => r.result.intendedLatencyMs?.p99),
        };
      }
    }
    if (s.saturation || s.fixedRate) perProxy[p] = s;
  }

  const perRound = (
    kind: Run['kind'],
    a: ProxyName,
    b: ProxyName,
    tool: string | undefined,
    f: (x: Run, y: Run) => number,
  ) => {
    const out: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const pick = (p: ProxyName) =>
        runs.find(
          (r) =>
            r.proxy === p && r.kind === kind && r.round === round && (tool === undefined || r.result.tool === tool),
        );
      const x = pick(a);
      const y = pick(b);
      if (x && y) out.push(f(x, y));
    }
    return out;
  };
  const ratio = (p: ProxyName) => {
    const rs = perRound('saturation', p, 'bare', undefined, (x, y) => x.result.rps / y.result.rps);
    return rs.length ? { median: median(rs), perRound: rs } : undefined;
  };
  const cpuRatio = (p: ProxyName) => {
    const rs = perRound(
      'saturation',
      p,
      'bare',
      undefined,
      (x, y) => (x.rpsPerProxyCpu ?? NaN) / (y.rpsPerProxyCpu ?? NaN),
    ).filter(Number.isFinite);
    return rs.length ? { median: median(rs), perRound: rs } : undefined;
  };
  /** Diagnosis: Gatehouse against a proxy that sends the same header bytes with no policies behind them. */
  const gatehouseOverBareHeaders = () => {
    const rs = perRound('saturation', 'gatehouse', 'bare-headers', undefined, (x, y) => x.result.rps / y.result.rps);
    return rs.length ? { median: median(rs), perRound: rs } : undefined;
  };
  const deltas: Record<string, { medianMs: number; perRoundMs: number[]; intendedMedianMs: number | undefined }> = {};
  for (const tool of new Set(runs.filter((r) => r.kind === 'fixed-rate').map((r) => r.result.tool))) {
    const d = perRound(
      'fixed-rate',
      'gatehouse',
      'bare',
      tool,
      (x, y) => x.result.latencyMs.p99 - y.result.latencyMs.p99,
    );
    const di = perRound(
      'fixed-rate',
      'gatehouse',
      'bare',
      tool,
      (x, y) => (x.result.intendedLatencyMs?.p99 ?? NaN) - (y.result.intendedLatencyMs?.p99 ?? NaN),
    ).filter(Number.isFinite);
    if (d.length)
      deltas[tool] = { medianMs: median(d), perRoundMs: d, intendedMedianMs: di.length ? median(di) : undefined };
  }
  const gatehouseRatio = ratio('gatehouse');
  const primaryDelta = deltas['paced-load'] ?? Object.values(deltas)[0];
  return {
    fixedRate: rate,
    perProxy,
    ratios: {
      gatehouseOverBare: gatehouseRatio,
      fastifyOverBare: ratio('fastify'),
      bareHeadersOverBare: ratio('bare-headers'),
      gatehouseOverBareHeaders: gatehouseOverBareHeaders(),
    },
    /** The same ratios on requests per second of proxy CPU time: what each proxy costs per request. */
    cpuNormalisedRatios: {
      gatehouseOverBare: cpuRatio('gatehouse'),
      fastifyOverBare: cpuRatio('fastify'),
      bareHeadersOverBare: cpuRatio('bare-headers'),
    },
    fixedRateP99DeltaGatehouseMinusBare: deltas,
    targets: {
      saturation: {
        target: '≥ 0.85× bare req/s',
        value: gatehouseRatio?.median,
        met: gatehouseRatio ? gatehouseRatio.median >= 0.85 : undefined,
      },
      fixedRateP99: {
        target: 'gatehouse p99 ≤ bare p99 + 0.5 ms',
        valueMs: primaryDelta?.medianMs,
        met: primaryDelta ? primaryDelta.medianMs <= 0.5 : undefined,
      },
    },
  };
}

function f1(x: number | undefined, digits = 2): string {
  return x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);
}

function formatRun(r: Run): string {
  const l = r.result.latencyMs;
  const cores = Object.entries(r.cores)
    .map(([c, v]) => `${c} ${(v * 100).toFixed(0)}%`)
    .join(' ');
  const extra =
    r.kind === 'fixed-rate' && r.result.intendedLatencyMs
      ? ` (from due time: p99 ${f1(r.result.intendedLatencyMs.p99, 3)} ms, max queue ${r.result.maxQueue})`
      : '';
  const noise = `other load: core0 ${f1((r.foreignOnProxyCore ?? NaN) * 100, 0)}% core1 ${f1((r.foreignOnLoadCore ?? NaN) * 100, 0)}%`;
  return `${r.proxy.padEnd(9)} ${r.result.rps.toFixed(0).padStart(7)} req/s  p50 ${f1(l.p50, 3).padStart(7)} ms  p99 ${f1(l.p99, 3).padStart(7)} ms${extra}  · proxy CPU ${r.proxyCpu === undefined ? '—' : `${(r.proxyCpu * 100).toFixed(0)}%`} · ${cores} · ${noise}${r.accessLogLines !== undefined ? ` · ${r.accessLogLines} log lines` : ''}`;
}

function formatTable(s: ReturnType<typeof summarise>): string {
  const lines: string[] = [];
  lines.push(`Saturation (${loadgen}, ${connections} connections, median of ${rounds} rounds)`);
  lines.push(
    `  ${'proxy'.padEnd(10)} ${'req/s'.padStart(8)} ${'min–max'.padStart(15)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'ratio'.padStart(7)}  proxy CPU  req/CPU-s  ratio`,
  );
  for (const p of proxies) {
    const sat = s.perProxy[p]?.saturation;
    if (!sat) continue;
    const ratio =
      p === 'bare'
        ? 1
        : p === 'gatehouse'
          ? s.ratios.gatehouseOverBare?.median
          : p === 'fastify'
            ? s.ratios.fastifyOverBare?.median
            : s.ratios.bareHeadersOverBare?.median;
    const cpu =
      p === 'bare'
        ? 1
        : p === 'gatehouse'
          ? s.cpuNormalisedRatios.gatehouseOverBare?.median
          : p === 'fastify'
            ? s.cpuNormalisedRatios.fastifyOverBare?.median
            : s.cpuNormalisedRatios.bareHeadersOverBare?.median;
    lines.push(
      `  ${p.padEnd(10)} ${sat.rps.toFixed(0).padStart(8)} ${`${sat.rpsMin.toFixed(0)}–${sat.rpsMax.toFixed(0)}`.padStart(15)} ${f1(sat.p50).padStart(8)} ${f1(sat.p99).padStart(8)} ${f1(ratio).padStart(7)}  ${(sat.proxyCpu === undefined ? '—' : `${(sat.proxyCpu * 100).toFixed(0)}%`).padStart(9)}  ${f1(sat.rpsPerProxyCpu, 0).padStart(9)}  ${f1(cpu).padStart(5)}`,
    );
  }
  const rows = ['direct' as const, ...proxies];
  const tools = new Set(rows.flatMap((p) => Object.keys(s.perProxy[p]?.fixedRate ?? {})));
  for (const tool of tools) {
    lines.push('');
    lines.push(`Fixed rate ${s.fixedRate} req/s (${tool}, median of ${rounds} rounds)`);
    lines.push(
      `  ${'proxy'.padEnd(10)} ${'achieved'.padStart(9)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'p99 from due'.padStart(13)}`,
    );
    for (const p of rows) {
      const fr = s.perProxy[p]?.fixedRate?.[tool];
      if (fr)
        lines.push(
          `  ${(p === 'direct' ? 'no proxy' : p).padEnd(10)} ${fr.achieved.toFixed(0).padStart(9)} ${f1(fr.p50, 3).padStart(8)} ${f1(fr.p99, 3).padStart(8)} ${f1(fr.intendedP99, 3).padStart(13)}`,
        );
    }
    const d = s.fixedRateP99DeltaGatehouseMinusBare[tool];
    if (d)
      lines.push(
        `  p99 delta gatehouse − bare: median ${f1(d.medianMs, 3)} ms (per round: ${d.perRoundMs.map((x) => x.toFixed(3)).join(', ')})`,
      );
  }
  lines.push('');
  const t = s.targets;
  const mark = (met: boolean | undefined) => (met === undefined ? 'n/a' : met ? 'MET' : 'MISSED');
  if (s.ratios.gatehouseOverBare)
    lines.push(
      `gatehouse/bare req/s: ${f1(t.saturation.value)} (per round ${s.ratios.gatehouseOverBare.perRound.map((x) => x.toFixed(2)).join(', ')}) — target ≥ 0.85: ${mark(t.saturation.met)}`,
    );
  if (s.ratios.fastifyOverBare)
    lines.push(
      `fastify/bare req/s:   ${f1(s.ratios.fastifyOverBare.median)} (per round ${s.ratios.fastifyOverBare.perRound.map((x) => x.toFixed(2)).join(', ')})`,
    );
  const bh = s.ratios.bareHeadersOverBare;
  const gbh = s.ratios.gatehouseOverBareHeaders;
  if (bh)
    lines.push(
      `bare-headers/bare req/s: ${f1(bh.median)} (per round ${bh.perRound.map((x) => x.toFixed(2)).join(', ')}): the ceiling for any proxy sending Gatehouse's headers (diagnosis)`,
    );
  if (gbh)
    lines.push(
      `gatehouse/bare-headers req/s: ${f1(gbh.median)} (per round ${gbh.perRound.map((x) => x.toFixed(2)).join(', ')}): the policies' own cost (diagnosis)`,
    );
  const cr = s.cpuNormalisedRatios.gatehouseOverBare;
  if (cr)
    lines.push(
      `gatehouse/bare requests per CPU-second: ${f1(cr.median)} (per round ${cr.perRound.map((x) => x.toFixed(2)).join(', ')})`,
    );
  if (t.fixedRateP99.valueMs !== undefined)
    lines.push(
      `fixed-rate p99 delta: ${f1(t.fixedRateP99.valueMs, 3)} ms — target ≤ 0.5 ms: ${mark(t.fixedRateP99.met)}`,
    );
  lines.push(
    values['gatehouse-log-level'] === 'info'
      ? 'Gatehouse runs include its access log (server.log.level info: one JSON line per request, written to a file).'
      : `Gatehouse ran at log level ${values['gatehouse-log-level']}: NO access log (diagnosis run, not the target configuration).`,
  );
  return lines.join('\n');
}

function machine() {
  const cpu = /model name\s*:\s*(.*)/.exec(safeRead('/proc/cpuinfo'))?.[1];
  const nodeVersion = spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim();
  // The code measured: the commit plus any uncommitted changes under src/ (read-only git commands).
  const git = (...args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() ?? '';
  const source = {
    commit: git('rev-parse', '--short', 'HEAD'),
    uncommittedSrc: git('status', '--porcelain', '--', 'src').split('\n').filter(Boolean),
  };
  // cpus(), not availableParallelism(): this process has pinned itself to one core by now.
  return {
    nproc: cpus().length,
    cpu,
    node: nodeVersion,
    kernel: safeRead('/proc/sys/kernel/osrelease').trim(),
    loadavgAtStart: loadavg(),
    source,
  };
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[:.]/g, '-');
}

main().then(
  () => process.exit(0),
  async (error: unknown) => {
    console.error(`bench failed: ${(error as Error).stack ?? String(error)}`);
    await stopAll();
    process.exit(1);
  },
);

/** The proxies in order on odd rounds and in reverse on even ones. */
function roundOrder<T>(proxies: readonly T[], round: number): readonly T[] {
  return round % 2 === 1 ? proxies : [...proxies].reverse();
}
