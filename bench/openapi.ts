/**
 * OpenAPI benchmarks (issue #16), each against a baseline measured in the same run:
 *
 * 1. import: the largest public descriptions in the registry (`@octokit/openapi`: GitHub's REST API, ~13 MB of
 *    JSON each), imported in a fresh child process: wall time and peak RSS, beside `JSON.parse` of the same file;
 * 2. apply: the snapshot holding every imported collection, parsed and compiled as a gateway applies it;
 * 3. route match: the gateway's endpoint matcher over thousands of real templates against a 10-endpoint collection;
 * 4. validation: a running `gatehouse gateway run` with the same POST on a collection with and without request
 *    validation (autocannon, alternating rounds): the ratio of requests per second.
 *
 * Usage: scripts/node bench/openapi.ts [--part import|apply|route|validation]… [--seconds 5]
 *        scripts/node bench/openapi.ts --child FILE   (one import, prints JSON; used by part 1)
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { stringify } from 'yaml';
import { importOpenApi } from '../src/config/openapi/import.ts';
import { type Endpoint, SnapshotSchema } from '../src/config/schema.ts';
import { generateKey } from '../src/shared/api-key.ts';
import { EndpointMatcher } from '../src/gateway/http/router.ts';
import { UpstreamPools } from '../src/gateway/http/upstream-pools.ts';
import { createMemoryStore } from '../src/gateway/policies/rate-limit/memory-store.ts';
import { compileSnapshot } from '../src/gateway/snapshot/compile.ts';
import { openSigningKeyStore } from '../src/gateway/tokens/keystore.ts';
import { createMinter } from '../src/gateway/tokens/minter.ts';
import { NODE, ROOT } from './lib/processes.ts';

/**
 * GitHub's REST descriptions (`@octokit/openapi`, about 385 MB unpacked): installed on the first run into
 * bench/out/specs, not by `npm ci`, so that installing Gatehouse and running its tests do not carry them.
 */
const SPEC_PACKAGE = '@octokit/openapi@23.0.2';
const SPEC_DIR = join(ROOT, 'bench/out/specs');
const SPEC_FILES = join(SPEC_DIR, 'node_modules/@octokit/openapi/generated');
if (!existsSync(SPEC_FILES)) {
  console.error(`bench/openapi: installing ${SPEC_PACKAGE} into bench/out/specs (the specs measured; once)`);
  execFileSync(
    'npm',
    ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', SPEC_DIR, SPEC_PACKAGE],
    { stdio: 'inherit' },
  );
}
const SPECS = ['api.github.com', 'ghec', 'ghes-3.19', 'ghes-3.18', 'ghes-3.17'].map((n) =>
  join(SPEC_FILES, `${n}.json`),
);
/** GitHub describes compare both as `{basehead}` and `{base}...{head}`: one segment for the router, so one goes. */
const DUPLICATE = '/repos/{owner}/{repo}/compare/{base}...{head}';

const { values } = parseArgs({
  options: {
    part: { type: 'string', multiple: true },
    child: { type: 'string' },
    seconds: { type: 'string', default: '5' },
  },
});

async function specText(file: string): Promise<string> {
  const doc = JSON.parse(await readFile(file, 'utf8')) as { paths: Record<string, unknown> };
  delete doc.paths[DUPLICATE];
  return JSON.stringify(doc);
}

if (values.child) {
  const text = await specText(values.child);
  const mode = process.env.BENCH_MODE;
  const start = performance.now();
  let operations = 0;
  if (mode === 'parse') JSON.parse(text);
  else {
    const outcome = await importOpenApi(text, { validateRequests: mode === 'validate' });
    if (!outcome.ok) throw new Error(JSON.stringify(outcome.problems.slice(0, 3)));
    operations = outcome.spec.endpoints.length;
  }
  const ms = performance.now() - start;
  console.log(JSON.stringify({ ms, operations, maxRssMb: process.resourceUsage().maxRSS / 1024, bytes: text.length }));
  process.exit(0);
}

const parts = new Set(values.part ?? ['import', 'apply', 'route', 'validation']);
const results: Record<string, unknown> = {};

function runChild(
  file: string,
  mode: string,
): Promise<{ ms: number; operations: number; maxRssMb: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, ['bench/openapi.ts', '--child', file], {
      cwd: ROOT,
      env: { ...process.env, BENCH_MODE: mode },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`child ${code}`)),
    );
  });
}

if (parts.has('import')) {
  const rows = [];
  for (const file of SPECS.slice(0, 2)) {
    const parse = await runChild(file, 'parse');
    const plain = await runChild(file, 'import');
    const validate = await runChild(file, 'validate');
    rows.push({ file: file.split('/').pop(), parse, import: plain, importWithSchemas: validate });
    console.log(JSON.stringify(rows.at(-1)));
  }
  results.import = rows;
}

// Every GitHub description imported once, as collections of one snapshot.
const collections: { name: string; endpoints: Endpoint[]; schemas?: Record<string, unknown> }[] = [];
if (parts.has('apply') || parts.has('route')) {
  for (const file of SPECS) {
    const outcome = await importOpenApi(await specText(file), {});
    if (!outcome.ok) throw new Error(JSON.stringify(outcome.problems.slice(0, 3)));
    collections.push({
      name: file.split('/').pop()!.replace('.json', '').replace(/\./g, '-'),
      endpoints: outcome.spec.endpoints,
    });
  }
}

const deps = async () => {
  const pools = new UpstreamPools();
  const store = createMemoryStore();
  const signing = await openSigningKeyStore({ algorithm: 'EdDSA', tokenTtlMs: 60_000 });
  return {
    deps: {
      pools,
      rateLimitStore: store,
      minter: createMinter({ issuer: 'i', audience: 'a', ttlMs: 60_000, claims: [], keys: signing }),
      onTokenError: () => {},
    },
    close: async () => {
      await pools.close();
      store.close();
      signing.close();
    },
  };
};

if (parts.has('apply')) {
  const input = {
    tokenExchange: { issuer: 'i', audience: 'a' },
    collections: collections.map((c) => ({
      name: c.name,
      basePath: `/${c.name}`,
      upstream: 'http://127.0.0.1:1',
      project: 'p',
      environment: 'PROD',
      endpoints: c.endpoints,
    })),
    roles: [{ name: 'reader', permissions: ['repos:*', 'issues:*'] }],
    clients: [],
  };
  const small = {
    ...input,
    collections: [{ ...input.collections[0]!, endpoints: input.collections[0]!.endpoints.slice(0, 10) }],
  };
  const { deps: d, close } = await deps();
  const time = (snapshot: unknown, rounds: number) => {
    const samples: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const start = performance.now();
      compileSnapshot(SnapshotSchema.parse(snapshot), d);
      samples.push(performance.now() - start);
    }
    samples.sort((a, b) => a - b);
    return samples[Math.floor(samples.length / 2)]!;
  };
  time(input, 2);
  const endpoints = input.collections.reduce((n, c) => n + c.endpoints.length, 0);
  results.apply = { endpoints, medianMs: time(input, 7), tenEndpointsMedianMs: time(small, 7) };
  console.log(JSON.stringify(results.apply));
  await close();
}

if (parts.has('route')) {
  type E = {
    id: string;
    method: Endpoint['method'];
    template: string;
    permission: string;
    collection: null;
    paramNames: string[];
  };
  const matcher = (list: Endpoint[]) => {
    const m = new EndpointMatcher<null, E>();
    for (const e of list)
      m.add({
        id: e.path,
        method: e.method,
        template: e.path,
        permission: e.permission,
        collection: null,
        paramNames: [],
      });
    return m;
  };
  const all = collections[0]!.endpoints;
  const concrete = (e: Endpoint) => e.path.replace(/\{[^}]+\}/g, 'x1');
  const big = matcher(all);
  const ten = matcher(all.slice(0, 10));
  const bigPaths = all.map((e) => [e.method, concrete(e)] as const);
  const tenPaths = all.slice(0, 10).map((e) => [e.method, concrete(e)] as const);
  const perMatch = (m: EndpointMatcher<null, E>, paths: readonly (readonly [string, string])[]) => {
    const n = 200_000;
    let sink = 0;
    for (let round = 0; round < 2; round++) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        const [method, path] = paths[i % paths.length]!;
        if (m.match(method, path)) sink++;
      }
      const ns = Number(process.hrtime.bigint() - start) / n;
      if (round === 1) return { ns, sink };
    }
    return { ns: 0, sink };
  };
  const bigNs = perMatch(big, bigPaths).ns;
  const tenNs = perMatch(ten, tenPaths).ns;
  results.route = { templates: all.length, nsPerMatch: bigNs, tenTemplatesNsPerMatch: tenNs, ratio: bigNs / tenNs };
  console.log(JSON.stringify(results.route));
}

if (parts.has('validation')) {
  const upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-bench-openapi-'));
  const key = generateKey();
  const petstore = join(ROOT, 'test/fixtures/openapi/petstore.yaml');
  const collection = (name: string, validateRequests: boolean) => ({
    name,
    basePath: `/${name}`,
    upstream: upstreamUrl,
    project: 'p',
    environment: 'PROD',
    validateRequests,
    openapi: petstore,
  });
  await writeFile(
    join(dir, 'gateway.yaml'),
    stringify({
      server: { log: { level: 'info' } },
      tokenExchange: { issuer: 'https://bench', audience: 'bench', algorithm: 'EdDSA', ttl: '5m' },
      collections: [collection('plain', false), collection('checked', true)],
      roles: [{ name: 'all', permissions: ['*'] }],
      clients: [{ id: 'c', role: 'all', environments: ['PROD'], projects: ['p'], keys: [{ hash: key.hash }] }],
    }),
  );
  const gw = spawn(
    NODE,
    [
      'src/cli/main.ts',
      'gateway',
      'run',
      '--config',
      join(dir, 'gateway.yaml'),
      '--port',
      '0',
      '--ops-port',
      '0',
      '--host',
      '127.0.0.1',
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    let found = false;
    // Keeps draining the pipes after the port is known (the access log goes on writing).
    const onData = (d: Buffer) => {
      if (found) return;
      out += d.toString();
      const m = /"api":"127\.0\.0\.1:(\d+)".*"gateway listening"/.exec(out);
      if (m) {
        found = true;
        resolve(Number(m[1]));
      }
    };
    gw.stdout.on('data', onData);
    gw.stderr.on('data', onData);
    gw.once('exit', (code) => reject(new Error(`gateway exited ${code}: ${out}`)));
  });
  const body = JSON.stringify({
    id: 10,
    name: 'doggie',
    category: { id: 1, name: 'Dogs' },
    photoUrls: ['https://example.com/a.png'],
    tags: [{ id: 1, name: 'good' }],
    status: 'available',
  });
  const run = async (name: string) => {
    const r = await autocannon({
      url: `http://127.0.0.1:${port}/${name}/pet`,
      method: 'POST',
      duration: Number(values.seconds),
      connections: 32,
      headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
      body,
    });
    if (r.non2xx > 0) throw new Error(`${name}: ${r.non2xx} non-2xx answers`);
    return r['2xx'] / r.duration;
  };
  await run('plain');
  await run('checked');
  const rounds: { plain: number; checked: number }[] = [];
  for (let i = 0; i < 3; i++) rounds.push({ plain: await run('plain'), checked: await run('checked') });
  const sum = (k: 'plain' | 'checked') => rounds.reduce((s, r) => s + r[k], 0);
  results.validation = { bodyBytes: body.length, rounds, ratio: sum('checked') / sum('plain') };
  console.log(JSON.stringify(results.validation));
  gw.kill('SIGTERM');
  upstream.close();
  await rm(dir, { recursive: true, force: true });
}

console.log(JSON.stringify({ at: new Date().toISOString(), ...results }));
