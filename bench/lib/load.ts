/**
 * Load generators, each run as its own bounded child process pinned to the load core: wrk (saturation, closed
 * loop) with autocannon as the fallback when wrk is not installed, and the fixed-rate runs (paced-load.ts, or
 * autocannon's overallRate on request).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasCommand, NODE, runToCompletion } from './processes.ts';

export interface Latency {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface LoadResult {
  tool: string;
  /** 2xx responses per second over the run. */
  rps: number;
  requests: number;
  durationS: number;
  /** Non-2xx answers (wrk: status ≥ 400). */
  non2xx: number;
  /** Connect/read/write errors and timeouts. */
  errors: number;
  latencyMs: Latency;
  /** Fixed-rate runs: latency measured from when each request was due (coordinated omission corrected). */
  intendedLatencyMs?: Latency;
  targetRate?: number;
  maxQueue?: number;
}

export interface LoadTarget {
  url: string;
  headers: Record<string, string>;
  connections: number;
  core: number | undefined;
}

export type SaturationTool = 'wrk' | 'autocannon';

export function wrkVersion(): string | undefined {
  if (!hasCommand('wrk')) return undefined;
  const out = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  return `${out.stdout}${out.stderr}`.split('\n')[0]?.trim();
}

const WRK_LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"durationUs":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"non2xx":%d,"timeouts":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.3f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
`;

const headerArgs = (headers: Record<string, string>) =>
  Object.entries(headers).map(([name, value]) => `${name}: ${value}`);

/** Closed-loop saturation for `seconds`. */
export async function saturate(
  tool: SaturationTool,
  target: LoadTarget,
  seconds: number,
  tmpDir: string,
): Promise<LoadResult> {
  if (tool === 'wrk') {
    const script = join(tmpDir, 'wrk-report.lua');
    writeFileSync(script, WRK_LUA);
    const args = ['-t1', `-c${target.connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', script];
    for (const h of headerArgs(target.headers)) args.push('-H', h);
    args.push(target.url);
    const out = await runToCompletion('wrk', 'wrk', args, { core: target.core, maxSeconds: seconds + 30 });
    const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
    if (!line) throw new Error(`wrk printed no report:\n${out}`);
    const r = JSON.parse(line.slice(9)) as Record<string, number>;
    const durationS = r.durationUs! / 1e6;
    const ok = r.requests! - r.non2xx!;
    const ms = (us: number) => us / 1000;
    return {
      tool: 'wrk',
      rps: ok / durationS,
      requests: r.requests!,
      durationS,
      non2xx: r.non2xx!,
      errors: r.connectErrors! + r.readErrors! + r.writeErrors! + r.timeouts!,
      latencyMs: {
        p50: ms(r.p50!),
        p90: ms(r.p90!),
        p99: ms(r.p99!),
        p999: ms(r.p999!),
        max: ms(r.max!),
        mean: ms(r.mean!),
      },
    };
  }
  return autocannon(target, seconds, undefined);
}

async function autocannon(target: LoadTarget, seconds: number, rate: number | undefined): Promise<LoadResult> {
  const args = [
    'bench/lib/autocannon-run.ts',
    '--url',
    target.url,
    '--duration',
    String(seconds),
    '--connections',
    String(target.connections),
  ];
  if (rate !== undefined) args.push('--rate', String(rate));
  for (const h of headerArgs(target.headers)) args.push('--header', h);
  const out = await runToCompletion('autocannon', NODE, args, { core: target.core, maxSeconds: seconds + 60 });
  const r = JSON.parse(out.trim().split('\n').pop()!) as {
    rps: number;
    requests: number;
    durationS: number;
    non2xx: number;
    errors: number;
    timeouts: number;
    latencyMs: Latency;
  };
  return {
    tool: rate === undefined ? 'autocannon' : 'autocannon overallRate',
    rps: r.rps,
    requests: r.requests,
    durationS: r.durationS,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    latencyMs: r.latencyMs,
    targetRate: rate,
  };
}

export type RateTool = 'paced' | 'autocannon';

/** Open-loop fixed rate for `seconds`. */
export async function fixedRate(
  tool: RateTool,
  target: LoadTarget,
  rate: number,
  seconds: number,
): Promise<LoadResult> {
  if (tool === 'autocannon')
    return autocannon({ ...target, connections: Math.min(target.connections, 32) }, seconds, rate);
  const args = [
    'bench/lib/paced-load.ts',
    '--url',
    target.url,
    '--rate',
    String(rate),
    '--duration',
    String(seconds),
    '--connections',
    '32',
  ];
  for (const h of headerArgs(target.headers)) args.push('--header', h);
  const out = await runToCompletion('paced-load', NODE, args, { core: target.core, maxSeconds: seconds + 60 });
  const r = JSON.parse(out.trim().split('\n').pop()!) as {
    completed: number;
    actualRate: number;
    durationS: number;
    non2xx: number;
    socketErrors: number;
    maxQueue: number;
    latencyMs: Latency;
    intendedLatencyMs: Latency;
  };
  return {
    tool: 'paced-load',
    rps: r.actualRate,
    requests: r.completed,
    durationS: r.durationS,
    non2xx: r.non2xx,
    errors: r.socketErrors,
    latencyMs: r.latencyMs,
    intendedLatencyMs: r.intendedLatencyMs,
    targetRate: rate,
    maxQueue: r.maxQueue,
  };
}
