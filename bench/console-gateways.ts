/**
 * How fast the console's Gateways page becomes usable with 100 edge gateways and 1,000 instances (issue 15's
 * target: interactive in under 1 s on loopback). A real control plane (SQLite) gets 100 environments and their
 * gateways through the admin API and 10 instance records per gateway written into its store (instances otherwise
 * come from live gateway connections); Debian's Chromium then loads /console/gateways, signed in, and we measure
 * from navigation start to the first page of the table on screen, and the time a filter takes to apply.
 * Usage: npm run console:build && scripts/node bench/console-gateways.ts [runs=5]
 * Also times the list API as the CLI reads it (every instance) against `?instances=none` (what the page reads).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { addConsoleUser, signIn, startConsole } from '../test/console/browser.ts';

const RUNS = Number(process.argv[2] ?? 5);
const GATEWAYS = 100;
const INSTANCES_PER_GATEWAY = 10;

const env = await startConsole();
try {
  const api = env.plane.api();
  const environments = ['DEV', 'TEST', 'PROD'];
  for (let i = environments.length; i < GATEWAYS; i++) {
    const name = `E${String(i).padStart(3, '0')}`;
    const r = await api.post('/workspaces/default/environments', { name });
    if (r.status !== 201) throw new Error(`addEnvironment ${name}: ${r.status} ${JSON.stringify(r.body)}`);
    environments.push(name);
  }
  const ids: string[] = [];
  for (const [i, environment] of environments.entries()) {
    const r = await api.post('/workspaces/default/gateways', { name: `gw-${i}`, environment });
    if (r.status !== 201) throw new Error(`createGateway: ${r.status} ${JSON.stringify(r.body)}`);
    ids.push(r.body.gateway.id as string);
  }
  const db = new DatabaseSync(join(env.plane.dataDir, 'gatehouse.db'), { timeout: 10_000 });
  const now = new Date().toISOString();
  const insert = db.prepare(
    `INSERT INTO gateway_instances (gateway_id, instance_id, hostname, software_version, applied_version, applied_hash,
       nacked_version, last_error, connected, first_seen_at, last_seen_at, last_synced_at)
     VALUES (?, ?, ?, '0.1.0', 1, NULL, NULL, NULL, 0, ?, ?, ?)`,
  );
  for (const id of ids)
    for (let j = 0; j < INSTANCES_PER_GATEWAY; j++) insert.run(id, `${id}-i${j}`, `host-${j}.example`, now, now, now);
  db.close();

  // The list as the CLI reads it (every instance row) and as the page reads it (`?instances=none`: counts only),
  // alternating, median of RUNS each: the time and the size of the answer.
  const timeList = async (query: string) => {
    const t = performance.now();
    const res = await fetch(`${env.plane.adminUrl}/api/v1/workspaces/default/gateways${query}`, {
      headers: { authorization: `Bearer ${env.plane.token}` },
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`listGateways${query}: ${res.status} ${text}`);
    return {
      ms: performance.now() - t,
      bytes: Buffer.byteLength(text),
      body: JSON.parse(text) as { items: { instances: unknown[] }[] },
    };
  };
  const full: number[] = [];
  const summary: number[] = [];
  let fullBytes = 0;
  let summaryBytes = 0;
  let instances = 0;
  let listed = 0;
  for (let run = 0; run < Math.max(3, RUNS); run++) {
    const a = await timeList('');
    const b = await timeList('?instances=none');
    full.push(a.ms);
    summary.push(b.ms);
    fullBytes = a.bytes;
    summaryBytes = b.bytes;
    listed = a.body.items.length;
    instances = a.body.items.reduce((n, g) => n + g.instances.length, 0);
  }

  await addConsoleUser(env.plane, 'bench@example.com');
  const { page } = await env.newPage();
  await signIn(page, env.url, 'bench@example.com');
  const loads: number[] = [];
  const filters: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    await page.goto(`${env.url}gateways`);
    await page
      .getByRole('row', { name: /gw-\d+/ })
      .nth(19)
      .waitFor();
    // From the navigation's start, in the page's own clock: what a user waits for.
    loads.push((await page.evaluate('performance.now()')) as number);
    const started = performance.now();
    await page.getByLabel('Filter gateways').fill('gw-42');
    await page.getByText('1 of 100 match').waitFor();
    filters.push(performance.now() - started);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(
    JSON.stringify(
      {
        gateways: listed,
        instances,
        listGatewaysApiMs: { allInstances: Math.round(median(full)), instancesNone: Math.round(median(summary)) },
        listGatewaysBytes: { allInstances: fullBytes, instancesNone: summaryBytes },
        loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
        pageInteractiveMs: { median: Math.round(median(loads)), runs: loads.map(Math.round) },
        filterMs: { median: Math.round(median(filters)), runs: filters.map(Math.round) },
      },
      null,
      2,
    ),
  );
} catch (error) {
  console.error(env.plane.output.slice(-15).join('\n'));
  throw error;
} finally {
  await env.stop();
}
