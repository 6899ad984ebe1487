/**
 * Exact limits (issue 19), two measurements in one run:
 *
 * 1. **Over-admission**: three gateway processes on one Redis, a rate limit of 100 per minute on one key; a burst of
 *    600 requests, then 600 paced at 300/s, then 240 paced at 60/s (each on a fresh key), spread round-robin over
 *    the three. Admitted requests for `mode: sync` (the baseline) and `mode: lease`.
 * 2. **Cost at saturation** (one gateway, closed loop): the chain with a rate limit only (memory store) is the
 *    baseline; then with concurrency caps per key, client and org added (memory store); then caps plus daily and
 *    monthly quotas per client and org (memory store: the "caps and quotas on ≥ 0.95× off"); then caps with
 *    the Redis lease store, and caps plus quotas on Redis (leased, as rate limits). Rounds alternate between
 *    configurations, each round starting one configuration later; the ratios are of medians.
 *
 * Usage: scripts/node bench/exact-limits.ts [--rounds 3] [--seconds 5] [--connections 32] [--skip-saturation]
 *   [--skip-over-admission] [--only withCaps,withCapsQuotas]
 * Besides req/s, the saturation part reports the gateway's CPU time per request (/proc), which a busy shared
 * machine disturbs far less than req/s.
 * Needs Redis at GATEHOUSE_TEST_REDIS_URL (default redis://127.0.0.1:6379). Prints one JSON line at the end.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { TEST_REDIS_URL } from '../src/testing/redis.ts';
import {
  newKey,
  startGateway,
  startUpstream,
  TOKEN_EXCHANGE,
  waitForLine,
  type GatewayProcess,
} from '../test/helpers.ts';
import { burst, closeLoad, paced } from '../test/limits-load.ts';
import { saturate, wrkVersion } from './lib/load.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
    'skip-saturation': { type: 'boolean', default: false },
    'skip-over-admission': { type: 'boolean', default: false },
    /** Comma-separated saturation configurations to run (default: all); the baseline `rateLimitOnly` always runs. */
    only: { type: 'string' },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const connections = Number(values.connections);

const upstream = await startUpstream();
const keys = Array.from({ length: 6 }, () => newKey());
const redis = new Redis(TEST_REDIS_URL);

function config(
  rateLimitStore: Record<string, unknown>,
  options: { limit: number; caps?: boolean; quotas?: boolean } = { limit: 100 },
): Record<string, unknown> {
  return {
    server: { rateLimitStore },
    tokenExchange: TOKEN_EXCHANGE,
    collections: [
      {
        name: 'bench',
        basePath: '/bench',
        upstream: upstream.url,
        project: 'p',
        environment: 'PROD',
        rateLimits: { key: { limit: options.limit, window: '1m' } },
        ...(options.caps
          ? { concurrency: { key: { max: 10_000 }, client: { max: 10_000 }, org: { max: 10_000 } } }
          : {}),
        // Never reached: every request is counted and answered with the quota fields, none refused.
        ...(options.quotas
          ? { quotas: { client: { daily: 1e12, monthly: 1e13 }, org: { daily: 1e12, monthly: 1e13 } } }
          : {}),
        endpoints: [{ method: 'GET', path: '/items/{id}', permission: 'items:read' }],
      },
    ],
    roles: [{ name: 'reader', permissions: ['items:read'] }],
    clients: keys.map((k, i) => ({
      id: `c${i}`,
      orgId: 'acme',
      role: 'reader',
      environments: ['PROD'],
      projects: ['p'],
      keys: [{ hash: k.hash }],
    })),
  };
}

async function wipe(prefix: string): Promise<void> {
  const found = await redis.keys(`${prefix}*`);
  if (found.length > 0) await redis.del(...found);
}

/** Over-admission of one mode: admitted requests per load. */
async function overAdmission(mode: 'sync' | 'lease'): Promise<Record<string, number>> {
  const prefix = `gatehouse-bench:${randomBytes(4).toString('hex')}:`;
  const gateways: GatewayProcess[] = await Promise.all(
    [0, 1, 2].map(() => startGateway(config({ type: 'redis', url: TEST_REDIS_URL, prefix, mode }))),
  );
  try {
    await Promise.all(gateways.map((g) => waitForLine(g, /rate-limit store connected/, 0)));
    const urls = gateways.map((g) => `${g.url}/bench/items/1`);
    const auth = (i: number) => ({ authorization: `Bearer ${keys[i]!.key}` });
    return {
      burst600: (await burst(urls, 600, auth(0))).admitted,
      paced300: (await paced(urls, 300, 600, auth(1))).admitted,
      paced60: (await paced(urls, 60, 240, auth(2))).admitted,
    };
  } finally {
    await Promise.all(gateways.map((g) => g.stop()));
    await wipe(prefix);
  }
}

/** CPU time (user + system) of a process so far, in ms, from /proc/<pid>/stat (Linux; clock ticks of 10 ms). */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The median of a configuration's rounds; NaN for a configuration left out by `--only`. */
const median = (xs: number[] | undefined) =>
  xs === undefined || xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function saturation(): Promise<Record<string, unknown>> {
  const prefix = `gatehouse-bench:${randomBytes(4).toString('hex')}:`;
  const setups = {
    rateLimitOnly: config({ type: 'memory' }, { limit: 1_000_000_000 }),
    withCaps: config({ type: 'memory' }, { limit: 1_000_000_000, caps: true }),
    withCapsQuotas: config({ type: 'memory' }, { limit: 1_000_000_000, caps: true, quotas: true }),
    withCapsRedis: config({ type: 'redis', url: TEST_REDIS_URL, prefix }, { limit: 1_000_000_000, caps: true }),
    withCapsQuotasRedis: config(
      { type: 'redis', url: TEST_REDIS_URL, prefix },
      { limit: 1_000_000_000, caps: true, quotas: true },
    ),
  };
  if (values.only !== undefined) {
    const keep = new Set(['rateLimitOnly', ...values.only.split(',')]);
    for (const name of Object.keys(setups)) if (!keep.has(name)) delete setups[name as keyof typeof setups];
  }
  const tool = wrkVersion() === undefined ? 'autocannon' : 'wrk';
  const tmp = await mkdtemp(join(tmpdir(), 'gatehouse-bench-'));
  const names = Object.keys(setups);
  const rps: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  /** The gateway's CPU ms per request (user + system, /proc): far steadier than req/s on a shared, busy machine. */
  const cpu: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  /** Non-2xx answers and errors per configuration (all runs): must be 0. */
  const failures: Record<string, number> = {};
  try {
    const entries = Object.entries(setups);
    for (let round = 0; round < rounds; round++) {
      // Each round starts one configuration later, so that no configuration always runs last in a round.
      for (let i = 0; i < entries.length; i++) {
        const [name, cfg] = entries[(round + i) % entries.length]!;
        const gw = await startGateway(cfg);
        try {
          const target = {
            url: `${gw.url}/bench/items/1`,
            headers: { authorization: `Bearer ${keys[3]!.key}` },
            connections,
            core: undefined,
          };
          await saturate(tool, target, 1, tmp); // warm-up
          const cpuBefore = await cpuMs(gw.child.pid!);
          const r = await saturate(tool, target, seconds, tmp);
          cpu[name]!.push(((await cpuMs(gw.child.pid!)) - cpuBefore) / r.requests);
          rps[name]!.push(r.rps);
          failures[name] = (failures[name] ?? 0) + r.non2xx + r.errors;
        } finally {
          await gw.stop();
          // The upstream (in this process) records every request it sees: millions over a run, which would slow
          // later rounds with garbage collection.
          upstream.requests.length = 0;
        }
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
    await wipe(prefix);
  }
  const base = median(rps.rateLimitOnly!);
  return {
    tool,
    rounds,
    seconds,
    connections,
    rps,
    failures,
    medians: Object.fromEntries(Object.entries(rps).map(([k, v]) => [k, Math.round(median(v))])),
    ratioCapsMemory: +(median(rps.withCaps!) / base).toFixed(3),
    ratioCapsRedis: +(median(rps.withCapsRedis!) / base).toFixed(3),
    ratioCapsQuotasMemory: +(median(rps.withCapsQuotas!) / base).toFixed(3),
    ratioCapsQuotasRedis: +(median(rps.withCapsQuotasRedis!) / base).toFixed(3),
    cpuUsPerRequest: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, Math.round(median(v) * 1000)])),
    /** Requests per CPU-second relative to the baseline (the saturation ratio on a machine of one's own). */
    cpuRatioCapsMemory: +(median(cpu.rateLimitOnly!) / median(cpu.withCaps!)).toFixed(3),
    cpuRatioCapsRedis: +(median(cpu.rateLimitOnly!) / median(cpu.withCapsRedis!)).toFixed(3),
    cpuRatioCapsQuotasMemory: +(median(cpu.rateLimitOnly!) / median(cpu.withCapsQuotas!)).toFixed(3),
    cpuRatioCapsQuotasRedis: +(median(cpu.rateLimitOnly!) / median(cpu.withCapsQuotasRedis!)).toFixed(3),
  };
}

try {
  const result: Record<string, unknown> = { at: new Date().toISOString() };
  if (!values['skip-over-admission'])
    result.overAdmission = { limit: 100, sync: await overAdmission('sync'), lease: await overAdmission('lease') };
  console.error(JSON.stringify(result));
  if (!values['skip-saturation']) result.saturation = await saturation();
  console.log(JSON.stringify(result));
} finally {
  await closeLoad();
  await upstream.close();
  await redis.quit();
}
