/**
 * The console's analytics queries over 24 hours of telemetry from 1,000,000 requests, on SQLite and PostgreSQL.
 *
 *   scripts/node bench/analytics.ts [--requests 1000000] [--runs 5] [--sqlite-only]
 *
 * Generates the requests (deterministic: 3 gateways, 10 collections of 5 endpoints, 300 clients with a skewed
 * popularity, statuses and lognormal durations), aggregates them per minute as gateways do, stores them with the
 * store's own addTelemetry, plus one security event per 50 requests answered 401/403. Then times each query the
 * analytics page makes (the functions the admin API calls) over the whole 24 hours, the median of `--runs`, and
 * as the baseline in the same run the existing read of the same range (`listTelemetry`, what getTelemetry does).
 * Writes bench/out/analytics-<time>.json and prints a table.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { nowIso } from '../src/control/ids.ts';
import { openStore } from '../src/control/store/open.ts';
import type { SecurityEventRecord, Store, TelemetryRecord } from '../src/control/store/store.ts';
import { analyticsSeries, topClients, topRefusals } from '../src/control/telemetry/analytics.ts';
import { freshPostgresSchema } from '../src/testing/admin-plane.ts';
import { probePostgres } from '../src/testing/postgres.ts';
import { prng } from '../src/testing/prng.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '5' },
    'sqlite-only': { type: 'boolean', default: false },
  },
});
const { Client } = pg;
const REQUESTS = Number(values.requests);
const RUNS = Number(values.runs);
const WS = 'wsp_benchbenchbenchbench';
const END = Date.parse('2026-12-06T00:00:00.000Z');
const START = END - 24 * 3600_000;
const MINUTES = 1440;

function generate(): { rows: TelemetryRecord[]; events: SecurityEventRecord[] } {
  const random = prng(42);
  const gateways = ['cloud', 'gw_edge_eu', 'gw_edge_us'];
  const collections = Array.from({ length: 10 }, (_v, i) => `api-${i}`);
  const endpoints = ['GET /items', 'GET /items/{id}', 'POST /items', 'PUT /items/{id}', 'DELETE /items/{id}'];
  const clients = Array.from({ length: 300 }, (_v, i) => `cli_${String(i).padStart(20, '0')}`);
  const statuses: [number, number][] = [
    [200, 0.86],
    [201, 0.04],
    [400, 0.02],
    [401, 0.015],
    [403, 0.01],
    [404, 0.02],
    [429, 0.025],
    [500, 0.005],
    [502, 0.005],
  ];
  const pickStatus = () => {
    let r = random();
    for (const [s, p] of statuses) if ((r -= p) < 0) return s;
    return 200;
  };
  const rows: TelemetryRecord[] = [];
  const events: SecurityEventRecord[] = [];
  const perMinute = REQUESTS / MINUTES;
  let made = 0;
  for (let m = 0; m < MINUTES; m++) {
    const minute = nowIso(START + m * 60_000);
    const byKey = new Map<string, TelemetryRecord>();
    const target = Math.round(perMinute * (m + 1)) - made;
    for (let n = 0; n < target; n++) {
      const gatewayId = gateways[Math.floor(random() * random() * gateways.length)]!;
      const collection = collections[Math.floor(random() * collections.length)]!;
      const endpoint = endpoints[Math.floor(random() * endpoints.length)]!;
      // Skewed: a few clients make most requests.
      const clientId = clients[Math.floor(random() ** 3 * clients.length)]!;
      const status = pickStatus();
      const duration = Math.exp(Math.log(20) + 0.9 * gaussian(random));
      const key = `${gatewayId} ${collection} ${endpoint} ${clientId} ${status}`;
      const row = byKey.get(key);
      if (row) {
        row.count++;
        row.durationMsSum += duration;
        row.durationMsMax = Math.max(row.durationMsMax, duration);
      } else
        byKey.set(key, {
          workspaceId: WS,
          gatewayId,
          minute,
          collection,
          endpoint,
          clientId,
          status,
          count: 1,
          durationMsSum: duration,
          durationMsMax: duration,
        });
      if ((status === 401 || status === 403) && random() < 1 / 50)
        events.push({
          id: `sev_${events.length}`,
          workspaceId: WS,
          gatewayId,
          at: nowIso(START + m * 60_000 + Math.floor(random() * 60_000)),
          kind: status === 401 ? 'auth_failure' : 'forbidden',
          reason: status === 401 ? 'GH_ERR_AUTH_INVALID_KEY' : 'GH_ERR_AUTH_FORBIDDEN_ENDPOINT',
          collection,
          clientId,
        });
    }
    made += target;
    rows.push(...byKey.values());
  }
  return { rows, events };
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

async function seed(store: Store, rows: TelemetryRecord[], events: SecurityEventRecord[]): Promise<number> {
  const started = performance.now();
  await store.insertWorkspace({
    id: WS,
    name: 'bench',
    environments: ['DEV', 'PROD'],
    devEnvironment: 'DEV',
    createdAt: nowIso(START),
  });
  // One transaction per 100,000 rows: the load is not timed against anything, and a commit per statement would
  // measure the disk of a shared machine.
  for (let i = 0; i < rows.length; i += 100_000)
    await store.transaction((tx) => tx.addTelemetry(rows.slice(i, i + 100_000)));
  await store.insertSecurityEvents(events);
  return performance.now() - started;
}

const filter = { from: nowIso(START), to: nowIso(END) };
const QUERIES: Record<string, (s: Store) => Promise<unknown>> = {
  'series 24h / 5m': (s) => analyticsSeries(s, WS, { filter, bucketMs: 5 * 60_000 }),
  'series 24h / 1m': (s) => analyticsSeries(s, WS, { filter, bucketMs: 60_000 }),
  'series by collection (top 5)': (s) =>
    analyticsSeries(s, WS, { filter, bucketMs: 5 * 60_000, groupBy: 'collection' }),
  'series by endpoint (top 5)': (s) => analyticsSeries(s, WS, { filter, bucketMs: 5 * 60_000, groupBy: 'endpoint' }),
  'series by client (top 5)': (s) => analyticsSeries(s, WS, { filter, bucketMs: 5 * 60_000, groupBy: 'client' }),
  'series by gateway': (s) => analyticsSeries(s, WS, { filter, bucketMs: 5 * 60_000, groupBy: 'gateway' }),
  'series of one client': (s) =>
    analyticsSeries(s, WS, { filter: { ...filter, clientId: `cli_${'0'.repeat(20)}` }, bucketMs: 5 * 60_000 }),
  'series of one collection': (s) =>
    analyticsSeries(s, WS, { filter: { ...filter, collection: 'api-3' }, bucketMs: 5 * 60_000 }),
  'top clients (10)': (s) => topClients(s, WS, filter, 10),
  'top refusals (20)': (s) => topRefusals(s, WS, filter, 20),
  'baseline: listTelemetry 24h': (s) => s.listTelemetry(WS, { since: filter.from }),
};

async function measure(store: Store): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, query] of Object.entries(QUERIES)) {
    await query(store); // warm
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      await query(store);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    out[name] = Math.round(times[Math.floor(times.length / 2)]! * 10) / 10;
  }
  return out;
}

const generatedAt = performance.now();
const { rows, events } = generate();
console.log(
  `generated ${REQUESTS.toLocaleString('en')} requests as ${rows.length.toLocaleString('en')} telemetry rows and ${events.length} security events in ${Math.round(performance.now() - generatedAt)} ms`,
);
const results: Record<string, { seedMs: number; queries: Record<string, number> }> = {};

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-analytics-'));
try {
  const sqlite = await openStore({ dataDir: dir });
  const seedMs = await seed(sqlite, rows, events);
  results.sqlite = { seedMs: Math.round(seedMs), queries: await measure(sqlite) };
  console.log('sqlite', JSON.stringify(results.sqlite));
  await sqlite.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (!values['sqlite-only']) {
  const unreachable = await probePostgres();
  if (unreachable) console.log(`PostgreSQL not measured: ${unreachable}`);
  else {
    const schema = await freshPostgresSchema();
    try {
      const postgres = await openStore({ databaseUrl: schema.url });
      const seedMs = await seed(postgres, rows, events);
      // What autovacuum does after a bulk load: without statistics the planner guesses.
      const client = new Client({ connectionString: schema.url });
      await client.connect();
      await client.query('analyze');
      await client.end();
      results.postgres = { seedMs: Math.round(seedMs), queries: await measure(postgres) };
      console.log('postgres', JSON.stringify(results.postgres));
      await postgres.close();
    } finally {
      await schema.drop();
    }
  }
}

const names = Object.keys(QUERIES);
const baseline = 'baseline: listTelemetry 24h';
console.log(
  `\n| query | ${Object.keys(results)
    .map((k) => `${k} ms | ÷ baseline`)
    .join(' | ')} |`,
);
console.log(
  `|---|${Object.keys(results)
    .map(() => '---:|---:')
    .join('|')}|`,
);
for (const name of names)
  console.log(
    `| ${name} | ${Object.values(results)
      .map((r) => `${r.queries[name]} | ${(r.queries[name]! / r.queries[baseline]!).toFixed(2)}`)
      .join(' | ')} |`,
  );
for (const [k, r] of Object.entries(results)) console.log(`${k}: seeded in ${r.seedMs} ms`);
mkdirSync(join(import.meta.dirname, 'out'), { recursive: true });
const file = join(import.meta.dirname, 'out', `analytics-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(
  file,
  JSON.stringify({ requests: REQUESTS, rows: rows.length, events: events.length, runs: RUNS, results }, null, 2),
);
console.log(`wrote ${file}`);
