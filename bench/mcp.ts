/**
 * MCP tool calls against plain requests (docs/mcp.md): one Gatehouse process serving one collection as an MCP
 * server, loaded in turn, interleaved over rounds, by the same closed-loop generator (undici, keep-alive):
 *   - `plain`: `GET /items/items/42` with the key (the baseline, same process and run);
 *   - `mcp`: `POST /items/mcp` with a JSON-RPC `tools/call` of the same endpoint (`get_items_id`, `{ id: "42" }`),
 *     answered with JSON (stateless Streamable HTTP): one SDK server and transport per request, the MCP request's
 *     authentication, the endpoint's chain and the upstream request, the answer read whole into the tool result;
 *   - `list`: `tools/list` (no upstream): the per-request cost of the SDK and the (cached) per-client tool filter.
 * Reports req/s and p50 per case and the median per-round ratio to `plain`. Rate limits are on (10⁹ per minute).
 *
 * Usage: scripts/node bench/mcp.ts [--rounds 3] [--duration 5] [--connections 32] [--json]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { generateKey } from '../src/shared/api-key.ts';
import { freePort, installCleanup, startUpstreamAndGateway, stopAll, waitForHttp } from './lib/processes.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
    json: { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds);
const DURATION = Number(values.duration);
const CONNECTIONS = Number(values.connections);
installCleanup();

const tmp = mkdtempSync(join(tmpdir(), 'gatehouse-bench-mcp-'));
const { key, hash, id } = generateKey();
const upstreamPort = await freePort();
const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
const never = { limit: 1_000_000_000, window: '1m' };
const config = {
  server: { signingKeysFile: join(tmp, 'signing-keys.json'), log: { level: 'info' }, watch: false },
  tokenExchange: { issuer: 'https://gatehouse.bench.local', audience: 'bench-api', ttl: '5m', algorithm: 'EdDSA' },
  rateLimits: { key: never, client: never, org: never },
  collections: [
    {
      name: 'items',
      basePath: '/items',
      upstream: upstreamUrl,
      project: 'bench',
      environment: 'PROD',
      mcp: {},
      endpoints: [
        { method: 'GET', path: '/items/{id}', permission: 'items:read' },
        ...Array.from({ length: 30 }, (_, i) => ({ method: 'GET', path: `/other${i}/{id}`, permission: 'other:read' })),
      ],
    },
  ],
  roles: [{ name: 'reader', permissions: ['items:read'] }],
  clients: [
    {
      id: 'bench-client',
      role: 'reader',
      environments: ['PROD'],
      projects: ['bench'],
      rateLimits: { key: never, client: never },
      keys: [{ hash, id }],
    },
  ],
};
const file = join(tmp, 'gateway.json');
writeFileSync(file, JSON.stringify(config));

const { gateway, port } = await startUpstreamAndGateway(file, upstreamPort);
const auth = { authorization: `Bearer ${key}` };
await waitForHttp(gateway, `http://127.0.0.1:${port}/items/items/42`, auth);

interface Case {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  headers: Record<string, string>;
  /** Checks one answer (the first of each run). */
  check(status: number, body: string): void;
}
const rpc = (method: string, params: unknown) => JSON.stringify({ jsonrpc: '2.0', id: 1, method, params });
const mcpHeaders = {
  ...auth,
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-06-18',
};
const cases: Record<string, Case> = {
  plain: {
    method: 'GET',
    path: '/items/items/42',
    headers: auth,
    check: (status) => {
      if (status !== 200) throw new Error(`plain: ${status}`);
    },
  },
  mcp: {
    method: 'POST',
    path: '/items/mcp',
    body: rpc('tools/call', { name: 'get_items_id', arguments: { id: '42' } }),
    headers: mcpHeaders,
    check: (status, body) => {
      const answer = JSON.parse(body) as { result?: { isError?: boolean } };
      if (status !== 200 || answer.result?.isError !== false) throw new Error(`mcp: ${status} ${body}`);
    },
  },
  list: {
    method: 'POST',
    path: '/items/mcp',
    body: rpc('tools/list', {}),
    headers: mcpHeaders,
    check: (status, body) => {
      const answer = JSON.parse(body) as { result?: { tools?: unknown[] } };
      if (status !== 200 || answer.result?.tools?.length !== 1) throw new Error(`list: ${status} ${body}`);
    },
  },
};
const names = Object.keys(cases);

/** Closed loop: CONNECTIONS workers, each sending its next request when the last one was answered. */
async function run(c: Case, seconds: number): Promise<{ rps: number; p50: number; failed: number }> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS, pipelining: 1 });
  const latencies: number[] = [];
  let failed = 0;
  let checked = false;
  const end = performance.now() + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      const res = await pool.request({ method: c.method, path: c.path, headers: c.headers, body: c.body });
      const text = await res.body.text();
      latencies.push(performance.now() - t);
      if (!checked) {
        checked = true;
        c.check(res.statusCode, text);
      }
      if (res.statusCode !== 200) failed++;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  const elapsed = (performance.now() - start) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / elapsed, p50: latencies[Math.floor(latencies.length / 2)]!, failed };
}

const results: Record<string, { rps: number; p50: number }[]> = Object.fromEntries(names.map((n) => [n, []]));
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? names : [...names].reverse();
  for (const name of order) {
    await run(cases[name]!, 1); // warm-up
    const r = await run(cases[name]!, DURATION);
    if (r.failed > 0) throw new Error(`${name}: ${r.failed} failed`);
    results[name]!.push(r);
    if (!values.json)
      console.log(`round ${round + 1} ${name.padEnd(6)} ${Math.round(r.rps)} req/s  p50 ${r.p50.toFixed(2)} ms`);
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
      p50Ms: Number(median(results[n]!.map((r) => r.p50)).toFixed(2)),
      ratio: median(results[n]!.map((r, i) => r.rps / results.plain![i]!.rps)),
    },
  ]),
);
if (values.json) console.log(JSON.stringify({ rounds: ROUNDS, duration: DURATION, summary }, null, 2));
else
  for (const n of names)
    console.log(
      `${n.padEnd(6)} median ${summary[n]!.rps} req/s, p50 ${summary[n]!.p50Ms} ms, ratio to plain ${summary[n]!.ratio.toFixed(3)}`,
    );
