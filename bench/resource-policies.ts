/**
 * Resource policies at saturation (issue #18): one Gatehouse process serving three collections with the same
 * endpoint, upstream, client and full chain, loaded in turn and interleaved over rounds:
 *   - `open`: no policies (the baseline, in the same process and run);
 *   - `guarded10`: a typical set of 10 policies, one of which reads one relationship (the resource's owner);
 *   - `guarded100`: 100 policies on the operation.
 * Reports req/s and p50 per collection and the median per-round ratio guarded/open. The per-request cost of the
 * decision itself (µs, too small for a load generator's millisecond latencies) is `bench/cedar.ts` (its "gateway check" lines).
 *
 * Usage: scripts/node bench/resource-policies.ts [--rounds 3] [--duration 8] [--connections 64] [--json]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateKey } from '../src/shared/api-key.ts';
import { type LoadResult, saturate, wrkVersion } from './lib/load.ts';
import { freePort, installCleanup, startUpstreamAndGateway, stopAll, waitForHttp } from './lib/processes.ts';
import { typicalPolicies } from './lib/typical-policies.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '8' },
    connections: { type: 'string', default: '64' },
    json: { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds);
const DURATION = Number(values.duration);
const CONNECTIONS = Number(values.connections);
installCleanup();

const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-bench-policies-'));
const { key, hash, id } = generateKey();
const upstreamPort = await freePort();
const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
const never = { limit: 1_000_000_000, window: '1m' };
const collection = (name: string, policies: number) => ({
  name,
  basePath: `/${name}`,
  upstream: upstreamUrl,
  project: 'bench',
  environment: 'PROD',
  endpoints: [
    {
      method: 'GET',
      path: '/orgs/{orgId}/items/{itemId}',
      permission: 'items:read',
      resource: { type: 'Item', param: 'itemId', in: [{ type: 'Org', param: 'orgId' }] },
    },
  ],
  ...(policies > 0 && {
    policies: {
      cedar: typicalPolicies(policies),
      entityTypes: {
        Item: { memberOf: ['Org'], attributes: { owner: { type: 'Entity', name: 'User', required: false } } },
      },
    },
  }),
});
const names = ['open', 'guarded10', 'guarded100'] as const;
const config = {
  server: { signingKeysFile: join(tmp, 'signing-keys.json'), log: { level: 'info' }, watch: false },
  tokenExchange: { issuer: 'https://gatehouse.bench.local', audience: 'bench-api', ttl: '5m', algorithm: 'EdDSA' },
  rateLimits: { key: never, client: never, org: never },
  collections: [collection('open', 0), collection('guarded10', 10), collection('guarded100', 100)],
  roles: [{ name: 'reader', permissions: ['items:read'] }],
  clients: [
    {
      id: 'bench-client',
      role: 'reader',
      environments: ['PROD'],
      projects: ['bench'],
      userId: 'u-1',
      orgId: 'bench-org',
      rateLimits: { key: never, client: never },
      keys: [{ hash, id }],
    },
  ],
  // The relationship the `owner` policy reads (the tenant policy already permits; every policy is evaluated).
  entities: ['guarded10', 'guarded100'].map((c) => ({
    collection: c,
    uid: { type: 'Item', id: '42' },
    attrs: { owner: { __entity: { type: 'User', id: 'u-1' } } },
  })),
};
const file = join(tmp, 'gateway.json');
writeFileSync(file, JSON.stringify(config));

const { gateway, port } = await startUpstreamAndGateway(file, upstreamPort);
const headers = { Authorization: `Bearer ${key}` };
const url = (name: string) => `http://127.0.0.1:${port}/${name}/orgs/bench-org/items/42`;
for (const name of names) await waitForHttp(gateway, url(name), headers);
// A denied request proves the policies run: another org's item.
await waitForHttp(gateway, `http://127.0.0.1:${port}/guarded10/orgs/other/items/43`, headers, 403);

const tool = wrkVersion() ? 'wrk' : 'autocannon';
const results: Record<string, LoadResult[]> = { open: [], guarded10: [], guarded100: [] };
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? names : [...names].reverse();
  for (const name of order) {
    const target = { url: url(name), headers, connections: CONNECTIONS, core: 1 };
    await saturate(tool, target, 2, tmp); // warm-up
    const r = await saturate(tool, target, DURATION, tmp);
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`${name}: ${r.non2xx} non-2xx, ${r.errors} errors`);
    results[name]!.push(r);
    if (!values.json)
      console.log(`round ${round + 1} ${name.padEnd(10)} ${Math.round(r.rps)} req/s  p50 ${r.latencyMs.p50} ms`);
  }
}
await stopAll();
rmSync(tmp, { recursive: true, force: true });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const summary = Object.fromEntries(
  names.map((n) => [
    n,
    {
      rps: Math.round(median(results[n]!.map((r) => r.rps))),
      p50Ms: median(results[n]!.map((r) => r.latencyMs.p50)),
      ratio: n === 'open' ? 1 : median(results[n]!.map((r, i) => r.rps / results.open![i]!.rps)),
    },
  ]),
);
if (values.json) console.log(JSON.stringify({ tool, rounds: ROUNDS, duration: DURATION, summary }, null, 2));
else
  for (const n of names)
    console.log(
      `${n.padEnd(10)} median ${summary[n]!.rps} req/s, p50 ${summary[n]!.p50Ms} ms, ratio to open ${summary[n]!.ratio.toFixed(3)} (${tool})`,
    );
